# -*- coding: utf-8 -*-
# Copyright: Lifeline contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""playbooks/restore-site.yml restores PostgreSQL physically from the source's pgBackRest archive
(docs/pitr.md): a real PostgreSQL 15 source archives into a path repository with the real
pgBackRest; the playbook runs with an inventory where the source has lifeline_postgresql_pitr
set and has no logical backups at all (lifeline_postgresql_logical: false), and the target is
this machine on a free port with a new data directory (pg_ctl: lifeline_postgresql_service "")."""
from __future__ import annotations

import datetime
import json
import os
import pwd
import shutil
import subprocess
import time

import psycopg2
import pytest

from lifeline_it import ROOT, VENV_BIN, ansible_env
from services import PitrPostgres, free_port, service_dir

from ansible_collections.lifeline.dr.plugins.module_utils import pitr
from ansible_collections.lifeline.dr.plugins.module_utils.pgbackrest_config import PitrSettings
from ansible_collections.lifeline.dr.plugins.module_utils.pitr_server import Server
from ansible_collections.lifeline.dr.plugins.module_utils.postgres import PgConnection

PASS = "restore-site pitr passphrase, long enough"
PG_CTL = "/usr/lib/postgresql/15/bin/pg_ctl"


class Site:
    """The archived source (inventory name src-db) and the target's inventory."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.src = PitrPostgres(os.path.join(base, "src"))
        self.repo = os.path.join(base, "repo")
        self.target = os.path.join(base, "target")
        self.port = free_port()
        self.data = os.path.join(self.target, "data")
        self.rows: list = []   # (id, committed_before, committed_after)

    def settings(self) -> PitrSettings:
        return PitrSettings(repositories=[{"name": "local", "path": self.repo}], site="it", host="src-db",
                            data_dir=self.src.data, cipher_pass=PASS, port=self.src.port, socket_dir=self.src.dir,
                            spool_path=os.path.join(self.base, "spool"), log_path=os.path.join(self.base, "log"),
                            lock_path=os.path.join(self.base, "lock"))

    def inventory(self, **target_vars) -> str:
        common = {
            "lifeline_site": "it", "lifeline_repositories": [{"name": "local", "path": self.repo}],
            "lifeline_postgresql_pitr_cipher_pass": PASS, "lifeline_state_dir": os.path.join(self.base, "state"),
            "lifeline_common_install_packages": False, "lifeline_postgresql_install_packages": False,
            "lifeline_postgresql_service": "", "lifeline_postgresql_password": self.src.password,
            "lifeline_postgresql_host": "127.0.0.1",
        }
        target = dict({"ansible_connection": "local", "ansible_python_interpreter": os.path.join(VENV_BIN, "python"),
                       "lifeline_restore_source": "src-db", "lifeline_postgresql_port": self.port,
                       "lifeline_postgresql_data_dir": self.data, "lifeline_postgresql_socket_dir": self.target,
                       "lifeline_postgresql_pitr_config_file": os.path.join(self.base, "etc", "target.conf")},
                      **target_vars)
        inventory = {"all": {"vars": common, "children": {
            "postgres": {"hosts": {"src-db": {"lifeline_postgresql_pitr": "pgbackrest",
                                              "lifeline_postgresql_logical": False}}},
            "restore_targets": {"hosts": {"new-db": target}}}}}
        path = os.path.join(self.base, "inventory-%d.json" % time.monotonic_ns())
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # the passphrase is in it
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(inventory, fh)
        return path

    def restore_site(self, *args: str, **target_vars) -> tuple:
        """ansible-playbook restore-site.yml; (returncode, stdout with white space folded)."""
        argv = [os.path.join(VENV_BIN, "ansible-playbook"), "-i", self.inventory(**target_vars),
                os.path.join("playbooks", "restore-site.yml"), *args]
        proc = subprocess.run(argv, cwd=ROOT, env=ansible_env(), capture_output=True, text=True, timeout=400,
                              check=False)
        return proc.returncode, " ".join((proc.stdout + proc.stderr).split())

    def query(self, sql: str):
        db = psycopg2.connect(host="127.0.0.1", port=self.port, user="postgres", password=self.src.password,
                              dbname="postgres")
        try:
            with db.cursor() as cur:
                cur.execute(sql)
                return cur.fetchall()
        finally:
            db.close()

    def server(self) -> Server:
        return Server(self.data, port=self.port, pg_ctl=PG_CTL)


