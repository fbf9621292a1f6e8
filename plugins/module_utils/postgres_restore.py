# -*- coding: utf-8 -*-
# Copyright: Lifeline contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Restore a postgres backup without putting existing data at risk.

Every database is restored into a temporary database, its row counts are checked against the
manifest, and only then is it swapped in under its real name; the database it replaces is
renamed away first and dropped only after the swap succeeded. Any failure before the swap drops
the temporary copy and leaves the server as it was. Conflicts are found before anything changes.
"""
from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import os
import re
import secrets
import shutil
import tempfile
import time
from typing import Callable, Sequence

from ansible_collections.lifeline.dr.plugins.module_utils.catalog import Entry
from ansible_collections.lifeline.dr.plugins.module_utils.errors import (
    LifelineError,
    NotFoundError,
    RestoreError,
)
from ansible_collections.lifeline.dr.plugins.module_utils.timeutil import parse_time, utcnow
from ansible_collections.lifeline.dr.plugins.module_utils.pipeline import Codec, Sink, fetch_artifact
from ansible_collections.lifeline.dr.plugins.module_utils.postgres import (
    PgConnection,
    count_rows,
    list_databases,
    sql,
)

# TOC entries that carry database-level properties (owner aside): restored after the swap.
_DB_LEVEL_RE = re.compile(r"^\d+; \d+ \d+ (DATABASE PROPERTIES|(COMMENT|ACL|SECURITY LABEL) - DATABASE) ")
_CREATE_ROLE_RE = re.compile(r"^CREATE ROLE (.+);$")
_PASSWORD_RE = re.compile(r" PASSWORD '((?:[^']|'')*)'")
_NON_EMPTY_SQL = """
SELECT (SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE c.relkind IN ('r','p','v','m','S','f')
           AND n.nspname NOT IN ('pg_catalog','information_schema','pg_toast'))
     + (SELECT count(*) FROM pg_largeobject_metadata)
