# -*- coding: utf-8 -*-
# Copyright: Lifeline contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Where backups are stored: a small interface with a local and an S3 implementation.

Contract (every implementation passes tests/unit/plugins/module_utils/repository_suite.py):
- keys are relative '/'-separated paths without '.' or '..' parts;
- ``open_writer(key, size_hint=None)`` returns a writer whose object is invisible until
  ``commit()``, which makes it visible atomically (its directory entry durable), confirms the
  stored size and returns it; ``abort()`` discards; ``size_hint`` (expected bytes, if known)
  lets a backend size its parts;
- ``open_reader``/``get_bytes``/``stat`` raise ``NotFoundError`` (and only that) for a missing key;
- ``list(prefix)`` yields every committed key below ``prefix``, in no particular order; a prefix
  nothing was stored under yields nothing, but a listing that fails raises (never "empty");
- ``delete`` of a missing key is not an error;
- ``info(key)`` gives the stored size and modification time (only for leftovers, which have no
  manifest: backups are ordered by their manifests' times, never by mtime);
- ``leftovers(prefix)`` yields uncommitted writes below ``prefix`` (temp files, multipart
  uploads) for prune, and ``remove_leftover`` discards one;
- any other failure raises ``RepositoryError`` naming the repository and the cause;
- a repository is a context manager; ``close()`` releases its clients and threads.
"""
from __future__ import annotations

import abc
import dataclasses
import datetime
import errno
import os
import secrets
import stat
from typing import BinaryIO, Iterator

from ansible_collections.lifeline.dr.plugins.module_utils.errors import (
    ConfigError,
    NotFoundError,
    RepositoryError,
)

_TMP_MARK = ".lifeline-tmp-"


def is_temp_name(key: str) -> bool:
    """A writer's temporary object: never part of a committed backup."""
    return key.rsplit("/", 1)[-1].startswith(_TMP_MARK)


@dataclasses.dataclass(frozen=True)
class ObjectInfo:
    size: int
    modified: datetime.datetime  # UTC


@dataclasses.dataclass(frozen=True)
class Leftover:
    """An uncommitted write: a temp file or an S3 multipart upload."""

    key: str
    started: datetime.datetime  # UTC
    what: str                   # "temp file" or "multipart upload"
    size: int = 0
    handle: str = ""            # the upload id of a multipart upload


def check_key(key: str) -> str:
    parts = key.split("/")
    if not key or key.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise ConfigError("invalid repository key %r" % key)
    return key


class ObjectWriter(abc.ABC):
    @abc.abstractmethod
    def write(self, data: bytes) -> None:
        """Append data; may block while earlier parts upload (that is what bounds memory)."""

    @abc.abstractmethod
    def commit(self) -> int:
        """Make the object visible atomically and return its confirmed stored size."""

    @abc.abstractmethod
    def abort(self) -> None:
        """Discard everything written; safe to call more than once or after commit failed."""


class Repository(abc.ABC):
    def __init__(self, name: str) -> None:
        self.name = name

    @abc.abstractmethod
    def describe(self) -> str:
        """Where this repository is, for messages (never includes credentials)."""

    @abc.abstractmethod
    def open_writer(self, key: str, *, size_hint: int | None = None) -> ObjectWriter: ...

    @abc.abstractmethod
    def open_reader(self, key: str) -> BinaryIO: ...

    @abc.abstractmethod
    def stat(self, key: str) -> int:
        """Return the stored size of ``key``."""

    @abc.abstractmethod
    def list(self, prefix: str = "") -> Iterator[str]: ...

    @abc.abstractmethod
    def delete(self, key: str) -> None: ...

    def info(self, key: str) -> ObjectInfo:
        raise RepositoryError("%s cannot report object times" % self.describe())

    def leftovers(self, prefix: str) -> Iterator[Leftover]:
        """Uncommitted writes below ``prefix``; a listing that fails raises."""
        del prefix
        return iter(())

    def remove_leftover(self, leftover: Leftover) -> None:
        self.delete(leftover.key)

    def tidy(self, prefix: str) -> None:
        """Remove what an emptied ``prefix`` leaves behind (empty directories); best effort."""

    def check(self, *, create: bool = True) -> None:
        """Fail early, with the cause, if the repository cannot be reached (``create=False``:
        change nothing, as check mode needs)."""
        for _key in self.list("lifeline-probe/"):
            break

    def put_bytes(self, key: str, data: bytes) -> int:
        writer = self.open_writer(key)
        try:
            writer.write(data)
            return writer.commit()
        except BaseException:
            writer.abort()
            raise

    def get_bytes(self, key: str) -> bytes:
        with self.open_reader(key) as reader:
            return reader.read()

    def close(self) -> None:
        """Release clients and threads; the repository is not used afterwards."""

    def __enter__(self) -> "Repository":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return "<%s %s>" % (type(self).__name__, self.describe())


class _LocalWriter(ObjectWriter):
    def __init__(self, repo: "LocalRepository", key: str) -> None:
        self._repo = repo
        self._key = key
        self._final = repo.path_of(key)
        repo.makedirs(os.path.dirname(self._final))
        self._tmp = os.path.join(os.path.dirname(self._final),
                                 _TMP_MARK + secrets.token_hex(6) + "-" + os.path.basename(self._final))
        try:
            fd = os.open(self._tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except OSError as exc:
            raise repo.error(exc, "creating", key) from None
        self._fh = os.fdopen(fd, "wb", buffering=0)
        self._size = 0

    def write(self, data: bytes) -> None:
        try:
            self._fh.write(data)
        except OSError as exc:
            self.abort()
            raise self._repo.error(exc, "writing", self._key) from None
        self._size += len(data)

    def commit(self) -> int:
        try:
            os.fsync(self._fh.fileno())
            self._fh.close()
            os.rename(self._tmp, self._final)
            self._repo.fsync_dir(os.path.dirname(self._final))
            size = os.stat(self._final).st_size
        except OSError as exc:
            self.abort()
            raise self._repo.error(exc, "committing", self._key) from None
        if size != self._size:
            raise RepositoryError("%s: %s is %d bytes after commit, expected %d"
                                  % (self._repo.describe(), self._key, size, self._size))
        return size

    def abort(self) -> None:
        try:
            self._fh.close()
        except OSError:
            pass
        try:
            os.unlink(self._tmp)
        except FileNotFoundError:
            pass


class LocalRepository(Repository):
    """A directory: 0700 folders, 0600 files, temp file + fsync + rename for every object."""

    def __init__(self, name: str, path: str) -> None:
        super().__init__(name)
        if not path or not os.path.isabs(path):
            raise ConfigError("repository %r: path must be absolute, got %r" % (name, path))
        self.root = os.path.normpath(path)

    def describe(self) -> str:
        return "local repository '%s' (%s)" % (self.name, self.root)

    def error(self, exc: OSError, doing: str, key: str) -> RepositoryError:
        cause = {errno.ENOSPC: "no space left on device", errno.EDQUOT: "disk quota exceeded",
                 errno.EACCES: "permission denied", errno.EROFS: "read-only file system"}.get(
                     exc.errno, exc.strerror or str(exc))
        return RepositoryError("%s: %s while %s %s" % (self.describe(), cause, doing, key))

    def path_of(self, key: str) -> str:
        return os.path.join(self.root, *check_key(key).split("/"))

    def makedirs(self, path: str) -> None:
        """Create ``path`` and every missing parent as 0700 (os.makedirs gives the parents it
        creates the umask's mode, not ``mode``)."""
        try:
            if not os.path.isdir(path):
                parent = os.path.dirname(path)
                if parent != path:
                    self.makedirs(parent)
                try:
                    os.mkdir(path, 0o700)
                except FileExistsError:
                    return
                # The new directory's entry must survive a crash as the objects in it do.
                self.fsync_dir(parent)
        except OSError as exc:
            raise self.error(exc, "creating directory", path) from None

    @staticmethod
    def fsync_dir(path: str) -> None:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def open_writer(self, key: str, *, size_hint: int | None = None) -> ObjectWriter:
        del size_hint  # a file needs no part size
        return _LocalWriter(self, key)

    def open_reader(self, key: str) -> BinaryIO:
        try:
            return open(self.path_of(key), "rb")  # pylint: disable=consider-using-with
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            raise NotFoundError("%s has no %s" % (self.describe(), key)) from None
        except OSError as exc:
            raise self.error(exc, "opening", key) from None

    def stat(self, key: str) -> int:
        try:
            info = os.stat(self.path_of(key))
        except (FileNotFoundError, NotADirectoryError):
            raise NotFoundError("%s has no %s" % (self.describe(), key)) from None
        except OSError as exc:
            raise self.error(exc, "reading", key) from None
        if not stat.S_ISREG(info.st_mode):  # a directory is a prefix of keys, not an object
            raise NotFoundError("%s has no %s" % (self.describe(), key))
        return info.st_size

    def list(self, prefix: str = "") -> Iterator[str]:
        base = self.root
        if prefix:
            base = os.path.join(self.root, *check_key(prefix.rstrip("/")).split("/"))

        def failed(exc: OSError) -> None:
            # A missing prefix is an empty listing; anything else (EACCES, EIO) must not read as
            # "no backups".
            if not (isinstance(exc, FileNotFoundError) and exc.filename == base):
                raise self.error(exc, "listing", prefix or "/")
        for dirpath, _dirs, files in os.walk(base, onerror=failed):
            rel = os.path.relpath(dirpath, self.root)
            for name in files:
                if not name.startswith(_TMP_MARK):
                    yield name if rel == "." else rel.replace(os.sep, "/") + "/" + name

    def info(self, key: str) -> ObjectInfo:
        try:
            st = os.stat(self.path_of(key))
        except (FileNotFoundError, NotADirectoryError):
            raise NotFoundError("%s has no %s" % (self.describe(), key)) from None
        except OSError as exc:
            raise self.error(exc, "reading", key) from None
        return ObjectInfo(st.st_size, datetime.datetime.fromtimestamp(st.st_mtime, datetime.timezone.utc))

    def leftovers(self, prefix: str) -> Iterator[Leftover]:
        base = os.path.join(self.root, *check_key(prefix.rstrip("/")).split("/"))

        def failed(exc: OSError) -> None:
            if not (isinstance(exc, FileNotFoundError) and exc.filename == base):
                raise self.error(exc, "listing", prefix)
        for dirpath, _dirs, files in os.walk(base, onerror=failed):
            rel = os.path.relpath(dirpath, self.root).replace(os.sep, "/")
            for name in files:
                if name.startswith(_TMP_MARK):
                    key = rel + "/" + name
                    try:
                        found = self.info(key)
                    except NotFoundError:
                        continue  # its writer committed or aborted meanwhile
                    yield Leftover(key, found.modified, "temp file", found.size)

    def tidy(self, prefix: str) -> None:
        base = os.path.join(self.root, *check_key(prefix.rstrip("/")).split("/"))
        for dirpath, _dirs, _files in os.walk(base, topdown=False):
            try:
                os.rmdir(dirpath)
            except OSError:
                pass  # not empty (or gone): leave it

    def delete(self, key: str) -> None:
        try:
            os.unlink(self.path_of(key))
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            pass
        except OSError as exc:
            raise self.error(exc, "deleting", key) from None

    def check(self, *, create: bool = True) -> None:
        if not create:
            # The nearest existing ancestor must let us create the root later.
            path = self.root
            while not os.path.exists(path):
                path = os.path.dirname(path)
            if not os.access(path, os.W_OK | os.X_OK):
                raise RepositoryError("%s: %s is not writable" % (self.describe(), path))
            return
        self.makedirs(self.root)
        if not os.access(self.root, os.W_OK | os.X_OK):
            raise RepositoryError("%s: directory is not writable" % self.describe())
