# -*- coding: utf-8 -*-
# Copyright: Lifeline contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Checking an RDB snapshot: its header here, the whole file (every record and the CRC64
trailer) by ``redis-check-rdb`` reading it from a pipe while it streams.

One ``RdbCheck`` serves the backup (a tee of the stream on its way to the repositories), verify
(the plaintext of a stored copy) and a restore (the staged file): a snapshot that redis-check-rdb
rejects is never stored as a backup and never loaded.
"""
from __future__ import annotations

import re
import shutil

from ansible_collections.lifeline.dr.plugins.module_utils.errors import DependencyError, IntegrityError
from ansible_collections.lifeline.dr.plugins.module_utils.pipe_check import PipeCheck

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
        return "RDB version %d, %d keys (%d with a TTL), checksum OK" % (
            self.version, self.counts.get("keys", 0), self.counts.get("expires", 0))


def check_file(path: str, what: str) -> RdbCheck:
    """Run the check over a file (a staged artifact); returns the closed check with its counts."""
    check = RdbCheck(what)
    try:
        with open(path, "rb") as fh:
            while True:
                data = fh.read(1024 * 1024)
                if not data:
                    break
                check.write(data)
        check.close()
    finally:
        check.abort()
    return check
