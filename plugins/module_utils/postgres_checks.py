# -*- coding: utf-8 -*-
# Copyright: Lifeline contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Content checks for postgres: verify's checks of stored artifacts (the archive must be one that
pg_restore can read, the globals a pg_dumpall script), and a restore's check of a restored copy
against what its manifest recorded."""
from __future__ import annotations

import threading
from typing import Callable

from ansible_collections.lifeline.dr.plugins.module_utils.errors import IntegrityError, RestoreError
from ansible_collections.lifeline.dr.plugins.module_utils.manifest import Artifact, Manifest
from ansible_collections.lifeline.dr.plugins.module_utils.postgres import (
    USER_TABLES_SQL,
    PgConnection,
    count_rows,
    tail,
)
from ansible_collections.lifeline.dr.plugins.module_utils.pipe_check import PipeCheck
from ansible_collections.lifeline.dr.plugins.module_utils.verify import Check


class ArchiveListCheck(PipeCheck):
    """Feeds the plaintext to ``pg_restore --list``; it reads the table of contents and stops,
    after which the rest is read (and so hash-checked) and discarded."""

    def __init__(self, pg_restore: str, name: str) -> None:
        super().__init__([pg_restore, "--list"], name)

    def close(self) -> str:
        code, out, err = self.finish()
        if code != 0:
            raise IntegrityError("pg_restore --list rejects %s: %s" % (self.name, tail(err)))
        entries = [line for line in out.decode("utf-8", "replace").splitlines() if line and not line.startswith(";")]
        # An empty database (a fresh "postgres") gives a valid archive with no entries.
        return "%d archive entries" % len(entries)


class GlobalsCheck(Check):
    def __init__(self, name: str) -> None:
        self.name = name
        self._head = b""

    def write(self, data: bytes) -> None:
        if len(self._head) < 4096:
            self._head += data[:4096]

    def close(self) -> str:
        if b"PostgreSQL database cluster dump" not in self._head:
            raise IntegrityError("%s is not a pg_dumpall script" % self.name)
        return "pg_dumpall globals script"


def check_for(conn: PgConnection, manifest: Manifest):
    server_major = int(manifest.tools.get("server_major", 0))

    def pick(art: Artifact) -> Check:
        if art.kind == "database":
            return ArchiveListCheck(conn.tool("pg_restore", conn.archive_major(manifest.tools) or server_major), art.name)
        if art.kind == "globals":
            return GlobalsCheck(art.name)
        return Check()
    return pick


def count_rows_parallel(conn: PgConnection, dbname: str, *, jobs: int, large_objects: bool) -> dict:
    """count_rows of database ``dbname`` over ``jobs`` connections at once, biggest tables first,
    so the scans of a freshly restored copy overlap (the verify phase of a restore)."""
    with conn.cursor(dbname) as cur:
        cur.execute("SELECT n.nspname, c.relname, pg_table_size(c.oid) FROM pg_class c "
                    "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind = 'r'")
        sizes = {(schema, table): size for schema, table, size in cur.fetchall()}
        result = count_rows(cur, large_objects=large_objects, tables=[])
        cur.execute(USER_TABLES_SQL)
        pending = sorted(cur.fetchall(), key=lambda t: sizes.get(t, 0))  # pop() takes the biggest
    lock, counts, errors = threading.Lock(), {}, []

    def worker() -> None:
        try:
            with conn.cursor(dbname) as wcur:
                while not errors:
                    with lock:
                        if not pending:
                            return
                        table = pending.pop()
                    counts.update(count_rows(wcur, large_objects=False, tables=[table])["tables"])
        except Exception as exc:  # pylint: disable=broad-except
            errors.append(exc)

    threads = [threading.Thread(target=worker, daemon=True) for _worker in range(max(1, min(jobs, len(pending))))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    result["tables"] = dict(sorted(counts.items()))
    return result


def verify_restored(cur, meta: dict, *, rows: bool, what: str,
                    count: Callable[[bool], dict] | None = None) -> dict:
    """Compare a restored copy with what the manifest recorded of its source.

    Returns ``checks`` (what was compared, in words), ``verified`` (at least one check ran and
    all passed), and the table, row and large object counts; RestoreError on any difference.
    ``rows`` is false for a schema-only backup (no row counts to compare). ``meta["relations"]``
    (tables present, recorded since 0.2.0 for every scope) and ``meta["tables"]`` (row counts)
    are each used when present, so older manifests verify as far as they can. ``count`` counts
    the rows (its argument: whether to count large objects too), by default on ``cur``.
    """
    checks, diffs = [], []
    want_rows = meta.get("tables") if rows and isinstance(meta.get("tables"), dict) else None
    if want_rows is not None:
        got = (count or (lambda lo: count_rows(cur, large_objects=lo)))("large_objects" in meta)
        present = got["tables"]
    else:
        got = {"tables": {}}
        cur.execute(USER_TABLES_SQL)
        present = {"%s.%s" % row: None for row in cur.fetchall()}
    relations = meta.get("relations")
    if isinstance(relations, list):
        diffs += ["%s: missing" % t for t in sorted(set(relations) - set(present))]
        diffs += ["%s: not in the manifest" % t for t in sorted(set(present) - set(relations))]
        checks.append("%d relations present, as in the manifest" % len(relations))
    if want_rows is not None:
        diffs += ["%s: %s rows, manifest says %s" % (t, present.get(t, "missing"), n)
                  for t, n in sorted(want_rows.items()) if present.get(t) != n]
        # A full backup counts every table it lists: one without a count was not vouched for
        # (tables missing from relations are reported above already).
        listed = set(relations) if isinstance(relations, list) else set(present)
        diffs += ["%s: %s rows, not in the manifest" % (t, n) for t, n in sorted(present.items())
                  if t not in want_rows and t in listed]
        checks.append("row counts of %d tables (%d rows), as in the manifest"
                      % (len(want_rows), sum(v for v in want_rows.values() if isinstance(v, int))))
        if "large_objects" in meta:
            if got.get("large_objects") != meta["large_objects"]:
                diffs.append("large objects: %s, manifest says %s" % (got.get("large_objects"), meta["large_objects"]))
            checks.append("%s large objects, as in the manifest" % meta["large_objects"])
    if diffs:
        raise RestoreError("%s does not match its manifest: %s" % (what, "; ".join(diffs[:10])))
    return {"verified": bool(checks), "checks": checks, "tables": len(present),
            "rows": sum(got["tables"].values()), "large_objects": got.get("large_objects", 0)}
