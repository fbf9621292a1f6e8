# -*- coding: utf-8 -*-
# Copyright: Lifeline contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""One restore point for a whole site: which backup of each component a restore-site run uses.

A site is restored at one point so that its parts agree with each other (the database and the
uploads it references, the sessions in Redis). ``latest`` takes each component's newest complete
backup; a time takes, for each component, the newest backup consistent at or before it; a backup
id pins that backup, and every other component is taken at that backup's consistent time.

A component without any backup is absent (a host backs up only what it runs) unless it was asked
for by name. A component that has backups, but none at or before the point, is an error: a site
rebuilt without it would come up inconsistent, and the operator must narrow the components.
"""
from __future__ import annotations

import dataclasses
from typing import Sequence

from ansible_collections.lifeline.dr.plugins.module_utils.catalog import Catalog, Entry
from ansible_collections.lifeline.dr.plugins.module_utils.errors import ConfigError, NotFoundError
from ansible_collections.lifeline.dr.plugins.module_utils.manifest import is_backup_id


@dataclasses.dataclass
class SitePoint:
    #: component -> the backup to restore
    selected: dict
    #: components that have no backup of this host at all (and were not asked for by name)
    absent: list
    #: the time every other component was chosen at ("latest" when none)
    point: str


def _pinned(catalog: Catalog, where: dict, components: Sequence[str], backup_id: str) -> Entry:
    for name in components:
        try:
            return catalog.select(point=backup_id, component=name, **where)
        except NotFoundError:
            continue
    raise NotFoundError("no backup with id %s of host '%s' in site '%s' among the components %s"
                        % (backup_id, where["host"], where["site"], ", ".join(components)))


def _has_backups(catalog: Catalog, where: dict, name: str) -> bool:
    """Any backup of ``name``, trusted or not (an untrusted one must be reported, not skipped)."""
    refused = len(catalog.rejected)
    return bool(catalog.entries(component=name, **where)) or len(catalog.rejected) > refused


def select_site(catalog: Catalog, *, site: str, host: str, components: Sequence[str],
                point: str = "latest", required: Sequence[str] = ()) -> SitePoint:
    """Choose one backup per component of ``host`` at ``point``.

    ``components`` are the candidates in order; ``required`` ones must have a backup. Raises
    NotFoundError naming the component and what exists when a component cannot be restored at
    that point.
    """
    unknown = [c for c in required if c not in components]
    if unknown:
        raise ConfigError("cannot restore %s: not among the components %s" % (", ".join(unknown), ", ".join(components)))
    where = dict(site=site, host=host)
    point = point or "latest"
    selected: dict = {}
    if is_backup_id(point):
        pinned = _pinned(catalog, where, components, point)
        selected[pinned.manifest.component] = pinned
        point = pinned.manifest.consistent_at
    absent = []
    for name in components:
        if name in selected:
            continue
        if name not in required and not _has_backups(catalog, where, name):
            absent.append(name)
            continue
        try:
            selected[name] = catalog.select(point=point, component=name, **where)
        except NotFoundError as exc:
            raise NotFoundError("%s; restore the site at a later point, or leave %s out of "
                                "lifeline_restore_components" % (exc, name)) from exc
    if not selected:
        raise NotFoundError("host '%s' in site '%s' has no backups of %s" % (host, site, ", ".join(components)))
    return SitePoint(selected=selected, absent=absent, point=point)
