# -*- coding: utf-8 -*-
# Copyright: Lifeline contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The manifest: the one commit marker of a backup, written last, never changed afterwards.

Schema (version 1) is specified in docs/formats.md; ``from_json`` rejects anything else, so a
damaged or foreign manifest is reported, never half-read.
"""
from __future__ import annotations

import dataclasses
import datetime
import json
import re
import secrets
from typing import Any

from ansible_collections.lifeline.dr.plugins.module_utils.errors import ConfigError, IntegrityError

FORMAT = "lifeline-manifest"
VERSION = 1
MANIFEST_NAME = "manifest.json"
# Manifests are small (names, sizes, hashes, row counts); a cap keeps a hostile one from eating memory.
MAX_MANIFEST = 64 * 1024 * 1024
_ID_RE = re.compile(r"^\d{8}T\d{6}Z-[0-9a-f]{4}$")
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def new_backup_id(when: datetime.datetime) -> str:
    return when.strftime("%Y%m%dT%H%M%SZ") + "-" + secrets.token_hex(2)


def is_backup_id(text: Any) -> bool:
    return isinstance(text, str) and bool(_ID_RE.match(text))


def check_name(what: str, value: str) -> str:
    """Site, host and component names become path parts: keep them safe and unambiguous."""
    if not isinstance(value, str) or not _NAME_RE.match(value):
        raise ConfigError("%s %r must be 1-128 characters of letters, digits, '.', '_' or '-' "
                          "and start with a letter or digit" % (what, value))
    return value


def backup_prefix(site: str, host: str, component: str, backup_id: str = "") -> str:
    parts = [check_name("site", site), check_name("host", host), check_name("component", component)]
    if backup_id:
        parts.append(backup_id)
    return "/".join(parts) + "/"


_ARTIFACT_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$")
_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
_KINDS = ("full", "incremental", "schema", "data")
_COMPRESSIONS = ("zstd", "gzip", "none")
_ENCRYPTIONS = ("age", "aes-256-gcm", "none")
_TIME_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?Z$")


def check_artifact_name(value: Any, where: str = "artifact") -> str:
    """Artifact names become file names in staging: one path part, no '/', '..' or NUL."""
    if not isinstance(value, str) or not _ARTIFACT_RE.match(value) or ".." in value:
        raise IntegrityError("%s has an unsafe artifact name %r: only letters, digits, '.', '_' "
                             "and '-' are allowed, no '..'" % (where, value if isinstance(value, str) else type(value).__name__))
    return value


@dataclasses.dataclass
class Artifact:
    name: str            # file name inside the backup directory, e.g. "db-app.dump.zst.age"
    kind: str            # what it holds, e.g. "globals" or "database"
    size: int            # stored (compressed, encrypted) bytes
    sha256: str          # of the stored bytes
    plain_size: int      # bytes the source produced
    meta: dict = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class Manifest:
    backup_id: str
    site: str
    host: str
    component: str
    kind: str                      # full | incremental | schema | data
    started: str
    finished: str
    consistent_at: str             # the moment the data represents (snapshot time)
    compression: str
    encryption: str
    key_id: list
    artifacts: list
    tools: dict = dataclasses.field(default_factory=dict)
    facts: dict = dataclasses.field(default_factory=dict)
    labels: list = dataclasses.field(default_factory=list)
    parent_id: str | None = None

    @property
    def prefix(self) -> str:
        return backup_prefix(self.site, self.host, self.component, self.backup_id)

    def artifact(self, name: str) -> Artifact:
        for art in self.artifacts:
            if art.name == name:
                return art
        raise IntegrityError("backup %s has no artifact %r" % (self.backup_id, name))

    def to_dict(self) -> dict:
        data = dataclasses.asdict(self)
        data = {"format": FORMAT, "version": VERSION, **data}
        return data

    def to_json(self, signer=None) -> bytes:
        """The manifest as stored; ``signer`` (signing.Signer) embeds the host's signature."""
        body = self.to_dict()
        if signer is not None:
            body = signer.sign(body)
        return (json.dumps(body, indent=2, sort_keys=True) + "\n").encode()

    @classmethod
    def from_dict(cls, data: Any, where: str = "manifest") -> "Manifest":
        """Build a manifest from untrusted data, validating every field before anything uses it."""
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise IntegrityError("%s is not a Lifeline manifest" % where)
        if data.get("version") != VERSION:
            raise IntegrityError("%s has schema version %r; this Lifeline reads version %d"
                                 % (where, data.get("version"), VERSION))
        fields = {f.name for f in dataclasses.fields(cls)}
        body = {k: v for k, v in data.items() if k in fields}
        try:
            if not isinstance(body.get("artifacts"), list):
                raise TypeError("artifacts must be a list")
            body["artifacts"] = [Artifact(**a) for a in body["artifacts"]]
            manifest = cls(**body)
        except TypeError as exc:
            raise IntegrityError("%s is incomplete or malformed: %s" % (where, exc)) from None
        manifest.validate(where)
        return manifest

    def validate(self, where: str = "manifest") -> None:
        """Every name and number a restore will use is of the expected type and safe."""
        def bad(what: str) -> IntegrityError:
            return IntegrityError("%s is malformed: %s" % (where, what))
        if not is_backup_id(self.backup_id):
            raise IntegrityError("%s has an invalid backup_id %r" % (where, self.backup_id))
        try:
            for what in ("site", "host", "component"):
                check_name(what, getattr(self, what))
        except ConfigError as exc:
            raise bad(str(exc)) from None
        if self.kind not in _KINDS:
            raise bad("kind %r is not one of %s" % (self.kind, ", ".join(_KINDS)))
        if self.compression not in _COMPRESSIONS or self.encryption not in _ENCRYPTIONS:
            raise bad("unknown compression or encryption")
        for what in ("started", "finished", "consistent_at"):
            if not isinstance(getattr(self, what), str) or not _TIME_RE.match(getattr(self, what)):
                raise bad("%s is not a UTC time" % what)
        if not isinstance(self.key_id, list) or not all(isinstance(k, str) for k in self.key_id):
            raise bad("key_id must be a list of strings")
        for what in ("tools", "facts"):
            if not isinstance(getattr(self, what), dict):
                raise bad("%s must be an object" % what)
        if not isinstance(self.labels, list) or not all(isinstance(x, str) and _NAME_RE.match(x) for x in self.labels):
            raise bad("labels must be a list of simple names")
        if self.parent_id is not None and not is_backup_id(self.parent_id):
            raise bad("parent_id %r is not a backup id" % (self.parent_id,))
        if (self.kind == "incremental") != (self.parent_id is not None):
            raise bad("an incremental backup, and only one, names a parent_id")
        names = set()
        for art in self.artifacts:
            check_artifact_name(art.name, where)
            if art.name in names or art.name == MANIFEST_NAME:
                raise bad("artifact name %r is used twice" % art.name)
            names.add(art.name)
            if not isinstance(art.kind, str) or not _NAME_RE.match(art.kind):
                raise bad("artifact %s has an invalid kind" % art.name)
            for num in (art.size, art.plain_size):
                if not isinstance(num, int) or isinstance(num, bool) or num < 0:
                    raise bad("artifact %s has an invalid size" % art.name)
            if not isinstance(art.sha256, str) or not _SHA256_RE.match(art.sha256):
                raise bad("artifact %s has an invalid sha256" % art.name)
            if not isinstance(art.meta, dict):
                raise bad("artifact %s has invalid meta" % art.name)

    @classmethod
    def from_json(cls, raw: bytes, where: str = "manifest") -> "Manifest":
        return cls.from_dict(parse_json(raw, where), where)


def parse_json(raw: bytes, where: str = "manifest") -> dict:
    """The stored manifest as a JSON object (signature included); IntegrityError otherwise."""
    if len(raw) > MAX_MANIFEST:
        raise IntegrityError("%s is %d bytes, more than a manifest can be (%d)" % (where, len(raw), MAX_MANIFEST))
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise IntegrityError("%s is not valid JSON: %s" % (where, exc)) from None
    if not isinstance(data, dict):
        raise IntegrityError("%s is not a Lifeline manifest" % where)
    return data
