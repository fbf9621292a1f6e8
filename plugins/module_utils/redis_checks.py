# -*- coding: utf-8 -*-
# Copyright: Lifeline contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Content checks for redis: verify's check of a stored artifact (redis-check-rdb for an RDB,
the portable parser for a key stream, and in both cases the key counts the manifest recorded),
and a restore's check of the restored server against those counts.

Keys with a TTL may expire between backup and check, so a count with volatile keys is a range:
``recorded - volatile <= found <= recorded``; without volatile keys it is exact.
"""
from __future__ import annotations

from ansible_collections.lifeline.dr.plugins.module_utils.errors import IntegrityError, RestoreError
from ansible_collections.lifeline.dr.plugins.module_utils.manifest import Artifact, Manifest
from ansible_collections.lifeline.dr.plugins.module_utils.redis_portable import PortableReader
from ansible_collections.lifeline.dr.plugins.module_utils.redis_rdb import RdbCheck
from ansible_collections.lifeline.dr.plugins.module_utils.verify import Check


def _int(meta: dict, key: str) -> int:
    value = meta.get(key, 0)
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


def expected_total(meta: dict) -> tuple[int, int]:
    """(at least, at most) keys a restore of the artifact with ``meta`` yields right now."""
    if meta.get("format") == "portable":
        keys = _int(meta, "keys")
        volatile = sum(v for v in (meta.get("volatile") or {}).values() if isinstance(v, int))
        return max(0, keys - volatile), keys
    keys = _int(meta, "keys") - _int(meta, "already_expired")
    return max(0, keys - _int(meta, "expires")), max(0, keys)


class _RdbCountsCheck(RdbCheck):
    def __init__(self, art: Artifact) -> None:
        super().__init__(art.name)
        self.art = art

    def close(self) -> str:
        detail = super().close()
        if "keys" in self.art.meta and self.counts.get("keys") != self.art.meta["keys"]:
            raise IntegrityError("%s holds %s keys, its manifest records %s"
                                 % (self.art.name, self.counts.get("keys"), self.art.meta["keys"]))
        return detail


class PortableCheck(Check):
    """Parses the whole stream (framing, limits, count and sha256 in its end record) and compares
    its per-database counts with the manifest's."""

    def __init__(self, art: Artifact) -> None:
        self.art = art
        self.reader = PortableReader(art.name)

    def write(self, data: bytes) -> None:
        self.reader.feed(data)

    def close(self) -> str:
        found = self.reader.finish()
        if found["databases"] != self.art.meta.get("databases"):
            raise IntegrityError("%s holds keys per database %s, its manifest records %s"
                                 % (self.art.name, found["databases"], self.art.meta.get("databases")))
        return "portable stream, %d keys in %d databases, sha256 OK" % (found["keys"], len(found["databases"]))


def check_for(manifest: Manifest):
    def pick(art: Artifact) -> Check:
        if art.kind == "rdb":
            return _RdbCountsCheck(art)
        if art.kind == "portable":
            return PortableCheck(art)
        return Check()
    return pick


def verify_restored(meta: dict, keyspace: dict, *, what: str) -> dict:
    """Compare the restored server's ``keyspace`` ({db: {"keys": n}}) with the artifact's ``meta``;
    RestoreError on a difference, else {"verified", "checks", "keys"}."""
    found = sum(v["keys"] for v in keyspace.values())
    low, high = expected_total(meta)
    checks, diffs = [], []
    if not low <= found <= high:
        diffs.append("%d keys, the manifest records %s" % (found, low if low == high else "%d to %d" % (low, high)))
    checks.append("%d keys in total, manifest: %s" % (found, low if low == high else "%d to %d (keys with a TTL may "
                                                                                     "have expired)" % (low, high)))
    if meta.get("format") == "portable" and isinstance(meta.get("databases"), dict):
        volatile = meta.get("volatile") or {}
        for db, count in sorted(meta["databases"].items()):
            got = keyspace.get(int(db), {}).get("keys", 0)
            if not count - _int(volatile, db) <= got <= count:
                diffs.append("db%s: %d keys, the manifest records %d" % (db, got, count))
        extra = sorted(str(db) for db in keyspace if str(db) not in meta["databases"])
        diffs += ["db%s: holds keys the backup does not have" % db for db in extra]
        checks.append("keys per database (%d databases) as in the manifest" % len(meta["databases"]))
    if diffs:
        raise RestoreError("%s does not match its manifest: %s" % (what, "; ".join(diffs)))
    return {"verified": True, "checks": checks, "keys": found}
