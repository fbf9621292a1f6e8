# -*- coding: utf-8 -*-
# Copyright: Lifeline contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The catalog: the set of manifests across every repository.

Backups are ordered by the manifest's own times, never by object mtime (wal-g#694: LATEST
picked by S3 mtime restored the wrong backup). A backup held by several repositories is one
entry that lists every repository holding it, in configuration order (restore tries them in turn).
"""
from __future__ import annotations

import dataclasses
from typing import Sequence

from ansible_collections.lifeline.dr.plugins.module_utils.errors import (
    IntegrityError,
    NotFoundError,
    RepositoryError,
)
from ansible_collections.lifeline.dr.plugins.module_utils.manifest import (
    MANIFEST_NAME,
    Manifest,
    backup_prefix,
    is_backup_id,
    isotime,
    parse_time,
)
from ansible_collections.lifeline.dr.plugins.module_utils.repository import Repository


@dataclasses.dataclass
class Entry:
    manifest: Manifest
    repositories: list  # Repository objects holding this backup, in configuration order

    def summary(self) -> dict:
        m = self.manifest
        return {"backup_id": m.backup_id, "site": m.site, "host": m.host, "component": m.component,
                "kind": m.kind, "started": m.started, "finished": m.finished,
                "consistent_at": m.consistent_at, "encryption": m.encryption, "key_id": m.key_id,
                "size": sum(a.size for a in m.artifacts), "artifacts": len(m.artifacts),
                "repositories": [r.name for r in self.repositories], "labels": m.labels,
                "tools": m.tools}


class Catalog:
    def __init__(self, repositories: Sequence[Repository]) -> None:
        self.repositories = list(repositories)
        self.warnings: list[str] = []

    def entries(self, *, site: str, host: str, component: str) -> list[Entry]:
        """Every committed backup of one host's component, oldest first."""
        prefix = backup_prefix(site, host, component)
        found: dict[str, Entry] = {}
        failures = []
        for repo in self.repositories:
            try:
                keys = [k for k in repo.list(prefix) if k.endswith("/" + MANIFEST_NAME)]
            except RepositoryError as exc:
                failures.append(str(exc))
                continue
            for key in keys:
                backup_id = key[len(prefix):-len(MANIFEST_NAME) - 1]
                if not is_backup_id(backup_id):
                    continue
                # Every copy is read: a repository is listed only if its own manifest is intact.
                where = "%s in %s" % (key, repo.describe())
                try:
                    manifest = Manifest.from_json(repo.get_bytes(key), where)
                except (IntegrityError, RepositoryError) as exc:
                    self.warnings.append(str(exc))
                    continue
                says = (manifest.site, manifest.host, manifest.component, manifest.backup_id)
                if says != (site, host, component, backup_id):
                    self.warnings.append("%s describes backup %s of %s; it does not belong here, ignored"
                                         % (where, manifest.backup_id, "/".join(says[:3])))
                    continue
                if backup_id in found:
                    if manifest != found[backup_id].manifest:
                        self.warnings.append("%s differs from the copy in %s; ignored" % (
                            where, found[backup_id].repositories[0].describe()))
                        continue
                    found[backup_id].repositories.append(repo)
                    continue
                found[backup_id] = Entry(manifest, [repo])
        if failures and len(failures) == len(self.repositories):
            raise RepositoryError("no repository could be read: " + "; ".join(failures))
        self.warnings.extend(failures)
        return sorted(found.values(), key=lambda e: (e.manifest.finished, e.manifest.backup_id))

    def select(self, *, site: str, host: str, component: str, point: str = "latest") -> Entry:
        """``point`` is 'latest', a backup id, or an ISO-8601 time (newest consistent at or before it)."""
        entries = self.entries(site=site, host=host, component=component)
        what = "%s backup of host '%s' in site '%s'" % (component, host, site)
        if not entries:
            raise NotFoundError("no %s in %s" % (what, ", ".join(r.describe() for r in self.repositories)))
        if point in ("", "latest"):
            return entries[-1]
        if is_backup_id(point):
            for entry in entries:
                if entry.manifest.backup_id == point:
                    return entry
            raise NotFoundError("no %s with id %s; the newest is %s"
                                % (what, point, entries[-1].manifest.backup_id))
        when = parse_time(point)
        fitting = [e for e in entries if parse_time(e.manifest.consistent_at) <= when]
        if not fitting:
            oldest = min(entries, key=lambda e: e.manifest.consistent_at)
            raise NotFoundError("no %s at or before %s; the oldest is %s from %s"
                                % (what, isotime(when), oldest.manifest.backup_id,
                                   oldest.manifest.consistent_at))
        return max(fitting, key=lambda e: (e.manifest.consistent_at, e.manifest.backup_id))
