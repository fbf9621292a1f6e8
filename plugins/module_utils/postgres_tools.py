# -*- coding: utf-8 -*-
# Copyright: Lifeline contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Which PostgreSQL client tool (pg_dump, pg_restore, psql ...) of which major version to run.

An archive written by pg_dump N can only be read by pg_restore N or newer, so the backup uses
the pg_dump of the server's own major version when it is installed (Debian keeps each version in
``/usr/lib/postgresql/N/bin``), else the newest one not older than the server, and records its
version in the manifest; the restore then picks a pg_restore at least that new.
"""
from __future__ import annotations

import dataclasses
import functools
import glob
import os
import re
import shutil
import subprocess

from ansible_collections.lifeline.dr.plugins.module_utils.errors import DependencyError

DEBIAN_ROOT = "/usr/lib/postgresql"
_VERSION_RE = re.compile(r"\(PostgreSQL\) ((\d+)\S*)")


@dataclasses.dataclass(frozen=True)
class Tool:
    path: str
    version: str   # as the tool reports it, e.g. "15.18"
    major: int


@functools.lru_cache(maxsize=64)
def _reported(path: str, _stamp: tuple) -> Tool:
    try:
        out = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise DependencyError("cannot run %s --version: %s" % (path, exc)) from None
    found = _VERSION_RE.search(out.stdout)
    if out.returncode != 0 or not found:
        raise DependencyError("%s --version did not report a PostgreSQL version (exit %d): %s"
                              % (path, out.returncode, (out.stdout + out.stderr).strip()[-300:]))
    return Tool(path=path, version=found.group(1), major=int(found.group(2)))


def tool_version(path: str) -> Tool:
    """The version ``path`` reports (``--version``), cached while the file is unchanged."""
    st = os.stat(path)
    return _reported(path, (st.st_mtime_ns, st.st_size, st.st_ino))


def candidates(name: str, *, root: str = DEBIAN_ROOT, path: str | None = None) -> list:
    """Every installed ``name``: one per ``<root>/<N>/bin``, then the one on ``path`` (PATH by
    default) unless it is Debian's pg_wrapper, which only dispatches to those same binaries."""
    found = []
    for exe in sorted(glob.glob(os.path.join(glob.escape(root), "*", "bin", name))):
        if os.path.isfile(exe) and os.access(exe, os.X_OK):
            found.append(tool_version(exe))
    on_path = shutil.which(name, path=path)
    if on_path and os.path.basename(os.path.realpath(on_path)) != "pg_wrapper":
        real = os.path.realpath(on_path)
        if all(os.path.realpath(t.path) != real for t in found):
            found.append(tool_version(on_path))
    return found


def choose(name: str, found: list, *, at_least: int = 0, prefer: int | None = None) -> Tool:
    """``prefer``'s major version if installed and not older than ``at_least``, else the newest
    installed one not older than ``at_least``; DependencyError naming the package otherwise."""
    usable = [t for t in found if t.major >= at_least]
    if prefer is not None and prefer >= at_least:
        exact = [t for t in usable if t.major == prefer]
        if exact:
            return exact[0]
    if usable:
        return max(usable, key=lambda t: t.major)  # max keeps the first of equals: Debian's
    want = max(at_least, prefer or 0)
    have = ", ".join("%s %s" % (t.path, t.version) for t in found) or "none"
    raise DependencyError("%s of PostgreSQL %d or newer is needed but not installed (found: %s); install "
                          "postgresql-client-%d (PGDG apt repository for versions Debian does not ship)"
                          % (name, at_least, have, want or at_least))


def find_tool(name: str, *, at_least: int = 0, prefer: int | None = None, bin_dir: str | None = None,
              root: str = DEBIAN_ROOT, path: str | None = None) -> Tool:
    """The ``name`` to run (see ``choose``); with ``bin_dir`` only that directory is considered."""
    if bin_dir:
        exe = os.path.join(bin_dir, name)
        if not (os.path.isfile(exe) and os.access(exe, os.X_OK)):
            raise DependencyError("%s not found in %s (bin_dir)" % (name, bin_dir))
        found = [tool_version(exe)]
    else:
        found = candidates(name, root=root, path=path)
    return choose(name, found, at_least=at_least, prefer=prefer)
