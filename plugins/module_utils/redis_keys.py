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
from ansible_collections.lifeline.dr.plugins.module_utils.redis_conn import ReplyError, RespClient, encode_command
from ansible_collections.lifeline.dr.plugins.module_utils.redis_portable import NO_TTL, PortableWriter, Record

BATCH = 1000
_RESTORE = b"*4\r\n$7\r\nRESTORE\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n"
_RESTORE_REPLACE = b"*5\r\n$7\r\nRESTORE\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n$7\r\nREPLACE\r\n"
_PTTL_DUMP = b"*2\r\n$4\r\nPTTL\r\n$%d\r\n%s\r\n*2\r\n$4\r\nDUMP\r\n$%d\r\n%s\r\n"


def _now_ms() -> int:
    return int(time.time() * 1000)


def export_records(client: RespClient, *, batch: int = BATCH) -> Iterator[Record]:
    """Every key of every database, with its DUMP payload and absolute expiry. Each batch's
    PTTL + DUMP go out with the next SCAN, so one round trip serves both."""
    for db in sorted(client.keyspace()):
        client.call("SELECT", db)
        cursor, keys = client.call("SCAN", b"0", "COUNT", batch)
        while True:
            more = cursor != b"0"
            client.send_raw(b"".join(_PTTL_DUMP % (len(k), k, len(k), k) for k in keys) +
                            (encode_command(("SCAN", cursor, "COUNT", batch)) if more else b""))
            try:
                pairs = client.read_int_bulk_pairs(len(keys))
            except ReplyError as exc:
                raise SourceError("%s: reading the keys of db %d failed: %s" % (client.where, db, exc.text)) from None
            now = _now_ms()
            for key, (pttl, payload) in zip(keys, pairs):
                if pttl == -2 or payload is None:
                    continue          # gone (expired or deleted) since SCAN saw it
                yield Record(db, key, NO_TTL if pttl < 0 else now + pttl, payload)
            if not more:
                break
            reply = client.read_reply()
            if isinstance(reply, ReplyError):
                raise SourceError("%s: SCAN of db %d failed: %s" % (client.where, db, reply.text))
            cursor, keys = reply


class PortableStream:
    """The portable stream of ``records`` as a file-like ``read`` (for a backup Source)."""

    def __init__(self, records: Iterable[Record]) -> None:
        self.writer = PortableWriter()
        self._records = iter(records)
        self._buf = b""
        self._db: int | None = None
        self.done = False

    def read(self, size: int = 1024 * 1024) -> bytes:
        writer = self.writer
        while len(self._buf) + len(writer.buf) < size and not self.done:
            rec = next(self._records, None)
            if rec is None:
                self._buf += writer.end()
                self.done = True
                break
            if rec.db != self._db:
                writer.select(rec.db)
                self._db = rec.db
            writer.key(rec.key, rec.expire_at_ms, rec.payload)
        if not self.done:
            self._buf += writer.take()
        out, self._buf = self._buf[:size], self._buf[size:]
        return out


def import_records(client: RespClient, records: Iterable[Record], *, replace: bool,
                   batch: int = BATCH) -> dict:
    """RESTORE every record (REPLACE only with ``replace``); returns {"restored", "expired"}.
    The first failing SELECT or RESTORE raises SourceError naming it and the server's reason (the
    RESTOREs already sent with a failing one, same db, have run)."""
    counts = {"restored": 0, "expired": 0}
    pending: list = []          # (db, key, encoded RESTORE)
    current_db: int | None = None
    restore = _RESTORE_REPLACE if replace else _RESTORE

    def flush() -> None:
        client.send_raw(b"".join(item[2] for item in pending))
        for db, key, _cmd in pending:
            reply = client.read_reply()
            if isinstance(reply, ReplyError):
                hint = (" (the key exists: restore with replace)" if reply.code == "BUSYKEY" else
                        " (is the target Redis older than the source?)" if "payload" in reply.text.lower() else "")
                raise SourceError("%s: RESTORE of key %r in db %d failed: %s%s"
                                  % (client.where, key[:80], db, reply.text, hint))
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
            # A SELECT is its own round trip: pipelined, a refused one (a db number past the
            # target's ``databases``) would let the RESTOREs after it land in the previous db.
            if pending:
                flush()
            try:
                client.call("SELECT", rec.db)
            except ReplyError as exc:
                raise SourceError("%s: SELECT %d failed: %s (the target's `databases` setting is lower than "
                                  "the backup's database numbers); no key of db %d was restored"
                                  % (client.where, rec.db, exc.text, rec.db)) from None
            current_db = rec.db
        ttl_text = b"%d" % ttl
        command = restore % (len(rec.key), rec.key, len(ttl_text), ttl_text, len(rec.payload), rec.payload)
        pending.append((rec.db, rec.key, command))
        if len(pending) >= batch:
            flush()
    if pending:
        flush()
    return counts
