# -*- coding: utf-8 -*-
# Copyright: Lifeline contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A restore killed or terminated while pg_restore runs, against real PostgreSQL 15: SIGTERM
cleans up at once (no staged plaintext, no temporary database, no pg_restore left); SIGKILL
leaves leftovers that the next restore removes before it succeeds."""
from __future__ import annotations

import json
import os
import signal
import subprocess

import pytest

from lifeline_it import (
    PYTHON,
    add_big_table,
    child_env,
    databases,
    files_under,
    restore_for,
    run_backup_for,
    wait_for,
)

from ansible_collections.lifeline.dr.plugins.module_utils.errors import RestoreError

HERE = os.path.dirname(os.path.abspath(__file__))
CHILD = """
import json, sys, types
sys.path[:0] = [sys.argv[1]]
import lifeline_it
from ansible_collections.lifeline.dr.plugins.module_utils.errors import LifelineError
with open(sys.argv[2], encoding="utf-8") as fh:
    args = json.load(fh)
try:
    lifeline_it.restore_for(args["params"], types.SimpleNamespace(port=args["port"], password=args["password"]))
except LifelineError as exc:
    sys.stderr.write("%s: %s\\n" % (type(exc).__name__, exc))
    sys.exit(exc.exit_code)
"""


def staging_root(params) -> str:
    return os.path.join(params["state_dir"], "staging")


def temp_databases(pg) -> list:
    return [d for d in databases(pg) if d.startswith("lifeline_restore_")]


def our_pg_restores(params) -> list:
    """pids of pg_restore processes reading from this test's staging directory."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open("/proc/%s/cmdline" % pid, "rb") as fh:
                argv = fh.read().split(b"\0")
        except OSError:
            continue
        if argv and os.path.basename(argv[0]) == b"pg_restore" and staging_root(params).encode() in b" ".join(argv):
            found.append(int(pid))
    return found


@pytest.fixture
def restoring(params, source_pg, target_pg, tmp_path):
    """A restore of a ~60 MB shop running in a child process, caught while pg_restore writes."""
    add_big_table(source_pg, "shop", 60)
    assert run_backup_for(params, databases=["shop"]).status == "ok"
    args = tmp_path / "restore-args.json"
    fd = os.open(args, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump({"params": params, "port": target_pg.port, "password": target_pg.password}, fh)
    proc = subprocess.Popen([PYTHON, "-c", CHILD, HERE, str(args)], env=child_env(),  # pylint: disable=consider-using-with
                            start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        caught = wait_for(lambda: proc.poll() is not None or our_pg_restores(params), timeout=120, interval=0.005)
        assert caught and proc.poll() is None, "pg_restore was not caught running: %r" % (proc.communicate(),)
        assert wait_for(lambda: temp_databases(target_pg), timeout=10)
        yield proc
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()


def test_sigterm_during_pg_restore_removes_staged_files_and_the_temporary_database_at_once(
        params, target_pg, restoring):
    os.kill(restoring.pid, signal.SIGTERM)  # the restore process only, as systemd or Ansible would
    _out, err = restoring.communicate(timeout=120)

    assert restoring.returncode == RestoreError.exit_code, err
    assert "interrupted by SIGTERM" in err
    assert files_under(staging_root(params)) == []
    assert temp_databases(target_pg) == [] and "shop" not in databases(target_pg)
    assert our_pg_restores(params) == []


def test_restore_killed_mid_pg_restore_leaves_leftovers_that_the_next_restore_removes(
        params, target_pg, restoring):
    os.killpg(restoring.pid, signal.SIGKILL)
    restoring.communicate()
    (left_db,) = temp_databases(target_pg)
    (left_dir,) = os.listdir(staging_root(params))
    assert any(name.startswith("db-shop.dump") for name in os.listdir(os.path.join(staging_root(params), left_dir)))

    report = restore_for(params, target_pg)

    assert temp_databases(target_pg) == []
    assert os.listdir(staging_root(params)) == []
    assert any("dropped temporary database %s" % left_db in w for w in report["warnings"])
    assert any(left_dir in w and "no longer running" in w for w in report["warnings"])
    assert [d["name"] for d in report["databases"] if d["verified"]] == ["shop"]
    assert target_pg.psql("SELECT count(*) > 0 FROM public.filler", db="shop") == "t"
