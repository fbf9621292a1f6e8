# -*- coding: utf-8 -*-
# Copyright: Lifeline contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Prune: apply the retention plan (retention.py) to one host's backups, and clear leftovers.

Order of a run: take every component's backup lock (the one backup.py holds, so prune never
races a running backup), scan every component (prune_scan.py), plan, and only when everything
could be listed and read, delete: each backup's manifest first (it stops being a backup at once,
so a prune cut short never leaves a manifest pointing at missing artifacts), then its artifacts,
newest first (a child goes before the parent it needs). A component whose last backup run failed
is left alone: a failed run must never be followed by a prune that thins out the good backups.
"""
from __future__ import annotations

import contextlib
import datetime
import json
import os
from typing import Sequence

from ansible_collections.lifeline.dr.plugins.module_utils import components, config
from ansible_collections.lifeline.dr.plugins.module_utils.backup import write_status
from ansible_collections.lifeline.dr.plugins.module_utils.catalog import Catalog
from ansible_collections.lifeline.dr.plugins.module_utils.errors import ConfigError, LifelineError, LockedError
from ansible_collections.lifeline.dr.plugins.module_utils.locking import Lock
from ansible_collections.lifeline.dr.plugins.module_utils.manifest import MANIFEST_NAME, backup_prefix
from ansible_collections.lifeline.dr.plugins.module_utils.prune_scan import (
    Scan,
    entry_copies,
    leftover_age,
    orphan_age,
    scan_component,
)
from ansible_collections.lifeline.dr.plugins.module_utils.repository import Repository
from ansible_collections.lifeline.dr.plugins.module_utils.retention import Item, Policy, plan
from ansible_collections.lifeline.dr.plugins.module_utils.signing import TrustStore
from ansible_collections.lifeline.dr.plugins.module_utils.timeutil import isotime, parse_time, utcnow

DAY = datetime.timedelta(days=1)


def _last_run_failed(state_dir: str, name: str) -> str | None:
    """Why the component's last backup run forbids pruning, or None."""
    path = os.path.join(state_dir, "status", name + ".json")
    try:
        with open(path, encoding="utf-8") as fh:
            record = json.load(fh)
    except FileNotFoundError:
        return None  # no run on this host yet (backups taken elsewhere): retention alone decides
    except (OSError, ValueError) as exc:
        return "its last backup's status record %s cannot be read (%s)" % (path, exc)
    if not isinstance(record, dict) or record.get("status") not in ("ok", "partial"):
        return "its last backup run failed (%s at %s): prune waits for a successful backup" % (
            str(record.get("message") if isinstance(record, dict) else record)[:300],
            record.get("finished") if isinstance(record, dict) else "?")
    return None


class _Run:
    def __init__(self, check_mode: bool, now: datetime.datetime) -> None:
        self.check_mode = check_mode
        self.now = now
        self.report = {"plan": [], "orphans": [], "skipped": {}, "errors": [], "warnings": [],
                       "freed_bytes": 0, "deleted": 0}

    def delete(self, repo: Repository, keys: Sequence[str], what: str) -> bool:
        """Delete ``keys`` in order; stop at the first failure (reported), True if all went."""
        for key in keys:
            try:
                repo.delete(key)
            except LifelineError as exc:
                self.report["errors"].append("%s: %s" % (what, exc))
                return False
        return True


