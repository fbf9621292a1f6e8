# -*- coding: utf-8 -*-
# Copyright: Lifeline contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Keys in and out of a live server: SCAN + PTTL + DUMP out, RESTORE in, pipelined in batches.

The portable backup is ``export_records`` written by a ``PortableWriter``; restoring a portable
stream is ``import_records`` over a ``PortableReader``; restoring an RDB into a running server is
``export_records`` from a temporary server loaded with it, straight into ``import_records``.

Expiry travels as an absolute time (ms): a key whose time has passed when it is read is not
exported, and one whose time passed before the restore reaches it is not restored (and
counted as expired), so no key ever comes back without its TTL or after it.
"""
from __future__ import annotations

import time
from typing import Iterable, Iterator

from ansible_collections.lifeline.dr.plugins.module_utils.errors import SourceError
from ansible_collections.lifeline.dr.plugins.module_utils.redis_conn import ReplyError, RespClient
from ansible_collections.lifeline.dr.plugins.module_utils.redis_portable import NO_TTL, PortableWriter, Record

BATCH = 1000


def _now_ms() -> int:
    return int(time.time() * 1000)


def export_records(client: RespClient, *, batch: int = BATCH) -> Iterator[Record]:
    """Every key of every database, with its DUMP payload and absolute expiry."""
    for db in sorted(client.keyspace()):
        client.call("SELECT", db)
        cursor = b"0"
        while True:
            cursor, keys = client.call("SCAN", cursor, "COUNT", batch)
            if keys:
                replies = client.pipeline(cmd for key in keys for cmd in (("PTTL", key), ("DUMP", key)))
                now = _now_ms()
                for index, key in enumerate(keys):
                    pttl, payload = replies[2 * index], replies[2 * index + 1]
                    if isinstance(pttl, ReplyError) or isinstance(payload, ReplyError):
                        err = pttl if isinstance(pttl, ReplyError) else payload
                        raise SourceError("%s: reading key %r of db %d failed: %s" % (client.where, key[:80], db, err.text))
                    if pttl == -2 or payload is None:
                        continue          # gone (expired or deleted) since SCAN saw it
                    yield Record(db, key, NO_TTL if pttl < 0 else now + pttl, payload)
            if cursor == b"0":
                break


class PortableStream:
    """The portable stream of ``records`` as a file-like ``read`` (for a backup Source)."""

    def __init__(self, records: Iterable[Record]) -> None:
        self.writer = PortableWriter()
        self._records = iter(records)
        self._buf = bytearray(self.writer.header())
        self._db: int | None = None
        self.done = False

    def read(self, size: int = 1024 * 1024) -> bytes:
        while len(self._buf) < size and not self.done:
            rec = next(self._records, None)
            if rec is None:
                self._buf += self.writer.end()
                self.done = True
                break
            if rec.db != self._db:
                self._buf += self.writer.select(rec.db)
                self._db = rec.db
            self._buf += self.writer.key(rec.key, rec.expire_at_ms, rec.payload)
        out = bytes(self._buf[:size])
        del self._buf[:size]
        return out


def import_records(client: RespClient, records: Iterable[Record], *, replace: bool,
                   batch: int = BATCH) -> dict:
    """RESTORE every record (REPLACE only with ``replace``); returns {"restored", "expired"}.
    The first failing RESTORE raises SourceError naming the key and the server's reason."""
    counts = {"restored": 0, "expired": 0}
    pending: list = []          # (db, key or None for a SELECT, command)
    current_db: int | None = None

    def flush() -> None:
        for (db, key, _cmd), reply in zip(pending, client.pipeline(item[2] for item in pending)):
            if isinstance(reply, ReplyError):
                hint = (" (the key exists: restore with replace)" if reply.code == "BUSYKEY" else
                        " (is the target Redis older than the source?)" if "payload" in reply.text.lower() else "")
                raise SourceError("%s: RESTORE of key %r in db %d failed: %s%s"
                                  % (client.where, (key or b"")[:80], db, reply.text, hint))
            if key is not None:
                counts["restored"] += 1
        pending.clear()

    for rec in records:
        ttl = 0
        if rec.expire_at_ms != NO_TTL:
            ttl = rec.expire_at_ms - _now_ms()
            if ttl <= 0:
                counts["expired"] += 1
                continue
        if rec.db != current_db:
            pending.append((rec.db, None, ("SELECT", rec.db)))
            current_db = rec.db
        pending.append((rec.db, rec.key, ("RESTORE", rec.key, ttl, rec.payload) + (("REPLACE",) if replace else ())))
        if len(pending) >= batch:
            flush()
    flush()
    return counts
