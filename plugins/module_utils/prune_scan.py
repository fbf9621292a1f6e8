# -*- coding: utf-8 -*-
# Copyright: Lifeline contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What prune finds under one host's component in every repository, sorted into: copies of
trusted backups (the catalog's entries), copies whose manifest is not trusted (kept, never
deleted), directories without a manifest (orphans once old enough) and uncommitted writes.

Think of whoever can write to the bucket as an attacker who cannot delete: nothing they can put
there may make prune delete a real backup. So a manifest that does not verify never turns its
directory into an orphan (overwriting a real manifest with junk must not get the real artifacts
removed), and the parent ids read from untrusted manifests only ever add keeps. A listing or a
manifest read that fails stops the whole prune: what cannot be seen cannot be reasoned about.
"""
from __future__ import annotations

import dataclasses
import datetime
from typing import Sequence

from ansible_collections.lifeline.dr.plugins.module_utils.catalog import Catalog, Entry
from ansible_collections.lifeline.dr.plugins.module_utils.errors import (
    ConfigError,
    IntegrityError,
    NotFoundError,
    RepositoryError,
)
from ansible_collections.lifeline.dr.plugins.module_utils.manifest import (
    MANIFEST_NAME,
    backup_prefix,
    is_backup_id,
    parse_json,
)
from ansible_collections.lifeline.dr.plugins.module_utils.repository import (
    Leftover,
    Repository,
    check_key,
    is_temp_name,
)


@dataclasses.dataclass
class Copy:
    """One backup directory in one repository."""

    repository: Repository
    backup_id: str
    prefix: str           # the backup directory, "<site>/<host>/<component>/<backup id>/"
    keys: list            # every committed key in it, the manifest included if there is one


@dataclasses.dataclass
class Scan:
    prefix: str                                            # "<site>/<host>/<component>/"
    entries: list                                          # trusted catalog entries, oldest first
    copies: dict = dataclasses.field(default_factory=dict)  # (repo name, backup id) -> Copy
    untrusted: list = dataclasses.field(default_factory=list)   # (Copy, why), kept
    protected: set = dataclasses.field(default_factory=set)     # parent ids untrusted manifests name
    orphans: list = dataclasses.field(default_factory=list)     # Copy without a manifest
    leftovers: list = dataclasses.field(default_factory=list)   # (Repository, Leftover)
    warnings: list = dataclasses.field(default_factory=list)


def _listing(repo: Repository, prefix: str, scan: Scan) -> dict:
    """backup id -> keys below ``prefix`` in ``repo``; temp-named keys become leftovers."""
    dirs: dict = {}
    for key in list(repo.list(prefix)):  # whole, before anything is decided
        rest = key[len(prefix):] if key.startswith(prefix) else ""
        backup_id = rest.split("/", 1)[0]
        try:
            check_key(key)
        except ConfigError:
            scan.warnings.append("%s: key %r is not a valid repository key; left alone" % (repo.describe(), key))
            continue
        if is_temp_name(key):
            try:
                info = repo.info(key)
            except NotFoundError:
                continue  # its writer committed or aborted meanwhile
            scan.leftovers.append((repo, Leftover(key, info.modified, "temp object", info.size)))
        elif is_backup_id(backup_id) and "/" in rest:
            dirs.setdefault(backup_id, []).append(key)
        else:
            scan.warnings.append("%s: %s is not part of a backup directory; left alone" % (repo.describe(), key))
    return dirs


def _parent_hint(raw: bytes) -> str | None:
    """The parent id an untrusted manifest names, if it names one: used only to keep more."""
    try:
        parent = parse_json(raw).get("parent_id")
    except IntegrityError:
        return None
    return parent if is_backup_id(parent) else None


def scan_component(repositories: Sequence[Repository], catalog: Catalog, *, site: str, host: str,
                   component: str) -> Scan:
    """Everything prune needs to know about one component; RepositoryError if anything could
    not be listed or read."""
    prefix = backup_prefix(site, host, component)
    scan = Scan(prefix=prefix, entries=[])
    listings = {}
    try:
        for repo in repositories:
            listings[repo.name] = _listing(repo, prefix, scan)
            scan.leftovers.extend((repo, left) for left in repo.leftovers(prefix))
    except RepositoryError as exc:
        raise RepositoryError("listing failed, so nothing is pruned: %s" % exc) from None
    scan.entries = catalog.entries(site=site, host=host, component=component)
    if catalog.listing_failures:
        raise RepositoryError("listing failed, so nothing is pruned: " + "; ".join(catalog.listing_failures))
    for repo in repositories:
        for backup_id, keys in sorted(listings[repo.name].items()):
            copy = Copy(repo, backup_id, prefix + backup_id + "/", sorted(keys))
            scan.copies[(repo.name, backup_id)] = copy
            manifest_key = copy.prefix + MANIFEST_NAME
            if manifest_key not in keys:
                scan.orphans.append(copy)
            elif not _trusted_in(scan.entries, backup_id, repo):
                why = catalog.rejected.get(backup_id) or "its manifest differs from the trusted copy elsewhere"
                scan.untrusted.append((copy, why))
                hint = _parent_hint(_read(repo, manifest_key))
                if hint:
                    scan.protected.add(hint)
    return scan


def _read(repo: Repository, key: str) -> bytes:
    try:
        return repo.get_bytes(key)
    except NotFoundError:
        return b""  # deleted meanwhile: nothing to protect
    except RepositoryError as exc:
        raise RepositoryError("a manifest could not be read, so nothing is pruned: %s" % exc) from None


def _trusted_in(entries: list, backup_id: str, repo: Repository) -> bool:
    return any(e.manifest.backup_id == backup_id and any(r is repo for r in e.repositories) for e in entries)


def id_time(backup_id: str) -> datetime.datetime:
    """The time a backup id names (the run's start); the epoch's start for an id of no real time."""
    try:
        return datetime.datetime.strptime(backup_id[:16], "%Y%m%dT%H%M%SZ").replace(tzinfo=datetime.timezone.utc)
    except ValueError:  # month 13: only the objects' own times count
        return datetime.datetime.min.replace(tzinfo=datetime.timezone.utc)


def leftover_age(leftover: Leftover, prefix: str, now: datetime.datetime) -> datetime.timedelta:
    """Since the leftover's write began: its own time or its backup id's, whichever is newer."""
    backup_id = leftover.key[len(prefix):].split("/", 1)[0] if leftover.key.startswith(prefix) else ""
    return now - max(leftover.started, id_time(backup_id))


def orphan_age(copy: Copy, now: datetime.datetime) -> datetime.timedelta:
    """How long ago the newest part of an orphan was written: its id's time and each object's
    mtime, whichever is newer (an odd id or clock cannot make it look older than it is)."""
    newest = id_time(copy.backup_id)
    for key in copy.keys:
        try:
            newest = max(newest, copy.repository.info(key).modified)
        except NotFoundError:
            continue
    return now - newest


def entry_copies(scan: Scan, entry: Entry) -> list:
    """(repository, keys) of every repository holding a trusted copy of ``entry``."""
    out = []
    for repo in entry.repositories:
        copy = scan.copies.get((repo.name, entry.manifest.backup_id))
        out.append((repo, copy.keys if copy else []))
    return out
