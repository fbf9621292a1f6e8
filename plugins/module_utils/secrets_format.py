# -*- coding: utf-8 -*-
# Copyright: Lifeline contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What a secrets backup holds, and the checks both sides run on it.

A secrets backup has one artifact per file (kind ``secret``: the file's bytes, nothing else, so
``age -d | zstd -d`` gives the file back) whose meta records the path, owner, group and mode,
and one last artifact ``digests.json`` (kind ``digests``) that maps each file's artifact to the
sha256 and size of its plaintext. The digests are encrypted like the files: a plain sha256 of a
short password in a readable manifest can be brute-forced, so the manifest itself holds only
names, sizes and the ciphertext hashes (docs/threat-model.md).

Everything here is read back from a repository as hostile input: paths must be absolute and
normal, modes permission bits only, ids plain integers, names plain account names.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re

from ansible_collections.lifeline.dr.plugins.module_utils.crypto import Encryption
from ansible_collections.lifeline.dr.plugins.module_utils.errors import ConfigError, IntegrityError
from ansible_collections.lifeline.dr.plugins.module_utils.manifest import Artifact, Manifest
from ansible_collections.lifeline.dr.plugins.module_utils.verify import Check

SECRET_KIND = "secret"
DIGESTS_KIND = "digests"
DIGESTS_NAME = "digests.json"
DIGESTS_FORMAT = "lifeline-secrets-digests"
#: a digests document lists names and hex digests only; anything larger is hostile
MAX_DIGESTS = 1024 * 1024
#: secret files are small; reading them in pieces of this size keeps memory bounded anyway
CHUNK = 64 * 1024
#: the modes a secret file should have; anything else is backed up with a warning
QUIET_MODES = (0o600, 0o400)
_ACCOUNT_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,31}\$?$")
_MODE_RE = re.compile(r"^0[0-7]{3}$")
_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
_MAX_ID = 2 ** 32 - 2


def require_encryption(encryption: Encryption | str) -> Encryption:
    """Secrets are never stored in the clear; ConfigError for ``none``."""
    enc = Encryption(encryption)
    if enc is Encryption.NONE:
        raise ConfigError("secret files are always encrypted: encryption 'none' is refused for the "
                          "secrets component; set encryption to age (with recipients) or aes-256-gcm")
    return enc


def check_path(path, where: str = "secret path") -> str:
    """An absolute, normalised path without NUL or '..'; ``where`` says whose path it is."""
    if not isinstance(path, str) or not path:
        raise ConfigError("%s must be a non-empty string, got %r" % (where, type(path).__name__))
    if "\0" in path:
        raise ConfigError("%s contains a NUL byte" % where)
    if not path.startswith("/") or path.startswith("//"):
        raise ConfigError("%s %r is not an absolute path" % (where, path))
    if os.path.normpath(path) != path or ".." in path.split("/") or path == "/":
        raise ConfigError("%s %r is not a normalised path to a file (no '.', '..', '//' or trailing '/')"
                          % (where, path))
    if len(path.encode("utf-8", "surrogateescape")) > 4095:
        raise ConfigError("%s is longer than a path can be" % where)
    return path


def account_name(name) -> str | None:
    """``name`` when it is a plain account name a restore accepts, else None (ids only)."""
    return name if isinstance(name, str) and _ACCOUNT_RE.match(name) else None


def format_mode(mode: int) -> str:
    return "%04o" % mode


@dataclasses.dataclass(frozen=True)
class SecretMeta:
    """One secret file as its artifact's meta records it."""

    path: str
    mode: int
    uid: int
    gid: int
    owner: str | None
    group: str | None

    def to_meta(self) -> dict:
        return {"path": self.path, "mode": format_mode(self.mode), "uid": self.uid, "gid": self.gid,
                "owner": self.owner, "group": self.group}

    @classmethod
    def from_artifact(cls, art: Artifact, backup_id: str) -> "SecretMeta":
        """The meta of a stored artifact, every field checked; IntegrityError otherwise."""
        meta = art.meta
        where = "backup %s: artifact %s" % (backup_id, art.name)
        try:
            path = check_path(meta.get("path"), where + ": path")
        except ConfigError as exc:
            raise IntegrityError("%s; refusing to restore it" % exc) from None
        mode = meta.get("mode")
        if not isinstance(mode, str) or not _MODE_RE.match(mode):
            raise IntegrityError("%s: mode %r is not permission bits (0000-0777); setuid, setgid and "
                                 "sticky bits are never restored on a secret file" % (where, mode))
        ids = [meta.get("uid"), meta.get("gid")]
        if not all(isinstance(i, int) and not isinstance(i, bool) and 0 <= i <= _MAX_ID for i in ids):
            raise IntegrityError("%s: uid and gid must be numeric ids" % where)
        names = [meta.get("owner"), meta.get("group")]
        if not all(n is None or (isinstance(n, str) and _ACCOUNT_RE.match(n)) for n in names):
            raise IntegrityError("%s: owner and group must be account names" % where)
        return cls(path, int(mode, 8), ids[0], ids[1], names[0], names[1])


