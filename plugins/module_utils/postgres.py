# -*- coding: utf-8 -*-
# Copyright: Lifeline contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The single connection path to PostgreSQL, for SQL (psycopg2) and for its tools (pg_dump ...).

Passwords reach the tools through the environment (PGPASSWORD), never argv; identifiers are
quoted with psycopg2's sql.Identifier, never formatted into strings.
"""
from __future__ import annotations

import contextlib
import dataclasses
import glob
import os
import re
import shutil
import subprocess
import tempfile
from typing import Iterator, Sequence

from ansible_collections.lifeline.dr.plugins.module_utils.errors import (
    DependencyError,
    NotFoundError,
    SourceError,
)

_SYSTEM_SCHEMAS = ("pg_catalog", "information_schema", "pg_toast")
# Ordinary tables outside system schemas and not owned by an extension: what row counts cover.
USER_TABLES_SQL = """
SELECT n.nspname, c.relname
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')
   AND n.nspname NOT LIKE 'pg\\_temp\\_%%' AND n.nspname NOT LIKE 'pg\\_toast\\_temp\\_%%'
   AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass
                   AND d.objid = c.oid AND d.deptype = 'e')
 ORDER BY 1, 2
"""


def _psycopg2():
    try:
        import psycopg2  # pylint: disable=import-outside-toplevel
        import psycopg2.sql  # pylint: disable=import-outside-toplevel
    except ImportError:
        raise DependencyError("PostgreSQL support needs the Python library 'psycopg2' "
                              "(Debian: python3-psycopg2)") from None
    return psycopg2


def sql():
    return _psycopg2().sql


def tail(text: bytes | str, lines: int = 8) -> str:
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    return "\n".join(text.strip().splitlines()[-lines:])


@dataclasses.dataclass
class PgConnection:
    host: str = "localhost"
    port: int = 5432
    user: str = "postgres"
    password: str | None = dataclasses.field(default=None, repr=False)
    maintenance_db: str = "postgres"
    sslmode: str | None = None
    bin_dir: str | None = None
    connect_timeout: int = 10

    def where(self) -> str:
        return "PostgreSQL at %s:%s as %s" % (self.host, self.port, self.user)

    def env(self, dbname: str | None = None) -> dict:
        """Environment for libpq tools: the password goes here, not on the command line."""
        env = dict(os.environ)
        env.update(PGHOST=self.host, PGPORT=str(self.port), PGUSER=self.user,
                   PGDATABASE=dbname or self.maintenance_db, PGAPPNAME="lifeline",
                   PGCONNECT_TIMEOUT=str(self.connect_timeout))
        if self.password:
            env["PGPASSWORD"] = self.password
        if self.sslmode:
            env["PGSSLMODE"] = self.sslmode
        return env

    def connect(self, dbname: str | None = None):
        """An autocommit psycopg2 connection; errors name the server and the cause."""
        psycopg2 = _psycopg2()
        dbname = dbname or self.maintenance_db
        kwargs = dict(host=self.host, port=self.port, user=self.user, dbname=dbname,
                      connect_timeout=self.connect_timeout, application_name="lifeline")
        if self.password:
            kwargs["password"] = self.password
        if self.sslmode:
            kwargs["sslmode"] = self.sslmode
        try:
            conn = psycopg2.connect(**kwargs)
        except psycopg2.OperationalError as exc:
            msg = str(exc).strip().splitlines()[-1] if str(exc).strip() else repr(exc)
            if "does not exist" in msg and "database" in msg:
                raise NotFoundError("database %r does not exist on %s" % (dbname, self.where())) from None
            raise SourceError("cannot connect to %s (database %r): %s" % (self.where(), dbname, msg)) from None
        conn.autocommit = True
        return conn

    @contextlib.contextmanager
    def cursor(self, dbname: str | None = None):
        conn = self.connect(dbname)
        try:
            with conn.cursor() as cur:
                yield cur
        finally:
            conn.close()

    def server_version(self) -> tuple[int, str]:
        with self.cursor() as cur:
            cur.execute("SELECT current_setting('server_version_num')::int, current_setting('server_version')")
            num, text = cur.fetchone()
        return num, text

    def tool(self, name: str, server_major: int) -> str:
        """The newest installed ``name`` whose major version is at least the server's."""
        if self.bin_dir:
            path = os.path.join(self.bin_dir, name)
            if os.access(path, os.X_OK):
                return path
            raise DependencyError("%s not found in %s (bin_dir)" % (name, self.bin_dir))
        found = []
        for path in glob.glob("/usr/lib/postgresql/*/bin/" + name):
            major = os.path.basename(os.path.dirname(os.path.dirname(path)))
            if major.isdigit() and int(major) >= server_major:
                found.append((int(major), path))
        if found:
            return max(found)[1]
        path = shutil.which(name)
        if path:
            return path
        raise DependencyError("%s for PostgreSQL %d or newer is not installed; install "
                              "postgresql-client-%d" % (name, server_major, server_major))

    def run(self, argv: Sequence[str], *, what: str, dbname: str | None = None, stdin=None) -> str:
        """Run a libpq tool to completion; a non-zero exit raises SourceError with stderr's tail."""
        proc = subprocess.run(list(argv), env=self.env(dbname), stdin=stdin, capture_output=True, check=False)
        if proc.returncode != 0:
            raise SourceError("%s failed (exit %d): %s" % (what, proc.returncode, tail(proc.stderr)))
        return proc.stdout.decode("utf-8", "replace")

    @contextlib.contextmanager
    def stream(self, argv: Sequence[str], *, what: str, dbname: str | None = None) -> Iterator:
        """Run a tool whose stdout is consumed as a stream; check its exit after the stream ends.

        stderr goes to an unnamed temp file so a chatty tool cannot fill a pipe and deadlock.
        """
        with tempfile.TemporaryFile() as err:
            proc = subprocess.Popen(list(argv), env=self.env(dbname), stdout=subprocess.PIPE,  # pylint: disable=consider-using-with
                                    stderr=err, bufsize=1024 * 1024)
            _grow_pipe(proc.stdout)
            try:
                yield proc.stdout
            except BaseException:
                proc.kill()
                proc.wait()
                raise
            finally:
                proc.stdout.close()
            code = proc.wait()
            if code != 0:
                err.seek(0)
                raise SourceError("%s failed (exit %d): %s" % (what, code, tail(err.read())))


