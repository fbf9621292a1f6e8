# -*- coding: utf-8 -*-
# Copyright: Lifeline contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The per host+component lock: it refuses a second holder naming the first, waits when told
to, and never outlives a process that died (real flock, real child processes)."""
from __future__ import annotations

import json
import os
import signal
import socket
import stat
import subprocess
import sys
import textwrap
import time

import pytest

from ansible_collections.lifeline.dr.plugins.module_utils.errors import LockedError, RepositoryError
from ansible_collections.lifeline.dr.plugins.module_utils.locking import Lock

HOLDER = textwrap.dedent("""
    import sys, time
    from ansible_collections.lifeline.dr.plugins.module_utils.locking import Lock
    with Lock(sys.argv[1], "fra-db1-postgres"):
        print("locked", flush=True)
        time.sleep(float(sys.argv[2]))
""")


@pytest.fixture
def holder(tmp_path, child_env):
    """Start a child process that takes the lock and holds it; always reaped at the end."""
    children = []

    def start(hold_for: float = 60.0) -> subprocess.Popen:
        proc = subprocess.Popen(  # pylint: disable=consider-using-with
            [sys.executable, "-c", HOLDER, str(tmp_path / "locks"), str(hold_for)],
            env=child_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        children.append(proc)
        line = proc.stdout.readline()
        assert line == "locked\n", proc.stderr.read()
        return proc
    yield start
    for proc in children:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)
        proc.stdout.close()
        proc.stderr.close()


def test_the_lock_file_records_pid_host_and_start_time_and_is_0600(tmp_path):
    with Lock(str(tmp_path / "locks"), "fra-db1-postgres") as lock:
        with open(lock.path, encoding="utf-8") as fh:
            info = json.load(fh)
        assert info["pid"] == os.getpid()
        assert info["host"] == socket.gethostname()
        assert info["since"].endswith("Z")
        assert stat.S_IMODE(os.stat(lock.path).st_mode) == 0o600
    assert os.path.getsize(lock.path) == 0  # the record goes with the lock


def test_a_second_lock_in_the_same_process_is_refused_naming_the_pid(tmp_path):
    # flock belongs to the open file, so a second open of the same file conflicts even here.
    with Lock(str(tmp_path / "locks"), "fra-db1-postgres"):
        with pytest.raises(LockedError) as info:
            with Lock(str(tmp_path / "locks"), "fra-db1-postgres"):
                pytest.fail("took a lock that is held")
    message = str(info.value)
    assert "pid %d on %s" % (os.getpid(), socket.gethostname()) in message
    assert "fra-db1-postgres.lock" in message


def test_a_lock_for_another_component_is_independent(tmp_path):
    with Lock(str(tmp_path / "locks"), "fra-db1-postgres"):
        with Lock(str(tmp_path / "locks"), "fra-db1-redis") as other:
            assert other.path.endswith("fra-db1-redis.lock")


def test_the_lock_is_free_again_after_the_with_block(tmp_path):
    with Lock(str(tmp_path / "locks"), "x"):
        pass
    with Lock(str(tmp_path / "locks"), "x") as again:
        assert again.path.endswith("x.lock")


def test_a_lock_held_by_another_process_times_out_after_the_wait_naming_its_pid(tmp_path, holder):
    proc = holder()
    started = time.monotonic()
    with pytest.raises(LockedError) as info:
        with Lock(str(tmp_path / "locks"), "fra-db1-postgres", wait=0.6):
            pytest.fail("took a lock that another process holds")
    assert time.monotonic() - started >= 0.6
    message = str(info.value)
    assert "pid %d" % proc.pid in message
    assert "waited 0.6s" in message


def test_a_lock_held_by_a_killed_process_does_not_block_the_next_run(tmp_path, holder):
    proc = holder()
    with pytest.raises(LockedError):
        with Lock(str(tmp_path / "locks"), "fra-db1-postgres"):
            pass
    os.kill(proc.pid, signal.SIGKILL)  # no __exit__, no cleanup: like an OOM kill
    proc.wait(timeout=10)
    assert proc.returncode == -signal.SIGKILL
    with Lock(str(tmp_path / "locks"), "fra-db1-postgres") as lock:
        with open(lock.path, encoding="utf-8") as fh:
            assert json.load(fh)["pid"] == os.getpid()


def test_a_waiting_lock_gets_it_when_the_holder_finishes(tmp_path, holder):
    proc = holder(hold_for=0.5)
    with Lock(str(tmp_path / "locks"), "fra-db1-postgres", wait=20):
        assert proc.wait(timeout=10) == 0


def test_a_lock_directory_that_cannot_be_created_is_a_repository_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(RepositoryError, match="cannot create lock file .*file/locks/x.lock"):
        with Lock(str(blocker / "locks"), "x"):
            pass