def _plan_component(run: _Run, scan: Scan, policy: Policy, component: str, orphan_after: datetime.timedelta,
                    remove_orphans: bool) -> list:
    """Report entries of one component; returns the work: (kind, payload) to do when deleting."""
    signed = [e for e in scan.entries if e.signed_by is not None]
    protected = set(scan.protected)
    for entry in scan.entries:
        if entry.signed_by is None and entry.manifest.parent_id:
            protected.add(entry.manifest.parent_id)
    items = [Item(e.manifest.backup_id, parse_time(e.manifest.finished), e.manifest.kind, e.manifest.parent_id,
                  tuple(e.manifest.labels)) for e in signed]
    decisions = {d.backup_id: d for d in plan(items, policy, now=run.now, protected=protected)}
    work = []
    for entry in sorted(scan.entries, key=lambda e: (e.manifest.finished, e.manifest.backup_id), reverse=True):
        m = entry.manifest
        decision = decisions.get(m.backup_id)
        keep = decision.keep if decision else True
        reasons = decision.reasons if decision else ["unsigned (allowed to be read): prune acts only on signed manifests"]
        size = sum(a.size for a in m.artifacts) * len(entry.repositories)
        run.report["plan"].append({
            "component": component, "backup_id": m.backup_id, "kind": m.kind, "finished": m.finished,
            "parent_id": m.parent_id, "action": "keep" if keep else "delete", "reasons": reasons,
            "bytes": size, "repositories": [r.name for r in entry.repositories]})
        if not keep:
            work.append(("backup", entry))
            run.report["freed_bytes"] += size
    for copy, why in scan.untrusted:
        run.report["plan"].append({
            "component": component, "backup_id": copy.backup_id, "kind": None, "finished": None,
            "parent_id": None, "action": "keep", "reasons": ["manifest not trusted, never deleted: " + why],
            "bytes": 0, "repositories": [copy.repository.name]})
    for copy in scan.orphans:
        age = orphan_age(copy, run.now)
        old = age >= orphan_after
        act = old and remove_orphans
        size = sum(_size(copy.repository, k) for k in copy.keys) if act else 0
        run.report["orphans"].append({
            "component": component, "repository": copy.repository.name, "what": "backup directory without a manifest",
            "key": copy.prefix,
            "action": "delete" if act else "keep", "bytes": size,
            "reason": ("written %s ago" % _hours(age)) if old else
                      ("a backup in progress or one that failed %s ago: removed once %s old" % (_hours(age), _hours(orphan_after)))})
        if act:
            work.append(("orphan", copy))
            run.report["freed_bytes"] += size
    for repo, left in scan.leftovers:
        age = leftover_age(left, scan.prefix, run.now)
        act = age >= orphan_after and remove_orphans
        run.report["orphans"].append({
            "component": component, "repository": repo.name, "what": left.what, "key": left.key,
            "action": "delete" if act else "keep", "bytes": left.size if act else 0,
            "reason": "started %s ago" % _hours(age)})
        if act:
            work.append(("leftover", (repo, left)))
            run.report["freed_bytes"] += left.size
    return work


def _size(repo: Repository, key: str) -> int:
    try:
        return repo.info(key).size
    except LifelineError:
        return 0


def _hours(delta: datetime.timedelta) -> str:
    hours = delta.total_seconds() / 3600
    return "%.1f h" % hours if hours < 48 else "%.1f days" % (hours / 24)


def _execute(run: _Run, scan: Scan, work: list) -> None:
    for kind, payload in work:
        if kind == "backup":
            entry = payload
            gone = True
            for repo, keys in entry_copies(scan, entry):
                manifest_key = entry.manifest.prefix + MANIFEST_NAME
                what = "backup %s in %s" % (entry.manifest.backup_id, repo.name)
                # The manifest first: from then on the rest is an orphan, never a broken backup.
                if not run.delete(repo, [manifest_key], what):
                    gone = False
                elif run.delete(repo, [k for k in keys if k != manifest_key], what):
                    repo.tidy(entry.manifest.prefix)
            run.report["deleted"] += int(gone)  # no longer a backup anywhere (leftovers are orphans)
        elif kind == "orphan":
            copy = payload
            if run.delete(copy.repository, copy.keys, "orphan %s in %s" % (copy.prefix, copy.repository.name)):
                copy.repository.tidy(copy.prefix)
        else:
            repo, left = payload
            try:
                repo.remove_leftover(left)
                repo.tidy(left.key.rsplit("/", 1)[0] + "/")
            except LifelineError as exc:
                run.report["errors"].append("%s %s in %s: %s" % (left.what, left.key, repo.name, exc))


