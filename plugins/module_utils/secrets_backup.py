# -*- coding: utf-8 -*-
# Copyright: Lifeline contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The secrets component, backup side: named secret files (env files, TLS keys, credentials).

One artifact per file rather than one archive: each file's owner, group and mode live in its own
artifact's meta, a restore parses no archive format from a repository (no tar member names to
sanitise), one file comes back with stock tools, and each ciphertext is bound to its own name.
A last artifact carries the plaintext digests, encrypted (secrets_format.py says why).

Files are opened with O_NOFOLLOW (a symlink at the path is refused, never followed) and
O_NONBLOCK (a FIFO planted at the path cannot hang the run), checked to be regular files on the
open descriptor, and read in bounded pieces; owner and mode come from that same descriptor.
"""
from __future__ import annotations

import contextlib
import errno
import grp
import io
import os
import pwd
import stat
from typing import Iterator, Sequence

from ansible_collections.lifeline.dr.plugins.module_utils.component import Component, Source
from ansible_collections.lifeline.dr.plugins.module_utils.crypto import Encryption
from ansible_collections.lifeline.dr.plugins.module_utils.errors import ConfigError, SourceError
from ansible_collections.lifeline.dr.plugins.module_utils.secrets_format import (
    DIGESTS_KIND,
    DIGESTS_NAME,
    QUIET_MODES,
    SECRET_KIND,
    Digest,
    SecretMeta,
    account_name,
    check_path,
    digests_json,
    format_mode,
    require_encryption,
)
from ansible_collections.lifeline.dr.plugins.module_utils.timeutil import isotime, utcnow


def _name(lookup, ident: int) -> str | None:
    try:
        return account_name(lookup(ident)[0])
    except KeyError:
        return None


def open_secret(path: str) -> tuple[int, SecretMeta]:
    """An O_NOFOLLOW descriptor of the regular file ``path`` and what it records; SourceError
    or ConfigError naming the path (never its content) otherwise."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise ConfigError("secret file %s is a symlink; secret files are never followed through "
                              "links: list the file it points to instead" % path) from None
        raise SourceError("cannot open secret file %s: %s" % (path, exc.strerror)) from None
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        raise ConfigError("secret file %s is not a regular file; lifeline_secrets_paths lists files "
                          "(back directories up with the files component)" % path)
    mode = stat.S_IMODE(info.st_mode)
    if mode & ~0o777:
        os.close(fd)
        raise ConfigError("secret file %s has mode %s with setuid, setgid or sticky bits; a secret "
                          "file never needs them: chmod 600 it" % (path, format_mode(mode)))
    return fd, SecretMeta(path, mode, info.st_uid, info.st_gid,
                          _name(pwd.getpwuid, info.st_uid), _name(grp.getgrgid, info.st_gid))


class _Reader(io.RawIOBase):
    """Reads a descriptor in bounded pieces and digests what it hands on."""

    def __init__(self, fd: int, digest: Digest) -> None:
        super().__init__()
        self.fd, self.digest = fd, digest

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        data = os.read(self.fd, 1024 * 1024 if size is None or size < 0 else size)
        self.digest.update(data)
        return data


class _SecretFile(Source):
    kind = SECRET_KIND

    def __init__(self, comp: "SecretsComponent", index: int, path: str) -> None:
        self.comp, self.path = comp, path
        self.name = "secret-%04d" % index
        self.meta = {}

    @contextlib.contextmanager
    def open(self):
        fd, found = open_secret(self.path)
        try:
            self.meta = found.to_meta()
            digest = Digest()
            yield _Reader(fd, digest)
            self.comp.digests[self.name] = {"sha256": digest.hexdigest(), "size": digest.size}
        finally:
            os.close(fd)


class _Digests(Source):
    kind = DIGESTS_KIND
    name = DIGESTS_NAME

    def __init__(self, comp: "SecretsComponent") -> None:
        self.comp = comp
        self.meta = {}

    @contextlib.contextmanager
    def open(self):
        yield io.BytesIO(digests_json(self.comp.digests))


class SecretsComponent(Component):
    """Backs up ``paths``; refuses ``encryption`` none. ``warnings`` name files whose mode is not
    0600 or 0400 (they are backed up all the same)."""

    name = "secrets"

    def __init__(self, paths: Sequence[str], *, encryption: Encryption | str) -> None:
        super().__init__()
        require_encryption(encryption)
        if not paths:
            raise ConfigError("no secret files to back up: set lifeline_secrets_paths (module option "
                              "paths) to the absolute paths of the files")
        self.paths = list(dict.fromkeys(check_path(p, "lifeline_secrets_paths entry") for p in paths))
        self.digests: dict = {}
        self.warnings: list[str] = []

    def prepare(self) -> None:
        """Every path opened and checked before anything is stored; mode warnings gathered."""
        self.warnings = []
        for path in self.paths:
            fd, found = open_secret(path)
            os.close(fd)
            if found.mode not in QUIET_MODES:
                self.warnings.append(
                    "secret file %s has mode %s, not 0600 or 0400: others than its owner may read it; "
                    "backed up anyway, chmod 600 it" % (path, format_mode(found.mode)))
        self.facts = {"paths": list(self.paths)}

    def plan(self) -> list:
        return ["secret %s" % p for p in self.paths]

    def artifacts(self) -> Iterator[Source]:
        self.digests = {}
        for index, path in enumerate(self.paths, 1):
            yield _SecretFile(self, index, path)
        self.consistent_at = isotime(utcnow())
        yield _Digests(self)
