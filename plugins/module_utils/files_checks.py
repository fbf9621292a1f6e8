# -*- coding: utf-8 -*-
# Copyright: Lifeline contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Content check of the files component for verify: GNU tar must list a stored archive, with the
members its manifest records (an rsync change list is checked by size, hash and AEAD only)."""
from __future__ import annotations

import contextlib
import subprocess
import tempfile

from ansible_collections.lifeline.dr.plugins.module_utils import files_tar
from ansible_collections.lifeline.dr.plugins.module_utils.errors import IntegrityError
from ansible_collections.lifeline.dr.plugins.module_utils.manifest import Artifact
from ansible_collections.lifeline.dr.plugins.module_utils.postgres import tail
from ansible_collections.lifeline.dr.plugins.module_utils.verify import Check


def check_for(art: Artifact) -> Check:
    return TarListCheck(art) if art.kind == files_tar.ARTIFACT_KIND else Check()


class TarListCheck(Check):
    """verify's check of a stored archive: GNU tar must list it, with the members its manifest records."""

    def __init__(self, art) -> None:
        self.art = art
        self._out = tempfile.TemporaryFile()  # pylint: disable=consider-using-with
        self._err = tempfile.TemporaryFile()  # pylint: disable=consider-using-with
        self._proc = subprocess.Popen([files_tar.TAR, "--list", "--file=-", "--quoting-style=escape"],  # pylint: disable=consider-using-with
                                      stdin=subprocess.PIPE, stdout=self._out, stderr=self._err, env=files_tar.ENV)

    def write(self, data: bytes) -> None:
        try:
            self._proc.stdin.write(data)
        except BrokenPipeError:
            pass  # tar gave up; close() reports its error

    def reset(self) -> None:
        pass  # verify reads one copy per check; a failed fetch is reported as such

    def close(self) -> str:
        with contextlib.suppress(BrokenPipeError):
            self._proc.stdin.close()
        code = self._proc.wait()
        self._err.seek(0)
        self._out.seek(0)
        if code != 0:
            raise IntegrityError("tar cannot list %s (exit %d): %s" % (self.art.name, code, tail(self._err.read())))
        members = sum(1 for _line in self._out)
        if members != self.art.meta.get("members"):
            raise IntegrityError("tar lists %d members in %s; its manifest records %s"
                                 % (members, self.art.name, self.art.meta.get("members")))
        return "tar lists %d members, as the manifest records" % members

    def abort(self) -> None:
        if self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait()
        self._out.close()
        self._err.close()
