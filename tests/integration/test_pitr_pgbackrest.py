# -*- coding: utf-8 -*-
# Copyright: Lifeline contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Point-in-time recovery with the real pgBackRest 2.45 and a real PostgreSQL 15 archiving into a
local path repository. One source per module (configure, stanza-create, full backup, rows written
with timestamps, a table dropped at T); every restore goes into a new data directory on a free
port and is stopped afterwards."""
from __future__ import annotations

import datetime
import os
import pwd
import shutil
import signal
import time
import uuid

import psycopg2
import pytest

from lifeline_it import adhoc, s3_keys
from tools import run
from services import PitrPostgres, TlsProxy, free_port, service_dir

from ansible_collections.lifeline.dr.plugins.module_utils import pitr
from ansible_collections.lifeline.dr.plugins.module_utils.errors import (
    ConfigError,
    DecryptionError,
    IntegrityError,
    LifelineError,
    RestoreError,
)
from ansible_collections.lifeline.dr.plugins.module_utils.pgbackrest_config import PitrSettings
from ansible_collections.lifeline.dr.plugins.module_utils.pgbackrest_run import Pgbackrest, SystemIdMismatch
from ansible_collections.lifeline.dr.plugins.module_utils.pitr_server import Server
from ansible_collections.lifeline.dr.plugins.module_utils.pitr_window import RecoveryTarget
from ansible_collections.lifeline.dr.plugins.module_utils.postgres import PgConnection
from ansible_collections.lifeline.dr.plugins.module_utils.timeutil import isotime

PASS = "correct horse battery staple, pitr"
SITE, HOST = "it", "src"


def settings_for(base: str, *, data_dir: str, port: int, socket_dir: str, host: str = HOST,
                 cipher_pass: str = PASS) -> PitrSettings:
    return PitrSettings(repositories=[{"name": "local", "path": os.path.join(base, "repo")}], site=SITE,
                        host=host, data_dir=data_dir, cipher_pass=cipher_pass, port=port, socket_dir=socket_dir,
                        spool_path=os.path.join(base, "spool"), log_path=os.path.join(base, "log"),
                        lock_path=os.path.join(base, "lock"), process_max=2)


def conn_of(pg) -> PgConnection:
    return PgConnection(host=pg.host, port=pg.port, user=pg.user, password=pg.password)


class Source:
    """The archived source, what was written to it and when."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.pg = PitrPostgres(os.path.join(base, "src"))
        self.config = os.path.join(base, "etc", "src.conf")
        self.rows: list = []       # (id, committed_before, inserted_after) as UTC datetimes
        self.dropped_at = None     # T
        self.drop_segment = ""

    def settings(self, **kw) -> PitrSettings:
        return settings_for(self.base, data_dir=self.pg.data, port=self.pg.port, socket_dir=self.pg.dir, **kw)

    def write_rows_then_drop(self, seconds: float = 3.0) -> None:
        db = psycopg2.connect(**{"dbname": "postgres", **self.pg.conn_args()})
        db.autocommit = True
        with db.cursor() as cur:
            cur.execute("CREATE TABLE events (id int PRIMARY KEY, at timestamptz NOT NULL DEFAULT clock_timestamp())")
            end = time.time() + seconds
            i = 0
            while time.time() < end:
                i += 1
                before = datetime.datetime.now(datetime.timezone.utc)
                cur.execute("INSERT INTO events (id) VALUES (%s)", (i,))
                after = datetime.datetime.now(datetime.timezone.utc)
                self.rows.append((i, before, after))
                time.sleep(0.1)
            cur.execute("SELECT pg_create_restore_point('before-drop')")
            self.dropped_at = datetime.datetime.now(datetime.timezone.utc)
            cur.execute("DROP TABLE events")
            cur.execute("SELECT pg_walfile_name(pg_current_wal_lsn())")
            self.drop_segment = cur.fetchone()[0]
            cur.execute("SELECT pg_switch_wal()")
        db.close()


