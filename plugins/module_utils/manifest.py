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
_ID_RE = re.compile(r"^\d{8}T\d{6}Z-[0-9a-f]{4}$")
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


def isotime(when: datetime.datetime) -> str:
    """UTC with milliseconds: two backups finishing within one second still order correctly."""
    when = when.astimezone(datetime.timezone.utc)
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + "%03dZ" % (when.microsecond // 1000)


def parse_time(text: str) -> datetime.datetime:
    """Parse an ISO-8601 time; a time without a zone is taken as UTC."""
    try:
        when = datetime.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError("%r is not an ISO-8601 time (example: 2026-11-23T02:00:00Z)" % text) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=datetime.timezone.utc)
    return when.astimezone(datetime.timezone.utc)


def new_backup_id(when: datetime.datetime) -> str:
    return when.strftime("%Y%m%dT%H%M%SZ") + "-" + secrets.token_hex(2)


def is_backup_id(text: str) -> bool:
    return bool(_ID_RE.match(text))


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
    kind: str                      # full | schema | data
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

    def to_json(self) -> bytes:
        return (json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n").encode()

    @classmethod
    def from_dict(cls, data: Any, where: str = "manifest") -> "Manifest":
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise IntegrityError("%s is not a Lifeline manifest" % where)
        if data.get("version") != VERSION:
            raise IntegrityError("%s has schema version %r; this Lifeline reads version %d"
                                 % (where, data.get("version"), VERSION))
        fields = {f.name for f in dataclasses.fields(cls)}
        body = {k: v for k, v in data.items() if k in fields}
        try:
            body["artifacts"] = [Artifact(**a) for a in body.get("artifacts", [])]
            manifest = cls(**body)
        except TypeError as exc:
            raise IntegrityError("%s is incomplete or malformed: %s" % (where, exc)) from None
        if not is_backup_id(manifest.backup_id):
            raise IntegrityError("%s has an invalid backup_id %r" % (where, manifest.backup_id))
        return manifest

    @classmethod
    def from_json(cls, raw: bytes, where: str = "manifest") -> "Manifest":
        try:
            data = json.loads(raw)
        except ValueError as exc:
            raise IntegrityError("%s is not valid JSON: %s" % (where, exc)) from None
        return cls.from_dict(data, where)
