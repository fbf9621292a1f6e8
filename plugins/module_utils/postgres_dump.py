# -*- coding: utf-8 -*-
# Copyright: Lifeline contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The postgres component: logical backups with pg_dump -Fc and pg_dumpall --globals-only.

Each database is dumped from an exported snapshot, and its rows are counted in that same
snapshot while pg_dump streams, so the counts the manifest records are exactly what the dump
holds (a restore is verified against them). pg_dump compression is off (-Z0): the pipeline's
multi-threaded zstd is several times faster than pg_dump's gzip at a smaller size.
"""
from __future__ import annotations

import contextlib
import enum
import threading
from typing import Iterator, Sequence

from ansible_collections.lifeline.dr.plugins.module_utils.component import Component, Source
from ansible_collections.lifeline.dr.plugins.module_utils.errors import (
    LifelineError,
    NotFoundError,
    SourceError,
)
from ansible_collections.lifeline.dr.plugins.module_utils.timeutil import isotime, utcnow
from ansible_collections.lifeline.dr.plugins.module_utils.postgres import (
    PgConnection,
    count_rows,
    database_facts,
    list_databases,
    safe_name,
    user_tables,
)

PGDMP_MAGIC = b"PGDMP"


class Scope(str, enum.Enum):
    FULL = "full"
    SCHEMA = "schema"
    DATA = "data"


_SCOPE_FLAGS = {Scope.FULL: [], Scope.SCHEMA: ["--schema-only"], Scope.DATA: ["--data-only"]}


class _MagicCheck:
    """Wraps the dump stream and refuses one that does not start like a custom-format archive."""

    def __init__(self, stream, what: str) -> None:
        self._stream, self._what, self._checked = stream, what, False

    def read(self, size: int = -1) -> bytes:
        data = self._stream.read(size)
        if not self._checked:
            self._checked = True
            if not data.startswith(PGDMP_MAGIC):
                # PgConnection.stream replaces this with pg_dump's own error when it failed.
                raise SourceError("%s did not produce a pg_dump custom-format archive" % self._what)
        return data


class _Globals(Source):
    kind = "globals"
    name = "globals.sql"

    def __init__(self, comp: "PostgresComponent") -> None:
        self.comp = comp
        self.meta = {}

    @contextlib.contextmanager
    def open(self):
        argv = [self.comp.tool("pg_dumpall"), "--globals-only", "--no-tablespaces",
                "-l", self.comp.conn.maintenance_db]
        with self.comp.conn.stream(argv, what="pg_dumpall --globals-only") as out:
            yield out


class _Database(Source):
    kind = "database"

    def __init__(self, comp: "PostgresComponent", dbname: str, *, size_hint: int | None = None) -> None:
        self.comp = comp
        self.dbname = dbname
        self.name = "db-%s.dump" % safe_name(dbname)
        self.meta = {"database": dbname}
        self.size_hint = size_hint  # pg_database_size: an upper bound of a -Z0 dump, near enough

    @contextlib.contextmanager
    def open(self):
        comp = self.comp
        conn = comp.conn.connect(self.dbname)
        counter = None
        try:
            cur = conn.cursor()
            cur.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            cur.execute("SELECT pg_export_snapshot(), now()")
            snapshot, now = cur.fetchone()
            self.meta["snapshot_time"] = isotime(now)
            # The user tables as the dump's snapshot sees them, for every scope: a schema-only
            # restore is verified against this list, full and data ones also by row counts.
            tables = user_tables(cur)
            self.meta["relations"] = ["%s.%s" % t for t in tables]
            with comp.conn.cursor() as admin:
                self.meta.update(database_facts(admin, self.dbname, server_version_num=comp.server_version_num))
            counted: dict = {}
            counter = threading.Thread(target=self._count, args=(cur, tables, counted), daemon=True)
            argv = [comp.tool("pg_dump"), "-Fc", "-Z0", "--snapshot=" + snapshot,
                    *_SCOPE_FLAGS[comp.kind_scope], "-d", self.dbname]
            what = "pg_dump of database %r" % self.dbname
            with comp.conn.stream(argv, what=what, dbname=self.dbname) as out:
                if comp.kind_scope is not Scope.SCHEMA:
                    counter.start()
                yield _MagicCheck(out, what)
            if counter.is_alive() or counter.ident:
                counter.join()
                if "error" in counted:
                    raise counted["error"]
                self.meta.update(counted["result"])
            comp.consistent_at = self.meta["snapshot_time"]
        finally:
            if counter is not None and counter.is_alive():
                conn.cancel()  # the dump failed: stop counting rather than wait for it
                counter.join()
            conn.close()

    @staticmethod
    def _count(cur, tables: list, out: dict) -> None:
        try:
            # A failing count (permission denied) aborts only this savepoint: the transaction
            # and its exported snapshot stay alive, so pg_dump reports its own error, if any.
            cur.execute("SAVEPOINT lifeline_count")
            out["result"] = count_rows(cur, tables=tables)
        except Exception as exc:  # pylint: disable=broad-except
            out["error"] = SourceError("counting rows failed: %s" % exc)


class PostgresComponent(Component):
    name = "postgres"

    def __init__(self, conn: PgConnection, *, databases: Sequence[str] | None = None,
                 scope: Scope = Scope.FULL, include_globals: bool = True) -> None:
        super().__init__()
        self.conn = conn
        self.wanted = list(databases) if databases else None
        self.kind_scope = Scope(scope)
        self.kind = self.kind_scope.value
        self.include_globals = include_globals
        self.databases: list = []
        self.sizes: dict = {}
        self.server_version_num = 0
        self.server_major = 0
        self.dump_major = 0

    def tool(self, name: str) -> str:
        """``name`` of the version chosen for pg_dump (pg_dumpall must write the same)."""
        return self.conn.tool(name, self.server_major, prefer=self.dump_major or self.server_major)

    def prepare(self) -> None:
        num, text = self.conn.server_version()
        self.server_version_num, self.server_major = num, num // 10000
        with self.conn.cursor() as cur:
            existing = list_databases(cur)
            cur.execute("SELECT system_identifier::text FROM pg_control_system()")
            system_id = cur.fetchone()[0]
            cur.execute("SELECT datname, CASE WHEN has_database_privilege(oid, 'CONNECT') "
                        "THEN pg_database_size(oid) END FROM pg_database")
            self.sizes = dict(cur.fetchall())
        if self.wanted:
            missing = [d for d in self.wanted if d not in existing]
            if missing:
                raise NotFoundError("database %s does not exist on %s; databases there: %s" % (
                    ", ".join(repr(d) for d in missing), self.conn.where(), ", ".join(existing)))
            self.databases = list(self.wanted)
        else:
            self.databases = existing
        # The server's own major version when installed, else the newest not older: the restore
        # needs a pg_restore at least as new as pg_dump_major.
        pg_dump = self.conn.find_tool("pg_dump", self.server_major, prefer=self.server_major)
        self.dump_major = pg_dump.major
        self.tools = {"pg_dump": pg_dump.version, "pg_dump_major": pg_dump.major, "server": text,
                      "server_major": self.server_major}
        self.facts = {"databases": self.databases, "system_identifier": system_id,
                      "scope": self.kind, "globals": self.include_globals}

    def plan(self) -> list:
        return (["globals"] if self.include_globals else []) + ["database %s" % d for d in self.databases]

    def artifacts(self) -> Iterator[Source]:
        if self.include_globals:
            yield _Globals(self)
        for dbname in self.databases:
            yield _Database(self, dbname, size_hint=self.sizes.get(dbname))
        if self.consistent_at is None:
            self.consistent_at = isotime(utcnow())


__all__ = ["PostgresComponent", "Scope", "LifelineError"]
