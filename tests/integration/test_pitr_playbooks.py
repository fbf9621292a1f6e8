# -*- coding: utf-8 -*-
# Copyright: Lifeline contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""playbooks/tasks/pitr-backup.yml and pitr-restore.yml through the real ansible-playbook, against
a real PostgreSQL 15 that starts WITHOUT archiving (so the role must restart it through its
handler, with pg_ctl: lifeline_postgresql_service is empty) and the real pgBackRest on a path
repository."""
from __future__ import annotations

import json
import os
import pwd
import subprocess
import time

from lifeline_it import ROOT, VENV_BIN, ansible_env
from services import PitrPostgres, free_port

from ansible_collections.lifeline.dr.plugins.module_utils.pitr_server import Server

PASS = "playbook pitr passphrase, long enough"


def playbook(name: str, extra: dict) -> subprocess.CompletedProcess:
    """ansible-playbook on localhost; ``.stdout`` with whitespace runs folded to one space (the
    callback wraps long messages)."""
    argv = [os.path.join(VENV_BIN, "ansible-playbook"), "-i", "localhost,", "-c", "local",
            "-e", "ansible_python_interpreter=" + os.path.join(VENV_BIN, "python"), "-e", json.dumps(extra),
            os.path.join("tests", "integration", "playbooks", name)]
    proc = subprocess.run(argv, cwd=ROOT, env=ansible_env(), capture_output=True, text=True, timeout=300,
                          check=False)
    proc.stdout = " ".join(proc.stdout.split())
    return proc


def test_backup_tasks_restart_for_archive_mode_once_then_change_nothing_and_restore_tasks_bring_it_back(pitr_dir):
    base = pitr_dir
    src = PitrPostgres(os.path.join(base, "src"), archive=False)
    src.start()
    target_dir = os.path.join(base, "target")
    os.makedirs(target_dir)
    os.chown(target_dir, pwd.getpwnam("postgres").pw_uid, -1)
    port = free_port()
    try:
        src.psql("CREATE TABLE kept AS SELECT g AS id FROM generate_series(1, 50) g")
        common = {
            "lifeline_postgresql_pitr": "pgbackrest", "lifeline_postgresql_pitr_cipher_pass": PASS,
            "lifeline_repositories": [{"name": "local", "path": os.path.join(base, "repo")}],
            "lifeline_site": "it", "lifeline_postgresql_service": "",
            "lifeline_postgresql_pitr_config_file": os.path.join(base, "etc", "lifeline.conf"),
            "lifeline_postgresql_password": src.password, "lifeline_postgresql_install_packages": False,
        }
        source_vars = dict(common, lifeline_postgresql_port=src.port, lifeline_postgresql_socket_dir=src.dir,
                           lifeline_postgresql_archive_timeout=1)

        first = playbook("pitr-backup.yml", source_vars)
        assert first.returncode == 0, first.stdout + first.stderr
        assert "archive_mode must change for WAL archiving: PostgreSQL restarts now (pg_ctl)" in first.stdout
        assert "RUNNING HANDLER [lifeline.dr.postgresql : Restart PostgreSQL with pg_ctl" in first.stdout
        assert src.psql("SHOW archive_mode") == "on"
        assert "base backup 2" in first.stdout  # a label like 20261123-230000F

        again = playbook("pitr-backup.yml", dict(source_vars, lifeline_postgresql_pitr_backup_type="none"))
        assert again.returncode == 0, again.stdout + again.stderr
        assert "changed=0" in again.stdout, again.stdout
        assert "RUNNING HANDLER" not in again.stdout

        src.psql("INSERT INTO kept SELECT g FROM generate_series(51, 60) g; SELECT pg_switch_wal()")
        restore_vars = dict(common, lifeline_restore_source="localhost", lifeline_restore_point="latest",
                            lifeline_postgresql_port=port, lifeline_postgresql_socket_dir=target_dir,
                            lifeline_postgresql_data_dir=os.path.join(target_dir, "data"),
                            lifeline_postgresql_pitr_config_file=os.path.join(base, "etc", "target.conf"))
        deadline = time.time() + 30
        want = src.psql("SELECT pg_walfile_name(pg_current_wal_lsn() - 1)")
        while src.psql("SELECT coalesce(last_archived_wal, '') FROM pg_stat_archiver") < want and time.time() < deadline:
            time.sleep(0.2)

        restored = playbook("pitr-restore.yml", restore_vars)
        assert restored.returncode == 0, restored.stdout + restored.stderr
        assert "recovery stopped no recovery target specified" in restored.stdout
        back = PitrPostgres(target_dir, port=port)
        assert back.psql("SELECT count(*), max(id) FROM kept") == "60|60"

        outside = playbook("pitr-restore.yml", dict(restore_vars, lifeline_restore_point="2001-01-01T00:00:00Z",
                                                    lifeline_postgresql_data_dir=os.path.join(target_dir, "other")))
        assert outside.returncode != 0
        assert "is before the oldest restorable time" in outside.stdout
        assert not os.path.exists(os.path.join(target_dir, "other"))
    finally:
        Server(os.path.join(target_dir, "data"), port=port, pg_ctl="/usr/lib/postgresql/15/bin/pg_ctl").stop()
        src.stop()


def test_a_passphrase_shared_with_another_host_is_refused_before_anything_is_set_up(tmp_path):
    """One host that knows another's pgBackRest passphrase could forge that host's base backups."""
    inventory = tmp_path / "hosts.yml"
    inventory.write_text(json.dumps({"postgres": {"hosts": {
        "db1": {"lifeline_postgresql_pitr_cipher_pass": PASS},
        "db2": {"lifeline_postgresql_pitr_cipher_pass": PASS},
        "db3": {"lifeline_postgresql_pitr_cipher_pass": PASS + " but db3's own"}}}}), encoding="utf-8")
    argv = [os.path.join(VENV_BIN, "ansible-playbook"), "-i", str(inventory), "-c", "local", "--limit", "db1,db3",
            "-e", "ansible_python_interpreter=" + os.path.join(VENV_BIN, "python"),
            "-e", json.dumps({"lifeline_postgresql_pitr": "pgbackrest", "lifeline_repositories": [],
                              "lifeline_postgresql_install_packages": False}),
            os.path.join("tests", "integration", "playbooks", "pitr-backup.yml")]
    proc = subprocess.run(argv, cwd=ROOT, env=ansible_env(), capture_output=True, text=True, timeout=300, check=False)
    out = " ".join(proc.stdout.split())

    assert proc.returncode != 0
    assert "lifeline_postgresql_pitr_cipher_pass of db1 is also the passphrase of db2" in out, out
    assert "db3 is also" not in out  # db3 has its own: it goes on (and fails later, on the empty repository list)
    assert PASS not in proc.stdout + proc.stderr