def _grow_pipe(pipe) -> None:
    """A 1 MiB pipe cuts context switches between the dump tool and the pipeline."""
    try:
        import fcntl  # pylint: disable=import-outside-toplevel
        fcntl.fcntl(pipe.fileno(), getattr(fcntl, "F_SETPIPE_SZ", 1031), 1024 * 1024)
    except OSError:
        pass


def list_databases(cur) -> list:
    """Databases a backup covers: every connectable, non-template database."""
    cur.execute("SELECT datname FROM pg_database WHERE datallowconn AND NOT datistemplate ORDER BY 1")
    return [r[0] for r in cur.fetchall()]


def database_facts(cur, dbname: str) -> dict:
    cur.execute("""
        SELECT pg_get_userbyid(d.datdba), pg_encoding_to_char(d.encoding), d.datcollate, d.datctype,
               d.datlocprovider::text, d.daticulocale
          FROM pg_database d WHERE d.datname = %s""", (dbname,))
    row = cur.fetchone()
    if row is None:
        raise NotFoundError("database %r does not exist" % dbname)
    keys = ("owner", "encoding", "collate", "ctype", "locale_provider", "icu_locale")
    return dict(zip(keys, row))


def count_rows(cur, *, large_objects: bool = True) -> dict:
    """Exact row count of every user table (and the number of large objects), as the manifest records."""
    cur.execute(USER_TABLES_SQL)
    tables = cur.fetchall()
    counts = {}
    for schema, table in tables:
        cur.execute(sql().SQL("SELECT count(*) FROM {}.{}").format(sql().Identifier(schema), sql().Identifier(table)))
        counts["%s.%s" % (schema, table)] = cur.fetchone()[0]
    result = {"tables": counts}
    if large_objects:
        cur.execute("SELECT count(*) FROM pg_largeobject_metadata")
        result["large_objects"] = cur.fetchone()[0]
    return result


def safe_name(name: str) -> str:
    """A database name made safe for an artifact file name (unique even when characters differ)."""
    slug = re.sub(r"[^A-Za-z0-9._-]", "_", name)[:60] or "_"
    if slug != name:
        import hashlib  # pylint: disable=import-outside-toplevel
        slug += "-" + hashlib.sha256(name.encode()).hexdigest()[:8]
    return slug
