# -*- coding: utf-8 -*-
# Copyright: Lifeline contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Run WAL-G as the postgres user with Lifeline's 0600 config file (``wal-g --config``; no secret
in argv or the environment) and read its answers back.

Everything WAL-G prints about a storage was read from that storage: hostile input. Backup names,
segment names, times and sizes are validated before anything uses them; messages are cleaned
(pgbackrest_run.clean) and bounded.
"""
from __future__ import annotations

import dataclasses
import datetime
import json
import os
import re
import subprocess

from ansible_collections.lifeline.dr.plugins.module_utils.errors import (
    DecryptionError,
    DependencyError,
    IntegrityError,
    LifelineError,
    NotFoundError,
    RepositoryError,
    SourceError,
)
from ansible_collections.lifeline.dr.plugins.module_utils.pgbackrest_run import clean

SEGMENT_RE = re.compile(r"^[0-9A-F]{24}$")
#: base_<start segment>, a delta: base_<start segment>_D_<segment of the backup it is based on>
BACKUP_NAME_RE = re.compile(r"^base_[0-9A-F]{24}(_D_[0-9A-F]{24})?$")
_LSN_RE = re.compile(r"^[0-9A-F]{1,8}/[0-9A-F]{1,8}$")
#: ``wal-g st ls`` rows: type, size, Go's time.Time String(), name
_LS_ROW_RE = re.compile(r"^obj\s+(\d+)\s+(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)(\.\d+)? ([+-]\d{4}) \S+\s+(\S+)$")
#: a WAL segment in the storage: its name, and a compression suffix
_WAL_OBJECT_RE = re.compile(r"^[0-9A-F]{24}(\.[a-z0-9]{1,8})?$")
WAL_SEGMENT_SIZE = 16 * 1024 * 1024


def classify(message: str, *, what: str) -> LifelineError:
    """The typed error for a WAL-G failure message."""
    text = clean(message)
    low = text.lower()
    if "decrypt" in low or "libsodium" in low or "crypter" in low:
        return DecryptionError("%s: the storage cannot be decrypted: wrong WAL-G key (lifeline_postgresql_pitr_cipher_pass "
                               "must be the 64 hex digits the prefix was written with), or altered files. "
                               "WAL-G said: %s" % (what, text[:200]))
    if "no backups found" in low or "backup not found" in low or "not found in storage" in low:
        return NotFoundError("%s: not in the WAL-G storage: %s" % (what, text))
    if any(s in low for s in ("connection refused", "no such host", "timeout", "permission denied", "access denied",
                              "accessdenied", "tls", "x509", "nosuchbucket", "unable to", "dial tcp")):
        return RepositoryError("%s: the WAL-G storage is not reachable: %s. Check lifeline_repositories (path "
                               "permissions for the postgres user, S3 endpoint, credentials, TLS)." % (what, text))
    return SourceError("%s failed: %s" % (what, text))


class Walg:
    """One config file; every command runs as ``user`` (when we are root)."""

    def __init__(self, config: str, *, exe: str = "/usr/local/bin/wal-g", user: str | None = "postgres",
                 timeout: int = 3600) -> None:
        self.config = config
        self.exe = exe
        self.user = user if os.geteuid() == 0 else None
        self.timeout = timeout

    def argv(self, *args: str) -> list:
        return [self.exe, "--config", self.config, *args]

    def run(self, *args: str, what: str | None = None) -> str:
        """stdout of ``wal-g --config <file> <args>``; a typed error when it fails."""
        what = what or "wal-g " + " ".join(args[:2])
        if not os.path.exists(self.exe):
            raise DependencyError("WAL-G is not installed (%s missing): set lifeline_postgresql_pitr: walg on the "
                                  "host so the postgresql role installs it" % self.exe)
        try:
            proc = subprocess.run(self.argv(*args), capture_output=True, text=True, errors="replace",
                                  timeout=self.timeout, check=False, user=self.user, cwd="/", env=_env())
        except subprocess.TimeoutExpired:
            raise RepositoryError("%s did not finish in %ds: the storage hangs or the job is too large for "
                                  "the timeout" % (what, self.timeout)) from None
        except OSError as exc:
            raise DependencyError("cannot run %s as %s: %s" % (self.exe, self.user, exc)) from None
        if proc.returncode != 0:
            raise classify(proc.stderr or proc.stdout, what=what)
        return proc.stdout


def _env() -> dict:
    """A minimal environment: no inherited WALG_*/AWS_* variable overrides the config file."""
    keep = ("PATH", "LANG", "LC_ALL", "TZ")
    return {k: v for k, v in os.environ.items() if k in keep}


@dataclasses.dataclass(frozen=True)
class WalgBackup:
    name: str
    start: datetime.datetime
    stop: datetime.datetime
    start_lsn: str
    finish_lsn: str
    system_id: int | None
    pg_version: int | None
    size: int
    repo_size: int
    permanent: bool

    @property
    def delta(self) -> bool:
        return "_D_" in self.name

    @property
    def wal_start(self) -> str:
        return self.name[5:29]

    @property
    def wal_stop(self) -> str:
        """The segment holding the backup's end: same timeline as its start, 16 MiB segments."""
        high, low = (int(p, 16) for p in self.finish_lsn.split("/"))
        number = ((high << 32) + low) // WAL_SEGMENT_SIZE
        return "%s%08X%08X" % (self.wal_start[:8], number >> 8, number & 0xFF)


