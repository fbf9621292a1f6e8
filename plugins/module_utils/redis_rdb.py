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
import subprocess
import tempfile

from ansible_collections.lifeline.dr.plugins.module_utils.errors import DependencyError, IntegrityError
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


class RdbCheck(Check):
    """Feeds the stream to ``redis-check-rdb /dev/stdin``; ``close()`` returns a detail and
    ``counts`` ({"keys", "expires", "already_expired"}) or raises IntegrityError. ``abort()``
    ends the process on every outcome (idempotent)."""

    def __init__(self, what: str) -> None:
        self.what = what
        self.counts: dict = {}
        self.version = 0
        self._head = b""
        self._out = tempfile.TemporaryFile()  # pylint: disable=consider-using-with
        try:
            self._proc = subprocess.Popen([check_tool(), "/dev/stdin"], stdin=subprocess.PIPE,  # pylint: disable=consider-using-with
                                          stdout=self._out, stderr=subprocess.STDOUT)
        except OSError as exc:
            self._out.close()
            raise DependencyError("cannot run redis-check-rdb to check %s: %s" % (what, exc.strerror)) from None
        self._open = True

    def write(self, data: bytes) -> None:
        if len(self._head) < HEADER_LEN:
            self._head += data[:HEADER_LEN - len(self._head)]
            if len(self._head) == HEADER_LEN:
                self.version = check_header(self._head, self.what)
        if self._open and data:
            try:
                self._proc.stdin.write(data)
            except BrokenPipeError:
                self._open = False  # it stopped at an error: close() reports it

    def close(self) -> str:
        try:
            self.version = check_header(self._head, self.what)
            try:
                self._proc.stdin.close()
            except BrokenPipeError:
                pass
            code = self._proc.wait()
            self._out.seek(0)
            report = self._out.read()
        finally:
            self.abort()
        if code != 0 or b"RDB looks OK" not in report:
            found = _ERROR_RE.findall(report)
            cause = b"; ".join(found[-2:]).decode("utf-8", "replace") or "exit %d" % code
            raise IntegrityError("redis-check-rdb rejects %s: %s" % (self.what, cause))
        for number, name in _INFO_RE.findall(report):
            self.counts[name.decode().replace(" ", "_").replace("_read", "")] = int(number)
        return "RDB version %d, %d keys (%d with a TTL), checksum OK" % (
            self.version, self.counts.get("keys", 0), self.counts.get("expires", 0))

    def abort(self) -> None:
        proc = getattr(self, "_proc", None)
        if proc is not None:
            if proc.poll() is None:
                proc.kill()
            try:
                proc.stdin.close()
            except OSError:
                pass
            proc.wait()
        self._out.close()


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