def prune(repositories: Sequence[Repository], *, trust: TrustStore, site: str, host: str,
          components: Sequence[str], policy: Policy, state_dir: str, check_mode: bool = False,
          lock_wait: float = 0.0, orphan_after: datetime.timedelta = DAY, remove_orphans: bool = True,
          now: datetime.datetime | None = None) -> dict:
    """Prune ``host``'s backups of ``components`` in ``site``; return the report (``status``:
    planned in check mode, ok, or partial when a component was skipped or a delete failed).
    Raises (deleting nothing) when a lock is held or anything could not be listed or read."""
    if orphan_after < datetime.timedelta(hours=1):
        raise ConfigError("orphans must be at least an hour old before prune removes them")
    run = _Run(check_mode, now or utcnow())
    started = utcnow()
    try:
        _prune(run, repositories, Catalog(repositories, trust=trust), site=site, host=host, components=components,
               policy=policy, state_dir=state_dir, lock_wait=lock_wait, orphan_after=orphan_after,
               remove_orphans=remove_orphans)
    except LockedError:
        raise  # the running backup's or prune's record stays as it is
    except LifelineError as exc:
        if not check_mode:
            write_status(state_dir, "prune-%s-%s" % (site, host), {
                "status": "failed", "message": str(exc), "started": isotime(started), "finished": isotime(utcnow())})
        raise
    report = run.report
    report["status"] = "planned" if check_mode else ("partial" if report["errors"] or report["skipped"] else "ok")
    report["changed"] = bool(any(p["action"] == "delete" for p in report["plan"])
                             or any(o["action"] == "delete" for o in report["orphans"]))
    if not check_mode:
        write_status(state_dir, "prune-%s-%s" % (site, host), {
            "status": report["status"], "message": "; ".join(report["errors"][:5]), "started": isotime(started),
            "finished": isotime(utcnow()), "deleted": report["deleted"], "freed_bytes": report["freed_bytes"],
            "skipped": report["skipped"]})
    return report


def _prune(run: _Run, repositories: Sequence[Repository], catalog: Catalog, *, site: str, host: str,
           components: Sequence[str], policy: Policy, state_dir: str, lock_wait: float,
           orphan_after: datetime.timedelta, remove_orphans: bool) -> None:
    check_mode = run.check_mode
    with contextlib.ExitStack() as locks:
        works = []
        for component in components:
            name = "%s-%s-%s" % (site, host, component)
            backup_prefix(site, host, component)  # names are checked before anything runs
            if not check_mode:  # check mode writes nothing, not even a lock file
                locks.enter_context(Lock(os.path.join(state_dir, "locks"), name, wait=lock_wait))
            why = _last_run_failed(state_dir, name)  # read under the lock: no run ends meanwhile
            if why:
                run.report["skipped"][component] = why
                continue
            scan = scan_component(repositories, catalog, site=site, host=host, component=component)
            run.report["warnings"].extend(scan.warnings)
            works.append((scan, _plan_component(run, scan, policy, component, orphan_after, remove_orphans)))
        run.report["warnings"].extend(catalog.warnings)
        if not check_mode:
            for scan, work in works:
                _execute(run, scan, work)


def prune_with(params: dict, *, check_mode: bool = False, now: datetime.datetime | None = None) -> dict:
    """Prune from the modules' option names (module, host CLI config): the one front-door path."""
    policy = Policy.from_params(params)
    names = list(params.get("components") or components.names())
    unknown = sorted(set(names) - set(components.names()))
    if unknown:
        raise ConfigError("unknown component(s) %s; Lifeline knows: %s" % (", ".join(unknown), ", ".join(components.names())))
    hours = params.get("orphan_age_hours")
    repositories = config.repositories(params)
    try:
        return prune(repositories, trust=config.trust(params), site=params.get("site") or "default",
                     host=config.host_name(params), components=names, policy=policy,
                     state_dir=config.state_dir(params), check_mode=check_mode,
                     lock_wait=float(params.get("lock_timeout") or 0),
                     orphan_after=datetime.timedelta(hours=24 if hours is None else hours),
                     remove_orphans=params.get("remove_orphans", True) is not False, now=now)
    finally:
        for repo in repositories:
            repo.close()
