# -*- coding: utf-8 -*-
# Copyright: Lifeline contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The data directory and config file of a server a managed restore replaces, as root.

Both belong to the Redis account, which may plant symlinks in them or point ``dir`` elsewhere.
So the directory is opened once with O_NOFOLLOW|O_DIRECTORY and must be owned by the account the
server runs as; every name in it is reached through that descriptor: new files are O_EXCL|
O_NOFOLLOW, owner and mode set on the descriptor (fchown/fchmod), renames are renameat. The
config is read and written back through O_NOFOLLOW descriptors of the same inode.
"""
from __future__ import annotations

import os
import shutil
import stat

from ansible_collections.lifeline.dr.plugins.module_utils.errors import RestoreError

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def plain_name(name: str, what: str) -> str:
    if not name or "/" in name or name in (".", "..") or "\0" in name:
        raise RestoreError("%s %r is not a plain file name; nothing was changed" % (what, name))
    return name


class DataDir:
    """``path`` opened by descriptor; ``server_uid`` (the account the server runs as) must own it."""

    def __init__(self, path: str, server_uid: int) -> None:
        self.path = path
        try:
            self.fd = os.open(path, _DIR_FLAGS)
        except OSError as exc:
            raise RestoreError("cannot open the data directory %s without following a symlink: %s; nothing "
                               "was changed" % (path, exc.strerror)) from None
        info = os.fstat(self.fd)
        if info.st_uid != server_uid or info.st_mode & stat.S_IWOTH:
            self.close()
            raise RestoreError("the data directory %s is owned by uid %d (mode %o), not only by uid %d the server "
                               "runs as; a managed restore writes only into the server's own directory; nothing "
                               "was changed" % (path, info.st_uid, stat.S_IMODE(info.st_mode), server_uid))
        self.uid, self.gid = info.st_uid, info.st_gid

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def kind(self, name: str) -> str | None:
        """"dir", "file" (anything else, a symlink included) or None when ``name`` is absent."""
        try:
            info = os.stat(plain_name(name, "the name"), dir_fd=self.fd, follow_symlinks=False)
        except FileNotFoundError:
            return None
        return "dir" if stat.S_ISDIR(info.st_mode) else "file"

    def copy_in(self, staged: str, name: str) -> None:
        """A new ``name`` (O_EXCL: nothing there is reused or followed) holding ``staged``,
        owned as the directory, 0660, on disk."""
        try:
            fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600,
                         dir_fd=self.fd)
        except FileExistsError:
            raise RestoreError("%s/%s already exists (left by a restore that did not finish, or planted): "
                               "remove it and run again" % (self.path, name)) from None
        try:
            with os.fdopen(fd, "wb", closefd=False) as out, open(staged, "rb") as src:
                shutil.copyfileobj(src, out, 1 << 20)
            if os.geteuid() == 0:
                os.fchown(fd, self.uid, self.gid)
            os.fchmod(fd, 0o660)
            os.fsync(fd)
        finally:
            os.close(fd)

    def rename(self, src: str, dst: str) -> None:
        os.rename(src, dst, src_dir_fd=self.fd, dst_dir_fd=self.fd)
        os.fsync(self.fd)

    def remove(self, name: str) -> None:
        """``name`` and, for a real directory, what it holds (never through a symlink)."""
        _remove_at(self.fd, plain_name(name, "the name"))


def _remove_at(dir_fd: int, name: str) -> None:
    """unlinkat, or for a directory (opened O_NOFOLLOW) its entries then itself; shutil.rmtree
    takes a dir_fd only from Python 3.11."""
    try:
        info = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return
    if not stat.S_ISDIR(info.st_mode):
        os.unlink(name, dir_fd=dir_fd)
        return
    fd = os.open(name, _DIR_FLAGS, dir_fd=dir_fd)
    try:
        for entry in os.listdir(fd):
            _remove_at(fd, entry)
    finally:
        os.close(fd)
    os.rmdir(name, dir_fd=dir_fd)


class ConfigFile:
    """The server's config file, read whole; ``put_back`` writes those bytes back through a
    descriptor of the same kind of file (CONFIG REWRITE may have renamed a new one in meanwhile)."""

    def __init__(self, path: str, allowed_uids: tuple) -> None:
        self.path, self.allowed_uids = path, allowed_uids
        fd = self._open(os.O_RDONLY, "nothing was changed")
        try:
            with os.fdopen(os.dup(fd), "rb") as fh:
                self.saved = fh.read()
        finally:
            os.close(fd)

    def _open(self, flags: int, outcome: str) -> int:
        """An O_NOFOLLOW descriptor of a regular file with one link, owned by an allowed uid."""
        try:
            fd = os.open(self.path, flags | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError as exc:
            raise RestoreError("cannot open the server's config %s without following a symlink: %s; %s"
                               % (self.path or "(none)", exc.strerror, outcome)) from None
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_nlink != 1 or info.st_uid not in self.allowed_uids:
            os.close(fd)
            raise RestoreError("the server's config %s is not a regular file with one link owned by root or the "
                               "server's account (it is owned by uid %d); %s" % (self.path, info.st_uid, outcome))
        return fd

    def put_back(self) -> None:
        fd = self._open(os.O_WRONLY, "it was not written")
        try:
            os.ftruncate(fd, 0)
            view = memoryview(self.saved)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
