# -*- coding: utf-8 -*-
# Copyright: Lifeline contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A database name cannot send the superuser password elsewhere (issue 6, section 3).

A role with CREATEDB can name a database ``host=127.0.0.1 port=P dbname=x`` or
``postgresql://127.0.0.1:P/x``; libpq tools given such a name as ``-d`` would connect to port P
with our password. Here P is a TCP listener of the test on loopback that records every
connection: the backup and the restore of such databases (and of names with quotes,
backslashes, '=', spaces and non-ASCII) must round-trip them to a real PostgreSQL 15 and the
listener must see nothing. No child process has PGPASSWORD in its environment meanwhile.
"""
from __future__ import annotations

import os
import socket
import stat
import subprocess
import threading

import psycopg2
import psycopg2.sql
import pytest

from lifeline_it import DescendantArgvWatcher, restore_for, run_backup_for

from ansible_collections.lifeline.dr.plugins.module_utils import config


class Listener:
    """A TCP listener on loopback that records (and drops) every connection made to it."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self.connections: list = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                conn, peer = self.sock.accept()
            except socket.timeout:
                continue
            self.connections.append(peer)
            conn.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.sock.close()


class DescendantEnvironWatcher(DescendantArgvWatcher):
    """Samples /proc/<pid>/environ (and argv) of every process descending from one pid."""

    def __init__(self, interval: float = 0.005) -> None:
        super().__init__([], interval)
        self.env_hits: list = []
        self.passfiles: set = set()   # (what PGPASSFILE is, its mode) as the child sees it
        self.tools_seen: set = set()

    def _loop(self) -> None:
        while not self._stop.is_set():
            for pid in self._descendants()[1:]:
                try:
                    with open("/proc/%d/environ" % pid, "rb") as fh:
                        environ = fh.read().split(b"\0")
                    with open("/proc/%d/cmdline" % pid, "rb") as fh:
                        tool = os.path.basename(fh.read().split(b"\0")[0]).decode("utf-8", "replace")
                except OSError:
                    continue
                if any(v.startswith(b"PGPASSWORD=") for v in environ):
                    self.env_hits.append((pid, tool))
                for var in environ:
                    if var.startswith(b"PGPASSFILE="):
                        self.tools_seen.add(tool)
                        self._note_passfile(pid, var[len(b"PGPASSFILE="):].decode())
            self.samples += 1
            self._stop.wait(self.interval)

    def _note_passfile(self, pid: int, path: str) -> None:
        # /proc/self/fd/N is the child's own descriptor: look at it through the child's /proc
        path = path.replace("/proc/self/", "/proc/%d/" % pid, 1)
        try:
            self.passfiles.add((os.readlink(path) if os.path.islink(path) else path,
                                stat.S_IMODE(os.stat(path).st_mode)))
        except OSError:
            pass  # the tool has just exited


@pytest.fixture
def listener():
    lst = Listener()
    yield lst
    lst.close()


def hostile_names(port: int) -> list:
    return ["host=127.0.0.1 port=%d dbname=x" % port, "postgresql://127.0.0.1:%d/x" % port,
            "postgres://postgres@127.0.0.1:%d/x" % port, "dbname=x host=127.0.0.1 port=%d" % port,
            "it's", "back\\slash\\", "a=b", "with space", "Zürich ü=€", "x' host='127.0.0.1"]


def _connect(pg, dbname: str):
    conn = psycopg2.connect(dbname=dbname, **pg.conn_args())  # psycopg2 quotes every value
    conn.autocommit = True
    return conn


def create_databases(pg, names) -> None:
    ident = psycopg2.sql.Identifier
    admin = _connect(pg, "postgres")
    try:
        with admin.cursor() as cur:
            for name in names:
                cur.execute(psycopg2.sql.SQL("CREATE DATABASE {}").format(ident(name)))
    finally:
        admin.close()
    for name in names:
        conn = _connect(pg, name)
        try:
            with conn.cursor() as cur:
                cur.execute("CREATE TABLE named (v text); INSERT INTO named VALUES (current_database()), (%s)", (name,))
        finally:
            conn.close()


def contents(pg, name: str) -> list:
    conn = _connect(pg, name)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT v FROM named ORDER BY v")
            return [r[0] for r in cur.fetchall()]
    finally:
        conn.close()