@pytest.fixture(scope="module")
def site():
    base = service_dir("pitr-site")
    s = Site(base)
    os.makedirs(s.target)
    os.chown(s.target, pwd.getpwnam("postgres").pw_uid, -1)  # the server's log goes beside its data
    s.src.start()
    conn = PgConnection(host=s.src.host, port=s.src.port, user=s.src.user, password=s.src.password)
    try:
        pitr.configure(s.settings(), conn, config_path=os.path.join(base, "etc", "src.conf"), archive_timeout=1)
        pitr.backup(s.settings(), conn, config_path=os.path.join(base, "etc", "src.conf"), kind=pitr.BackupType.FULL)
        time.sleep(1.2)  # the rows start after the backup's end
        db = psycopg2.connect(dbname="postgres", **s.src.conn_args())
        db.autocommit = True
        with db.cursor() as cur:
            cur.execute("CREATE TABLE events (id int PRIMARY KEY)")
            for i in range(1, 31):
                before = datetime.datetime.now(datetime.timezone.utc)
                cur.execute("INSERT INTO events VALUES (%s)", (i,))
                s.rows.append((i, before, datetime.datetime.now(datetime.timezone.utc)))
                time.sleep(0.1)
            cur.execute("SELECT pg_walfile_name(pg_current_wal_lsn())")
            last = cur.fetchone()[0]
            cur.execute("SELECT pg_switch_wal()")
        db.close()
        deadline = time.time() + 30
        while s.src.psql("SELECT coalesce(last_archived_wal, '') FROM pg_stat_archiver") < last:
            assert time.time() < deadline, "WAL %s not archived" % last
            time.sleep(0.2)
        yield s
    finally:
        s.server().stop()
        s.src.stop()
        shutil.rmtree(base, ignore_errors=True)


def test_check_mode_plans_the_physical_restore_and_touches_nothing(site):
    rc, said = site.restore_site("--check")

    assert rc == 0, said
    assert "postgres: physical restore of the pgbackrest archive of src-db to latest" in said, said[-3000:]
    assert "the point is inside it" in said
    assert "postgres data directory: %s (empty or absent)" % site.data in said
    assert "TOTAL (RTO)" not in said
    assert not os.path.exists(site.data)
    assert not os.path.exists(os.path.join(site.base, "etc", "target-from-src-db.conf"))


def test_a_point_outside_the_window_fails_in_the_pick_phase_before_anything_is_touched(site):
    rc, said = site.restore_site("-e", "lifeline_restore_point=2001-01-01T00:00:00Z")

    assert rc != 0
    assert "is before the oldest restorable time" in said and "nothing was touched" in said
    assert "Restore PostgreSQL physically" not in said
    assert not os.path.exists(site.data)


def test_restore_site_restores_the_cluster_to_a_time_then_replaces_it_only_when_asked(site):
    middle = site.rows[15]
    when = middle[2] + (site.rows[16][1] - middle[2]) / 2   # between two commits

    rc, said = site.restore_site("-e", "lifeline_restore_point=" + when.isoformat())

    assert rc == 0, said
    got = {r[0] for r in site.query("SELECT id FROM events")}
    assert got == {i for i, _b, after in site.rows if after <= when}
    assert site.query("SELECT pg_is_in_recovery(), current_setting('archive_mode')") == [(False, "off")]
    assert "recovery stopped: before " in said and "promoted on port %d" % site.port in said
    assert "RPO postgres: data as of" in said and "physical restore to time" in said
    assert "TOTAL (RTO)" in said and "postgres " in said and "recovery " in said
    assert "failed=0" in said

    # A server now runs there: without replace the physical restore is not chosen (and this source
    # has no logical backups to fall back on), so nothing changes.
    rc, said = site.restore_site()
    assert rc != 0
    assert "a server runs at port %d and lifeline_restore_replace is false" % site.port in said
    assert {r[0] for r in site.query("SELECT id FROM events")} == got

    # With replace: stopped, kept aside until the restored cluster verified, then removed.
    rc, said = site.restore_site("-e", "lifeline_restore_replace=true")
    assert rc == 0, said
    assert "REPLACING the data directory" in said
    assert site.query("SELECT count(*) FROM events") == [(len(site.rows),)]
    assert not [n for n in os.listdir(site.target) if ".lifeline-old-" in n]
