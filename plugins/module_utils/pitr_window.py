# -*- coding: utf-8 -*-
# Copyright: Lifeline contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Recovery targets and the recoverable window, from ``pgbackrest info`` (hostile input).

The window runs from the stop time of the oldest base backup (the earliest moment a restore can
reach: it must replay at least to the backup's end) to the archive time of the newest WAL segment
in the repository (WAL holds nothing newer than the moment it was archived). A target outside it
is refused before anything is touched; inside it, PostgreSQL itself refuses to promote when the
WAL ends before the target, and the restore proves from the timeline history where it stopped.
"""
from __future__ import annotations

import dataclasses
import datetime
import enum
import re

from ansible_collections.lifeline.dr.plugins.module_utils.errors import ConfigError, IntegrityError, NotFoundError
from ansible_collections.lifeline.dr.plugins.module_utils.timeutil import isotime, parse_time, utcnow

_SEGMENT_RE = re.compile(r"^[0-9A-F]{24}$")
_LABEL_RE = re.compile(r"^\d{8}-\d{6}F(_\d{8}-\d{6}[DI])?$")
#: a base backup a restore may name: a pgBackRest label or a WAL-G backup name
_BACKUP_TARGET_RE = re.compile(r"^(\d{8}-\d{6}F(_\d{8}-\d{6}[DI])?|base_[0-9A-F]{24}(_D_[0-9A-F]{24})?)$")
_NAME_RE = re.compile(r"^[\x20-\x7e]{1,63}$")
_ARCHIVE_ID_RE = re.compile(r"^\d{1,3}-\d{1,6}$")


class TargetKind(enum.Enum):
    LATEST = "latest"
    TIME = "time"
    XID = "xid"
    NAME = "name"
    IMMEDIATE = "immediate"
    BACKUP = "backup"  # the end of one base backup, by its label


@dataclasses.dataclass(frozen=True)
class RecoveryTarget:
    kind: TargetKind
    value: str = ""
    time: datetime.datetime | None = None

    @classmethod
    def parse(cls, *, kind: str = "latest", value: str | None = None) -> "RecoveryTarget":
        """``kind`` latest/immediate need no value; time an ISO-8601 time (no zone: UTC); xid a
        transaction id; name a restore point (pg_create_restore_point)."""
        try:
            k = TargetKind(kind)
        except ValueError:
            raise ConfigError("recovery target %r: use one of %s" % (kind, ", ".join(t.value for t in TargetKind))) from None
        if k in (TargetKind.LATEST, TargetKind.IMMEDIATE):
            return cls(k)
        if not value:
            raise ConfigError("a %s recovery target needs a value (target)" % k.value)
        value = str(value).strip()
        if k is TargetKind.TIME:
            when = parse_time(value)
            return cls(k, when.strftime("%Y-%m-%d %H:%M:%S.%f+00"), when)
        if k is TargetKind.XID and not value.isdigit():
            raise ConfigError("transaction id target %r is not a number" % value)
        if k is TargetKind.BACKUP and not _BACKUP_TARGET_RE.match(value):
            raise ConfigError("%r is not a backup label (pgBackRest: like 20261123-020000F; WAL-G: "
                              "base_<24 hex digits>)" % value)
        if k is TargetKind.NAME and not _NAME_RE.match(value):
            raise ConfigError("restore point name %r: printable text of 1 to 63 characters" % value)
        return cls(k, value)

    @classmethod
    def from_point(cls, point: str) -> "RecoveryTarget":
        """``lifeline_restore_point``: latest, immediate, a backup label, or an ISO-8601 time."""
        point = str(point or "latest").strip()
        if point in ("latest", "immediate"):
            return cls.parse(kind=point)
        if _BACKUP_TARGET_RE.match(point):
            return cls.parse(kind="backup", value=point)
        return cls.parse(kind="time", value=point)

    def pgbackrest_args(self) -> list:
        if self.kind is TargetKind.BACKUP:
            return ["--set=" + self.value, "--type=immediate", "--target-action=promote"]
        if self.kind is TargetKind.LATEST:
            return ["--type=default"]
        if self.kind is TargetKind.IMMEDIATE:
            return ["--type=immediate", "--target-action=promote"]
        return ["--type=" + self.kind.value, "--target=" + self.value, "--target-action=promote"]

    def describe(self) -> str:
        return self.kind.value if not self.value else "%s %s" % (self.kind.value, self.value)


@dataclasses.dataclass(frozen=True)
class BaseBackup:
    label: str
    type: str
    start: datetime.datetime
    stop: datetime.datetime
    wal_start: str
    wal_stop: str
    size: int
    repo_size: int

    def to_dict(self) -> dict:
        return {"label": self.label, "type": self.type, "start": isotime(self.start), "stop": isotime(self.stop),
                "wal_start": self.wal_start, "wal_stop": self.wal_stop, "size": self.size,
                "repo_size": self.repo_size}


@dataclasses.dataclass(frozen=True)
class Window:
    backups: tuple
    oldest: datetime.datetime | None
    newest: datetime.datetime | None
    last_segment: str | None
    system_id: int | None
    pg_version: str | None

    def lag(self, now: datetime.datetime | None = None) -> float | None:
        if self.newest is None:
            return None
        return max(0.0, ((now or utcnow()) - self.newest).total_seconds())

    def to_dict(self) -> dict:
        return {"backups": [b.to_dict() for b in self.backups],
                "oldest": isotime(self.oldest) if self.oldest else None,
                "newest": isotime(self.newest) if self.newest else None,
                "last_segment": self.last_segment, "archive_lag": self.lag(),
                "system_id": str(self.system_id) if self.system_id is not None else None,
                "pg_version": self.pg_version}

    def check(self, target: RecoveryTarget) -> None:
        """NotFoundError without a base backup; ConfigError for a time outside the window."""
        if not self.backups:
            raise NotFoundError("the stanza has no base backup: take one (postgres_pitr action=backup) "
                                "before restoring")
        if target.kind is TargetKind.BACKUP and target.value not in {b.label for b in self.backups}:
            raise ConfigError("base backup %s is not in the repository (have: %s): nothing was touched"
                              % (target.value, ", ".join(b.label for b in self.backups)))
        if target.kind is not TargetKind.TIME:
            return
        if target.time is None or self.oldest is None:
            raise ConfigError("a time target without a time (internal)")
        if target.time < self.oldest:
            raise ConfigError("recovery target %s is before the oldest restorable time %s (end of the "
                              "oldest base backup %s): nothing was touched; pick a time inside the "
                              "window %s .. %s" % (isotime(target.time), isotime(self.oldest),
                                                   self.backups[0].label, isotime(self.oldest), isotime(self.newest)))
        if self.newest is None or target.time > self.newest:
            raise ConfigError("recovery target %s is after the newest archived WAL (%s, segment %s): "
                              "nothing was touched; pick a time inside the window %s .. %s, or "
                              "'latest'" % (isotime(target.time), isotime(self.newest) if self.newest else "none",
                                            self.last_segment, isotime(self.oldest),
                                            isotime(self.newest) if self.newest else "none"))


def _epoch(value, what: str) -> datetime.datetime:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 < value < 2 ** 40:
        raise IntegrityError("pgbackrest info: %s is not a plausible time: %r" % (what, value))
    return datetime.datetime.fromtimestamp(value, datetime.timezone.utc)


def _segment(value, what: str) -> str:
    if not isinstance(value, str) or not _SEGMENT_RE.match(value):
        raise IntegrityError("pgbackrest info: %s is not a WAL segment name: %r" % (what, str(value)[:40]))
    return value


def parse_backups(entry: dict) -> list:
    out = []
    for raw in entry.get("backup") or []:
        if not isinstance(raw, dict) or raw.get("error"):
            continue  # a backup pgBackRest itself marks as bad is no restore base
        label = raw.get("label")
        if not isinstance(label, str) or not _LABEL_RE.match(label):
            raise IntegrityError("pgbackrest info: unexpected backup label %r" % str(label)[:40])
        stamps, archive, info = raw.get("timestamp") or {}, raw.get("archive") or {}, raw.get("info") or {}
        out.append(BaseBackup(
            label=label, type=str(raw.get("type")), start=_epoch(stamps.get("start"), label + " start"),
            stop=_epoch(stamps.get("stop"), label + " stop"),
            wal_start=_segment(archive.get("start"), label + " archive start"),
            wal_stop=_segment(archive.get("stop"), label + " archive stop"),
            size=int(info.get("size") or 0), repo_size=int((info.get("repository") or {}).get("size") or 0)))
    return sorted(out, key=lambda b: b.stop)


def newest_segment(entry: dict) -> str | None:
    newest = None
    for raw in entry.get("archive") or []:
        if isinstance(raw, dict) and raw.get("max"):
            seg = _segment(raw["max"], "archive max")
            newest = max(newest or seg, seg)
    return newest


def newest_archive_dirs(entry: dict) -> list:
    """``<archive id>/<first 16 of the newest segment>`` per archive id (the repository
    directories that hold each id's newest segment)."""
    out = []
    for raw in entry.get("archive") or []:
        if isinstance(raw, dict) and raw.get("max"):
            archive_id = str(raw.get("id"))
            if not _ARCHIVE_ID_RE.match(archive_id):
                raise IntegrityError("pgbackrest info: unexpected archive id %r" % archive_id[:40])
            out.append("%s/%s" % (archive_id, _segment(raw["max"], "archive max")[:16]))
    return out


def window(entry: dict, *, segment_times: dict) -> Window:
    """The window from a stanza's ``info`` entry and ``segment_times`` (segment name -> archive
    time, from the repository listing)."""
    backups = parse_backups(entry)
    last = newest_segment(entry)
    newest = segment_times.get(last) if last else None
    dbs = [d for d in entry.get("db") or [] if isinstance(d, dict)]
    current = max(dbs, key=lambda d: d.get("id") or 0) if dbs else {}
    system_id = current.get("system-id")
    return Window(backups=tuple(backups), oldest=backups[0].stop if backups else None,
                  newest=max(newest, backups[-1].stop) if newest and backups else newest,
                  last_segment=last, system_id=int(system_id) if isinstance(system_id, int) else None,
                  pg_version=str(current["version"]) if current.get("version") else None)


def segment_times(listing: dict) -> dict:
    """``repo-ls --output=json`` of an archive directory -> {segment: archive time}. The listing
    gives whole seconds, truncated: one second is added so that the window's end is an upper
    bound (a target past the WAL's real end is still caught: PostgreSQL refuses to promote)."""
    out = {}
    for name, meta in (listing or {}).items():
        base = str(name).rsplit("/", 1)[-1]
        seg = base.split("-", 1)[0].split(".", 1)[0]
        if _SEGMENT_RE.match(seg) and "." not in base.split("-", 1)[0] and isinstance(meta, dict):
            if meta.get("type") == "file" and isinstance(meta.get("time"), int):
                when = _epoch(meta["time"], seg) + datetime.timedelta(seconds=1)
                out[seg] = max(out.get(seg, when), when)
    return out
