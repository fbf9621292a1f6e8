# -*- coding: utf-8 -*-
# Copyright: Lifeline contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The portable Redis format: every key as its DUMP payload with its absolute expiry, framed.

Specified in docs/formats.md ("Redis portable stream"). Layout, all integers big-endian:

    header  "LLRP" 0x01 0x00 0x00 0x00                      (magic, version 1, reserved)
    select  0x01 u32 db                                      (the keys that follow are in db)
    key     0x02 u32 klen key i64 expire_at_ms u32 plen payload   (expire_at_ms -1: no TTL)
    end     0xFF u64 keys sha256(every byte before this 0xFF)

The reader is a push parser (``feed`` chunks, get records) so a restore, verify's check and the
unit tests share it. Whatever it reads came from a repository: every length is bounded before
anything is buffered, a record outside a database, a database out of range, a second header,
bytes after the end record, a wrong count or digest and a missing end are all refused.
"""
from __future__ import annotations

import dataclasses
import hashlib
import struct

from ansible_collections.lifeline.dr.plugins.module_utils.errors import IntegrityError

MAGIC = b"LLRP\x01\x00\x00\x00"
TAG_SELECT, TAG_KEY, TAG_END = 0x01, 0x02, 0xFF
#: Redis refuses keys and bulk strings over 512 MiB (proto-max-bulk-len's default)
MAX_KEY = 512 * 1024 * 1024
MAX_PAYLOAD = 512 * 1024 * 1024
MAX_DB = 1 << 16
NO_TTL = -1


@dataclasses.dataclass
class Record:
    db: int
    key: bytes
    expire_at_ms: int    # absolute Unix time in ms, NO_TTL for a persistent key
    payload: bytes       # DUMP serialization (RESTORE checks its own version and CRC64)


class PortableWriter:
    """Encodes a stream into ``buf``; ``take()`` hands out what is ready (and hashes it), ``end()``
    the rest with the end record. Keeps the per-database counts the manifest records."""

    def __init__(self) -> None:
        self._hash = hashlib.sha256()
        self.buf = bytearray(MAGIC)
        self.counts: dict = {}
        self.volatile: dict = {}
        self.keys = 0
        self._db: int | None = None

    def select(self, db: int) -> None:
        if not 0 <= db < MAX_DB:
            raise ValueError("database index %d out of range" % db)
        self._db = db
        self.buf += struct.pack(">BI", TAG_SELECT, db)

    def key(self, key: bytes, expire_at_ms: int, payload: bytes) -> None:
        db = self._db
        if db is None:
            raise ValueError("a key before any select")
        self.keys += 1
        self.counts[db] = self.counts.get(db, 0) + 1
        if expire_at_ms != NO_TTL:
            self.volatile[db] = self.volatile.get(db, 0) + 1
        buf = self.buf
        buf += struct.pack(">BI", TAG_KEY, len(key))
        buf += key
        buf += struct.pack(">qI", expire_at_ms, len(payload))
        buf += payload

    def take(self) -> bytes:
        data = bytes(self.buf)
        self.buf.clear()
        self._hash.update(data)
        return data

    def end(self) -> bytes:
        data = self.take()
        return data + struct.pack(">BQ", TAG_END, self.keys) + self._hash.digest()


class PortableReader:
    """Push parser: ``feed(chunk)`` returns the complete records in it; ``finish()`` checks the end."""

    def __init__(self, what: str = "portable stream") -> None:
        self.what = what
        self._buf = bytearray()
        self._hash = hashlib.sha256()
        self._offset = 0          # stream offset of _buf[0]
        self._header = False
        self._db: int | None = None
        self.ended = False
        self.keys = 0
        self.counts: dict = {}
        self.volatile: dict = {}

    def _bad(self, why: str) -> IntegrityError:
        return IntegrityError("%s is not a valid Redis portable stream at byte %d: %s"
                              % (self.what, self._offset, why))

    def _take(self, size: int) -> None:
        self._hash.update(self._buf[:size])
        del self._buf[:size]
        self._offset += size

    def feed(self, data: bytes) -> list:
        if self.ended:
            if data:
                raise self._bad("data after the end record")
            return []
        self._buf += data
        out = []
        while True:
            rec = self._next()
            if rec is None:
                return out
            if rec is not True:
                out.append(rec)

    def _next(self):
        buf = self._buf
        if not self._header:
            if len(buf) < len(MAGIC):
                if MAGIC[:len(buf)] != bytes(buf):
                    raise self._bad("it does not start with the LLRP header")
                return None
            if bytes(buf[:len(MAGIC)]) != MAGIC:
                raise self._bad("it does not start with the LLRP version 1 header")
            self._take(len(MAGIC))
            self._header = True
            return True
        if self.ended:
            if buf:
                raise self._bad("data after the end record")
            return None
        if not buf:
            return None
        tag = buf[0]
        if tag == TAG_SELECT:
            if len(buf) < 5:
                return None
            (db,) = struct.unpack_from(">I", buf, 1)
            if db >= MAX_DB:
                raise self._bad("database index %d out of range" % db)
            self._take(5)
            self._db = db
            return True
        if tag == TAG_KEY:
            if self._db is None:
                raise self._bad("a key record before any select record")
            if len(buf) < 5:
                return None
            (klen,) = struct.unpack_from(">I", buf, 1)
            if klen > MAX_KEY:
                raise self._bad("key length %d over the limit %d" % (klen, MAX_KEY))
            head = 5 + klen + 12
            if len(buf) < head:
                return None
            expire_at, plen = struct.unpack_from(">qI", buf, 5 + klen)
            if plen > MAX_PAYLOAD:
                raise self._bad("payload length %d over the limit %d" % (plen, MAX_PAYLOAD))
            if expire_at < NO_TTL:
                raise self._bad("expiry %d is neither -1 nor a time" % expire_at)
            if len(buf) < head + plen:
                return None
            rec = Record(self._db, bytes(buf[5:5 + klen]), expire_at, bytes(buf[head:head + plen]))
            self._take(head + plen)
            self.keys += 1
            self.counts[self._db] = self.counts.get(self._db, 0) + 1
            if expire_at != NO_TTL:
                self.volatile[self._db] = self.volatile.get(self._db, 0) + 1
            return rec
        if tag == TAG_END:
            if len(buf) < 41:
                return None
            (count,) = struct.unpack_from(">Q", buf, 1)
            digest = bytes(buf[9:41])
            if count != self.keys:
                raise self._bad("the end record counts %d keys, the stream holds %d" % (count, self.keys))
            if digest != self._hash.digest():
                raise self._bad("the sha256 in the end record does not match the stream (corrupted)")
            self._offset += 41
            del buf[:41]
            self.ended = True
            if buf:
                raise self._bad("data after the end record")
            return None
        raise self._bad("unknown record type 0x%02x" % tag)

    def finish(self) -> dict:
        """The stream's counts; IntegrityError when it ended early (truncated)."""
        if not self.ended:
            raise self._bad("it ends without an end record (truncated)")
        return {"keys": self.keys, "databases": {str(db): n for db, n in sorted(self.counts.items())},
                "volatile": {str(db): n for db, n in sorted(self.volatile.items())}}


def _chunks(path: str, chunk: int = 1024 * 1024):
    with open(path, "rb") as fh:
        while True:
            data = fh.read(chunk)
            if not data:
                return
            yield data


def read_file(path: str, *, what: str | None = None):
    """Yields every record of the stream in ``path``; IntegrityError on anything invalid. The
    end record (count and digest) is only checked at the end: validate the file with
    ``validate_file`` before acting on any record."""
    reader = PortableReader(what or path)
    for data in _chunks(path):
        yield from reader.feed(data)
    reader.finish()


def validate_file(path: str, *, what: str | None = None) -> dict:
    """Read the whole stream once and return its counts (``PortableReader.finish``)."""
    reader = PortableReader(what or path)
    for data in _chunks(path):
        reader.feed(data)
    return reader.finish()
