# -*- coding: utf-8 -*-
# Copyright: Lifeline contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Defuse the server settings a physical backup brings along before the restored server first
starts. The backup's postgresql.auto.conf (and a postgresql.conf kept in the data directory) are
read by the restoring host's server as its own: whoever could forge the backup would otherwise
run shell commands there (``recovery_end_command``, ``archive_cleanup_command``,
``ssl_passphrase_command``...) or load a library from a path it chose. Each such line is turned
into a comment that names why, and reported; the recovery settings the engine itself wrote
(``restore_command`` through pgBackRest or WAL-G) stay."""
from __future__ import annotations

import os
import re
import stat

from ansible_collections.lifeline.dr.plugins.module_utils.errors import RestoreError

CONFIG_FILES = ("postgresql.auto.conf", "postgresql.conf")
# Settings whose value PostgreSQL runs as a shell command.
COMMANDS = {"archive_command", "archive_cleanup_command", "recovery_end_command", "restore_command",
            "ssl_passphrase_command"}
# Settings that load code: safe only as bare names of libraries installed with the server.
LIBRARIES = {"shared_preload_libraries", "session_preload_libraries", "local_preload_libraries",
             "archive_library"}
_LINE = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_.]*)\s*=?\s*(.*?)\s*$")
_SHELL = re.compile(r"[;|&$`<>\\(){}]")
_BARE_LIBRARY = re.compile(r"(\$libdir/)?[A-Za-z0-9_][A-Za-z0-9_.-]*")
_ENGINE_RESTORE = re.compile(r"'?\S*(pgbackrest|wal-g)\S* .*(archive-get|wal-fetch) ")


def _unquote(value: str) -> str:
    value = value.split("#", 1)[0].strip() if not value.startswith("'") else value
    if value.startswith("'"):
        end = value.find("'", 1)
        return value[1:end if end > 0 else None]
    return value


def _why(name: str, value: str) -> str | None:
    """Why a setting from the backup is disabled, or None to keep it."""
    name = name.lower()
    if name in ("include", "include_if_exists", "include_dir"):
        return "includes a file the restoring host did not choose"
    if name == "dynamic_library_path":
        return "changes where libraries load from"
    if name == "restore_command" and _ENGINE_RESTORE.match(value) and not _SHELL.search(_unquote(value)):
        return None
    if name in COMMANDS:
        return "runs a shell command"
    if name in LIBRARIES:
        libs = [lib.strip().strip('"') for lib in _unquote(value).split(",") if lib.strip()]
        if any(not _BARE_LIBRARY.fullmatch(lib) for lib in libs):
            return "loads a library by path"
    return None


def defuse(data_dir: str) -> list:
    """Comment out, in the restored data directory's config files, every setting ``_why`` names;
    returns ``["<file>: <setting> (<why>)", ...]``."""
    found = []
    for name in CONFIG_FILES:
        path = os.path.join(data_dir, name)
        try:
            fd = os.open(path, os.O_RDWR | os.O_NOFOLLOW)
        except FileNotFoundError:
            continue
        except OSError as exc:
            raise RestoreError("cannot open %s of the restored cluster (a symlink?): %s" % (path, exc.strerror)) from None
        with os.fdopen(fd, "r+", encoding="utf-8", errors="surrogateescape") as fh:
            if not stat.S_ISREG(os.fstat(fh.fileno()).st_mode):
                raise RestoreError("%s of the restored cluster is not a regular file" % path)
            lines = fh.read().split("\n")
            out, before = [], len(found)
            for line in lines:
                match = _LINE.match(line) if line.strip() and not line.lstrip().startswith("#") else None
                why = _why(match.group(1), match.group(2)) if match else None
                if why:
                    found.append("%s: %s (%s)" % (name, match.group(1), why))
                    line = "# disabled by Lifeline on restore (it %s): %s" % (why, line)
                out.append(line)
            if len(found) > before:
                fh.seek(0)
                fh.write("\n".join(out))
                fh.truncate()
                fh.flush()
                os.fsync(fh.fileno())
    return found
