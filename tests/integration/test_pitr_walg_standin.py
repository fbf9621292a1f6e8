# -*- coding: utf-8 -*-
# Copyright: Lifeline contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""postgres_pitr with ``engine: walg`` against a STAND-IN for WAL-G (tests/lib/walg_standin.py):
WAL-G's binary cannot be had on this machine, so ``wal-g`` is a script that records every call and
keeps WAL and base backups, unencrypted, in a directory in WAL-G's layout. A real PostgreSQL 15
archives through it and is restored from it by Lifeline's shared restore (PitrRestore: window
check, start, promotion, proof from the timeline history). What this proves: the 0600 config, the
commands Lifeline runs (config by file, never a secret in argv, ``--confirm`` only for a real
delete), how it reads WAL-G's answers, and the restore logic; nothing about WAL-G itself."""
from __future__ import annotations

import datetime
import json
import os
import pwd
import shutil
import stat
import time

import pytest

from services import PitrPostgres, free_port

from ansible_collections.lifeline.dr.plugins.module_utils.errors import ConfigError, IntegrityError
from ansible_collections.lifeline.dr.plugins.module_utils.pgbackrest_run import SystemIdMismatch
from ansible_collections.lifeline.dr.plugins.module_utils.pitr_server import Server
from ansible_collections.lifeline.dr.plugins.module_utils.pitr_walg import run_action
from ansible_collections.lifeline.dr.plugins.module_utils.postgres import PgConnection
from ansible_collections.lifeline.dr.plugins.module_utils.walg_config import WalgSettings

KEY = "ab" * 32
STANDIN = os.path.join(os.path.dirname(__file__), "..", "lib", "walg_standin.py")
PG_CTL = "/usr/lib/postgresql/15/bin/pg_ctl"


def standin_bytes() -> bytes:
    """The stand-in as an executable: the system Python (the postgres user runs it)."""
    with open(STANDIN, "rb") as fh:
        return b"#!/usr/bin/python3\n" + fh.read()


def install_standin(base: str) -> tuple:
    """The stand-in as ``<base>/bin/wal-g`` (readable by postgres) and its call log."""
    bin_dir = os.path.join(base, "bin")
    os.makedirs(bin_dir, mode=0o755)
    exe = os.path.join(bin_dir, "wal-g")
    with open(exe, "wb") as fh:
        fh.write(standin_bytes())
    os.chmod(exe, 0o755)
    log = os.path.join(bin_dir, "walg-calls.log")
    open(log, "w", encoding="utf-8").close()
    os.chmod(log, 0o666)
    os.chmod(bin_dir, 0o777)
    return exe, log


def calls(log: str) -> list:
    with open(log, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh]


def params(base: str, exe: str, pg, **kw) -> dict:
    p = {"action": "configure", "engine": "walg", "repositories": [{"name": "local", "path": os.path.join(base, "repo")}],
         "site": "it", "cipher_pass": KEY, "walg_config_file": os.path.join(base, "etc", "walg.json"), "walg_exe": exe,
         "walg_delta_max_steps": 3, "process_max": 2, "data_dir": None, "socket_dir": pg.dir, "archive_timeout": 1,
         "backup_type": "full", "source_host": None, "target": "latest", "target_type": "auto", "replace": False,
         "keep_previous": False, "service": "", "recovery_timeout": 60, "retention_full": 2}
    p.update(kw)
    return p


def act(p: dict, pg, *, host: str = "src", check_mode: bool = False, port: int | None = None) -> dict:
    conn = PgConnection(host="127.0.0.1", port=port or pg.port, user="postgres", password=pg.password)
    return run_action(p, conn, host=host, check_mode=check_mode,
                      restore_config=lambda source: os.path.join(os.path.dirname(p["walg_config_file"]),
                                                                 "from-%s.json" % source))


