# -*- coding: utf-8 -*-
# Copyright: Lifeline contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""playbooks/tasks/pitr-backup.yml with ``lifeline_postgresql_pitr: walg`` through the real
ansible-playbook: the postgresql role installs WAL-G from a tarball on the controller (the
air-gapped path) after checking its sha256, restarts a real PostgreSQL 15 for archive_mode and
takes a base backup. The tarball holds a STAND-IN for WAL-G (tests/lib/walg_standin.py): WAL-G's
binary cannot be had here. The pinned-URL path (get_url with the checksum) needs the internet and
is not exercised. Then playbooks/tasks/pitr-restore.yml installs it on the target (idempotent:
the same host here) and restores to latest through it."""
from __future__ import annotations

import hashlib
import io
import os
import pwd
import tarfile

from test_pitr_playbooks import playbook
from test_pitr_walg_standin import KEY, PG_CTL, calls, install_standin, standin_bytes, wait_archived

from services import PitrPostgres, free_port

from ansible_collections.lifeline.dr.plugins.module_utils.pitr_server import Server


def tarball(path: str) -> str:
    """A release-like tarball holding the stand-in as ``wal-g-pg-ubuntu-20.04-amd64``; its sha256."""
    data = standin_bytes()
    with tarfile.open(path, "w:gz") as tar:
        info = tarfile.TarInfo("wal-g-pg-ubuntu-20.04-amd64")
        info.size, info.mode = len(data), 0o755
        tar.addfile(info, io.BytesIO(data))
    with open(path, "rb") as fh:
        return hashlib.sha256(fh.read()).hexdigest()


def test_role_installs_walg_from_a_checked_local_tarball_refuses_a_wrong_sha256_and_backs_up_idempotently(pitr_dir):
    base = pitr_dir
    exe, log = install_standin(base)  # only for its directory and call log: the role installs over it
    os.unlink(exe)
    src_tar = os.path.join(base, "wal-g.tar.gz")
    sha = tarball(src_tar)
    os.makedirs(os.path.join(base, "repo"))
    os.chown(os.path.join(base, "repo"), 0, 0)
    os.chmod(os.path.join(base, "repo"), 0o777)
    pg = PitrPostgres(os.path.join(base, "src"), archive=False)
    pg.start()
    target = os.path.join(base, "target")
    os.makedirs(target)
    os.chown(target, pwd.getpwnam("postgres").pw_uid, -1)
    port = free_port()
    try:
        extra = {
            "lifeline_postgresql_pitr": "walg", "lifeline_postgresql_pitr_cipher_pass": KEY,
            "lifeline_repositories": [{"name": "local", "path": os.path.join(base, "repo")}],
            "lifeline_site": "it", "lifeline_postgresql_service": "", "lifeline_postgresql_install_packages": False,
            "lifeline_postgresql_walg_src": src_tar, "lifeline_postgresql_walg_exe": exe,
            "lifeline_postgresql_walg_cache_dir": os.path.join(base, "cache"),
            "lifeline_postgresql_walg_config_file": os.path.join(base, "etc", "walg.json"),
            "lifeline_postgresql_password": pg.password, "lifeline_postgresql_port": pg.port,
            "lifeline_postgresql_socket_dir": pg.dir, "lifeline_postgresql_archive_timeout": 1,
        }
        wrong = playbook("pitr-backup.yml", dict(extra, lifeline_postgresql_walg_sha256="0" * 64))
        assert wrong.returncode != 0
        assert "has sha256 %s, not lifeline_postgresql_walg_sha256 %s: refusing to install it" % (sha, "0" * 64) \
            in wrong.stdout, wrong.stdout
        assert not os.path.exists(exe) and os.listdir(os.path.join(base, "cache", "v3.0.5")) == []
        assert not os.path.exists(os.path.join(base, "cache", "wal-g-v3.0.5.tar.gz"))

        first = playbook("pitr-backup.yml", dict(extra, lifeline_postgresql_walg_sha256=sha.upper()))
        assert first.returncode == 0, first.stdout + first.stderr
        assert "archive_mode must change for WAL archiving: PostgreSQL restarts now (pg_ctl)" in first.stdout
        assert "base backup base_0000000" in first.stdout
        with open(exe, "rb") as fh:
            assert fh.read() == standin_bytes()
        assert pg.psql("SHOW archive_command").startswith(exe + " --config ")

        again = playbook("pitr-backup.yml", dict(extra, lifeline_postgresql_walg_sha256=sha,
                                                 lifeline_postgresql_pitr_backup_type="none"))
        assert again.returncode == 0, again.stdout + again.stderr
        assert "changed=0" in again.stdout, again.stdout
        pushed = [c for c in calls(log) if c[2] == "backup-push"]
        assert len(pushed) == 1 and "--full" in pushed[0]

        pg.psql("CREATE TABLE kept AS SELECT g AS id FROM generate_series(1, 30) g")
        wait_archived(pg)
        restored = playbook("pitr-restore.yml", dict(
            extra, lifeline_postgresql_walg_sha256=sha, lifeline_restore_source="localhost",
            lifeline_restore_point="latest", lifeline_postgresql_port=port, lifeline_postgresql_socket_dir=target,
            lifeline_postgresql_data_dir=os.path.join(target, "data"),
            lifeline_postgresql_walg_config_file=os.path.join(base, "etc", "target.json")))
        assert restored.returncode == 0, restored.stdout + restored.stderr
        assert "recovery stopped no recovery target specified" in restored.stdout
        assert PitrPostgres(target, port=port).psql("SELECT count(*) FROM kept") == "30"
        assert [c[2] for c in calls(log)].count("backup-fetch") == 1
        assert not any(KEY in " ".join(c) for c in calls(log))
    finally:
        Server(os.path.join(target, "data"), port=port, pg_ctl=PG_CTL).stop()
        pg.stop()