def test_backup_and_restore_of_hostile_database_names_round_trip_and_never_connect_elsewhere(
        params, source_pg, target_pg, listener):
    names = hostile_names(listener.port)
    create_databases(source_pg, names)
    watcher = DescendantEnvironWatcher()
    watcher.start(os.getpid())
    try:
        outcome = run_backup_for(params, databases=names)
        report = restore_for(params, target_pg)
    finally:
        watcher.stop()

    assert outcome.status == "ok"
    backed_up = {a.meta["database"]: a.name for a in outcome.manifest.artifacts if a.kind == "database"}
    assert sorted(backed_up) == sorted(names) and len(set(backed_up.values())) == len(names)
    assert sorted(d["name"] for d in report["databases"]) == sorted(names)
    for name in names:
        assert contents(target_pg, name) == sorted([name, name]), name
    assert listener.connections == []
    # no child had a password in its environment; they had a private passfile instead
    assert watcher.samples > 20 and watcher.env_hits == []
    assert {"pg_dump", "pg_restore"} <= watcher.tools_seen
    # the password file is an anonymous 0600 memory file, on no file system
    assert watcher.passfiles == {("/memfd:lifeline-pgpass (deleted)", 0o600)}


def _tiny_archive(source_pg, tmp_path) -> str:
    path = str(tmp_path / "tiny.dump")
    source_pg.psql("CREATE DATABASE tiny")
    source_pg.psql("CREATE TABLE restored_here (i int)", db="tiny")
    subprocess.run(["pg_dump", "-Fc", "-h", source_pg.host, "-p", str(source_pg.port), "-U", source_pg.user,
                    "-f", path, "-d", "tiny"], env=dict(os.environ, PGPASSWORD=source_pg.password), check=True)
    return path


@pytest.mark.parametrize("index", range(4))
def test_every_libpq_tool_takes_a_hostile_name_as_a_database_name(source_pg, listener, tmp_path, index):
    name = hostile_names(listener.port)[index]
    create_databases(source_pg, [name])
    conn = config.pg_connection({"login_host": source_pg.host, "port": source_pg.port,
                                 "login_password": source_pg.password})
    psql, pg_dump = conn.tool("psql", 15), conn.tool("pg_dump", 15)
    query = [psql, "-X", "-A", "-t", "-c", "SELECT DISTINCT v FROM named WHERE v = current_database()"]

    # as a -d option (quoted by PgConnection), and as PGDATABASE alone (libpq never expands it)
    assert conn.run(query + ["-d", name], what="psql -d").strip() == name
    assert conn.run(query, what="psql", dbname=name).strip() == name
    assert "CREATE TABLE public.named" in conn.run([pg_dump, "--schema-only", "-d", name], what="pg_dump -d")
    assert "CREATE TABLE public.named" in conn.run([pg_dump, "--schema-only"], what="pg_dump", dbname=name)
    conn.run([conn.tool("pg_dumpall", 15), "--globals-only", "-l", name], what="pg_dumpall -l")
    conn.run([conn.tool("pg_restore", 15), "-d", name, _tiny_archive(source_pg, tmp_path)], what="pg_restore -d")
    assert conn.run(query[:-1] + ["SELECT count(*) FROM restored_here", "-d", name], what="psql").strip() == "0"
    assert listener.connections == []


def test_a_password_with_colon_backslash_and_quote_reaches_the_tools_through_the_passfile(source_pg):
    password = "p:a\\ss'w:rd\\"
    source_pg.psql("CREATE ROLE \"odd:user\" LOGIN PASSWORD '%s'" % password.replace("'", "''"))
    conn = config.pg_connection({"login_host": source_pg.host, "port": source_pg.port,
                                 "login_user": "odd:user", "login_password": password})
    psql = [conn.tool("psql", 15), "-X", "-A", "-t", "-c", "SELECT current_user"]
    assert conn.run(psql, what="psql").strip() == "odd:user"
    wrong = config.pg_connection({"login_host": source_pg.host, "port": source_pg.port,
                                  "login_user": "odd:user", "login_password": password + "x"})
    with pytest.raises(Exception, match="password authentication failed"):
        wrong.run(psql, what="psql")
