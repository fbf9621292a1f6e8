# -*- coding: utf-8 -*-
# Copyright: Lifeline contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The single connection path to PostgreSQL, for SQL (psycopg2) and for its tools (pg_dump ...).

Two rules keep a hostile database name from redirecting a tool to another server with our
password: the password reaches the tools only through a 0600 password file bound to our host
and user (PGPASSFILE, in memory where Linux allows; never PGPASSWORD, which /proc/PID/environ
shows, never argv), and a database name is never parsed as a connection string (``host=x`` or
``postgresql://x`` as a name): it goes as ``dbname='<quoted>'`` on the command line, or in
PGDATABASE, which libpq never expands.
Identifiers in SQL are quoted with psycopg2's sql.Identifier, never formatted into strings.
"""
from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import os
import re
import shutil
import subprocess
import tempfile
from typing import Iterator, Sequence

from ansible_collections.lifeline.dr.plugins.module_utils.errors import (
    ConfigError,
    DependencyError,
    NotFoundError,
    SourceError,
)
from ansible_collections.lifeline.dr.plugins.module_utils.postgres_tools import Tool, find_tool

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


def conninfo_value(value: str) -> str:
    """``value`` quoted for a libpq connection string (backslash and quote escaped, as
    pg_dumpall's appendConnStrVal does)."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def dbname_conninfo(dbname: str) -> str:
    """A connection string naming only the database: libpq expands a ``-d`` value holding '='
    or starting with postgres(ql):// into connection parameters, but never the value inside it."""
    return "dbname=" + conninfo_value(dbname)


# Options whose value names the database a tool connects to (pg_dumpall's -d is a connection
# string: guarded the same way, it can only ever name a database).
_DB_OPTIONS = {"pg_dumpall": ("-l", "--database", "-d", "--dbname")}
_DEFAULT_DB_OPTIONS = ("-d", "--dbname")


def guard_database_args(argv: Sequence[str]) -> list:
    """``argv`` with every database option's value (``-d NAME``, ``-dNAME``, ``--dbname=NAME``;
    pg_dumpall's ``-l``) passed as ``dbname='NAME'``: a caller gives database names, never
    connection strings, so a hostile name cannot point the tool at another server."""
    argv = list(argv)
    opts = _DB_OPTIONS.get(os.path.basename(argv[0]), _DEFAULT_DB_OPTIONS) if argv else ()
    out, i = argv[:1], 1
    while i < len(argv):
        arg = argv[i]
        if arg == "--":
            out.extend(argv[i:])
            break
        if arg in opts and i + 1 < len(argv):
            out += [arg, dbname_conninfo(argv[i + 1])]
            i += 2
            continue
        for opt in opts:
            if opt.startswith("--") and arg.startswith(opt + "="):
                arg = opt + "=" + dbname_conninfo(arg[len(opt) + 1:])
                break
            if not opt.startswith("--") and arg.startswith(opt) and len(arg) > len(opt) and not arg.startswith("--"):
                arg = opt + dbname_conninfo(arg[len(opt):])
                break
        out.append(arg)
        i += 1
    return out


def _pgpass_field(value: str) -> str:
    return value.replace("\\", "\\\\").replace(":", "\\:")


def passfile_text(*, host: str, port: int, user: str, password: str) -> str:
    """A libpq password file holding ``password`` for ``user`` at ``host``:``port`` only (any
    database). A Unix socket directory also matches as 'localhost', as libpq looks it up."""
    if "\n" in password or "\r" in password:
        raise ConfigError("the PostgreSQL password contains a line break, which libpq's password file "
                          "cannot hold; choose a password without one")
    hosts = []
    for name in (host or "").split(","):
        hosts.append(name)
        if not name or name.startswith(("/", "@")):
            hosts.append("localhost")
    return "".join("%s:%s:*:%s:%s\n" % (_pgpass_field(h), port, _pgpass_field(user), _pgpass_field(password))
                   for h in dict.fromkeys(hosts))


@contextlib.contextmanager
def _passfile(text: str) -> Iterator[tuple]:
    """(path, fds to pass) of a 0600 password file holding ``text``. On Linux an anonymous memory
    file (memfd) the child opens as /proc/self/fd/N: never on disk, gone with the last process
    holding it, even after SIGKILL. Elsewhere a file in a private 0700 directory, removed after."""
    memfd_create = getattr(os, "memfd_create", None)
    fd = None
    if memfd_create is not None:
        try:
            fd = memfd_create("lifeline-pgpass", getattr(os, "MFD_CLOEXEC", 1))
        except OSError:
            fd = None
    if fd is not None:
        try:
            os.fchmod(fd, 0o600)  # libpq ignores a password file others could read
            data = text.encode("utf-8")
            while data:
                data = data[os.write(fd, data):]
            yield "/proc/self/fd/%d" % fd, (fd,)
        finally:
            os.close(fd)
        return
    private = tempfile.mkdtemp(prefix="lifeline-pgpass-")  # 0700
    try:
        path = os.path.join(private, "pgpass")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        yield path, ()
    finally:
        shutil.rmtree(private, ignore_errors=True)


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
        """Environment for libpq tools, without any password (see ``launch_args``). PGDATABASE is
        taken as a plain name by libpq, never expanded as a connection string."""
        env = {k: v for k, v in os.environ.items() if k != "PGPASSWORD"}
        env.update(PGHOST=self.host, PGPORT=str(self.port), PGUSER=self.user,
                   PGDATABASE=dbname or self.maintenance_db, PGAPPNAME="lifeline",
                   PGCONNECT_TIMEOUT=str(self.connect_timeout))
        if self.sslmode:
            env["PGSSLMODE"] = self.sslmode
        return env

    @contextlib.contextmanager
    def launch_args(self, dbname: str | None = None) -> Iterator[dict]:
        """``env`` and ``pass_fds`` for a libpq tool: the password goes into a 0600 password file
        (PGPASSFILE) that only lives while the ``with`` lasts. A PGPASSWORD we inherited moves
        into it too, so no child has a password in its environment."""
        env = self.env(dbname)
        password = self.password or os.environ.get("PGPASSWORD")
        cleanup = contextlib.ExitStack()
        try:
            fds: tuple = ()
            if password:
                text = passfile_text(host=self.host, port=self.port, user=self.user, password=password)
                env["PGPASSFILE"], fds = cleanup.enter_context(_passfile(text))
            yield {"env": env, "pass_fds": fds}
        finally:
            cleanup.close()

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
            # psycopg2 quotes every value into one connection string; libpq expands no value in it.
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

    def find_tool(self, name: str, at_least: int = 0, *, prefer: int | None = None) -> Tool:
        """The installed ``name`` to run, with its version (postgres_tools.find_tool)."""
        return find_tool(name, at_least=at_least, prefer=prefer, bin_dir=self.bin_dir)

    def tool(self, name: str, at_least: int = 0, *, prefer: int | None = None) -> str:
        """Path of ``name``: major version ``prefer`` if installed and not older than
        ``at_least``, else the newest not older than ``at_least``."""
        return self.find_tool(name, at_least, prefer=prefer).path

    @staticmethod
    def archive_major(tools: dict) -> int:
        """The major version of the pg_dump that wrote a backup, from its manifest's ``tools``
        (hostile input: anything malformed counts as unknown, 0). 0.1.0 manifests record only
        the version string."""
        major = tools.get("pg_dump_major") if isinstance(tools, dict) else None
        if isinstance(major, int) and not isinstance(major, bool) and 0 < major < 1000:
            return major
        found = re.match(r"^(\d{1,3})(\D|$)", str(tools.get("pg_dump", ""))) if isinstance(tools, dict) else None
        return int(found.group(1)) if found else 0

    def run(self, argv: Sequence[str], *, what: str, dbname: str | None = None, stdin=None) -> str:
        """Run a libpq tool to completion; a non-zero exit raises SourceError with stderr's tail.
        Database options in ``argv`` (-d NAME) and ``dbname`` are database names, never
        connection strings."""
        with self.launch_args(dbname) as launch:
            proc = subprocess.run(guard_database_args(argv), stdin=stdin, capture_output=True, check=False, **launch)
        if proc.returncode != 0:
            raise SourceError("%s failed (exit %d): %s" % (what, proc.returncode, tail(proc.stderr)))
        return proc.stdout.decode("utf-8", "replace")

    @contextlib.contextmanager
    def stream(self, argv: Sequence[str], *, what: str, dbname: str | None = None) -> Iterator:
        """Run a tool whose stdout is consumed as a stream; check its exit after the stream ends.

        stderr goes to an unnamed temp file so a chatty tool cannot fill a pipe and deadlock. If
        the consumer fails after the tool closed its output (e.g. pg_dump exited at once with
        "permission denied" and the consumer found no archive), the tool's own exit status and
        stderr are the error, not the consumer's symptom.
        """
        with self.launch_args(dbname) as launch, tempfile.TemporaryFile() as err:
            proc = subprocess.Popen(guard_database_args(argv), stdout=subprocess.PIPE,  # pylint: disable=consider-using-with
                                    stderr=err, bufsize=1024 * 1024, **launch)
            _grow_pipe(proc.stdout)
            out = _ToolOutput(proc.stdout)
            try:
                yield out
            except Exception as exc:
                code = _reap(proc, wait=out.eof)
                if code:
                    err.seek(0)
                    raise SourceError("%s failed (exit %d): %s" % (what, code, tail(err.read()))) from exc
                raise
            except BaseException:
                _reap(proc, wait=False)
                raise
            finally:
                proc.stdout.close()
            code = proc.wait()
            if code != 0:
                err.seek(0)
                raise SourceError("%s failed (exit %d): %s" % (what, code, tail(err.read())))


class _ToolOutput:
    """A tool's stdout that remembers whether the tool closed it (end of stream reached)."""

    def __init__(self, pipe) -> None:
        self._pipe = pipe
        self.eof = False

    def read(self, size: int = -1) -> bytes:
        data = self._pipe.read(size)
        if not data and size != 0:
            self.eof = True
        return data


def _reap(proc, *, wait: bool) -> int | None:
    """Exit status of a tool whose consumer gave up: waited for briefly when it already closed
    its output (it is exiting), killed otherwise. None if it had to be killed."""
    if wait:
        try:
            return proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
    proc.kill()
    proc.wait()
    return None


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


def database_facts_query(server_version_num: int) -> tuple:
    """(SQL, keys) reading a database's properties from the pg_database columns that server
    version has: datlocprovider and daticulocale from 15, daticurules from 16, and 17 renamed
    daticulocale to datlocale (which also holds the builtin provider's locale). ``icu_locale`` is
    recorded under that name in every version that has ICU, so restores read one key."""
    cols = [("owner", "pg_get_userbyid(d.datdba)"), ("encoding", "pg_encoding_to_char(d.encoding)"),
            ("collate", "d.datcollate"), ("ctype", "d.datctype")]
    if server_version_num >= 150000:
        cols.append(("locale_provider", "d.datlocprovider::text"))
    if 150000 <= server_version_num < 170000:
        cols.append(("icu_locale", "d.daticulocale"))
    if server_version_num >= 170000:
        cols += [("locale", "d.datlocale"),
                 ("icu_locale", "CASE WHEN d.datlocprovider = 'i' THEN d.datlocale END")]
    if server_version_num >= 160000:
        cols.append(("icu_rules", "d.daticurules"))
    query = "SELECT %s FROM pg_database d WHERE d.datname = %%s" % ", ".join(expr for _key, expr in cols)
    return query, tuple(key for key, _expr in cols)


def database_facts(cur, dbname: str, *, server_version_num: int) -> dict:
    """Owner, encoding and locale of ``dbname``: what its restored copy is created with."""
    query, keys = database_facts_query(server_version_num)
    cur.execute(query, (dbname,))
    row = cur.fetchone()
    if row is None:
        raise NotFoundError("database %r does not exist" % dbname)
    return dict(zip(keys, row))


def user_tables(cur) -> list:
    """(schema, table) of every user table (USER_TABLES_SQL), sorted."""
    cur.execute(USER_TABLES_SQL)
    return sorted(tuple(row) for row in cur.fetchall())


def count_rows(cur, *, large_objects: bool = True, tables: Sequence | None = None) -> dict:
    """Exact row count of every user table (or of ``tables``, (schema, table) pairs) and the
    number of large objects, as the manifest records."""
    counts = {}
    for schema, table in (user_tables(cur) if tables is None else tables):
        cur.execute(sql().SQL("SELECT count(*) FROM {}.{}").format(sql().Identifier(schema), sql().Identifier(table)))
        counts["%s.%s" % (schema, table)] = cur.fetchone()[0]
    result = {"tables": counts}
    if large_objects:
        cur.execute("SELECT count(*) FROM pg_largeobject_metadata")
        result["large_objects"] = cur.fetchone()[0]
    return result


# Plain names stand for themselves; anything else is hashed (see safe_name).
_PLAIN_NAME_RE = re.compile(r"^[a-z0-9_-]{1,63}$")


def safe_name(name: str) -> str:
    """The part of an artifact name that stands for database ``name``; injective.

    A plain name (1-63 lower-case letters, digits, '_' or '-') is itself. Any other name becomes
    a readable slug without '.', then '.', then 32 hex digits of the sha256 of the exact name.
    Plain results hold no '.', so a plain name never looks like a hashed one; two hashed names
    differ in their 128-bit hash (no collision can be found, even by someone able to create
    databases); names differing only in case are hashed apart, so they stay apart on a
    case-insensitive file system. Results never contain '..' and are at most 73 characters.
    """
    if _PLAIN_NAME_RE.match(name):
        return name
    slug = re.sub(r"[^A-Za-z0-9_-]", "_", name)[:40]
    return slug + "." + hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()[:32]