def wait_archived(pg, segment: str, timeout: float = 30) -> None:
    """Until ``segment`` is archived (pg_stat_archiver)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        done = pg.psql("SELECT coalesce(last_archived_wal, '') FROM pg_stat_archiver")
        if done[:24] >= segment:
            return
        time.sleep(0.2)
    raise AssertionError("WAL %s not archived in %ss: %s" % (segment, timeout, pg.psql("SELECT * FROM pg_stat_archiver")))


@pytest.fixture(scope="module")
def source():
    base = service_dir("pitr")
    src = Source(base)
    src.pg.start()
    try:
        result = pitr.configure(src.settings(), conn_of(src.pg), config_path=src.config, archive_timeout=1)
        assert result["stanza_created"] and result["checked"], result
        pitr.backup(src.settings(), conn_of(src.pg), config_path=src.config, kind=pitr.BackupType.FULL)
        time.sleep(1.2)  # the rows start after the backup's end: the window opens before them
        src.write_rows_then_drop()
        wait_archived(src.pg, src.drop_segment)
        yield src
    finally:
        src.pg.stop()
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def target(source):
    """A new, empty data directory and a free port; the restored server is stopped at the end."""
    base = os.path.join(source.base, "t-" + uuid.uuid4().hex[:8])
    os.makedirs(base)
    os.chmod(base, 0o755)
    if os.geteuid() == 0:  # the server's log goes beside its data directory
        os.chown(base, pwd.getpwnam("postgres").pw_uid, -1)
    t = {"base": base, "data": os.path.join(base, "data"), "port": free_port(),
         "config": os.path.join(source.base, "etc", "restore-%s.conf" % uuid.uuid4().hex[:6])}
    yield t
    Server(t["data"], port=t["port"], pg_ctl="/usr/lib/postgresql/15/bin/pg_ctl").stop()


def restore_into(source: Source, t: dict, target: RecoveryTarget, **kw) -> dict:
    settings = settings_for(source.base, data_dir=t["data"], port=t["port"], socket_dir=t["base"],
                            **{k: kw.pop(k) for k in ("cipher_pass",) if k in kw})
    conn = PgConnection(host="127.0.0.1", port=t["port"], user="postgres", password=source.pg.password)
    return pitr.restore(settings, conn, config_path=t["config"], target=target, socket_dir=t["base"],
                        recovery_timeout=60, **kw)


def restored_query(t: dict, source: Source, sql: str):
    db = psycopg2.connect(host="127.0.0.1", port=t["port"], user="postgres", password=source.pg.password,
                          dbname="postgres")
    try:
        with db.cursor() as cur:
            cur.execute(sql)
            return cur.fetchall()
    finally:
        db.close()


def test_configure_is_idempotent_and_sets_archiving(source):
    again = pitr.configure(source.settings(), conn_of(source.pg), config_path=source.config, archive_timeout=1)

    assert again["changed"] is False and again["stanza_created"] is False and again["settings_changed"] == []
    assert again["archiver"]["last_archived_wal"] >= source.drop_segment
    assert oct(os.stat(source.config).st_mode & 0o777) == "0o600"
    assert source.pg.psql("SHOW archive_command").startswith("/usr/bin/pgbackrest --config=")
    with open(source.config, encoding="utf-8") as fh:
        text = fh.read()
    for line in ("compress-type=zst", "repo1-cipher-type=aes-256-cbc", "archive-async=y", "archive-push-queue-max="):
        assert line in text


def test_info_window_spans_the_backup_to_the_newest_archived_wal(source):
    win = pitr.info(source.settings(), config_path=source.config)["window"]

    assert len(win["backups"]) == 1 and win["backups"][0]["type"] == "full"
    assert win["oldest"] == win["backups"][0]["stop"]
    assert win["newest"] >= isotime(source.dropped_at)
    assert win["last_segment"] and win["archive_lag"] is not None
    assert win["system_id"] == source.pg.psql("SELECT system_identifier FROM pg_control_system()")


def test_restore_to_one_second_before_the_drop_brings_back_exactly_the_rows_committed_by_then(source, target):
    when = source.dropped_at - datetime.timedelta(seconds=1)

    result = restore_into(source, target, RecoveryTarget.parse(kind="time", value=when.isoformat()))

    got = {r[0] for r in restored_query(target, source, "SELECT id FROM events")}
    surely_in = {i for i, _before, after in source.rows if after < when}
    surely_out = {i for i, before, _after in source.rows if before > when}
    assert surely_in and surely_out  # the test wrote on both sides of the target
    assert surely_in <= got
    assert not got & surely_out
    assert result["stop_reason"].startswith("before ")
    assert result["last_replayed"] <= isotime(when + datetime.timedelta(milliseconds=1))
    assert restored_query(target, source, "SELECT pg_is_in_recovery(), current_setting('archive_mode')") == [(False, "off")]


def test_restore_to_a_named_restore_point_stops_there(source, target):
    result = restore_into(source, target, RecoveryTarget.parse(kind="name", value="before-drop"))

    assert result["stop_reason"] == 'at restore point "before-drop"'
    assert restored_query(target, source, "SELECT count(*) FROM events") == [(len(source.rows),)]


def test_restore_to_latest_replays_up_to_the_drop(source, target):
    result = restore_into(source, target, RecoveryTarget.parse(kind="latest"))

    assert result["stop_reason"] == "no recovery target specified"
    assert restored_query(target, source, "SELECT to_regclass('public.events') IS NULL") == [(True,)]


@pytest.mark.parametrize("offset", [-3600, 3600])
def test_restore_refuses_a_target_outside_the_window_and_touches_nothing(source, target, offset):
    win = pitr.info(source.settings(), config_path=source.config)["window"]
    edge = win["oldest"] if offset < 0 else win["newest"]
    when = datetime.datetime.fromisoformat(edge.replace("Z", "+00:00")) + datetime.timedelta(seconds=offset)

    with pytest.raises(ConfigError, match="nothing was touched"):
        restore_into(source, target, RecoveryTarget.parse(kind="time", value=when.isoformat()))
    assert not os.path.exists(target["data"])


def test_restore_with_a_wrong_passphrase_fails_clearly_and_touches_nothing(source, target):
    with pytest.raises(DecryptionError, match="wrong pgBackRest cipher passphrase"):
        restore_into(source, target, RecoveryTarget.parse(kind="latest"), cipher_pass="x" * 32)
    assert not os.path.exists(target["data"])


def test_restore_refuses_an_occupied_data_directory_without_replace(source, target):
    os.makedirs(target["data"])
    with open(os.path.join(target["data"], "keep.me"), "w", encoding="utf-8") as fh:
        fh.write("x")

    with pytest.raises(RestoreError, match="not empty"):
        restore_into(source, target, RecoveryTarget.parse(kind="latest"))
    assert os.listdir(target["data"]) == ["keep.me"]


def test_another_cluster_is_refused_the_sources_stanza(source):
    other = PitrPostgres(os.path.join(source.base, "other-" + uuid.uuid4().hex[:6]))
    other.start()
    try:
        settings = settings_for(source.base, data_dir=other.data, port=other.port, socket_dir=other.dir)
        with pytest.raises(SystemIdMismatch, match="refusing to archive"):
            pitr.configure(settings, conn_of(other), config_path=os.path.join(source.base, "etc", "other.conf"),
                           archive_timeout=1)
        assert other.psql("SHOW archive_command") in ("", "(disabled)")
    finally:
        other.stop()


def test_restore_in_check_mode_reads_the_window_and_writes_nothing(source, target):
    result = restore_into(source, target, RecoveryTarget.parse(kind="latest"), check_mode=True)

    assert result["replaces_existing"] is False and result["window"]["backups"]
    assert not os.path.exists(target["data"]) and not os.path.exists(target["config"])


def test_replace_keeps_the_old_cluster_until_the_new_one_is_verified_and_puts_it_back_on_an_early_stop(source, target):
    restore_into(source, target, RecoveryTarget.parse(kind="latest"))
    marker = os.path.join(target["data"], "lifeline-test-marker")
    with open(marker, "w", encoding="utf-8") as fh:
        fh.write("old cluster")

    # No transaction 4000000000 in the archive: WAL ends first, PostgreSQL refuses to promote.
    with pytest.raises(RestoreError, match="put back"):
        restore_into(source, target, RecoveryTarget.parse(kind="xid", value="4000000000"), replace=True)
    assert os.path.exists(marker)
    assert not [n for n in os.listdir(target["base"]) if ".lifeline-old-" in n]

    when = source.dropped_at - datetime.timedelta(seconds=1)
    result = restore_into(source, target, RecoveryTarget.parse(kind="time", value=when.isoformat()), replace=True)
    assert not os.path.exists(marker)
    assert result["previous_data_dir"] is None
    assert not [n for n in os.listdir(target["base"]) if ".lifeline-old-" in n]
    assert restored_query(target, source, "SELECT count(*) > 0 FROM events") == [(True,)]


def test_an_s3_repository_over_tls_receives_the_wal_and_the_base_backup(moto, bucket):
    base = service_dir("pitr-s3")
    pg = PitrPostgres(os.path.join(base, "src"))
    try:
        with TlsProxy(moto.port) as tls:
            s3 = dict(moto.s3_settings(bucket), endpoint_url=tls.endpoint, verify_tls=False)
            settings = PitrSettings(repositories=[{"name": "s3", "s3": s3}],
                                    site=SITE, host=HOST, data_dir=pg.data, cipher_pass=PASS, port=pg.port,
                                    socket_dir=pg.dir, spool_path=os.path.join(base, "spool"),
                                    log_path=os.path.join(base, "log"), lock_path=os.path.join(base, "lock"))
            config = os.path.join(base, "etc", "s3.conf")
            pg.start()
            assert pitr.configure(settings, conn_of(pg), config_path=config, archive_timeout=1)["checked"]
            backup = pitr.backup(settings, conn_of(pg), config_path=config, kind=pitr.BackupType.FULL)

            keys = s3_keys(moto, bucket)
            assert any(k.startswith("lifeline/pitr/it/src/backup/lifeline/%s/" % backup["backup"]["label"]) for k in keys)
            assert any(k.startswith("lifeline/pitr/it/src/archive/lifeline/15-1/") for k in keys)
            assert backup["window"]["newest"] >= backup["window"]["oldest"]
    finally:
        pg.stop()
        shutil.rmtree(base, ignore_errors=True)


def test_rpo_drill_kill_9_and_lost_data_directory_lose_at_most_archive_timeout_plus_5_seconds():
    """Rows written continuously; the primary is killed with SIGKILL and its data directory deleted;
    a restore to latest on a new directory loses at most archive_timeout + 5 s of commits."""
    archive_timeout = 1
    base = service_dir("pitr-rpo")
    src = Source(base)
    t = {"base": os.path.join(base, "target"), "port": free_port(), "config": os.path.join(base, "etc", "r.conf")}
    t["data"] = os.path.join(t["base"], "data")
    os.makedirs(t["base"])
    os.chown(t["base"], pwd.getpwnam("postgres").pw_uid, -1)
    try:
        src.pg.start()
        pitr.configure(src.settings(), conn_of(src.pg), config_path=src.config, archive_timeout=archive_timeout)
        pitr.backup(src.settings(), conn_of(src.pg), config_path=src.config, kind=pitr.BackupType.FULL)
        db = psycopg2.connect(dbname="postgres", **src.pg.conn_args())
        db.autocommit = True
        with db.cursor() as cur:
            cur.execute("CREATE TABLE beats (at timestamptz PRIMARY KEY DEFAULT clock_timestamp())")
            end = time.time() + 4
            while time.time() < end:
                cur.execute("INSERT INTO beats DEFAULT VALUES RETURNING at")
                last_committed = cur.fetchone()[0]
                time.sleep(0.05)
        db.close()
        with open(os.path.join(src.pg.data, "postmaster.pid"), encoding="utf-8") as fh:
            os.kill(int(fh.readline()), signal.SIGKILL)
        time.sleep(0.5)
        shutil.rmtree(src.pg.data)

        result = restore_into(src, t, RecoveryTarget.parse(kind="latest"))

        newest = restored_query(t, src, "SELECT max(at) FROM beats")[0][0]
        lost = (last_committed - newest).total_seconds()
        print("RPO drill (archive_timeout=%ds): %.2f s of commits lost" % (archive_timeout, lost))
        assert result["stop_reason"] == "no recovery target specified"
        assert 0 <= lost <= archive_timeout + 5, "lost %.1f s of commits" % lost
    finally:
        Server(t["data"], port=t["port"], pg_ctl="/usr/lib/postgresql/15/bin/pg_ctl").stop()
        shutil.rmtree(base, ignore_errors=True)


def test_configure_in_check_mode_reports_the_restart_and_writes_nothing(source):
    other = PitrPostgres(os.path.join(source.base, "plain-" + uuid.uuid4().hex[:6]), archive=False)
    other.start()
    try:
        settings = settings_for(source.base, data_dir=other.data, port=other.port, socket_dir=other.dir, host="plain")
        config = os.path.join(source.base, "etc", "plain.conf")

        result = pitr.configure(settings, conn_of(other), config_path=config, archive_timeout=1, check_mode=True)

        assert result["changed"] is True and result["restart_required"] == ["archive_mode"]
        assert set(result["settings_changed"]) == {"archive_mode", "archive_command", "archive_timeout"}
        assert not os.path.exists(config)
        assert not os.path.exists(os.path.join(source.base, "repo", "pitr", SITE, "plain"))
        assert other.psql("SELECT count(*) FROM pg_file_settings WHERE sourcefile LIKE '%auto.conf'") == "0"
    finally:
        other.stop()


def _archived(pg) -> str:
    return pg.psql("SELECT coalesce(last_archived_wal, '') || '|' || failed_count FROM pg_stat_archiver")


def test_an_unwritable_repository_keeps_the_wal_unarchived_and_archiving_catches_up_when_it_returns(source):
    archive = os.path.join(source.base, "repo", "pitr", SITE, HOST, "archive", "lifeline", "15-1", "0000000100000000")
    before_wal, before_failed = _archived(source.pg).split("|")
    os.chmod(archive, 0o555)  # the postgres user can no longer add segments
    try:
        # the segment that holds the new table (the LSN is inside it, not on its boundary)
        segment = source.pg.psql("CREATE TABLE during_outage AS SELECT 1 AS x; "
                                 "SELECT pg_walfile_name(pg_current_wal_insert_lsn())")
        source.pg.psql("SELECT pg_switch_wal()")
        deadline = time.time() + 20
        while int(_archived(source.pg).split("|")[1]) <= int(before_failed) and time.time() < deadline:
            time.sleep(0.2)
        wal, failed = _archived(source.pg).split("|")
        assert int(failed) > int(before_failed)           # the failure is visible (pg_stat_archiver)
        assert wal < segment                               # never reported archived
        assert os.path.exists(os.path.join(source.pg.data, "pg_wal", "archive_status", segment + ".ready"))
    finally:
        os.chmod(archive, 0o750)
    # new WAL and a switch wake the archiver (a switch without new WAL is a no-op)
    source.pg.psql("CREATE TABLE after_outage AS SELECT 1 AS x")
    source.pg.psql("SELECT pg_switch_wal()")
    wait_archived(source.pg, segment, timeout=40)
    assert before_wal < segment


def test_the_same_segment_pushed_again_with_different_content_is_refused(source):
    segment = source.drop_segment
    pgb = Pgbackrest(source.config, "lifeline")
    work = os.path.join(source.base, "forged-" + uuid.uuid4().hex[:6])
    os.makedirs(os.path.join(work, "pg_wal", "archive_status"))
    forged = os.path.join(work, "pg_wal", segment)
    os.makedirs(os.path.join(work, "global"))  # a copy of the cluster's pg_control: same system identifier
    shutil.copy(os.path.join(source.pg.data, "global", "pg_control"), os.path.join(work, "global"))
    run(["chown", "-R", "postgres", work])
    pgb.run("archive-get", "--no-archive-async", positional=(segment, forged), what="archive-get")  # the archived segment
    with open(forged, "r+b") as fh:
        fh.seek(8192 * 50)
        fh.write(b"forged" * 100)

    with pytest.raises(LifelineError, match="already exists.*different checksum"):
        pgb.run("archive-push", "--no-archive-async", "--pg1-path=" + work, positional=(forged,), what="archive-push")


def test_verify_names_a_segment_removed_from_the_repository_and_a_restore_to_latest_refuses_to_end_at_it(
        source, target):
    copy = os.path.join(source.base, "repo-copy-" + uuid.uuid4().hex[:6])
    shutil.copytree(os.path.join(source.base, "repo"), copy, symlinks=True)
    run(["chown", "-R", "postgres", copy])
    settings = PitrSettings(repositories=[{"name": "copy", "path": copy}], site=SITE, host=HOST, data_dir=source.pg.data,
                            cipher_pass=PASS, spool_path=os.path.join(source.base, "spool"),
                            log_path=os.path.join(source.base, "log"), lock_path=os.path.join(source.base, "lock"))
    config = os.path.join(source.base, "etc", "verify-%s.conf" % uuid.uuid4().hex[:6])

    intact = pitr.verify(settings, config_path=config)

    assert intact["verified"] is True and intact["gaps"] == {}
    assert "status: ok" in intact["pgbackrest_verify"]
    archive = os.path.join(copy, "pitr", SITE, HOST, "archive", "lifeline", "15-1", "0000000100000000")
    start = intact["window"]["backups"][0]["wal_stop"]  # past the base backup: it reaches consistency
    held = sorted(n for n in os.listdir(archive) if n[:24] > start and len(n.split("-", 1)[0]) == 24)
    assert len(held) >= 3, held  # the drop's segments after the base backup
    victim = held[len(held) // 2]
    os.unlink(os.path.join(archive, victim))

    with pytest.raises(IntegrityError, match="WAL gap in repository copy .*%s is missing" % victim[:24]):
        pitr.verify(settings, config_path=config)
    # pgBackRest's own verify (2.45) checks only the files that exist: the gap is Lifeline's finding
    assert "status: ok" in Pgbackrest(config, "lifeline").run("verify", "--output=text", "--verbose")

    # PostgreSQL promotes "latest" wherever WAL ends, at the gap too: the restore must not call that success
    restored = PitrSettings(repositories=settings.repositories, site=SITE, host=HOST, data_dir=target["data"],
                            cipher_pass=PASS, port=target["port"], socket_dir=target["base"],
                            spool_path=settings.spool_path, log_path=settings.log_path, lock_path=settings.lock_path)
    conn = PgConnection(host="127.0.0.1", port=target["port"], user="postgres", password=source.pg.password)
    with pytest.raises(RestoreError, match="recovery to latest ended in WAL segment .* before the newest archived"):
        pitr.restore(restored, conn, config_path=target["config"], target=RecoveryTarget.parse(kind="latest"),
                     socket_dir=target["base"], recovery_timeout=60)
    assert not os.path.exists(target["data"]) or not os.listdir(target["data"])


def test_backup_info_shows_the_base_backups_window_lag_and_last_segment_and_writes_no_config(source):
    etc = os.path.join(source.base, "etc")
    before = sorted(os.listdir(etc))
    args = {"repositories": [{"name": "local", "path": os.path.join(source.base, "repo")}], "site": SITE, "host": HOST,
            "state_dir": os.path.join(source.base, "state"), "allow_unsigned": True,
            "pitr_cipher_pass": PASS, "pitr_config_file": os.path.join(etc, "info.conf")}

    rc, result, output = adhoc("lifeline.dr.backup_info", args)

    assert rc == 0, output
    win = result["pitr"]
    assert [b["type"] for b in win["backups"]] == ["full"] and win["oldest"] == win["backups"][0]["stop"]
    assert win["newest"] >= isotime(source.dropped_at) and win["last_segment"] >= source.drop_segment
    assert 0 <= win["archive_lag"] < 3600
    assert PASS not in output
    assert sorted(os.listdir(etc)) == before

    rc, result, output = adhoc("lifeline.dr.backup_info", dict(args, host="no-such-host"))
    assert rc == 0, output
    assert result["pitr"] is None and any("no point-in-time recovery archive" in w for w in result["catalog_warnings"])


def test_restore_reads_the_s3_repository_over_tls_when_the_local_repository_is_gone(moto, bucket):
    base = service_dir("pitr-s3-restore")
    pg = PitrPostgres(os.path.join(base, "src"))
    t = {"base": os.path.join(base, "target"), "port": free_port(), "config": os.path.join(base, "etc", "r.conf")}
    t["data"] = os.path.join(t["base"], "data")
    os.makedirs(t["base"])
    os.chown(t["base"], pwd.getpwnam("postgres").pw_uid, -1)
    try:
        with TlsProxy(moto.port) as tls:
            s3 = dict(moto.s3_settings(bucket), endpoint_url=tls.endpoint, verify_tls=False)
            repositories = [{"name": "local", "path": os.path.join(base, "repo")}, {"name": "s3", "s3": s3}]

            def settings(**kw) -> PitrSettings:
                return PitrSettings(**dict(dict(
                    repositories=repositories, site=SITE, host="s3src", data_dir=pg.data, cipher_pass=PASS,
                    port=pg.port, socket_dir=pg.dir, spool_path=os.path.join(base, "spool"),
                    log_path=os.path.join(base, "log"), lock_path=os.path.join(base, "lock")), **kw))

            config = os.path.join(base, "etc", "src.conf")
            pg.start()
            assert pitr.configure(settings(), conn_of(pg), config_path=config, archive_timeout=1)["checked"]
            taken = pitr.backup(settings(), conn_of(pg), config_path=config, kind=pitr.BackupType.FULL)["backups_taken"]
            assert set(taken) == {"local", "s3"} and all(taken.values()), taken  # one base backup in each
            pg.psql("CREATE TABLE only_in_wal AS SELECT g AS id FROM generate_series(1, 77) g")
            segment = pg.psql("SELECT pg_walfile_name(pg_current_wal_insert_lsn())")
            pg.psql("SELECT pg_switch_wal()")
            wait_archived(pg, segment)
            pg.stop()
            shutil.rmtree(os.path.join(base, "repo"))  # the host and its local repository are lost

            conn = PgConnection(host="127.0.0.1", port=t["port"], user="postgres", password=pg.password)
            result = pitr.restore(settings(data_dir=t["data"], port=t["port"], socket_dir=t["base"]), conn,
                                  config_path=t["config"], target=RecoveryTarget.parse(kind="latest"),
                                  socket_dir=t["base"], recovery_timeout=60)

            assert not os.path.exists(os.path.join(base, "repo", "pitr"))  # nothing came from a local copy
            assert result["stop_reason"] == "no recovery target specified"
            assert restored_query(t, Source(base), "SELECT count(*) FROM only_in_wal") == [(77,)]
    finally:
        Server(t["data"], port=t["port"], pg_ctl="/usr/lib/postgresql/15/bin/pg_ctl").stop()
        pg.stop()
        shutil.rmtree(base, ignore_errors=True)


def test_settings_in_the_backup_that_would_run_commands_or_load_code_are_disabled_before_the_first_start(source, target):
    """Whoever can forge a base backup controls its postgresql.auto.conf: a restore must not run its
    commands on this host or load a library from a path it names. (Last in this file: it adds a
    base backup.)"""
    marker = os.path.join(source.base, "recovery-end-command-ran")
    source.pg.psql("ALTER SYSTEM SET recovery_end_command = 'touch %s'" % marker)
    source.pg.psql("ALTER SYSTEM SET shared_preload_libraries = '%s/evil'" % source.base)
    try:
        pitr.backup(source.settings(), conn_of(source.pg), config_path=source.config, kind=pitr.BackupType.FULL)
    finally:
        source.pg.psql("ALTER SYSTEM RESET recovery_end_command")
        source.pg.psql("ALTER SYSTEM RESET shared_preload_libraries")

    result = restore_into(source, target, RecoveryTarget.parse(kind="latest"))

    # Without the clean-up the server would not even start (it cannot load <base>/evil.so).
    assert "postgresql.auto.conf: shared_preload_libraries (loads a library by path)" in result["disabled_settings"]
    assert not os.path.exists(marker)
    with open(os.path.join(target["data"], "postgresql.auto.conf"), encoding="utf-8") as fh:
        active = [line for line in fh.read().splitlines() if line and not line.startswith("#")]
    assert not [line for line in active if "evil" in line or "recovery_end_command" in line], active
    assert restored_query(target, source, "SELECT current_setting('shared_preload_libraries')") == [("",)]