def secret_artifacts(manifest: Manifest) -> list:
    return [a for a in manifest.artifacts if a.kind == SECRET_KIND]


def digests_json(digests: dict) -> bytes:
    """The digests document: artifact name (without codec suffix) -> {sha256, size}."""
    return json.dumps({"format": DIGESTS_FORMAT, "version": 1, "files": digests}, sort_keys=True).encode()


def parse_digests(raw: bytes, manifest: Manifest) -> dict:
    """artifact name -> (sha256, size) for every secret artifact; IntegrityError when the
    document is malformed or disagrees with the manifest."""
    where = "backup %s: %s" % (manifest.backup_id, DIGESTS_NAME)
    try:
        data = json.loads(raw)
        files = data["files"] if data.get("format") == DIGESTS_FORMAT and data.get("version") == 1 else None
    except (ValueError, AttributeError, KeyError, TypeError):
        files = None
    if not isinstance(files, dict):
        raise IntegrityError("%s is not a secrets digests document" % where)
    out = {}
    for art in secret_artifacts(manifest):
        entry = files.get(stem(art.name))
        if not (isinstance(entry, dict) and isinstance(entry.get("sha256"), str)
                and _SHA256_RE.match(entry["sha256"]) and entry.get("size") == art.plain_size):
            raise IntegrityError("%s has no valid digest for %s (or its size differs from the manifest)"
                                 % (where, art.name))
        out[art.name] = (entry["sha256"], art.plain_size)
    return out


def stem(artifact_name: str) -> str:
    """``secret-0001.zst.age`` -> ``secret-0001``: the digests name files without codec suffixes."""
    return artifact_name.split(".", 1)[0]


class Digest:
    """sha256 and size of a stream fed in pieces."""

    def __init__(self) -> None:
        self._sha = hashlib.sha256()
        self.size = 0

    def update(self, data: bytes) -> None:
        self._sha.update(data)
        self.size += len(data)

    def hexdigest(self) -> str:
        return self._sha.hexdigest()


def digest_fd(fd: int) -> tuple[str, int]:
    """(sha256, size) of an open file from its start, read in bounded pieces."""
    digest, offset = Digest(), 0
    while True:
        data = os.pread(fd, CHUNK, offset)
        if not data:
            return digest.hexdigest(), digest.size
        digest.update(data)
        offset += len(data)


class _SecretCheck(Check):
    """Verify's check of one file's plaintext: its size, and its digest once digests are read."""

    def __init__(self, art: Artifact, seen: dict) -> None:
        self.art, self.seen, self.digest = art, seen, Digest()

    def write(self, data: bytes) -> None:
        self.digest.update(data)

    def reset(self) -> None:
        self.digest = Digest()

    def close(self) -> str:
        if self.digest.size != self.art.plain_size:
            raise IntegrityError("%s holds %d bytes, the manifest records %d"
                                 % (self.art.name, self.digest.size, self.art.plain_size))
        self.seen.setdefault(self.art.name, set()).add(self.digest.hexdigest())
        return "%d bytes, as in the manifest" % self.digest.size


class _DigestsCheck(Check):
    """Verify's check of digests.json: well formed, and agreeing with every file read before."""

    def __init__(self, manifest: Manifest, seen: dict) -> None:
        self.manifest, self.seen, self.data = manifest, seen, bytearray()

    def write(self, data: bytes) -> None:
        if len(self.data) + len(data) > MAX_DIGESTS:
            raise IntegrityError("backup %s: %s is larger than a digests document can be"
                                 % (self.manifest.backup_id, DIGESTS_NAME))
        self.data += data

    def reset(self) -> None:
        self.data = bytearray()

    def close(self) -> str:
        digests = parse_digests(bytes(self.data), self.manifest)
        for name, found in self.seen.items():
            if found != {digests[name][0]}:
                raise IntegrityError("the content of %s does not match the digest the backup carries" % name)
        return "digests of %d files; %d match the content read" % (len(digests), len(self.seen))


def check_for(manifest: Manifest):
    """verify.py's per-artifact content check for a secrets backup (details never hold content)."""
    seen: dict = {}

    def check(art: Artifact) -> Check:
        if art.kind == DIGESTS_KIND:
            return _DigestsCheck(manifest, seen)
        return _SecretCheck(art, seen)

    return check
