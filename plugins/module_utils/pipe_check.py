# -*- coding: utf-8 -*-
# Copyright: Lifeline contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A content check that feeds an artifact's plaintext to a checking tool's stdin
(``pg_restore --list``, ``redis-check-rdb /dev/stdin``).

The tool may stop reading early (at the end of what it needs, or at an error): the rest is still
read by the fetch (and so hash-checked) and discarded. Its stdout and stderr go to unlinked temp
files, never to pipes nobody reads. ``abort()`` ends the process and frees the files on every
outcome, after ``finish()`` too.
"""
from __future__ import annotations

import subprocess
import tempfile
from typing import Sequence

from ansible_collections.lifeline.dr.plugins.module_utils.errors import IntegrityError
from ansible_collections.lifeline.dr.plugins.module_utils.verify import Check


class PipeCheck(Check):
    def __init__(self, argv: Sequence[str], name: str) -> None:
        self.name = name
        self._argv = list(argv)
        self._start()

    def _start(self) -> None:
        self._out = tempfile.TemporaryFile()  # pylint: disable=consider-using-with
        self._err = tempfile.TemporaryFile()  # pylint: disable=consider-using-with
        self._proc = None
        try:
            self._proc = subprocess.Popen(self._argv, stdin=subprocess.PIPE,  # pylint: disable=consider-using-with
                                          stdout=self._out, stderr=self._err)
        except OSError as exc:
            self.abort()
            raise IntegrityError("cannot run %s to check %s: %s" % (self._argv[0], self.name, exc.strerror)) from None
        self._open = True

    def reset(self) -> None:
        """The fetch starts over from another copy: so does the tool."""
        self.abort()
        self._start()

    def write(self, data: bytes) -> None:
        if self._open and data:
            try:
                self._proc.stdin.write(data)
            except BrokenPipeError:
                self._open = False   # it stopped reading: finish() reports why

    def finish(self) -> tuple[int, bytes, bytes]:
        """End the input, wait; (exit code, stdout, stderr)."""
        try:
            try:
                self._proc.stdin.close()
            except BrokenPipeError:
                pass
            code = self._proc.wait()
            self._out.seek(0)
            self._err.seek(0)
            return code, self._out.read(), self._err.read()
        finally:
            self.abort()

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
        self._err.close()