def _time(value, what: str) -> datetime.datetime:
    """An RFC 3339 time from WAL-G's JSON (Go prints up to nanoseconds, and Z or an offset)."""
    if not isinstance(value, str):
        raise IntegrityError("wal-g backup-list: %s is not a time: %r" % (what, str(value)[:40]))
    found = re.match(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)$", value)
    if not found:
        raise IntegrityError("wal-g backup-list: %s is not a time: %r" % (what, value[:40]))
    frac = (found.group(2) or ".0")[:7]
    zone = "+00:00" if found.group(3) == "Z" else found.group(3)
    return datetime.datetime.fromisoformat(found.group(1) + frac + zone).astimezone(datetime.timezone.utc)


def _int(value, what: str, *, optional: bool = False) -> int | None:
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise IntegrityError("wal-g backup-list: %s is not a number: %r" % (what, str(value)[:40]))
    return value


def parse_backup_list(out: str) -> list:
    """``wal-g backup-list --detail --json`` -> [WalgBackup], oldest first. No output (an empty
    storage) is no backup."""
    if not out.strip():
        return []
    try:
        data = json.loads(out)
    except ValueError:
        raise IntegrityError("wal-g backup-list printed no JSON: %s" % clean(out, 200)) from None
    if data is None:
        return []
    if not isinstance(data, list):
        raise IntegrityError("wal-g backup-list printed unexpected JSON")
    out_list = []
    for raw in data:
        if not isinstance(raw, dict):
            raise IntegrityError("wal-g backup-list: an entry is not an object")
        name = raw.get("backup_name")
        if not isinstance(name, str) or not BACKUP_NAME_RE.match(name):
            raise IntegrityError("wal-g backup-list: unexpected backup name %r" % str(name)[:60])
        for key in ("start_lsn", "finish_lsn"):
            if not isinstance(raw.get(key), str) or not _LSN_RE.match(raw[key]):
                raise IntegrityError("wal-g backup-list: %s %s is not an LSN" % (name, key))
        system_id = raw.get("system_identifier")
        out_list.append(WalgBackup(
            name=name, start=_time(raw.get("start_time"), name + " start_time"),
            stop=_time(raw.get("finish_time"), name + " finish_time"),
            start_lsn=raw["start_lsn"], finish_lsn=raw["finish_lsn"],
            system_id=_int(system_id, name + " system_identifier", optional=True),
            pg_version=_int(raw.get("pg_version"), name + " pg_version", optional=True),
            size=_int(raw.get("uncompressed_size") or 0, name + " size"),
            repo_size=_int(raw.get("compressed_size") or 0, name + " compressed size"),
            permanent=raw.get("is_permanent") is True))
    return sorted(out_list, key=lambda b: b.stop)


def parse_wal_listing(out: str) -> dict:
    """``wal-g st ls wal_005/`` -> {segment: upload time, rounded up to the second (an upper bound,
    as for pgBackRest)}. Other objects (history files, partial segments) are left out."""
    times = {}
    for line in out.splitlines()[1:]:
        found = _LS_ROW_RE.match(line.strip())
        if not found:
            continue
        if not _WAL_OBJECT_RE.match(found.group(5)):
            continue
        seg = found.group(5)[:24]
        zone = found.group(4)
        when = datetime.datetime.fromisoformat("%s%s:%s" % (found.group(2), zone[:3], zone[3:]))
        when = when.astimezone(datetime.timezone.utc) + datetime.timedelta(seconds=1 if found.group(3) else 0)
        times[seg] = max(times.get(seg, when), when)
    return times


def parse_wal_verify(out: str) -> dict:
    """``wal-g wal-verify integrity timeline --json`` -> {status, gaps, ranges, timeline}; a gap is
    a MISSING_LOST range, named by its first and last segment."""
    try:
        data = json.loads(out)
    except ValueError:
        raise IntegrityError("wal-g wal-verify printed no JSON: %s" % clean(out, 200)) from None
    if not isinstance(data, dict):
        raise IntegrityError("wal-g wal-verify printed unexpected JSON")
    integrity = data.get("integrity") if isinstance(data.get("integrity"), dict) else {}
    ranges = []
    for raw in integrity.get("details") or []:
        if not isinstance(raw, dict):
            raise IntegrityError("wal-g wal-verify: a range is not an object")
        first, last = raw.get("start_segment"), raw.get("end_segment")
        if not all(isinstance(s, str) and SEGMENT_RE.match(s) for s in (first, last)):
            raise IntegrityError("wal-g wal-verify: a range has no valid segment names")
        status = str(raw.get("status"))
        if status not in ("FOUND", "MISSING_DELAYED", "MISSING_UPLOADING", "MISSING_LOST"):
            raise IntegrityError("wal-g wal-verify: unknown segment status %r" % status[:30])
        ranges.append({"timeline": _int(raw.get("timeline_id"), "timeline_id"), "first": first, "last": last,
                       "count": _int(raw.get("segments_count"), "segments_count"), "status": status})
    timeline = data.get("timeline") if isinstance(data.get("timeline"), dict) else {}
    details = timeline.get("details") if isinstance(timeline.get("details"), dict) else {}
    return {"integrity": str(integrity.get("status") or "UNKNOWN")[:20], "ranges": ranges,
            "gaps": [r for r in ranges if r["status"] == "MISSING_LOST"],
            "timeline": str(timeline.get("status") or "UNKNOWN")[:20],
            "current_timeline": details.get("current_timeline_id"),
            "highest_storage_timeline": details.get("highest_storage_timeline_id")}