def wait_archived(pg, timeout: float = 30) -> None:
    segment = pg.psql("SELECT pg_walfile_name(pg_current_wal_lsn()) FROM pg_switch_wal()")
    deadline = time.time() + timeout
    while pg.psql("SELECT coalesce(last_archived_wal, '') FROM pg_stat_archiver")[:24] < segment:
        assert time.time() < deadline, pg.psql("SELECT * FROM pg_stat_archiver")
        time.sleep(0.2)


def test_walg_engine_archives_backs_up_deltas_verifies_restores_to_a_time_and_a_name_with_proof_and_expires(pitr_dir):
    base = pitr_dir
    exe, log = install_standin(base)
    os.makedirs(os.path.join(base, "repo"))
    shutil.chown(os.path.join(base, "repo"), "postgres")
    pg = PitrPostgres(os.path.join(base, "src"))
    pg.start()
    target = os.path.join(base, "target")
    os.makedirs(target)
    os.chown(target, pwd.getpwnam("postgres").pw_uid, -1)
    port = free_port()
    try:
        p = params(base, exe, pg)
        planned = act(dict(p), pg, check_mode=True)
        assert not os.path.exists(p["walg_config_file"]) and "archive_command" in planned["settings_changed"]
        first = act(dict(p), pg)
        again = act(dict(p), pg)
        assert first["changed"] and first["restart_required"] == [] and first["checked"] and again["changed"] is False
        assert stat.S_IMODE(os.stat(p["walg_config_file"]).st_mode) == 0o600
        with open(p["walg_config_file"], encoding="utf-8") as fh:
            rendered = json.load(fh)
        prefix = os.path.join(base, "repo", "pitr", "it", "src")
        assert rendered["WALG_FILE_PREFIX"] == prefix and rendered["WALG_DELTA_MAX_STEPS"] == "3"
        assert rendered["WALG_LIBSODIUM_KEY"] == KEY and rendered["PGDATA"] == pg.data
        assert pg.psql("SHOW archive_command") == "%s --config %s wal-push %%p" % (exe, p["walg_config_file"])

        pg.psql("CREATE TABLE events (id int, at timestamptz DEFAULT clock_timestamp())")
        full = act(dict(p, action="backup"), pg)
        pg.psql("INSERT INTO events (id) SELECT g FROM generate_series(1, 10) g")
        delta = act(dict(p, action="backup", backup_type="incr"), pg)
        assert full["backup"]["type"] == "full" and delta["backup"]["type"] == "delta"
        assert delta["backup"]["label"].endswith("_D_" + full["backup"]["label"][5:29])
        time.sleep(1.1)
        pg.psql("INSERT INTO events (id) SELECT g FROM generate_series(11, 20) g")
        time.sleep(1.1)
        point = datetime.datetime.now(datetime.timezone.utc)
        time.sleep(1.1)
        pg.psql("INSERT INTO events (id) VALUES (21)")  # committed before the restore point
        pg.psql("SELECT pg_create_restore_point('before-drop')")
        pg.psql("DROP TABLE events")
        wait_archived(pg)

        info = act(dict(p, action="info", source_host="src"), pg)
        window = info["window"]
        assert [b["label"] for b in window["backups"]] == [full["backup"]["label"], delta["backup"]["label"]]
        assert window["oldest"] == full["backup"]["stop"] and window["newest"] > point.isoformat()[:19]
        assert window["system_id"] == first["system_id"] and window["pg_version"] == "15"

        verified = act(dict(p, action="verify"), pg)
        assert verified["integrity"] == "OK" and verified["gaps"] == [] and verified["ranges"][0]["status"] == "FOUND"

        restore = dict(p, action="restore", source_host="src", data_dir=os.path.join(target, "data"),
                       socket_dir=target, target=point.isoformat())
        assert act(dict(restore), pg, check_mode=True, port=port)["replaces_existing"] is False
        assert not os.path.exists(restore["data_dir"])
        restored = act(dict(restore), pg, port=port)
        assert restored["stop_reason"].startswith("before ") and restored["backup_set"] == delta["backup"]["label"]
        back = PitrPostgres(target, port=port)
        assert back.psql("SELECT count(*), max(id) FROM events") == "20|20"  # dropped after the target
        assert back.psql("SHOW archive_mode") == "off"  # never archives into the source's prefix
        Server(restore["data_dir"], port=port, pg_ctl=PG_CTL).stop()

        named = dict(restore, data_dir=os.path.join(target, "named"), target="before-drop", target_type="name")
        assert act(named, pg, port=port)["stop_reason"] == 'at restore point "before-drop"'
        assert back.psql("SELECT count(*), max(id) FROM events") == "21|21"
        Server(named["data_dir"], port=port, pg_ctl=PG_CTL).stop()

        late = dict(restore, data_dir=os.path.join(target, "late"), target="2099-01-01T00:00:00Z")
        with pytest.raises(ConfigError, match="after the newest archived WAL"):
            act(late, pg, port=port)
        assert not os.path.exists(late["data_dir"])

        # a gap in the archive is found and named
        segments = sorted(n for n in os.listdir(os.path.join(prefix, "wal_005"))
                          if len(n) == 28 and n[:24] > full["backup"]["wal_start"])
        lost = segments[len(segments) // 2]
        os.rename(os.path.join(prefix, "wal_005", lost), os.path.join(base, lost))
        with pytest.raises(IntegrityError, match="WAL gap on timeline 1: %s .. %s" % (lost[:24], lost[:24])):
            act(dict(p, action="verify"), pg)
        os.rename(os.path.join(base, lost), os.path.join(prefix, "wal_005", lost))

        # retention: two full backups kept -> the first chain goes, a dry run first
        act(dict(p, action="backup"), pg)
        act(dict(p, action="backup"), pg)
        dry = act(dict(p, action="expire"), pg, check_mode=True)
        assert dry["dry_run"] and dry["deleted"] == [full["backup"]["label"], delta["backup"]["label"]]
        assert os.path.isdir(os.path.join(prefix, "basebackups_005", full["backup"]["label"]))
        done = act(dict(p, action="expire"), pg)
        assert done["deleted"] == dry["deleted"] and not done["dry_run"]
        assert not os.path.exists(os.path.join(prefix, "basebackups_005", full["backup"]["label"]))
        deletes = [c for c in calls(log) if "delete" in c]
        assert [("--confirm" in c) for c in deletes] == [False, True]

        every = calls(log)
        assert every and all(c[:2] == ["--config", c[1]] and c[1].endswith(".json") for c in every)
        assert not any(KEY in " ".join(c) for c in every)
        assert {c[2] for c in every} >= {"wal-push", "wal-fetch", "backup-push", "backup-fetch", "backup-list",
                                         "st", "wal-verify", "delete"}
    finally:
        for name in ("data", "named"):
            Server(os.path.join(target, name), port=port, pg_ctl=PG_CTL).stop()
        pg.stop()


def test_walg_refuses_a_cluster_whose_system_id_differs_from_the_prefix_backups(pitr_dir):
    base = pitr_dir
    exe = install_standin(base)[0]
    os.makedirs(os.path.join(base, "repo"))
    shutil.chown(os.path.join(base, "repo"), "postgres")
    first = PitrPostgres(os.path.join(base, "one"))
    other = PitrPostgres(os.path.join(base, "two"))
    first.start()
    try:
        act(params(base, exe, first), first)
        act(params(base, exe, first, action="backup"), first)
    finally:
        first.stop()
    other.start()
    try:
        p = params(base, exe, other, walg_config_file=os.path.join(base, "etc", "other.json"))
        with pytest.raises(SystemIdMismatch, match="refusing to archive into it"):
            act(p, other)
        assert other.psql("SHOW archive_command") in ("", "(disabled)")  # nothing was set
    finally:
        other.stop()


def test_walg_with_two_repositories_is_refused_naming_the_fix():
    with pytest.raises(ConfigError, match="exactly one repository"):
        WalgSettings(repositories=[{"path": "/a"}, {"path": "/b"}], site="it", host="src", data_dir="/d",
                     libsodium_key=KEY)
