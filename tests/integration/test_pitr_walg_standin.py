# -*- coding: utf-8 -*-
# Copyright: Lifeline contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""WAL-G archiving with a STAND-IN: WAL-G cannot be installed here, so ``wal-g`` is a small script
written by this test that records every call (argv, the config it was given) and stores pushed
WAL in a directory. A real PostgreSQL 15 calls it as its archive_command. What this proves: the
rendered 0600 config, the commands PostgreSQL runs (config by file, no secret in argv) and that
archiving flows through them; it proves nothing about WAL-G itself."""
from __future__ import annotations

import json
import os
import shutil
import stat
import textwrap
import time

import pytest

from services import PitrPostgres

from ansible_collections.lifeline.dr.plugins.module_utils.errors import ConfigError
from ansible_collections.lifeline.dr.plugins.module_utils.pitr_walg import configure_walg
from ansible_collections.lifeline.dr.plugins.module_utils.postgres import PgConnection
from ansible_collections.lifeline.dr.plugins.module_utils.walg_config import WalgSettings

KEY = "ab" * 32

STANDIN = textwrap.dedent('''\
    #!%(python)s
    # STAND-IN for wal-g (tests only): records the call, copies wal-push'ed files to FILE_PREFIX.
    import json, os, shutil, sys
    log = %(log)r
    args = sys.argv[1:]
    with open(log, "a") as fh:
        fh.write(json.dumps(args) + "\\n")
    config = json.load(open(args[args.index("--config") + 1]))
    if "wal-push" in args:
        src = args[args.index("wal-push") + 1]
        os.makedirs(config["WALG_FILE_PREFIX"], exist_ok=True)
        shutil.copy(src, os.path.join(config["WALG_FILE_PREFIX"], os.path.basename(src)))
    ''')


def test_walg_standin_receives_wal_through_the_rendered_config_and_no_secret_is_in_argv(pitr_dir):
    base = pitr_dir
    log = os.path.join(base, "walg-calls.log")
    exe = os.path.join(base, "wal-g-standin")
    with open(exe, "w", encoding="utf-8") as fh:
        fh.write(STANDIN % {"python": "/usr/bin/python3", "log": log})  # the postgres user runs it
    os.chmod(exe, 0o755)
    open(log, "w", encoding="utf-8").close()
    os.chmod(log, 0o666)
    repo = os.path.join(base, "repo")
    os.makedirs(repo)
    shutil.chown(repo, "postgres")
    pg = PitrPostgres(os.path.join(base, "src"))
    pg.start()
    try:
        settings = WalgSettings(repositories=[{"name": "local", "path": repo}], site="it", host="src",
                                data_dir=pg.data, libsodium_key=KEY, socket_dir=pg.dir, port=pg.port)
        config = os.path.join(base, "etc", "walg.json")
        conn = PgConnection(host=pg.host, port=pg.port, user=pg.user, password=pg.password)

        first = configure_walg(settings, conn, config_path=config, archive_timeout=1, exe=exe)
        again = configure_walg(settings, conn, config_path=config, archive_timeout=1, exe=exe)
        segment = pg.psql("CREATE TABLE t AS SELECT 1 AS x; SELECT pg_walfile_name(pg_current_wal_insert_lsn())")
        pg.psql("SELECT pg_switch_wal()")
        stored = os.path.join(repo, "pitr", "it", "src", segment)
        deadline = time.time() + 20
        while not os.path.exists(stored) and time.time() < deadline:
            time.sleep(0.2)

        assert first["changed"] and first["restart_required"] == [] and again["changed"] is False
        assert stat.S_IMODE(os.stat(config).st_mode) == 0o600
        with open(config, encoding="utf-8") as fh:
            rendered = json.load(fh)
        assert rendered["WALG_FILE_PREFIX"] == os.path.join(repo, "pitr", "it", "src")
        assert rendered["WALG_COMPRESSION_METHOD"] == "zstd" and rendered["WALG_LIBSODIUM_KEY"] == KEY
        assert os.path.exists(stored)
        with open(log, encoding="utf-8") as fh:
            calls = [json.loads(line) for line in fh]
        assert calls and all(c[:3] == ["--config", config, "wal-push"] for c in calls)
        assert not any(KEY in " ".join(c) for c in calls)
    finally:
        pg.stop()


def test_walg_with_two_repositories_is_refused_naming_the_fix():
    with pytest.raises(ConfigError, match="exactly one repository"):
        WalgSettings(repositories=[{"path": "/a"}, {"path": "/b"}], site="it", host="src", data_dir="/d",
                     libsodium_key=KEY)
