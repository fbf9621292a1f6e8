# -*- coding: utf-8 -*-
# Copyright: Lifeline contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The catalog: the set of manifests across every repository.

Only manifests whose signature verifies with a key trusted for their host count (signing.py);
anything else is reported, never used. Backups are ordered by the manifest's own times, never
by object mtime (wal-g#694: LATEST picked by S3 mtime restored the wrong backup). A backup held
by several repositories is one entry that lists every repository holding it, in configuration
order (restore tries them in turn).
"""
from __future__ import annotations

import dataclasses
from typing import Iterable, Sequence

from ansible_collections.lifeline.dr.plugins.module_utils.errors import (
    IntegrityError,
    NotFoundError,
    RepositoryError,
    UntrustedError,
)
from ansible_collections.lifeline.dr.plugins.module_utils.manifest import (
    MANIFEST_NAME,
    Manifest,
    backup_prefix,
    is_backup_id,
    parse_json,
)
from ansible_collections.lifeline.dr.plugins.module_utils.repository import Repository
from ansible_collections.lifeline.dr.plugins.module_utils.signing import TrustStore
from ansible_collections.lifeline.dr.plugins.module_utils.timeutil import isotime, parse_time

#: kinds a restore can start from on their own ("latest" never picks schema- or data-only dumps)
RESTORABLE_KINDS = ("full", "incremental")
#: backups taken by a restore just before it replaced data; never the source's "latest"
SAFETY_LABEL = "safety"


@dataclasses.dataclass
class Entry:
    manifest: Manifest
    repositories: list  # Repository objects holding this backup, in configuration order
    signed_by: str | None = None  # key id that signed it (None: unsigned, read by permission)

    def summary(self) -> dict:
        m = self.manifest
        return {"backup_id": m.backup_id, "site": m.site, "host": m.host, "component": m.component,
                "kind": m.kind, "parent_id": m.parent_id, "started": m.started, "finished": m.finished,
                "consistent_at": m.consistent_at, "encryption": m.encryption, "key_id": m.key_id,
                "size": sum(a.size for a in m.artifacts), "artifacts": len(m.artifacts),
                "repositories": [r.name for r in self.repositories], "labels": m.labels,
                "tools": m.tools, "signed_by": self.signed_by}


class Catalog:
    def __init__(self, repositories: Sequence[Repository], *, trust: TrustStore) -> None:
        self.repositories = list(repositories)
        self.trust = trust
        self.warnings: list[str] = []
        #: backup id -> why its manifest was not accepted (unsigned, forged, malformed)
        self.rejected: dict[str, str] = {}
        #: repositories whose listing failed (prune deletes nothing then; restore uses the others)
        self.listing_failures: list[str] = []
        self._listed: dict[tuple, list] = {}  # one listing per scope and run: nothing read twice

    def _read(self, repo: Repository, key: str, scope: tuple, backup_id: str) -> tuple[Manifest, str | None]:
        where = "%s in %s" % (key, repo.describe())
        data = parse_json(repo.get_bytes(key), where)
        # The signature is checked for the host the repository path names before any field is used.
        signed_by = self.trust.verify(data, host=scope[1], where=where)
        manifest = Manifest.from_dict(data, where)
        says = (manifest.site, manifest.host, manifest.component, manifest.backup_id)
        if says != scope + (backup_id,):
            raise UntrustedError("%s describes backup %s of %s; it does not belong here"
                                 % (where, manifest.backup_id, "/".join(says[:3])))
        if signed_by is None:
            self.warnings.append("%s is unsigned and was read only because lifeline_allow_unsigned "
                                 "is set" % where)
        return manifest, signed_by

    def entries(self, *, site: str, host: str, component: str) -> list[Entry]:
        """Every committed, trusted backup of one host's component, oldest first."""
        scope = (site, host, component)
        if scope not in self._listed:
            self._listed[scope] = self._list(scope)
        return list(self._listed[scope])

    def _list(self, scope: tuple) -> list[Entry]:
        prefix = backup_prefix(*scope)
        found: dict[str, Entry] = {}
        failures = []
        for repo in self.repositories:
            try:
                keys = [k for k in repo.list(prefix) if k.endswith("/" + MANIFEST_NAME)]
            except RepositoryError as exc:
                failures.append(str(exc))
                self.listing_failures.append(str(exc))
                continue
            for key in keys:
                backup_id = key[len(prefix):-len(MANIFEST_NAME) - 1]
                if not is_backup_id(backup_id):
                    continue
                # Every copy is read: a repository is listed only if its own manifest is intact.
                try:
                    manifest, signed_by = self._read(repo, key, scope, backup_id)
                except (IntegrityError, RepositoryError) as exc:
                    self.warnings.append(str(exc))
                    if isinstance(exc, IntegrityError) and backup_id not in found:
                        self.rejected.setdefault(backup_id, str(exc))
                    continue
                if backup_id in found:
                    self._add_copy(found[backup_id], manifest, repo, key)
                    continue
                self.rejected.pop(backup_id, None)
                found[backup_id] = Entry(manifest, [repo], signed_by)
        if failures and len(failures) == len(self.repositories):
            raise RepositoryError("no repository could be read: " + "; ".join(failures))
        self.warnings.extend(failures)
        return sorted(found.values(), key=lambda e: (e.manifest.finished, e.manifest.backup_id))

    def select(self, *, site: str, host: str, component: str, point: str = "latest",
               kinds: Iterable[str] = RESTORABLE_KINDS, include_safety: bool = False) -> Entry:
        """``point`` is 'latest', a backup id, or an ISO-8601 time (newest consistent at or before it).

        'latest' and times consider only ``kinds`` and skip safety backups unless asked; a backup
        id is taken as asked. A rejected (untrusted) backup is never returned: asked for by id,
        it raises UntrustedError naming the cause.
        """
        what = "%s backup of host '%s' in site '%s'" % (component, host, site)
        if is_backup_id(point) and (site, host, component) not in self._listed:
            # Asked by id: read that manifest only, not every manifest of the host.
            entry = self._one(site=site, host=host, component=component, backup_id=point)
            if entry is not None:
                return entry
        entries = self.entries(site=site, host=host, component=component)
        if is_backup_id(point):
            for entry in entries:
                if entry.manifest.backup_id == point:
                    return entry
            if point in self.rejected:
                raise UntrustedError("backup %s is refused: %s" % (point, self.rejected[point]))
            raise NotFoundError("no %s with id %s; the newest is %s" % (
                what, point, entries[-1].manifest.backup_id if entries else "(none)"))
        kinds = tuple(kinds)
        usable = [e for e in entries if e.manifest.kind in kinds
                  and (include_safety or SAFETY_LABEL not in e.manifest.labels)]
        if not usable:
            raise self._none_usable(what, entries, kinds)
        if point in ("", "latest"):
            return usable[-1]
        when = parse_time(point)
        fitting = [e for e in usable if parse_time(e.manifest.consistent_at) <= when]
        if not fitting:
            oldest = min(usable, key=lambda e: e.manifest.consistent_at)
            raise NotFoundError("no %s at or before %s; the oldest is %s from %s"
                                % (what, isotime(when), oldest.manifest.backup_id,
                                   oldest.manifest.consistent_at))
        return max(fitting, key=lambda e: (e.manifest.consistent_at, e.manifest.backup_id))

    def _one(self, *, site: str, host: str, component: str, backup_id: str) -> Entry | None:
        """The backup ``backup_id`` from every repository holding an intact, trusted copy; None
        when no repository does (the caller then lists, to name what exists)."""
        key = backup_prefix(site, host, component, backup_id) + MANIFEST_NAME
        found: Entry | None = None
        for repo in self.repositories:
            try:
                manifest, signed_by = self._read(repo, key, (site, host, component), backup_id)
            except NotFoundError:
                continue
            except (IntegrityError, RepositoryError) as exc:
                self.warnings.append(str(exc))
                continue
            if found is None:
                found = Entry(manifest, [repo], signed_by)
            else:
                self._add_copy(found, manifest, repo, key)
        return found

    def _add_copy(self, entry: Entry, manifest: Manifest, repo: Repository, key: str) -> None:
        """Another repository's copy of ``entry``: it holds the backup only if it says the same."""
        if manifest == entry.manifest:
            entry.repositories.append(repo)
        else:
            self.warnings.append("%s in %s differs from the copy in %s; ignored" % (
                key, repo.describe(), entry.repositories[0].describe()))

    def _none_usable(self, what: str, entries: list, kinds: tuple) -> Exception:
        where = ", ".join(r.describe() for r in self.repositories)
        if entries:
            return NotFoundError("no %s of kind %s in %s (there are %d of other kinds or safety "
                                 "backups; ask for one by id)" % (what, "/".join(kinds), where, len(entries)))
        if self.rejected:
            causes = "; ".join("%s: %s" % kv for kv in sorted(self.rejected.items())[-3:])
            return UntrustedError("no trusted %s in %s; %d refused: %s" % (what, where, len(self.rejected), causes))
        return NotFoundError("no %s in %s" % (what, where))

    def chain(self, entry: Entry) -> list[Entry]:
        """The backups a restore of ``entry`` needs, full first; an incremental's missing or
        untrusted link is named."""
        m = entry.manifest
        by_id = {e.manifest.backup_id: e for e in self.entries(site=m.site, host=m.host, component=m.component)}
        chain = [entry]
        while chain[0].manifest.parent_id:
            parent_id = chain[0].manifest.parent_id
            parent = by_id.get(parent_id)
            if parent is None:
                cause = self.rejected.get(parent_id, "it is in none of the repositories")
                raise NotFoundError("backup %s needs its parent %s, which cannot be used: %s; "
                                    "restore an older chain or a full backup" % (
                                        chain[0].manifest.backup_id, parent_id, cause))
            if parent in chain or parent.manifest.finished > chain[0].manifest.started:
                raise IntegrityError("backup %s names parent %s, which does not precede it"
                                     % (chain[0].manifest.backup_id, parent_id))
            chain.insert(0, parent)
        return chain
