# -*- coding: utf-8 -*-
# Copyright: Lifeline contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Moving a staged, verified copy into place: created, replaced whole (a mount point: its
contents), or merged (newer existing files kept). Every move is a rename on one filesystem.

Every move goes through directory file descriptors opened with O_NOFOLLOW from the restore root
down (and from the staging directory this restore made, checked by its inode): a symlink planted
below the root while the restore runs (a directory swapped for a link to /etc) is refused, never
followed. The root itself is taken as the operator named it. Errors name the destination.
"""
from __future__ import annotations

import contextlib
import dataclasses
import errno
import os
import secrets
import shutil
import stat
from typing import Iterator

from ansible_collections.lifeline.dr.plugins.module_utils.errors import RestoreError

STAGE_PREFIX = ".lifeline-restore-"
REPLACED_PREFIX = ".lifeline-replaced-"
REPLACE, MERGE = "replace", "merge"  # actions besides create (restore.RestoreAction's values)
MAX_LISTED = 200      # written/kept paths returned; the counts cover all
_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


@dataclasses.dataclass
class Moved:
    written: list = dataclasses.field(default_factory=list)
    kept: list = dataclasses.field(default_factory=list)
    written_count: int = 0
    kept_count: int = 0

    def put(self, dest: str) -> None:
        self.written_count += 1
        if len(self.written) < MAX_LISTED:
            self.written.append(dest)

    def keep(self, dest: str) -> None:
        self.kept_count += 1
        if len(self.kept) < MAX_LISTED:
            self.kept.append(dest)


@dataclasses.dataclass
class Stage:
    """A staging directory this restore made, with its identity when made."""

    path: str
    ident: tuple

    @classmethod
    def made(cls, path: str) -> "Stage":
        info = os.lstat(path)
        return cls(path, (info.st_dev, info.st_ino))


def _planted(dest: str, where: str) -> RestoreError:
    return RestoreError("refusing to put %s in place: %s is a symlink or not a directory now (changed during the "
                        "restore?); nothing is moved through it" % (dest, where))


def _open_dir(name: str, dir_fd: int, *, dest: str, where: str, create: bool = False) -> int:
    try:
        return os.open(name, _DIR, dir_fd=dir_fd)
    except FileNotFoundError:
        if not create:
            raise
        os.mkdir(name, 0o777, dir_fd=dir_fd)
        return _open_dir(name, dir_fd, dest=dest, where=where)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):
            raise _planted(dest, where) from None
        raise


@contextlib.contextmanager
def _walk(top: str, parts: list, *, dest: str, create: bool = False, top_fd: int | None = None) -> Iterator[int]:
    """A directory fd of ``top``/``parts``, each part opened without following a symlink."""
    fd = os.open(top, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC) if top_fd is None else os.dup(top_fd)
    try:
        for index, part in enumerate(parts):
            where = os.path.join(top, *parts[:index + 1])
            child = _open_dir(part, fd, dest=dest, where=where, create=create)
            os.close(fd)
            fd = child
        yield fd
    finally:
        os.close(fd)


def _parts(path: str) -> list:
    return [p for p in path.split("/") if p and p != "."]


@contextlib.contextmanager
def _stage_dir(stage: Stage, rel: str, dest: str) -> Iterator[int]:
    fd = os.open(stage.path, _DIR)
    try:
        info = os.fstat(fd)
        if (info.st_dev, info.st_ino) != stage.ident:
            raise _planted(dest, stage.path)
        with _walk(stage.path, _parts(rel), dest=dest, top_fd=fd) as inner:
            yield inner
    finally:
        os.close(fd)


def _lstat(name: str, dir_fd: int):
    try:
        return os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return None


def _rename(src: tuple, dst: tuple) -> None:
    os.rename(src[1], dst[1], src_dir_fd=src[0], dst_dir_fd=dst[0])


def put_in_place(root: str, stage: Stage, rel: str, item: dict, moved: Moved) -> None:
    """Move ``rel`` (a path inside ``stage``) to ``item['dest']`` (below ``root``) as
    ``item['action']`` says (create, replace, merge)."""
    dest = item["dest"]
    below = _parts(os.path.relpath(dest, root))
    try:
        if item["action"] == REPLACE and os.path.isdir(dest) and os.path.ismount(dest):
            with _stage_dir(stage, rel, dest) as sfd, _walk(root, below, dest=dest) as dfd:
                _replace_contents(sfd, dfd, dest)
            moved.put(dest)
            return
        with _stage_dir(stage, os.path.dirname(rel), dest) as sfd, \
                _walk(root, below[:-1], dest=dest, create=True) as dfd:
            src, dst = (sfd, os.path.basename(rel)), (dfd, below[-1])
            old = _lstat(dst[1], dfd)
            if old is None:
                _rename(src, dst)
                moved.put(dest)
            elif item["action"] == REPLACE:
                _replace(src, dst, dest, moved)
            else:
                _merge(src, dst, dest, moved)
    except OSError as exc:
        raise RestoreError("putting %s in place failed: %s" % (dest, exc.strerror or exc)) from None


def _replace(src: tuple, dst: tuple, dest: str, moved: Moved) -> None:
    aside = (dst[0], REPLACED_PREFIX + secrets.token_hex(4))
    _rename(dst, aside)
    try:
        _rename(src, dst)
    except OSError:
        _rename(aside, dst)
        raise
    moved.put(dest)
    if stat.S_ISDIR(os.stat(aside[1], dir_fd=aside[0], follow_symlinks=False).st_mode):
        shutil.rmtree(aside[1], dir_fd=aside[0])
    else:
        os.unlink(aside[1], dir_fd=aside[0])


def _replace_contents(sfd: int, dfd: int, dest: str) -> None:
    """Replace a mount point's contents (it cannot be renamed): its entries go aside inside it,
    the restored ones move in, the directory takes the restored owner, mode and times, and what
    was set aside is removed. Staging directories inside it are left to their owner."""
    aside = REPLACED_PREFIX + secrets.token_hex(4)
    os.mkdir(aside, 0o700, dir_fd=dfd)
    afd = _open_dir(aside, dfd, dest=dest, where=os.path.join(dest, aside))
    try:
        for name in os.listdir(dfd):
            if not name.startswith((REPLACED_PREFIX, STAGE_PREFIX)):
                _rename((dfd, name), (afd, name))
    finally:
        os.close(afd)
    for name in os.listdir(sfd):
        _rename((sfd, name), (dfd, name))
    info = os.fstat(sfd)
    os.chown(dfd, info.st_uid, info.st_gid)
    os.chmod(dfd, stat.S_IMODE(info.st_mode))
    os.utime(dfd, ns=(info.st_atime_ns, info.st_mtime_ns))
    shutil.rmtree(aside, dir_fd=dfd)


def _merge(src: tuple, dst: tuple, dest: str, moved: Moved) -> None:
    """Put ``src`` at ``dst``: missing entries are moved in whole, older files replaced, newer
    existing files (and entries of another type, a symlink among them) kept."""
    old = _lstat(dst[1], dst[0])
    if old is None:
        _rename(src, dst)
        moved.put(dest)
        return
    new = os.stat(src[1], dir_fd=src[0], follow_symlinks=False)
    if stat.S_ISDIR(new.st_mode) and stat.S_ISDIR(old.st_mode):
        sfd = _open_dir(src[1], src[0], dest=dest, where=dest)
        try:
            dfd = _open_dir(dst[1], dst[0], dest=dest, where=dest)   # swapped for a symlink since: refused
            try:
                for name in os.listdir(sfd):
                    _merge((sfd, name), (dfd, name), os.path.join(dest, name), moved)
            finally:
                os.close(dfd)
        finally:
            os.close(sfd)
        return
    if stat.S_ISDIR(new.st_mode) or stat.S_ISDIR(old.st_mode) or old.st_mtime_ns > new.st_mtime_ns:
        moved.keep(dest)
        return
    _rename(src, dst)
    moved.put(dest)
