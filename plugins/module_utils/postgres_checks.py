# -*- coding: utf-8 -*-
# Copyright: Lifeline contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Content checks for postgres artifacts, used by verify: the archive must be one that
pg_restore can read, and the globals must be a pg_dumpall script."""
from __future__ import annotations

import subprocess
import tempfile

from ansible_collections.lifeline.dr.plugins.module_utils.errors import IntegrityError
from ansible_collections.lifeline.dr.plugins.module_utils.manifest import Artifact, Manifest
from ansible_collections.lifeline.dr.plugins.module_utils.postgres import PgConnection, tail
from ansible_collections.lifeline.dr.plugins.module_utils.verify import Check


class ArchiveListCheck(Check):
    """Feeds the plaintext to ``pg_restore --list``; it reads the table of contents and stops,
    after which the rest is read (and so hash-checked) and discarded."""

    def __init__(self, pg_restore: str, name: str) -> None:
        self.name = name
        self._out = tempfile.TemporaryFile()  # pylint: disable=consider-using-with
        self._err = tempfile.TemporaryFile()  # pylint: disable=consider-using-with
        self._proc = subprocess.Popen([pg_restore, "--list"], stdin=subprocess.PIPE,  # pylint: disable=consider-using-with
                                      stdout=self._out, stderr=self._err)
        self._open = True

    def write(self, data: bytes) -> None:
        if self._open and data:
            try:
                self._proc.stdin.write(data)
            except BrokenPipeError:
                self._open = False

    def close(self) -> str:
        try:
            self._proc.stdin.close()
        except BrokenPipeError:
            pass
        code = self._proc.wait()
        self._out.seek(0)
        self._err.seek(0)
        entries = [line for line in self._out.read().decode("utf-8", "replace").splitlines()
                   if line and not line.startswith(";")]
        if code != 0:
            raise IntegrityError("pg_restore --list rejects %s: %s" % (self.name, tail(self._err.read())))
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
