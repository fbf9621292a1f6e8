# -*- coding: utf-8 -*-
# Copyright: Lifeline contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What a postgres restore does to the target server: temporary copies, scripts, the swap.

Every statement here is plain server-side SQL through psycopg2 with identifiers quoted by
sql.Identifier; driver errors become RestoreError naming the step and the cause.
"""
from __future__ import annotations

import contextlib
import secrets
import time
from typing import Sequence

from ansible_collections.lifeline.dr.plugins.module_utils.errors import RestoreError
from ansible_collections.lifeline.dr.plugins.module_utils.postgres import PgConnection, sql
from ansible_collections.lifeline.dr.plugins.module_utils.postgres_script import Statement
from ansible_collections.lifeline.dr.plugins.module_utils.restore import RestoreAction, cause_of, step

TEMP_PREFIX = "lifeline_restore_"
REPLACED_PREFIX = "lifeline_replaced_"
# Every kind of object a user can create in a database; what initdb made has an oid below
# FirstNormalObjectId (16384). A database with none of these is "empty".
USER_OBJECTS_SQL = """
WITH ns AS (SELECT oid FROM pg_catalog.pg_namespace WHERE nspname <> 'pg_toast'
               AND nspname NOT LIKE 'pg\\_temp\\_%' AND nspname NOT LIKE 'pg\\_toast\\_temp\\_%')
