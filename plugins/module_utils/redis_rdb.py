# -*- coding: utf-8 -*-
# Copyright: Lifeline contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Checking an RDB snapshot, two ways:

- ``RdbChecksum``: the header, the end marker and the CRC-64 trailer, in this process as the
  stream passes (crcmod's C extension, about 350 MB/s). Redis computes the CRC as it saves
  (``rdbchecksum yes``, the default), so a match proves every byte is the one the server wrote: a
  truncated or altered snapshot fails. Backup and restore use it (``stream_check``); it adds
  almost nothing to their time.
- ``RdbCheck``: ``redis-check-rdb`` reading a pipe, which also parses every record and counts the
  keys (about 80 MB/s). Verify uses it, and backup and restore fall back to it when crcmod's C
  extension is missing or the RDB carries no checksum (``rdbchecksum no``, version < 5).

Either way a snapshot that does not check is never stored as a backup and never loaded.
"""
from __future__ import annotations

import contextlib
import re
import shutil
from typing import BinaryIO, Callable

from ansible_collections.lifeline.dr.plugins.module_utils.errors import DependencyError, IntegrityError
from ansible_collections.lifeline.dr.plugins.module_utils.pipe_check import PipeCheck
from ansible_collections.lifeline.dr.plugins.module_utils.verify import Check

RDB_MAGIC = b"REDIS"
HEADER_LEN = 9
_INFO_RE = re.compile(rb"\[info\] (\d+) (keys read|expires|already expired)")
_ERROR_RE = re.compile(rb"^\[offset \d+\] (?!Checking|AUX|Selecting|Checksum|\\o/)(.*)$", re.M)


def check_header(head: bytes, what: str) -> int:
    """The RDB version in ``head`` (its first 9 bytes); IntegrityError when it is not an RDB."""
    if len(head) < HEADER_LEN or head[:5] != RDB_MAGIC or not head[5:9].isdigit():
        raise IntegrityError("%s is not a Redis RDB snapshot (no REDIS<version> header)" % what)
    return int(head[5:9])


def check_tool() -> str:
    exe = shutil.which("redis-check-rdb")
    if not exe:
        raise DependencyError("redis-check-rdb is not installed; install Debian's redis-tools")
    return exe


CRC64_POLY = 0x1AD93D23594C935A9   # Redis's CRC-64 (Jones), reflected, init 0, no final xor
TRAILER_LEN = 8
EOF_OPCODE = b"\xff"
FIRST_CHECKSUMMED_VERSION = 5


def crc64_function():
    """Redis's CRC-64 from crcmod's C extension; None without it (crcmod's pure-Python fallback
    is a hundred times slower than redis-check-rdb)."""
    try:
        import crcmod  # pylint: disable=import-outside-toplevel
        from crcmod import _crcfunext  # noqa: F401  pylint: disable=import-outside-toplevel,unused-import
    except ImportError:
        return None
    return crcmod.mkCrcFun(CRC64_POLY, initCrc=0, rev=True, xorOut=0)


class RdbChecksum(Check):
    """Header, end marker and CRC-64 trailer of a stream. ``close()`` returns a detail or raises
    IntegrityError; ``absent`` is set when the RDB carries no checksum (then only a full
    parse can check it: ``finish_check``)."""

    def __init__(self, what: str, crc64) -> None:
        self.what, self._crc64 = what, crc64
        self.reset()

    def reset(self) -> None:
        self._crc, self._size, self._head, self._held, self._last = 0, 0, b"", b"", b""
        self.version, self.absent, self.counts = 0, False, {}

    def write(self, data: bytes) -> None:
        if not data:
            return
        if len(self._head) < HEADER_LEN:
            self._head += data[:HEADER_LEN - len(self._head)]
        self._size += len(data)
        data = self._held + data   # the last 8 bytes seen may be the trailer: held back from the CRC
        if len(data) > TRAILER_LEN:
            self._crc = self._crc64(data[:-TRAILER_LEN], self._crc)
            self._last = data[-TRAILER_LEN - 1:-TRAILER_LEN]
        self._held = data[-TRAILER_LEN:]

    def close(self) -> str:
        self.version = check_header(self._head, self.what)
        if self.version < FIRST_CHECKSUMMED_VERSION:
            self.absent = True
            return "RDB version %d carries no checksum" % self.version
        if self._size < HEADER_LEN + 1 + TRAILER_LEN or self._last != EOF_OPCODE:
            raise IntegrityError("%s is truncated or corrupt: it does not end with the RDB end marker "
                                 "and its checksum" % self.what)
        stored = int.from_bytes(self._held, "little")
        if stored == 0:
            self.absent = True   # saved with rdbchecksum no
            return "RDB saved without a checksum"
        if stored != self._crc:
            raise IntegrityError("%s is corrupt or truncated: its CRC-64 is %016x, its trailer records %016x"
                                 % (self.what, self._crc, stored))
        return "RDB version %d, %d bytes, CRC-64 checksum OK" % (self.version, self._size)


def stream_check(what: str) -> Check:
    """The check a backup or restore runs as the RDB streams: the CRC-64 when crcmod's C
    extension is here, else redis-check-rdb. Close it with ``finish_check``."""
    crc64 = crc64_function()
    return RdbChecksum(what, crc64) if crc64 is not None else RdbCheck(what)


def finish_check(check: Check, reread: Callable[[], BinaryIO]) -> str:
    """Close a ``stream_check``; an RDB without a checksum is then parsed whole by redis-check-rdb
    from ``reread()`` (the same bytes again: the open snapshot or the staged file)."""
    detail = check.close()
    if not getattr(check, "absent", False):
        return detail
    deep = check_file(reread(), check.what)
    check.counts = deep.counts
    return "%s; %s" % (detail, deep.close_detail)


class RdbCheck(PipeCheck):
    """Feeds the stream to ``redis-check-rdb /dev/stdin``; ``close()`` returns a detail and sets
    ``counts`` ({"keys", "expires", "already_expired"}) or raises IntegrityError."""

    def __init__(self, what: str) -> None:
        super().__init__([check_tool(), "/dev/stdin"], what)
        self.what = what
        self.counts: dict = {}
        self.version = 0
        self._head = b""

    def write(self, data: bytes) -> None:
        if len(self._head) < HEADER_LEN:
            self._head += data[:HEADER_LEN - len(self._head)]
            if len(self._head) == HEADER_LEN:
                self.version = check_header(self._head, self.what)
        super().write(data)

    def reset(self) -> None:
        self._head = b""
        super().reset()

    def close(self) -> str:
        try:
            self.version = check_header(self._head, self.what)
        finally:
            code, out, err = self.finish()
        report = out + err
        if code != 0 or b"RDB looks OK" not in report:
            found = _ERROR_RE.findall(report)
            cause = b"; ".join(found[-2:]).decode("utf-8", "replace") or "exit %d" % code
            raise IntegrityError("redis-check-rdb rejects %s: %s" % (self.what, cause))
        for number, name in _INFO_RE.findall(report):
            self.counts[name.decode().replace(" ", "_").replace("_read", "")] = int(number)
        self.close_detail = "RDB version %d, %d keys (%d with a TTL), checksum OK" % (
            self.version, self.counts.get("keys", 0), self.counts.get("expires", 0))
        return self.close_detail


def check_file(source: str | BinaryIO, what: str) -> RdbCheck:
    """Run redis-check-rdb over a file (a path, or an open file read from its start); returns the
    closed check with its counts."""
    check = RdbCheck(what)
    try:
        with (open(source, "rb") if isinstance(source, str) else contextlib.nullcontext(source)) as fh:
            fh.seek(0)
            while True:
                data = fh.read(1024 * 1024)
                if not data:
                    break
                check.write(data)
        check.close()
    finally:
        check.abort()
    return check