"""


@dataclasses.dataclass
class RestoreOptions:
    databases: Sequence[str] | None = None   # None: every database in the backup
    include_globals: bool = True
    replace: bool = False
    jobs: int = 2
    staging_dir: str = "/var/lib/lifeline/staging"
    keep_replaced: bool = False


class FileSink(Sink):
    """A 0600 staging file (pg_restore -j needs a seekable archive); removed by the caller."""

    def __init__(self, path: str) -> None:
        self.path = path
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        self._fh = os.fdopen(fd, "wb")

    def write(self, data: bytes) -> None:
        if data:
            try:
                self._fh.write(data)
            except OSError as exc:
                raise RestoreError("staging %s failed: %s" % (self.path, exc.strerror)) from None

    def reset(self) -> None:
        self._fh.seek(0)
        self._fh.truncate()

    def close(self) -> None:
        self._fh.close()


class _Phases:
    def __init__(self) -> None:
        self.seconds: dict = {}

    def timed(self, name: str, func: Callable, *args, **kwargs):
        start = time.monotonic()
        try:
            return func(*args, **kwargs)
        finally:
            self.seconds[name] = round(self.seconds.get(name, 0.0) + time.monotonic() - start, 3)


def quote_ident(name: str) -> str:
    """An identifier as pg_dumpall writes it (quoted unless plain lower-case)."""
    if re.match(r"^[a-z_][a-z0-9_$]*$", name):
        return name
    return '"%s"' % name.replace('"', '""')


def password_matches(verifier: str, password: str, role: str) -> bool:
    """Whether a stored PostgreSQL password verifier (SCRAM-SHA-256 or md5) accepts ``password``."""
    if verifier.startswith("SCRAM-SHA-256$"):
        try:
            iterations, salt = verifier.split("$")[1].split(":")
            stored_key = verifier.split("$")[2].split(":")[0]
            salted = hashlib.pbkdf2_hmac("sha256", password.encode(), base64.b64decode(salt), int(iterations))
            client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
            return hmac.compare_digest(base64.b64encode(hashlib.sha256(client_key).digest()).decode(), stored_key)
        except (ValueError, IndexError):
            return False
    if verifier.startswith("md5"):
        return hmac.compare_digest(verifier, "md5" + hashlib.md5((password + role).encode()).hexdigest())  # nosec
    return False


def idempotent_globals(text: str, *, connecting_role: str | None = None,
                       connecting_password: str | None = None) -> str:
    """Make pg_dumpall's globals re-runnable: roles that already exist are updated, not an error.

    The role the restore connects as keeps its password unless the backup's verifier accepts the
    password we connect with (the same password, restored faithfully): replaying a different one
    would lock this restore, and the target's operators, out of the server mid-way.
    """
    own = ("ALTER ROLE %s WITH " % quote_ident(connecting_role)) if connecting_role else None
    out = []
    for line in text.splitlines():
        if own and line.startswith(own) and connecting_password:
            found = _PASSWORD_RE.search(line)
            if found and not password_matches(found.group(1).replace("''", "'"),
                                              connecting_password, connecting_role):
                line = _PASSWORD_RE.sub("", line)
        match = _CREATE_ROLE_RE.match(line)
        if match:
            line = ("DO $lifeline$ BEGIN CREATE ROLE %s; EXCEPTION WHEN duplicate_object THEN "
                    "NULL; END $lifeline$;" % match.group(1))
        out.append(line)
    return "\n".join(out) + "\n"


class PostgresRestore:
    def __init__(self, entry: Entry, codec: Codec, conn: PgConnection, opts: RestoreOptions) -> None:
        self.entry = entry
        self.manifest = entry.manifest
        self.codec = codec
        self.conn = conn
        self.opts = opts
        self.phases = _Phases()
        self.served_by: set = set()
        self.server_major = 0

    # ---- planning: everything that can refuse happens before the first change ----
    def selected(self) -> list:
        arts = [a for a in self.manifest.artifacts if a.kind == "database"]
        have = [a.meta["database"] for a in arts]
        if self.opts.databases:
            missing = [d for d in self.opts.databases if d not in have]
            if missing:
                raise NotFoundError("backup %s has no database %s; it holds: %s" % (
                    self.manifest.backup_id, ", ".join(repr(d) for d in missing), ", ".join(have)))
            arts = [a for a in arts if a.meta["database"] in self.opts.databases]
        return arts

    def plan(self) -> dict:
        if self.manifest.kind == "data":
            raise RestoreError("backup %s holds data only (scope data): it needs the schema in "
                               "place and cannot be restored into a fresh database; restore a full "
                               "or schema backup first" % self.manifest.backup_id)
        num, _text = self.conn.server_version()
        self.server_major = num // 10000
        source_major = int(self.manifest.tools.get("server_major", 0))
        if self.server_major < source_major:
            raise RestoreError(
                "the target runs PostgreSQL %d but backup %s comes from PostgreSQL %d; restore into "
                "%d or newer" % (self.server_major, self.manifest.backup_id, source_major, source_major))
        with self.conn.cursor() as cur:
            existing = set(list_databases(cur))
        actions, conflicts = {}, []
        for art in self.selected():
            name = art.meta["database"]
            if name not in existing:
                actions[name] = "create"
            elif self._is_empty(name):
                actions[name] = "replace-empty"
            elif self.opts.replace:
                actions[name] = "replace"
            else:
                conflicts.append(name)
        if conflicts:
            raise RestoreError(
                "database %s already exists on %s and holds data; nothing was changed. Set replace "
                "(lifeline_restore_replace: true) to replace it once the restored copy has verified"
                % (", ".join(repr(c) for c in conflicts), self.conn.where()))
        return {"globals": self.opts.include_globals and self._globals_artifact() is not None,
                "databases": actions}

    def _is_empty(self, dbname: str) -> bool:
        with self.conn.cursor(dbname) as cur:
            cur.execute(_NON_EMPTY_SQL)
            return cur.fetchone()[0] == 0

    def _globals_artifact(self):
        return next((a for a in self.manifest.artifacts if a.kind == "globals"), None)

    def _check_space(self, arts) -> None:
        # Every archive is staged before anything changes, so they must fit together.
        need = sum(a.plain_size for a in arts) + 64 * 1024 * 1024
        free = shutil.disk_usage(self.opts.staging_dir).free
        if free < need:
            raise RestoreError("not enough space to stage the archives in %s: %d MiB free, %d MiB needed; "
                               "free space or set staging_dir" % (self.opts.staging_dir, free >> 20, need >> 20))

    # ---- the run ----
    def run(self, *, before_replace: Callable[[list], object] | None = None) -> dict:
        """Stage every artifact (each read, hash-checked and decrypted) before changing anything;
        then roles; then every database into a temporary copy, each verified; only when all
        verified, swap them in. A damaged or undecryptable artifact thus changes nothing, and a
        failed verification changes no database (roles may have been created or updated)."""
        started = time.monotonic()
        plan = self.phases.timed("plan", self.plan)
        arts = self.selected()
        os.makedirs(self.opts.staging_dir, mode=0o700, exist_ok=True)
        os.chmod(self.opts.staging_dir, 0o700)
        self._check_space(arts)
        replacing = [n for n, a in plan["databases"].items() if a == "replace"]
        if replacing and before_replace is not None:
            self.phases.timed("safety_backup", before_replace, replacing)
        pg_restore = self.conn.tool("pg_restore", self.conn.archive_major(self.manifest.tools), prefer=self.server_major)
        with tempfile.TemporaryDirectory(prefix="restore-", dir=self.opts.staging_dir) as stage:
            globals_path = None
            if plan["globals"]:
                globals_path = os.path.join(stage, "globals.sql")
                self.phases.timed("fetch", self._fetch, self._globals_artifact(), globals_path)
            staged = []
            for art in arts:
                path = os.path.join(stage, art.name)
                self.phases.timed("fetch", self._fetch, art, path)
                staged.append((art, path, self._db_level_sql(pg_restore, path, stage, art.name)))
            if globals_path:
                self.phases.timed("globals", self._restore_globals, globals_path)
            pending = []  # (art, temp database, counts, db-level script) not yet swapped in
            results = []
            try:
                for art, path, db_level in staged:
                    temp, counts = self._restore_into_temp(pg_restore, art, path)
                    pending.append((art, temp, counts, db_level))
                while pending:
                    results.append(self._swap_in(*pending[0], plan))
                    pending.pop(0)
            except BaseException:
                for art, temp, _counts, _sql in pending:
                    self._drop(temp, self._admin_db(art.meta["database"]))
                raise
        rpo = (utcnow() - parse_time(self.manifest.consistent_at)).total_seconds()
        return {"backup_id": self.manifest.backup_id, "host": self.manifest.host,
                "site": self.manifest.site, "consistent_at": self.manifest.consistent_at,
                "globals": "applied" if plan["globals"] else "skipped", "databases": results, "plan": plan,
                "served_by": sorted(self.served_by), "phases": self.phases.seconds,
                "total_seconds": round(time.monotonic() - started, 3),
                "restore_point_age_seconds": int(rpo)}

    def _fetch(self, art, path: str) -> None:
        sink = FileSink(path)
        try:
            self.served_by.add(fetch_artifact(self.manifest, art, self.entry.repositories, self.codec, sink))
        finally:
            sink.close()

    def _restore_globals(self, path: str) -> None:
        with open(path, encoding="utf-8") as fh:
            text = idempotent_globals(fh.read(), connecting_role=self.conn.user,
                                      connecting_password=self.conn.password)
        fd = os.open(path, os.O_WRONLY | os.O_TRUNC)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        psql = self.conn.tool("psql", self.server_major)
        self.conn.run([psql, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-f", path], what="applying globals (roles)")

    def _admin_db(self, *avoid: str) -> str:
        return "template1" if self.conn.maintenance_db in avoid else self.conn.maintenance_db

    def _restore_into_temp(self, pg_restore: str, art, path: str):
        name = art.meta["database"]
        temp = "lifeline_restore_" + secrets.token_hex(4)
        admin = self._admin_db(name)
        self._create_temp(temp, art.meta, admin)
        try:
            self.phases.timed("pg_restore", self.conn.run,
                              [pg_restore, "--exit-on-error", "-j", str(max(1, self.opts.jobs)), "-d", temp, path],
                              what="pg_restore of %r" % name)
            counts = self.phases.timed("verify", self._verify, temp, art)
        except BaseException:
            self._drop(temp, admin)
            raise
        finally:
            os.unlink(path)
        return temp, counts

    def _swap_in(self, art, temp: str, counts: dict, db_level: str | None, plan: dict) -> dict:
        name = art.meta["database"]
        action = plan["databases"][name]
        admin = self._admin_db(name)
        self.phases.timed("swap", self._swap, temp, name, action, admin)
        if db_level:
            psql = self.conn.tool("psql", self.server_major)
            self.conn.run([psql, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-f", db_level],
                          what="applying database-level settings of %r" % name, dbname=admin)
        return {"name": name, "action": action, "verified": True, "tables": len(counts["tables"]),
                "rows": sum(counts["tables"].values()), "large_objects": counts.get("large_objects", 0)}

    def _db_level_sql(self, pg_restore: str, path: str, stage: str, tag: str) -> str | None:
        """Database comments, grants and settings, as pg_restore itself writes them for the real
        name; applied after the swap (pg_restore without --create skips them)."""
        # Database-level entries are only listed (and restored) with --create.
        toc = self.conn.run([pg_restore, "--create", "-l", path], what="reading the archive's table of contents")
        entries = [line for line in toc.splitlines() if _DB_LEVEL_RE.match(line)]
        if not entries:
            return None
        listing = os.path.join(stage, tag + ".db-level.list")
        with open(listing, "w", encoding="utf-8") as fh:
            fh.write("\n".join(entries) + "\n")
        text = self.conn.run([pg_restore, "--create", "-L", listing, "-f", "-", path],
                             what="extracting database-level settings")
        script = os.path.join(stage, tag + ".db-level.sql")
        with open(script, "w", encoding="utf-8") as fh:
            # --create always emits CREATE DATABASE (the temporary copy already exists under the
            # real name by now) and \connect lines; the rest targets the real name.
            fh.write("\n".join(line for line in text.splitlines()
                               if not line.startswith(("\\connect", "CREATE DATABASE "))) + "\n")
        return script

    def _create_temp(self, temp: str, meta: dict, admin: str) -> None:
        s = sql()
        parts = [s.SQL("CREATE DATABASE {} WITH TEMPLATE template0").format(s.Identifier(temp))]
        if meta.get("owner"):
            parts.append(s.SQL("OWNER {}").format(s.Identifier(meta["owner"])))
        if meta.get("encoding"):
            parts.append(s.SQL("ENCODING {}").format(s.Literal(meta["encoding"])))
        if meta.get("locale_provider") == "i" and meta.get("icu_locale"):
            parts.append(s.SQL("LOCALE_PROVIDER icu ICU_LOCALE {}").format(s.Literal(meta["icu_locale"])))
        for key, clause in (("collate", "LC_COLLATE"), ("ctype", "LC_CTYPE")):
            if meta.get(key):
                parts.append(s.SQL(clause + " {}").format(s.Literal(meta[key])))
        try:
            with self.conn.cursor(admin) as cur:
                cur.execute(s.SQL(" ").join(parts))
        except LifelineError:
            raise
        except Exception as exc:  # psycopg2 errors: name the cause (missing role, locale, disk)
            raise RestoreError("cannot create the temporary database for %r: %s"
                               % (meta.get("database"), str(exc).strip())) from None

    def _verify(self, temp: str, art) -> dict:
        if self.manifest.kind == "schema" or "tables" not in art.meta:
            return {"tables": {}}
        with self.conn.cursor(temp) as cur:
            got = count_rows(cur)
        want = art.meta["tables"]
        diffs = ["%s: %s rows, manifest says %s" % (t, got["tables"].get(t, "missing"), n)
                 for t, n in sorted(want.items()) if got["tables"].get(t) != n]
        if "large_objects" in art.meta and got.get("large_objects") != art.meta["large_objects"]:
            diffs.append("large objects: %s, manifest says %s" % (got.get("large_objects"), art.meta["large_objects"]))
        if diffs:
            raise RestoreError("restored copy of %r does not match backup %s (existing data untouched): %s"
                               % (art.meta["database"], self.manifest.backup_id, "; ".join(diffs[:10])))
        return got

    def _drop(self, dbname: str, admin: str) -> None:
        s = sql()
        try:
            with self.conn.cursor(admin) as cur:
                cur.execute(s.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(s.Identifier(dbname)))
        except Exception:  # pylint: disable=broad-except
            pass  # best effort: a leftover lifeline_restore_* database is harmless and named

    def _swap(self, temp: str, name: str, action: str, admin: str) -> None:
        s = sql()
        ident = s.Identifier
        with self.conn.cursor(admin) as cur:
            if action == "create":
                cur.execute(s.SQL("ALTER DATABASE {} RENAME TO {}").format(ident(temp), ident(name)))
                return
            old = "lifeline_replaced_" + secrets.token_hex(4)
            cur.execute(s.SQL("ALTER DATABASE {} WITH ALLOW_CONNECTIONS false").format(ident(name)))
            for attempt in range(20):
                cur.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                            "WHERE datname = %s AND pid <> pg_backend_pid()", (name,))
                try:
                    cur.execute(s.SQL("ALTER DATABASE {} RENAME TO {}").format(ident(name), ident(old)))
                    break
                except Exception:  # pylint: disable=broad-except
                    if attempt == 19:
                        cur.execute(s.SQL("ALTER DATABASE {} WITH ALLOW_CONNECTIONS true").format(ident(name)))
                        self._drop(temp, admin)
                        raise RestoreError("cannot take database %r out of use to replace it: sessions "
                                           "keep reconnecting; it is unchanged" % name) from None
                    time.sleep(0.25)
            try:
                cur.execute(s.SQL("ALTER DATABASE {} RENAME TO {}").format(ident(temp), ident(name)))
            except Exception as exc:
                cur.execute(s.SQL("ALTER DATABASE {} RENAME TO {}").format(ident(old), ident(name)))
                cur.execute(s.SQL("ALTER DATABASE {} WITH ALLOW_CONNECTIONS true").format(ident(name)))
                raise RestoreError("swapping in the restored %r failed (%s); the original is back in "
                                   "place" % (name, str(exc).strip())) from None
            if self.opts.keep_replaced:
                cur.execute(s.SQL("ALTER DATABASE {} WITH ALLOW_CONNECTIONS true").format(ident(old)))
            else:
                cur.execute(s.SQL("DROP DATABASE {}").format(ident(old)))
