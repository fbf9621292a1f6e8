# -*- coding: utf-8 -*-
# Copyright: Lifeline contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The retention plan: which backups of one host's component to keep, and why. Pure logic over a
catalog snapshot (barman's retention policies), so it is tested without any storage.

GFS counts periods that hold a backup (restic's and borg's semantics), not calendar periods: a
job that stopped running a month ago does not see its last dailies age out. Periods are the UTC
day, ISO week and month of the manifest's ``finished`` time, never an object's mtime.

Beyond GFS, a backup is kept when it is the newest of its series, pinned (a pin label in its
manifest, or a ``pins`` entry whose date has not passed), or a member of the chain a kept
incremental needs (parents, up to its full backup). ``protected`` ids (hints from manifests that
could not be trusted) only ever add keeps: nothing read from an untrusted source can cause a delete.
"""
from __future__ import annotations

import dataclasses
import datetime
from typing import Iterable, Sequence

from ansible_collections.lifeline.dr.plugins.module_utils.errors import ConfigError
from ansible_collections.lifeline.dr.plugins.module_utils.manifest import is_backup_id
from ansible_collections.lifeline.dr.plugins.module_utils.timeutil import parse_time

#: the label a restore gives the backup it takes before replacing data (catalog.SAFETY_LABEL)
_SAFETY = "safety"
_RESTORABLE = ("full", "incremental")
FOREVER = "forever"


@dataclasses.dataclass(frozen=True)
class Policy:
    daily: int = 7
    weekly: int = 4
    monthly: int = 12
    #: manifest labels that pin a backup for good
    pin_labels: tuple = ("keep",)
    #: backup id -> "YYYY-MM-DD" (kept through that UTC day) or "forever"
    pins: tuple = ()

    @classmethod
    def from_params(cls, params: dict) -> "Policy":
        def count(name: str, default: int) -> int:
            value = params.get(name)
            value = default if value is None else value
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ConfigError("%s must be a whole number of 0 or more, got %r" % (name, value))
            return value
        pins = params.get("pins") or {}
        if not isinstance(pins, dict):
            raise ConfigError("pins must map backup ids to a date (YYYY-MM-DD) or 'forever'")
        for backup_id, until in pins.items():
            if not is_backup_id(backup_id):
                raise ConfigError("pins: %r is not a backup id (like 20261123T020000Z-4f2a)" % (backup_id,))
            if str(until) != FOREVER:
                parse_time(str(until))  # ConfigError naming the bad value
        labels = params.get("pin_labels")
        policy = cls(daily=count("keep_daily", 7), weekly=count("keep_weekly", 4),
                     monthly=count("keep_monthly", 12),
                     pin_labels=tuple(["keep"] if labels is None else labels),
                     pins=tuple(sorted((k, str(v)) for k, v in pins.items())))
        if not (policy.daily or policy.weekly or policy.monthly):
            raise ConfigError("the retention policy keeps no daily, weekly or monthly backup "
                              "(keep_daily, keep_weekly and keep_monthly are all 0), so it would keep "
                              "nothing but the newest backup; set at least one of them above 0")
        return policy


@dataclasses.dataclass(frozen=True)
class Item:
    """What retention needs of one trusted backup."""

    backup_id: str
    finished: datetime.datetime
    kind: str
    parent_id: str | None = None
    labels: tuple = ()

    @property
    def series(self) -> str:
        """Backups compete for GFS slots only within their series: a schema-only dump or a
        restore's safety backup never pushes the last full backup out."""
        if _SAFETY in self.labels:
            return "safety"
        return "restorable" if self.kind in _RESTORABLE else self.kind


@dataclasses.dataclass
class Decision:
    backup_id: str
    keep: bool
    reasons: list


_PERIODS = (
    ("daily", lambda t: t.strftime("%Y-%m-%d")),
    ("weekly", lambda t: "%04d-W%02d" % t.isocalendar()[:2]),
    ("monthly", lambda t: t.strftime("%Y-%m")),
)


def _pin(item: Item, policy: Policy, now: datetime.datetime) -> str | None:
    for label in policy.pin_labels:
        if label in item.labels:
            return "pinned by label %s" % label
    until = dict(policy.pins).get(item.backup_id)
    if until == FOREVER:
        return "pinned for good"
    if until is not None and parse_time(until) + datetime.timedelta(days=1) > now:
        return "pinned until %s" % until
    return None


def plan(items: Sequence[Item], policy: Policy, *, now: datetime.datetime,
         protected: Iterable[str] = ()) -> list[Decision]:
    """One decision per item, newest first; ``protected`` ids are kept whatever the policy says."""
    newest_first = sorted(items, key=lambda i: (i.finished, i.backup_id), reverse=True)
    reasons: dict = {i.backup_id: [] for i in newest_first}
    for series in sorted({i.series for i in newest_first}):
        members = [i for i in newest_first if i.series == series]
        reasons[members[0].backup_id].append("newest %s backup" % series)
        for name, period_of in _PERIODS:
            wanted = getattr(policy, name)
            seen: list = []
            for item in members:
                period = period_of(item.finished)
                if len(seen) >= wanted:
                    break
                if period not in seen:
                    seen.append(period)
                    reasons[item.backup_id].append("%s %s" % (name, period))
    for item in newest_first:
        pin = _pin(item, policy, now)
        if pin:
            reasons[item.backup_id].append(pin)
    for backup_id in protected:
        if backup_id in reasons:
            reasons[backup_id].append("named as parent by a manifest that is not trusted")
    _keep_chains(newest_first, reasons)
    return [Decision(i.backup_id, bool(reasons[i.backup_id]), reasons[i.backup_id] or ["beyond the retention policy"])
            for i in newest_first]


def _keep_chains(newest_first: Sequence[Item], reasons: dict) -> None:
    """Every parent of a kept backup is kept, up to its full backup (a worklist, so the rule
    holds whatever order the parents come in)."""
    by_id = {i.backup_id: i for i in newest_first}
    pending = [i for i in newest_first if reasons[i.backup_id]]
    while pending:
        item = pending.pop()
        parent = by_id.get(item.parent_id or "")
        if parent is None:
            continue
        if not reasons[parent.backup_id]:
            pending.append(parent)
        reasons[parent.backup_id].append("parent of kept %s" % item.backup_id)
