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

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def stop_reason(data_dir: str, timeline: int) -> str:
    """The reason recovery stopped, from the last line of ``<timeline>.history``."""
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
    return found.group(3).strip()


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
        return {"data_dir": data_dir, "replaces_existing": occupied, "target": target.describe(),
                "window": window.to_dict()}

    def run(self, window: Window, target: RecoveryTarget) -> RestoreResult:
        plan = self.plan(window, target)
        aside = None
        if plan["replaces_existing"]:
            self.server.stop()
            aside = "%s.lifeline-old-%s" % (self.server.data_dir.rstrip("/"), utcnow().strftime("%Y%m%dT%H%M%SZ"))
            os.rename(self.server.data_dir, aside)
        try:
            _owned_dir(self.server.data_dir)
            backup_set = self.fetch(self.server.data_dir, target, window)
            self.server.start(timeout=self.recovery_timeout)
            timeline, last = self._wait_promoted()
            reason = stop_reason(self.server.data_dir, timeline)
            prove(target, reason, last)
        except BaseException as exc:
            self._undo(aside)
            if isinstance(exc, LifelineError) and aside:
                raise type(exc)("%s; the previous data directory was put back at %s"
                                % (exc, self.server.data_dir)) from None
            raise
        if aside and not self.keep_previous:
            shutil.rmtree(aside, ignore_errors=True)
        return RestoreResult(data_dir=self.server.data_dir, target=target.describe(), stop_reason=reason,
                             timeline=timeline, last_replayed=isotime(last) if last else None,
                             previous_data_dir=aside if aside and self.keep_previous else None,
                             backup_set=backup_set)

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
