# -*- coding: utf-8 -*-
# Copyright: Lifeline contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The file system a secrets restore writes into, reached without following a symlink.

The restore root is the operator's and may be reached through symlinks (``/tmp`` on some
systems); below it, every directory is opened relative to its parent's descriptor with
O_NOFOLLOW|O_DIRECTORY, so a symlink planted anywhere on a secret's path is refused, not
followed. Files are written as O_EXCL temporaries beside their target and renamed over it.
"""
from __future__ import annotations

import errno
import grp
import os
import pwd
import re
import secrets
import stat

from ansible_collections.lifeline.dr.plugins.module_utils.errors import RestoreError
from ansible_collections.lifeline.dr.plugins.module_utils.pipeline import Sink
from ansible_collections.lifeline.dr.plugins.module_utils.secrets_format import SecretMeta, digest_fd

TMP_PREFIX = ".lifeline-tmp-secret-"
TMP_RE = re.compile(r"^%s[0-9a-f]{16}$" % re.escape(TMP_PREFIX))
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class Dirs:
    """Opens directories below ``root`` by descriptor; remembers the ones it created."""

    def __init__(self, root: str) -> None:
        self.root = root
        self.created: list[str] = []

    def open_root(self, *, create: bool) -> int | None:
        if create and not os.path.isdir(self.root):
            try:
                os.makedirs(self.root, mode=0o700)
                self.created.append(self.root)
            except OSError as exc:
                raise RestoreError("cannot create the restore root %s: %s" % (self.root, exc.strerror)) from None
        try:
            return os.open(self.root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise RestoreError("cannot open the restore root %s: %s" % (self.root, exc.strerror)) from None

    def open_parent(self, path: str, *, create: bool) -> tuple[int | None, list]:
        """(descriptor of ``path``'s directory below the root, its missing parts) ; with
        ``create`` the missing parts are made 0700 and the list is empty."""
        parts = path.strip("/").split("/")[:-1]
        fd = self.open_root(create=create)
        if fd is None:
            return None, parts
        where = self.root.rstrip("/")
        for index, part in enumerate(parts):
            where += "/" + part
            try:
                try:
                    child = os.open(part, _DIR_FLAGS, dir_fd=fd)
                except FileNotFoundError:
                    if not create:
                        os.close(fd)
                        return None, parts[index:]
                    os.mkdir(part, 0o700, dir_fd=fd)
                    self.created.append(where)
                    child = os.open(part, _DIR_FLAGS, dir_fd=fd)
            except OSError as exc:
                os.close(fd)
                if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                    raise RestoreError("%s is a symlink or not a directory; a secret is never written "
                                       "through a link: remove it or restore under another root" % where) from None
                raise RestoreError("cannot open directory %s: %s" % (where, exc.strerror)) from None
            os.close(fd)
            fd = child
        return fd, []

    def remove_created(self) -> None:
        """Best effort: the empty directories this restore made, deepest first."""
        for path in reversed(self.created):
            try:
                os.rmdir(path)
            except OSError:
                pass
        self.created = []


def existing(dir_fd: int, name: str) -> tuple[str, tuple | None, os.stat_result | None]:
    """What is at ``name``: ('absent'|'file'|'other', (sha256, size) of a file, its stat)."""
    try:
        info = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return "absent", None, None
    if not stat.S_ISREG(info.st_mode):
        return "other", None, info
    fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=dir_fd)
    try:
        return "file", digest_fd(fd), os.fstat(fd)
    finally:
        os.close(fd)


def remove_temporaries(dir_fd: int, where: str) -> list[str]:
    """Temporaries a killed restore left in a directory (the restore lock is held)."""
    removed = []
    for name in os.listdir(dir_fd):
        if TMP_RE.match(name):
            os.unlink(name, dir_fd=dir_fd)
            removed.append("removed %s/%s left by a secrets restore that did not finish" % (where, name))
    return removed


class TempFile(Sink):
    """An O_EXCL, 0600 temporary beside the target; what a fetch writes (reset rewinds it)."""

    def __init__(self, dir_fd: int) -> None:
        self.dir_fd = dir_fd
        self.name = TMP_PREFIX + secrets.token_hex(8)
        self.fd: int | None = os.open(self.name, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                                      0o600, dir_fd=dir_fd)

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(self.fd, view):]

    def reset(self) -> None:
        os.ftruncate(self.fd, 0)
        os.lseek(self.fd, 0, os.SEEK_SET)

    def finish(self, uid: int, gid: int, mode: int) -> tuple[str, int]:
        """Owner, mode, fsync; returns (sha256, size) of what the file now holds, read back."""
        os.fsync(self.fd)
        os.fchown(self.fd, uid, gid)
        os.fchmod(self.fd, mode)
        os.fsync(self.fd)
        return digest_fd(self.fd)

    def rename_to(self, name: str) -> None:
        os.rename(self.name, name, src_dir_fd=self.dir_fd, dst_dir_fd=self.dir_fd)
        self.name = ""
        os.fsync(self.dir_fd)

    def discard(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None
        if self.name:
            try:
                os.unlink(self.name, dir_fd=self.dir_fd)
            except OSError:
                pass
            self.name = ""


def _resolve(kind: str, name: str | None, ident: int, by_name, by_id, warnings: list, path: str) -> int:
    """The target's id for a recorded (name, id): the name's id where the name exists; else the
    recorded id with a warning, unless that id is another account's (refused: that account
    would read the secret)."""
    if name is not None:
        try:
            return by_name(name)[2]
        except KeyError:
            pass
    try:
        holder = by_id(ident)[0]
    except KeyError:
        holder = None
    what = "%s %r" % (kind, name) if name is not None else "%s id %d (no name recorded)" % (kind, ident)
    if holder is not None:
        raise RestoreError("%s: %s is not on this host and the id %d belongs to %s %r here, who would "
                           "read the secret; nothing was changed. Create the %s first"
                           % (path, what, ident, kind, holder, kind))
    warnings.append("%s: %s does not exist on this host; restored with the numeric id %d" % (path, what, ident))
    return ident


def resolve_owner(meta: SecretMeta, warnings: list) -> tuple[int, int]:
    """(uid, gid) the restored file gets on this host; RestoreError when this user cannot give it."""
    uid = _resolve("user", meta.owner, meta.uid, pwd.getpwnam, pwd.getpwuid, warnings, meta.path)
    gid = _resolve("group", meta.group, meta.gid, grp.getgrnam, grp.getgrgid, warnings, meta.path)
    if os.geteuid() != 0 and (uid != os.geteuid() or gid not in (os.getegid(), *os.getgroups())):
        raise RestoreError("%s belongs to uid %d gid %d; only root can give it that owner: run the "
                           "restore with become: true" % (meta.path, uid, gid))
    return uid, gid
