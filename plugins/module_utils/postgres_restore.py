# -*- coding: utf-8 -*-
# Copyright: Lifeline contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Restore a postgres backup without putting existing data at risk.

The shared restore side (restore.py) locks the target, removes leftovers of killed runs, plans
and provides staging. Here: every artifact is staged and its scripts (globals, database-level
settings) are checked before anything changes; then the roles; then every database is restored
into a temporary database, checked against the manifest, and given its database-level settings
(so everything that can fail has run); only then are the verified copies swapped in. The
database a copy replaces is renamed away first and dropped only after the swap succeeded.
"""
from __future__ import annotations

import dataclasses
import re
from typing import Callable, Sequence

from ansible_collections.lifeline.dr.plugins.module_utils.catalog import Entry
from ansible_collections.lifeline.dr.plugins.module_utils.errors import NotFoundError, RestoreError
from ansible_collections.lifeline.dr.plugins.module_utils.manifest import Artifact
from ansible_collections.lifeline.dr.plugins.module_utils.pipeline import Codec
from ansible_collections.lifeline.dr.plugins.module_utils.postgres import PgConnection
from ansible_collections.lifeline.dr.plugins.module_utils.postgres_checks import count_rows_parallel, verify_restored
from ansible_collections.lifeline.dr.plugins.module_utils.postgres_script import database_statements, globals_statements
from ansible_collections.lifeline.dr.plugins.module_utils.postgres_target import PgTarget, new_temp_name, pg_step
from ansible_collections.lifeline.dr.plugins.module_utils.restore import RestoreAction, RestoreJob
from ansible_collections.lifeline.dr.plugins.module_utils.staging import Staging

# TOC entries that carry database-level properties (owner aside); pg_restore lists them with --create only.
_DB_LEVEL_RE = re.compile(r"^\d+; \d+ \d+ (DATABASE PROPERTIES|(COMMENT|ACL|SECURITY LABEL) - DATABASE) ")


@dataclasses.dataclass
class RestoreOptions:
    databases: Sequence[str] | None = None   # None: every database in the backup
    include_globals: bool = True
    replace: bool = False
    jobs: int = 2
    staging_dir: str = "/var/lib/lifeline/staging"
    keep_replaced: bool = False
    state_dir: str = "/var/lib/lifeline"      # the per-target restore lock lives in <state_dir>/locks


@dataclasses.dataclass
class _Copy:
    """One database on its way in: staged, then restored into ``temp`` and verified."""

    art: Artifact
    path: str
    temp: str
    settings: list          # database-level statements, rewritten for ``temp``
    report: dict = dataclasses.field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.art.meta["database"]


class PostgresRestore(RestoreJob):
    def __init__(self, entry: Entry, codec: Codec, conn: PgConnection, opts: RestoreOptions) -> None:
        super().__init__(entry, codec, staging_dir=opts.staging_dir, state_dir=opts.state_dir)
        self.conn = conn
        self.opts = opts
        self.server = PgTarget(conn)
        self.server_major = 0

    def target(self) -> str:
        return "postgres-%s-%s" % (self.conn.host, self.conn.port)

    def remove_leftovers(self) -> None:
        self.warnings.extend(self.server.drop_stale())

    # ---- planning: everything that can refuse happens before the first change ----
    def selected(self) -> list:
        arts = [a for a in self.manifest.artifacts if a.kind == "database"]
        have = [a.meta.get("database") for a in arts]
        if not all(isinstance(name, str) and name for name in have):
            raise RestoreError("backup %s names a database artifact without a database name" % self.manifest.backup_id)
        if self.opts.databases:
            missing = [d for d in self.opts.databases if d not in have]
            if missing:
                raise NotFoundError("backup %s has no database %s; it holds: %s" % (
                    self.manifest.backup_id, ", ".join(repr(d) for d in missing), ", ".join(have)))
            arts = [a for a in arts if a.meta["database"] in self.opts.databases]
        return arts

    def _globals_artifact(self) -> Artifact | None:
        return next((a for a in self.manifest.artifacts if a.kind == "globals"), None)

    def plan(self) -> dict:
        if self.manifest.kind == "data":
            raise RestoreError("backup %s holds data only (scope data): it needs the schema in "
                               "place and cannot be restored into a fresh database; restore a full "
                               "or schema backup first" % self.manifest.backup_id)
        with pg_step("reading the server version of %s" % self.conn.where()):
            num, _text = self.conn.server_version()
        self.server_major = num // 10000
        source_major = int(self.manifest.tools.get("server_major", 0))
        if self.server_major < source_major:
            raise RestoreError(
                "the target runs PostgreSQL %d but backup %s comes from PostgreSQL %d; restore into "
                "%d or newer" % (self.server_major, self.manifest.backup_id, source_major, source_major))
        existing = self.server.databases()
        actions, conflicts = {}, []
        for art in self.selected():
            name = art.meta["database"]
            found = self.server.user_objects(name) if existing.get(name) else None
            if name not in existing:
                actions[name] = RestoreAction.CREATE.value
            elif existing[name] and not found:
                actions[name] = RestoreAction.REPLACE_EMPTY.value
            elif self.opts.replace:
                actions[name] = RestoreAction.REPLACE.value
            elif found:
                conflicts.append((name, "holds " + ", ".join("%s: %d" % item for item in found.items())))
            else:
                conflicts.append((name, "does not accept connections, so it cannot be checked"))
        if conflicts:
            raise RestoreError(
                "database %s already exists on %s and is not known to be empty (%s); nothing was changed. "
                "Set replace (lifeline_restore_replace: true) to replace it once the restored copy has "
                "verified" % (", ".join(repr(item[0]) for item in conflicts), self.conn.where(),
                              "; ".join("%r %s" % item for item in conflicts)))
        return {"globals": self.opts.include_globals and self._globals_artifact() is not None,
                "databases": actions}

    def to_stage(self, plan: dict) -> list:
        return self.selected() + ([self._globals_artifact()] if plan["globals"] else [])

    # ---- the run ----
    def apply(self, plan: dict, staging: Staging, before_replace: Callable | None) -> dict:
        """Stage and check every artifact and script, then roles, then each database into a
        verified temporary copy with its settings, then (shielded from signals) the swaps. A
        damaged artifact or a refused script changes nothing; a failure before the swaps changes
        no database (roles may have been created or updated)."""
        replacing = [n for n, a in plan["databases"].items() if a == RestoreAction.REPLACE.value]
        if replacing and before_replace is not None:
            self.phases.timed("safety_backup", before_replace, replacing)
        pg_restore = self.conn.tool("pg_restore", self.conn.archive_major(self.manifest.tools), prefer=self.server_major)
        roles = self._stage_globals(staging) if plan["globals"] else []
        copies = [self._stage_database(pg_restore, art, staging) for art in self.selected()]
        if roles:
            self.phases.timed("globals", self.server.run_script, roles, dbname=self.conn.maintenance_db,
                              what="applying the globals (roles)")
        pending = list(copies)  # temporary copies not yet swapped in
        try:
            for copy in copies:
                self._restore_copy(pg_restore, copy, staging)
            results = []
            with self.guard.shielded():
                while pending:
                    results.append(self._swap_in(pending[0], plan))
                    pending.pop(0)
        finally:
            with self.guard.shielded():
                for copy in pending:
                    self.server.drop(copy.temp, self.server.admin_db(copy.name))
        return {"globals": "applied" if roles else "skipped", "databases": results}

    def _stage_globals(self, staging: Staging) -> list:
        art = self._globals_artifact()
        self.fetch(art, staging)
        statements = globals_statements(staging.read_text(art.name), connecting_role=self.conn.user,
                                        connecting_password=self.conn.password, warnings=self.warnings)
        staging.remove(art.name)  # role password verifiers: off the disk at once
        return statements

    def _stage_database(self, pg_restore: str, art: Artifact, staging: Staging) -> _Copy:
        """Stage the archive and read its database-level settings (pg_restore emits them only
        with --create, for the real name); both are checked before anything changes."""
        path = self.fetch(art, staging)
        copy = _Copy(art, path, new_temp_name(), [])
        toc = self.conn.run([pg_restore, "--create", "-l", path], what="reading the table of contents of %s" % art.name)
        entries = [line for line in toc.splitlines() if _DB_LEVEL_RE.match(line)]
        if entries:
            listing = staging.write_bytes(art.name + ".toc", ("\n".join(entries) + "\n").encode())
            text = self.conn.run([pg_restore, "--create", "-L", listing, "-f", "-", path],
                                 what="extracting the database-level settings of %s" % art.name)
            copy.settings = database_statements(text, database=copy.name, temp=copy.temp)
        return copy

    def _restore_copy(self, pg_restore: str, copy: _Copy, staging: Staging) -> None:
        admin = self.server.admin_db(copy.name)
        self.server.create_temp(copy.temp, copy.art.meta, admin)
        try:
            self.phases.timed("pg_restore", self.conn.run,
                              [pg_restore, "--exit-on-error", "-j", str(max(1, self.opts.jobs)), "-d", copy.temp, copy.path],
                              what="pg_restore of %r" % copy.name)
        finally:
            staging.remove(copy.art.name)
        copy.report = self.phases.timed("verify", self._verify, copy)
        if copy.settings:
            self.phases.timed("database_settings", self.server.run_script, copy.settings, dbname=admin,
                              what="applying the database-level settings of %r to its restored copy "
                                   "(nothing was swapped in)" % copy.name)

    def _verify(self, copy: _Copy) -> dict:
        what = "the restored copy of %r (backup %s; existing data untouched)" % (copy.name, self.manifest.backup_id)
        with pg_step("checking %s" % what), self.conn.cursor(copy.temp) as cur:
            # Row counts over as many connections as pg_restore had jobs: the scans overlap.
            return verify_restored(cur, copy.art.meta, rows=self.manifest.kind != "schema", what=what,
                                   count=lambda lo: count_rows_parallel(self.conn, copy.temp, jobs=self.opts.jobs,
                                                                        large_objects=lo))

    def _swap_in(self, copy: _Copy, plan: dict) -> dict:
        action = RestoreAction(plan["databases"][copy.name])
        self.phases.timed("swap", self.server.swap, copy.temp, copy.name, action, self.server.admin_db(copy.name),
                          keep_replaced=self.opts.keep_replaced)
        return {"name": copy.name, "action": action.value, **copy.report}
