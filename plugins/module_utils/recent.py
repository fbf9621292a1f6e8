# -*- coding: utf-8 -*-
# Copyright: Lifeline contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Whether a scheduled run may skip: a recent enough backup already exists.

Timers on the host and AWX schedules may both fire for one host (awx#8071, ansible_role_restic#22);
with a minimum interval the second run finds the first one's backup and skips instead of taking
a duplicate. Only a backup that could stand in for the one about to be taken counts: same host
and component, restorable on its own (or of the same kind), not a restore's safety backup,
stored in every configured repository (a partial backup never makes the next run skip), signed by
this host's own key, and of the same tier or a longer one (daily < weekly < monthly), so the
weekly run on Sunday is not skipped because of that morning's daily one. When the catalog cannot
be read the run goes ahead: a doubtful skip would lose a backup, a doubtful run costs one.
"""
from __future__ import annotations

import datetime
import re
from typing import Sequence

from ansible_collections.lifeline.dr.plugins.module_utils.catalog import RESTORABLE_KINDS, SAFETY_LABEL, Catalog, Entry
from ansible_collections.lifeline.dr.plugins.module_utils.errors import ConfigError, LifelineError
from ansible_collections.lifeline.dr.plugins.module_utils.repository import Repository
from ansible_collections.lifeline.dr.plugins.module_utils.signing import Signer, TrustStore
from ansible_collections.lifeline.dr.plugins.module_utils.timeutil import parse_time

#: schedule tiers, shortest first; a backup labelled with one also stands in for the shorter ones
TIERS = ("daily", "weekly", "monthly")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_INTERVAL_RE = re.compile(r"(\d+)\s*([smhdw])")


def parse_interval(text) -> datetime.timedelta:
    """'12h', '90m', '1d12h', '3600' (seconds) or '0' (never skip) as a timedelta."""
    if isinstance(text, (int, float)) and not isinstance(text, bool) and text >= 0:
        return datetime.timedelta(seconds=text)
    spec = str(text).strip().lower() if isinstance(text, str) else ""
    if spec.isdigit():
        return datetime.timedelta(seconds=int(spec))
    compact = spec.replace(" ", "")
    if compact and _INTERVAL_RE.sub("", compact) == "":
        return datetime.timedelta(seconds=sum(int(n) * _UNITS[u] for n, u in _INTERVAL_RE.findall(compact)))
    raise ConfigError("min_interval %r is not a duration; write it like 12h, 90m, 1d12h or a number "
                      "of seconds (0 never skips)" % (text,))


def format_interval(delta: datetime.timedelta) -> str:
    seconds = int(delta.total_seconds())
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if seconds >= size or (unit == "s" and not parts):
            parts.append("%d%s" % (seconds // size, unit))
            seconds %= size
    return "".join(parts)


def tier_rank(labels: Sequence[str]) -> int:
    """0 for daily or no tier, 1 weekly, 2 monthly."""
    return max([TIERS.index(label) for label in labels if label in TIERS] or [0])


def _stands_in(entry: Entry, *, kind: str, rank: int, repo_names: set) -> bool:
    m = entry.manifest
    kinds = RESTORABLE_KINDS if kind in RESTORABLE_KINDS else (kind,)
    return (m.kind in kinds and SAFETY_LABEL not in m.labels and tier_rank(m.labels) >= rank
            and repo_names <= {r.name for r in entry.repositories})


def recent_backup(repositories: Sequence[Repository], *, site: str, host: str, component: str, kind: str,
                  labels: Sequence[str], signer: Signer, min_interval: datetime.timedelta,
                  now: datetime.datetime) -> Entry | None:
    """The newest backup that makes this run unnecessary, or None (also when listing fails)."""
    if min_interval.total_seconds() <= 0:
        return None
    # Only this host's own key: a backup it cannot vouch for never replaces one it takes.
    catalog = Catalog(repositories, trust=TrustStore({host: [signer.public_pem]}))
    try:
        entries = catalog.entries(site=site, host=host, component=component)
    except LifelineError:
        return None
    names, rank = {r.name for r in repositories}, tier_rank(labels)
    for entry in reversed(entries):
        finished = parse_time(entry.manifest.finished)
        if now - finished >= min_interval:
            break  # oldest first: everything before this one is older still
        if finished <= now and _stands_in(entry, kind=kind, rank=rank, repo_names=names):
            return entry
    return None


def skip_message(entry: Entry, *, component: str, min_interval: datetime.timedelta,
                 now: datetime.datetime) -> str:
    age = now - parse_time(entry.manifest.finished)
    return ("skipped: %s backup %s finished %s ago (%s), within min_interval %s; nothing to do"
            % (component, entry.manifest.backup_id, format_interval(age), entry.manifest.finished,
               format_interval(min_interval)))
