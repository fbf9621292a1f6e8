# -*- coding: utf-8 -*-
# Copyright: Lifeline contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The README's first command works from any clone: the local services start and stop from a
copy of the checkout under a 0700 directory (as `git clone ... ~/lifeline` as root gives), where
the 'postgres' user cannot reach. And a failing external tool shows its own stderr."""
from __future__ import annotations

import json
import os
import shutil
import socket
import stat
import subprocess
import tempfile

import psycopg2
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from lifeline_it import ROOT
from services import PG_BIN, Postgres, run_as_postgres
from tools import ToolError, run


def _copy_tracked_tree(dest: str) -> None:
    """What a clone holds: the tracked files, plus the untracked ones not ignored (so uncommitted
    work is tested too). The .venv is linked, not reinstalled."""
    listed = run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT).stdout
    for rel in filter(None, listed.decode().split("\0")):
        src = os.path.join(ROOT, rel)
        if rel == ".venv" or not os.path.lexists(src):  # the worktree's .venv link; a deleted file
            continue
        os.makedirs(os.path.join(dest, os.path.dirname(rel)), exist_ok=True)
        shutil.copy2(src, os.path.join(dest, rel), follow_symlinks=False)
    os.symlink(os.path.realpath(os.path.join(ROOT, ".venv")), os.path.join(dest, ".venv"))


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _processes_inside(path: str) -> list:
    """Pids whose working directory is under ``path`` (every PostgreSQL process chdirs into its
    data directory)."""
    pids = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cwd = os.readlink("/proc/%s/cwd" % pid)
        except OSError:
            continue
        if cwd == path or cwd.startswith(path + os.sep):
            pids.append(int(pid))
    return pids


@pytest.fixture
def clone_under_0700():
    parent = tempfile.mkdtemp(prefix="lifeline-clone-")  # mkdtemp: mode 0700, like /root
    assert stat.S_IMODE(os.stat(parent).st_mode) == 0o700
    clone = os.path.join(parent, "lifeline")
    _copy_tracked_tree(clone)
    yield clone
    shutil.rmtree(parent, ignore_errors=True)


def _local_services(clone: str, action: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # the clone imports itself
    env["LIFELINE_LOCAL_STATE"] = os.path.join(clone, ".state", "local")
    return subprocess.run([os.path.join(clone, ".venv", "bin", "python"), "scripts/local-services.py", action],
                          cwd=clone, env=env, capture_output=True, text=True, timeout=180, check=False)


@pytest.mark.skipif(os.geteuid() != 0, reason="the 'postgres' user is only involved when running as root")
def test_local_services_start_and_stop_from_a_clone_under_a_0700_directory(clone_under_0700):
    state = os.path.join(clone_under_0700, ".state", "local")
    started = _local_services(clone_under_0700, "start")
    info = {}
    try:
        assert started.returncode == 0, started.stdout + started.stderr
        with open(os.path.join(state, "services.json"), encoding="utf-8") as fh:
            info = json.load(fh)
        assert not info["services_dir"].startswith(os.path.dirname(clone_under_0700))
        for port, dbname in ((info["source_port"], "shop"), (info["target_port"], "postgres")):
            with psycopg2.connect(host="127.0.0.1", port=port, user="postgres", dbname=dbname,
                                  password=info["postgres_password"], connect_timeout=10) as conn:
                with conn.cursor() as cur:
                    cur.execute("SELECT current_setting('data_directory')")
                    assert cur.fetchone()[0].startswith(info["services_dir"] + os.sep)
            conn.close()
        key_file = os.path.join(state, "signing_key.pem")
        assert stat.S_IMODE(os.stat(key_file).st_mode) == 0o600
        with open(key_file, "rb") as fh:
            pem = fh.read()
        assert pem.startswith(b"-----BEGIN PRIVATE KEY-----\n")  # PKCS#8, as openssl genpkey writes
        key = serialization.load_pem_private_key(pem, password=None)
        assert isinstance(key, Ed25519PrivateKey)
        assert info["signing_public_key"] == key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    finally:
        stopped = _local_services(clone_under_0700, "stop")
    assert stopped.returncode == 0, stopped.stdout + stopped.stderr
    assert not _port_open(info["source_port"]) and not _port_open(info["target_port"])
    assert not _port_open(int(info["s3_endpoint"].rsplit(":", 1)[1]))
    assert _processes_inside(info["services_dir"]) == []
    assert not os.path.exists(info["services_dir"])
    assert not os.path.exists(os.path.join(state, "services.json"))


def test_failing_initdb_raises_an_error_with_initdbs_own_stderr():
    with pytest.raises(ToolError) as raised:
        run_as_postgres([os.path.join(PG_BIN, "initdb"), "-D", "/tmp/unused", "--no-such-option"])
    message = str(raised.value)
    assert "initdb" in message and "--no-such-option" in message  # the command
    assert "unrecognized option" in message  # initdb's own words
    assert "exited with status 1" in message


@pytest.mark.skipif(os.geteuid() != 0, reason="the 'postgres' user is only involved when running as root")
def test_postgres_start_under_a_0700_directory_shows_initdbs_permission_error():
    """0.1.0's failure, in-process: the error now says what initdb said, not only its status."""
    parent = tempfile.mkdtemp(prefix="lifeline-0700-")
    try:
        with pytest.raises(ToolError) as raised:
            Postgres(os.path.join(parent, "pg")).start()
        message = str(raised.value)
        assert "(as user postgres)" in message and os.path.join(parent, "pg", "data") in message
        assert "initdb: error:" in message and "Permission denied" in message
    finally:
        shutil.rmtree(parent)


def test_a_missing_tool_is_reported_by_name():
    with pytest.raises(ToolError) as raised:
        run(["/nonexistent/bin/initdb", "-D", "/tmp/unused"])
    assert "cannot run /nonexistent/bin/initdb" in str(raised.value)
