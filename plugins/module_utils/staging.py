# -*- coding: utf-8 -*-
# Copyright: Lifeline contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Where a restore keeps decrypted artifacts until it has applied them.

A restore creates its own 0700 directory inside ``staging_dir`` (``staging_dir`` itself is
created if missing and never chmod-ed: it may be /tmp), records its pid in it, and opens every
file there with O_CREAT|O_EXCL|O_NOFOLLOW relative to that directory's descriptor; a name that
is not one safe path part is refused even though the manifest check already refused it. The
directory goes when the restore ends, however it ends; one left by a killed restore (its pid is
gone) is removed at the start of the next one.
"""
from __future__ import annotations

import os
import re
import secrets
import shutil
import socket
import stat

from ansible_collections.lifeline.dr.plugins.module_utils.errors import RestoreError
from ansible_collections.lifeline.dr.plugins.module_utils.pipeline import Sink

PREFIX = "restore-"
MARKER = "owner"
_SAFE_PART = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,254}$")
_OWN_DIR = re.compile(r"^%s(\d+)-[0-9a-f]{8}$" % PREFIX)
#: staging needs room for every staged file plus this much slack
HEADROOM = 64 * 1024 * 1024


def _start_ticks(pid: int) -> str | None:
    """The process's start time (field 22 of /proc/PID/stat): tells a reused pid apart."""
    try:
        with open("/proc/%d/stat" % pid, "rb") as fh:
            stat_line = fh.read()
    except OSError:
        return None
    return stat_line[stat_line.rfind(b")") + 2:].split()[19].decode()


def _alive(pid: int, start: str | None) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return start is None or _start_ticks(pid) in (None, start)


def _owner(path: str, pid_from_name: int) -> tuple[str | None, int, str | None]:
    """(host, pid, start ticks) recorded in a staging directory; the name's pid if unreadable."""
    try:
        fd = os.open(os.path.join(path, MARKER), os.O_RDONLY | os.O_NOFOLLOW)
        with os.fdopen(fd, "r", encoding="ascii") as fh:
            host, pid, start = fh.read(512).split()
        return host, int(pid), None if start == "-" else start
    except (OSError, ValueError, UnicodeDecodeError):
        return None, pid_from_name, None


def remove_stale(staging_dir: str) -> list[str]:
    """Remove staging directories whose restore is gone; returns a warning per directory removed.

    Only directories this user owns, named as Staging names them, recorded by this host, are
    considered: a shared or world-writable ``staging_dir`` is left alone otherwise.
    """
    removed = []
    try:
        names = os.listdir(staging_dir)
    except FileNotFoundError:
        return removed
    except OSError as exc:
        raise RestoreError("cannot read the staging directory %s: %s; set staging_dir to a directory "
                           "this user can write" % (staging_dir, exc.strerror)) from None
    for name in names:
        match = _OWN_DIR.match(name)
        path = os.path.join(staging_dir, name)
        if not match:
            continue
        try:
            info = os.lstat(path)
        except OSError:
            continue
        if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid():
            continue
        host, pid, start = _owner(path, int(match.group(1)))
        if host not in (None, socket.gethostname()) or _alive(pid, start):
            continue
        shutil.rmtree(path, ignore_errors=True)
        removed.append("removed staging directory %s left by a restore that is no longer running "
                       "(pid %d)" % (path, pid))
    return removed


def check_part(name: str) -> str:
    """``name`` as one safe path part: no '/', '..', NUL, nothing hidden; RestoreError otherwise."""
    if not isinstance(name, str) or not _SAFE_PART.match(name) or ".." in name:
        raise RestoreError("refusing to stage %r: a staged file name must be one path part of "
                           "letters, digits, '.', '_' and '-'" % (name,))
    return name


class StagedFile(Sink):
    """A 0600 file in the staging directory that a fetch streams into (retries rewind it)."""

    def __init__(self, fd: int, path: str) -> None:
        self.path = path
        self._fh = os.fdopen(fd, "wb")

    def write(self, data: bytes) -> None:
        if data:
            try:
                self._fh.write(data)
            except OSError as exc:
                raise RestoreError("staging %s failed: %s; free space or set staging_dir"
                                   % (self.path, exc.strerror)) from None

    def reset(self) -> None:
        self._fh.seek(0)
        self._fh.truncate()

    def close(self) -> None:
        self._fh.close()


class Staging:
    """This restore's own directory inside ``staging_dir``; a context manager that removes it."""

    def __init__(self, staging_dir: str) -> None:
        self.root = staging_dir
        self.path = ""
        self._fd: int | None = None

    def __enter__(self) -> "Staging":
        try:
            os.makedirs(self.root, mode=0o700, exist_ok=True)  # an existing one keeps its mode
            while True:
                path = os.path.join(self.root, "%s%d-%s" % (PREFIX, os.getpid(), secrets.token_hex(4)))
                try:
                    os.mkdir(path, 0o700)
                    break
                except FileExistsError:
                    continue
            self.path = path
            self._fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
            marker = "%s %d %s\n" % (socket.gethostname(), os.getpid(), _start_ticks(os.getpid()) or "-")
            self.write_bytes(MARKER, marker.encode("ascii"))
        except OSError as exc:
            self.__exit__()
            raise RestoreError("cannot create a staging directory in %s: %s; set staging_dir to a "
                               "directory this user can write" % (self.root, exc.strerror)) from None
        return self

    def __exit__(self, *exc) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        if self.path:
            shutil.rmtree(self.path, ignore_errors=True)

    def file_path(self, name: str) -> str:
        return os.path.join(self.path, check_part(name))

    def create(self, name: str) -> StagedFile:
        """A new 0600 file ``name``; refuses an existing name or a symlink in its place."""
        try:
            fd = os.open(check_part(name), os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                         0o600, dir_fd=self._fd)
        except OSError as exc:
            raise RestoreError("cannot create %s in the staging directory %s: %s"
                               % (name, self.path, exc.strerror)) from None
        return StagedFile(fd, self.file_path(name))

    def write_bytes(self, name: str, data: bytes) -> str:
        staged = self.create(name)
        try:
            staged.write(data)
        finally:
            staged.close()
        return staged.path

    def read_text(self, name: str) -> str:
        """A staged file as UTF-8 text; RestoreError when it is not."""
        try:
            fd = os.open(check_part(name), os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=self._fd)
            with os.fdopen(fd, "rb") as fh:
                return fh.read().decode("utf-8")
        except UnicodeDecodeError as exc:
            raise RestoreError("%s is not UTF-8 text (byte %d): this restore reads UTF-8 scripts only"
                               % (name, exc.start)) from None
        except OSError as exc:
            raise RestoreError("cannot read the staged %s: %s" % (name, exc.strerror)) from None

    def remove(self, name: str) -> None:
        try:
            os.unlink(check_part(name), dir_fd=self._fd)
        except FileNotFoundError:
            pass

    def check_space(self, need: int) -> None:
        """Everything is staged before anything changes, so it must fit at once."""
        need += HEADROOM
        free = shutil.disk_usage(self.path).free
        if free < need:
            raise RestoreError("not enough space to stage the backup in %s: %d MiB free, %d MiB "
                               "needed; free space or set staging_dir" % (self.root, free >> 20, need >> 20))
