# -*- coding: utf-8 -*-
# Copyright: Lifeline contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Physical restore to a point in time, proven.

Phases: check the target against the window (nothing touched yet) -> make room (an empty or new
data directory; an existing one only with ``replace``, moved aside, not deleted) -> pgbackrest
restore with archive_mode off (a restored cluster must never archive into the source's stanza)
-> start, wait for promotion -> prove the target was reached from the new timeline's history
file, which PostgreSQL writes with the reason recovery stopped -> drop the old directory. Any
failure after the old directory moved aside puts it back.
"""
from __future__ import annotations

import dataclasses
import datetime
import os
import pwd
import re
import shutil
import time

from ansible_collections.lifeline.dr.plugins.module_utils.errors import LifelineError, RestoreError, SourceError
from ansible_collections.lifeline.dr.plugins.module_utils.pgbackrest_run import Pgbackrest
from ansible_collections.lifeline.dr.plugins.module_utils.pitr_sanitize import defuse
from ansible_collections.lifeline.dr.plugins.module_utils.pitr_server import Server
from ansible_collections.lifeline.dr.plugins.module_utils.pitr_window import RecoveryTarget, TargetKind, Window
from ansible_collections.lifeline.dr.plugins.module_utils.postgres import PgConnection
from ansible_collections.lifeline.dr.plugins.module_utils.timeutil import isotime, utcnow

_HISTORY_RE = re.compile(r"^(\d+)\t([0-9A-F]+/[0-9A-F]+)\t(.*)$")
_STOP_TIME_RE = re.compile(r"^(before|after) (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d+)?)([+-]\d\d(?::?\d\d)?)?$")


@dataclasses.dataclass
class RestoreResult:
    data_dir: str
    target: str
    stop_reason: str
    timeline: int
    last_replayed: str | None
    previous_data_dir: str | None
    backup_set: str | None
    disabled_settings: list = dataclasses.field(default_factory=list)
    #: the time the restored data is as of (a time target, else the last replayed commit or the base backup's end)
    consistent_at: str | None = None
    restore_point_age_seconds: float | None = None
    #: what was verified on the running, promoted cluster
    checks: list = dataclasses.field(default_factory=list)
    phases: dict = dataclasses.field(default_factory=dict)
    total_seconds: float = 0.0

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def stop_reason(data_dir: str, timeline: int) -> str:
    """The reason recovery stopped, from the last line of ``<timeline>.history``."""
    return _history_entry(data_dir, timeline).group(3).strip()


def switch_segment(data_dir: str, timeline: int, segment_size: int) -> str:
    """The WAL segment (of the old timeline) where recovery ended and the new timeline begins."""
    entry = _history_entry(data_dir, timeline)
    high, low = (int(part, 16) for part in entry.group(2).split("/"))
    position = ((high << 32) | low) // segment_size
    per_log = 0x100000000 // segment_size
    return "%08X%08X%08X" % (int(entry.group(1)), position // per_log, position % per_log)


def _history_entry(data_dir: str, timeline: int) -> re.Match:
    path = os.path.join(data_dir, "pg_wal", "%08X.history" % timeline)
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            lines = [ln.rstrip("\n") for ln in fh if ln.strip()]
    except OSError as exc:
        raise RestoreError("no timeline history %s after recovery (%s): the server did not end "
                           "archive recovery" % (path, exc.strerror)) from None
    found = _HISTORY_RE.match(lines[-1]) if lines else None
    if not found:
        raise RestoreError("timeline history %s has no readable last entry" % path)
    return found


def _stop_time(reason: str) -> datetime.datetime | None:
    found = _STOP_TIME_RE.match(reason)
    if not found:
        return None
    zone = found.group(3) or "+00"
    zone = zone if ":" in zone or len(zone) > 3 else zone + ":00"
    return datetime.datetime.fromisoformat(found.group(2) + zone).astimezone(datetime.timezone.utc)


def prove(target: RecoveryTarget, reason: str, last_replayed: datetime.datetime | None) -> None:
    """RestoreError unless ``reason`` (history file) shows recovery stopped at ``target``."""
    kind = target.kind
    ok = False
    if kind is TargetKind.LATEST:
        ok = reason == "no recovery target specified"
    elif kind in (TargetKind.IMMEDIATE, TargetKind.BACKUP):
        ok = reason == "reached consistency"
    elif kind is TargetKind.NAME:
        ok = reason == 'at restore point "%s"' % target.value
    elif kind is TargetKind.XID:
        ok = reason in ("after transaction %s" % target.value, "before transaction %s" % target.value)
    elif kind is TargetKind.TIME:
        stopped = _stop_time(reason)
        ok = stopped is not None and target.time is not None and stopped > target.time and (
            last_replayed is None or last_replayed <= target.time)
    if not ok:
        raise RestoreError("recovery did not stop at the target %s: PostgreSQL recorded %r (last replayed "
                           "transaction %s); the restored cluster is not the one asked for"
                           % (target.describe(), reason, isotime(last_replayed) if last_replayed else "none"))


def _backup_set(window: Window, target: RecoveryTarget) -> str | None:
    """The base backup pgBackRest restores: the named one, the newest ending before a time
    target, else the newest."""
    if target.kind is TargetKind.BACKUP:
        return target.value
    usable = [b for b in window.backups if target.time is None or b.stop <= target.time]
    return usable[-1].label if usable else None


def target_time(window: Window, target: RecoveryTarget) -> datetime.datetime | None:
    """The time ``target`` stands for, known before the restore: the time itself, the end of the
    base backup it names (``immediate``: the newest), or the window's end (``latest``). The other
    components of a site restore are chosen at it; None for an xid or a restore point name."""
    if target.kind is TargetKind.TIME:
        return target.time
    if target.kind is TargetKind.LATEST:
        return window.newest
    label = _backup_set(window, target)
    return next((b.stop for b in window.backups if b.label == label), None)


def _owned_dir(path: str) -> None:
    os.makedirs(path, mode=0o700, exist_ok=True)
    os.chmod(path, 0o700)
    if os.geteuid() == 0:
        pw = pwd.getpwnam("postgres")
        os.chown(path, pw.pw_uid, pw.pw_gid)


class PitrRestore:
    """One restore of ``pgbackrest``'s stanza into ``server.data_dir``."""

    def __init__(self, pgbackrest: Pgbackrest | None, server: Server, conn: PgConnection, *,
                 replace: bool = False, keep_previous: bool = False, recovery_timeout: int = 3600,
                 fetch=None) -> None:
        self.pgbackrest = pgbackrest
        #: fetch(data_dir, target, window) -> base backup name: puts the base backup and the
        #: recovery settings (archive_mode off, the target, promote) into the empty data_dir
        self.fetch = fetch or self._pgbackrest_fetch
        self.server = server
        self.conn = conn
        self.replace = replace
        self.keep_previous = keep_previous
        self.recovery_timeout = recovery_timeout

    def plan(self, window: Window, target: RecoveryTarget) -> dict:
        """Check everything that can be checked without touching anything."""
        window.check(target)
        data_dir = self.server.data_dir
        occupied = os.path.isdir(data_dir) and bool(os.listdir(data_dir))
        if occupied and not self.replace:
            raise RestoreError("the data directory %s is not empty (and a server may run on it): nothing "
                               "was touched; restore into a new directory, or set replace (the old "
                               "directory is kept aside until the restored cluster is verified)" % data_dir)
        when = target_time(window, target)
        return {"data_dir": data_dir, "replaces_existing": occupied, "target": target.describe(),
                "target_time": isotime(when) if when else None, "backup_set": _backup_set(window, target),
                "window": window.to_dict()}

    def run(self, window: Window, target: RecoveryTarget) -> RestoreResult:
        plan = self.plan(window, target)
        started = time.monotonic()
        phases: dict = {}
        aside = None
        if plan["replaces_existing"]:
            self.server.stop()
            aside = "%s.lifeline-old-%s" % (self.server.data_dir.rstrip("/"), utcnow().strftime("%Y%m%dT%H%M%SZ"))
            os.rename(self.server.data_dir, aside)
        try:
            _owned_dir(self.server.data_dir)
            mark = time.monotonic()
            backup_set = self.fetch(self.server.data_dir, target, window)
            disabled = defuse(self.server.data_dir)
            phases["restore"] = time.monotonic() - mark
            mark = time.monotonic()
            self.server.start(timeout=self.recovery_timeout)
            timeline, last = self._wait_promoted()
            phases["recovery"] = time.monotonic() - mark
            mark = time.monotonic()
            reason = stop_reason(self.server.data_dir, timeline)
            prove(target, reason, last)
            checks = self._verify(window, target, reason, timeline, last)
            phases["verify"] = time.monotonic() - mark
        except BaseException as exc:
            self._undo(aside)
            if isinstance(exc, LifelineError) and aside:
                raise type(exc)("%s; the previous data directory was put back at %s"
                                % (exc, self.server.data_dir)) from None
            raise
        if aside and not self.keep_previous:
            shutil.rmtree(aside, ignore_errors=True)
        consistent = target.time if target.kind is TargetKind.TIME else last or target_time(window, target)
        return RestoreResult(data_dir=self.server.data_dir, target=target.describe(), stop_reason=reason,
                             timeline=timeline, last_replayed=isotime(last) if last else None,
                             previous_data_dir=aside if aside and self.keep_previous else None,
                             backup_set=backup_set, disabled_settings=disabled,
                             consistent_at=isotime(consistent) if consistent else None,
                             restore_point_age_seconds=round((utcnow() - consistent).total_seconds(), 1)
                             if consistent else None,
                             checks=checks, phases={k: round(v, 2) for k, v in phases.items()},
                             total_seconds=round(time.monotonic() - started, 2))

    def _verify(self, window: Window, target: RecoveryTarget, reason: str, timeline: int,
                last: datetime.datetime | None) -> list:
        """The promoted server is the source's cluster (same system identifier as the stanza)
        and answers on its port; returns what was checked, for the report."""
        with self.conn.cursor() as cur:
            cur.execute("SELECT (SELECT system_identifier FROM pg_control_system())::text, "
                        "current_setting('port'), (SELECT count(*) FROM pg_database WHERE datallowconn), "
                        "(SELECT setting::bigint FROM pg_settings WHERE name = 'wal_segment_size')")
            system_id, port, databases, segment_size = cur.fetchone()
        if window.system_id is not None and int(system_id) != window.system_id:
            raise RestoreError("the restored server on port %s has system identifier %s, the stanza's is %s: "
                               "it is not the restored cluster" % (port, system_id, window.system_id))
        if target.kind is TargetKind.LATEST and window.last_segment:
            # "latest" promotes wherever WAL ends: at a gap too. It must end in the newest segment.
            ended = switch_segment(self.server.data_dir, timeline, int(segment_size))
            if ended[8:] < window.last_segment[8:]:
                raise RestoreError("recovery to latest ended in WAL segment %s, before the newest archived "
                                   "segment %s: a segment in between is missing (a WAL gap; postgres_pitr "
                                   "action=verify names it); the restored cluster lacks the data after it"
                                   % (ended, window.last_segment))
        return ["recovery stopped: %s (target %s, proven from the timeline %d history)" % (reason, target.describe(), timeline),
                "last replayed commit: %s" % (isotime(last) if last else "none"),
                "promoted on port %s, system identifier %s (the stanza's), %d database(s) accept connections"
                % (port, system_id, databases)]

    def _pgbackrest_fetch(self, data_dir: str, target: RecoveryTarget, window: Window) -> str | None:
        self.pgbackrest.run("restore", "--pg1-path=" + data_dir, "--archive-mode=off", *target.pgbackrest_args(),
                            what="pgbackrest restore")
        return _backup_set(window, target)

    def _wait_promoted(self) -> tuple:
        deadline = time.monotonic() + self.recovery_timeout
        while True:
            try:
                with self.conn.cursor() as cur:
                    cur.execute("SELECT pg_is_in_recovery(), pg_last_xact_replay_timestamp(), "
                                "(SELECT timeline_id FROM pg_control_checkpoint())")
                    in_recovery, last, timeline = cur.fetchone()
                if not in_recovery:
                    return int(timeline), last.astimezone(datetime.timezone.utc) if last else None
            except SourceError:
                if not self.server.running():
                    raise RestoreError("recovery stopped and the server shut down before the target was "
                                       "reached (missing WAL, or a target beyond the archive): %s"
                                       % self.server.log_tail()) from None
            if time.monotonic() > deadline:
                raise RestoreError("the restored server was still in recovery after %ds: %s"
                                   % (self.recovery_timeout, self.server.log_tail()))
            time.sleep(0.3)

    def _undo(self, aside: str | None) -> None:
        """Stop the half-restored server, move it to ``<dir>.lifeline-failed-<time>`` for inspection
        (so a retry finds the directory empty) and put the old directory back."""
        try:
            self.server.stop(timeout=60)
        except Exception:  # pylint: disable=broad-except
            pass
        failed = "%s.lifeline-failed-%s" % (self.server.data_dir.rstrip("/"), utcnow().strftime("%Y%m%dT%H%M%SZ"))
        if os.path.isdir(self.server.data_dir) and os.listdir(self.server.data_dir):
            os.rename(self.server.data_dir, failed)
        if aside:
            if os.path.isdir(self.server.data_dir):
                os.rmdir(self.server.data_dir)
            os.rename(aside, self.server.data_dir)