SELECT kind, n FROM (
  SELECT 1, 'relations', count(*) FROM pg_catalog.pg_class
   WHERE oid >= 16384 AND relkind IN ('r', 'p', 'v', 'm', 'S', 'f', 'c') AND relnamespace IN (SELECT oid FROM ns)
  UNION ALL SELECT 2, 'functions or procedures', count(*) FROM pg_catalog.pg_proc
   WHERE oid >= 16384 AND pronamespace IN (SELECT oid FROM ns)
  UNION ALL SELECT 3, 'types or domains', count(*) FROM pg_catalog.pg_type t
   WHERE oid >= 16384 AND typnamespace IN (SELECT oid FROM ns) AND typrelid = 0
     AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_type e WHERE e.typarray = t.oid)
  UNION ALL SELECT 4, 'schemas', count(*) FROM pg_catalog.pg_namespace WHERE oid >= 16384 AND oid IN (SELECT oid FROM ns)
  UNION ALL SELECT 5, 'extensions', count(*) FROM pg_catalog.pg_extension WHERE oid >= 16384
  UNION ALL SELECT 6, 'foreign data wrappers', count(*) FROM pg_catalog.pg_foreign_data_wrapper WHERE oid >= 16384
  UNION ALL SELECT 7, 'foreign servers', count(*) FROM pg_catalog.pg_foreign_server WHERE oid >= 16384
  UNION ALL SELECT 8, 'large objects', count(*) FROM pg_catalog.pg_largeobject_metadata
  UNION ALL SELECT 9, 'event triggers', count(*) FROM pg_catalog.pg_event_trigger WHERE oid >= 16384
  UNION ALL SELECT 10, 'publications', count(*) FROM pg_catalog.pg_publication WHERE oid >= 16384
  UNION ALL SELECT 11, 'subscriptions', count(*) FROM pg_catalog.pg_subscription
   WHERE subdbid = (SELECT oid FROM pg_catalog.pg_database WHERE datname = current_database())
  UNION ALL SELECT 12, 'other objects', (SELECT count(*) FROM pg_catalog.pg_operator WHERE oid >= 16384)
    + (SELECT count(*) FROM pg_catalog.pg_opfamily WHERE oid >= 16384)
    + (SELECT count(*) FROM pg_catalog.pg_opclass WHERE oid >= 16384)
    + (SELECT count(*) FROM pg_catalog.pg_am WHERE oid >= 16384)
    + (SELECT count(*) FROM pg_catalog.pg_cast WHERE oid >= 16384)
    + (SELECT count(*) FROM pg_catalog.pg_collation WHERE oid >= 16384)
    + (SELECT count(*) FROM pg_catalog.pg_conversion WHERE oid >= 16384)
    + (SELECT count(*) FROM pg_catalog.pg_language WHERE oid >= 16384)
    + (SELECT count(*) FROM pg_catalog.pg_ts_config WHERE oid >= 16384)
    + (SELECT count(*) FROM pg_catalog.pg_ts_dict WHERE oid >= 16384)
    + (SELECT count(*) FROM pg_catalog.pg_ts_parser WHERE oid >= 16384)
    + (SELECT count(*) FROM pg_catalog.pg_ts_template WHERE oid >= 16384)
    + (SELECT count(*) FROM pg_catalog.pg_statistic_ext WHERE oid >= 16384)
    + (SELECT count(*) FROM pg_catalog.pg_default_acl WHERE oid >= 16384)
    + (SELECT count(*) FROM pg_catalog.pg_transform WHERE oid >= 16384)
) AS k(ord, kind, n) WHERE n > 0 ORDER BY ord
"""


def _driver_errors() -> tuple:
    try:
        import psycopg2  # pylint: disable=import-outside-toplevel
    except ImportError:  # pragma: no cover - PgConnection.connect names the missing library
        return ()
    return (psycopg2.Error,)


def pg_step(what: str):
    """RestoreError naming ``what`` for an OSError or a psycopg2 error raised inside."""
    return step(what, _driver_errors())


def new_temp_name() -> str:
    return TEMP_PREFIX + secrets.token_hex(4)


class PgTarget:
    """The server a restore writes to."""

    def __init__(self, conn: PgConnection) -> None:
        self.conn = conn

    def admin_db(self, *avoid: str) -> str:
        """A database to connect to while ``avoid`` are renamed or dropped."""
        return "template1" if self.conn.maintenance_db in avoid else self.conn.maintenance_db

    def databases(self) -> dict:
        """Every database on the server -> whether it accepts connections."""
        with pg_step("listing the databases on %s" % self.conn.where()), self.conn.cursor() as cur:
            cur.execute("SELECT datname, datallowconn FROM pg_catalog.pg_database")
            return dict(cur.fetchall())

    def user_objects(self, dbname: str) -> dict:
        """Kind -> count of user-created objects in ``dbname``; {} for an empty database."""
        with pg_step("looking into database %r" % dbname), self.conn.cursor(dbname) as cur:
            cur.execute(USER_OBJECTS_SQL)
            return dict(cur.fetchall())

    def create_temp(self, temp: str, meta: dict, admin: str) -> None:
        # psycopg2 errors name the cause: a missing role, locale or disk space
        with pg_step("creating the temporary database for %r" % meta.get("database")), self.conn.cursor(admin) as cur:
            cur.execute(create_database_sql(temp, meta))

    def drop(self, dbname: str, admin: str) -> bool:
        """Best effort: a leftover lifeline_restore_* database is named, and dropped next time."""
        s = sql()
        try:
            with self.conn.cursor(admin) as cur:
                with contextlib.suppress(*_driver_errors()):  # a copy made a template by its settings
                    cur.execute(s.SQL("ALTER DATABASE {} IS_TEMPLATE false").format(s.Identifier(dbname)))
                cur.execute(s.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(s.Identifier(dbname)))
            return True
        except Exception:  # pylint: disable=broad-except
            return False

    def drop_stale(self) -> list:
        """Drop the temporary copies a killed restore left (the caller holds the target's lock)."""
        with pg_step("listing temporary databases left by earlier restores"), self.conn.cursor() as cur:
            cur.execute("SELECT datname FROM pg_catalog.pg_database WHERE datname LIKE %s ORDER BY 1",
                        (TEMP_PREFIX.replace("_", "\\_") + "%",))
            stale = [row[0] for row in cur.fetchall()]
        return ["%s temporary database %s left by an interrupted restore"
                % ("dropped" if self.drop(name, self.admin_db()) else "could not drop", name) for name in stale]

    def run_script(self, statements: Sequence[Statement], *, dbname: str, what: str) -> None:
        """Run ``statements`` in one transaction: all of them apply, or none."""
        s = sql()
        with pg_step(what), contextlib.closing(self.conn.connect(dbname)) as conn, conn.cursor() as cur:
            conn.set_client_encoding("UTF8")
            cur.execute("SET standard_conforming_strings = on; SET default_transaction_read_only = off; "
                        "SELECT pg_catalog.set_config('search_path', '', false)")
            cur.execute("BEGIN")
            for stmt in statements:
                try:
                    if stmt.create_role is None:
                        cur.execute(stmt.text)
                        continue
                    cur.execute("SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = %s", (stmt.create_role,))
                    if cur.fetchone() is None:
                        cur.execute(s.SQL("CREATE ROLE {}").format(s.Identifier(stmt.create_role)))
                except _driver_errors() as exc:
                    raise RestoreError("%s failed at line %d (%s): %s; none of it was applied"
                                       % (what, stmt.line, " ".join(stmt.text.split())[:60], cause_of(exc))) from None
            cur.execute("COMMIT")

    def swap(self, temp: str, name: str, action: RestoreAction, admin: str, *, keep_replaced: bool) -> None:
        """Put the verified copy ``temp`` in place of ``name``; the database it replaces is renamed
        away first, renamed back if the swap fails, and dropped last (or kept)."""
        s = sql()
        ident = s.Identifier
        with pg_step("swapping in the restored %r" % name), self.conn.cursor(admin) as cur:
            if action is RestoreAction.CREATE:
                cur.execute(s.SQL("ALTER DATABASE {} RENAME TO {}").format(ident(temp), ident(name)))
                return
            old = REPLACED_PREFIX + secrets.token_hex(4)
            self._take_out_of_use(cur, name, old)
            try:
                cur.execute(s.SQL("ALTER DATABASE {} RENAME TO {}").format(ident(temp), ident(name)))
            except _driver_errors() as exc:
                cur.execute(s.SQL("ALTER DATABASE {} RENAME TO {}").format(ident(old), ident(name)))
                cur.execute(s.SQL("ALTER DATABASE {} WITH ALLOW_CONNECTIONS true").format(ident(name)))
                raise RestoreError("swapping in the restored %r failed (%s); the original is back in "
                                   "place" % (name, cause_of(exc))) from None
            if keep_replaced:
                cur.execute(s.SQL("ALTER DATABASE {} WITH ALLOW_CONNECTIONS true").format(ident(old)))
            else:
                cur.execute(s.SQL("DROP DATABASE {}").format(ident(old)))

    @staticmethod
    def _take_out_of_use(cur, name: str, old: str) -> None:
        """Close ``name`` to new sessions, end its sessions and rename it to ``old``."""
        s = sql()
        ident = s.Identifier
        cur.execute(s.SQL("ALTER DATABASE {} WITH ALLOW_CONNECTIONS false").format(ident(name)))
        for attempt in range(20):
            cur.execute("SELECT pg_catalog.pg_terminate_backend(pid) FROM pg_catalog.pg_stat_activity "
                        "WHERE datname = %s AND pid <> pg_catalog.pg_backend_pid()", (name,))
            try:
                cur.execute(s.SQL("ALTER DATABASE {} RENAME TO {}").format(ident(name), ident(old)))
                return
            except _driver_errors():
                if attempt == 19:
                    cur.execute(s.SQL("ALTER DATABASE {} WITH ALLOW_CONNECTIONS true").format(ident(name)))
                    raise RestoreError("cannot take database %r out of use to replace it: sessions keep "
                                       "reconnecting; it is unchanged" % name) from None
                time.sleep(0.25)


def create_database_sql(name: str, meta: dict):
    """CREATE DATABASE with the source database's owner, encoding and locale, as the manifest
    records them (database_facts_query: ICU from 15, ICU rules from 16, the builtin provider 17)."""
    s = sql()
    parts = [s.SQL("CREATE DATABASE {} WITH TEMPLATE template0").format(s.Identifier(name))]
    if meta.get("owner"):
        parts.append(s.SQL("OWNER {}").format(s.Identifier(meta["owner"])))
    if meta.get("encoding"):
        parts.append(s.SQL("ENCODING {}").format(s.Literal(meta["encoding"])))
    provider = meta.get("locale_provider")
    if provider == "i" and meta.get("icu_locale"):
        parts.append(s.SQL("LOCALE_PROVIDER icu ICU_LOCALE {}").format(s.Literal(meta["icu_locale"])))
        if meta.get("icu_rules"):
            parts.append(s.SQL("ICU_RULES {}").format(s.Literal(meta["icu_rules"])))
    elif provider == "b" and meta.get("locale"):
        parts.append(s.SQL("LOCALE_PROVIDER builtin BUILTIN_LOCALE {}").format(s.Literal(meta["locale"])))
    for key, clause in (("collate", "LC_COLLATE"), ("ctype", "LC_CTYPE")):
        if meta.get(key):
            parts.append(s.SQL(clause + " {}").format(s.Literal(meta[key])))
    return s.SQL(" ").join(parts)
