# -*- coding: utf-8 -*-
# Copyright: Lifeline contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""One restore point for a whole site, over real local repositories: each component at the same
time, a pinned backup id, absent components, and a component that has nothing at the point."""
from __future__ import annotations

import pytest

from keys import trust
from test_catalog import manifest, store

from ansible_collections.lifeline.dr.plugins.module_utils.catalog import Catalog
from ansible_collections.lifeline.dr.plugins.module_utils.errors import ConfigError, NotFoundError, UntrustedError
from ansible_collections.lifeline.dr.plugins.module_utils.repository import LocalRepository
from ansible_collections.lifeline.dr.plugins.module_utils.signing import Signer, generate_signing_key
from ansible_collections.lifeline.dr.plugins.module_utils.site_point import select_site

ALL = ["postgres", "redis", "files", "secrets"]
WHERE = {"site": "fra", "host": "db1"}


@pytest.fixture
def repo(tmp_path):
    return LocalRepository("local", str(tmp_path / "repo"))


@pytest.fixture
def site(repo):
    """postgres nightly on two days, redis on both days a little later, files only on day two."""
    for m in [manifest("20261122T020000Z-0001", finished="2026-11-22T02:20:00Z"),
              manifest("20261123T020000Z-0002", finished="2026-11-23T02:20:00Z"),
              manifest("20261122T021000Z-0003", finished="2026-11-22T02:11:00Z", component="redis"),
              manifest("20261123T021000Z-0004", finished="2026-11-23T02:11:00Z", component="redis"),
              manifest("20261123T023000Z-0005", finished="2026-11-23T02:31:00Z", component="files")]:
        store(repo, m)
    return Catalog([repo], trust=trust())


def chosen(point) -> dict:
    return {name: entry.manifest.backup_id for name, entry in point.selected.items()}


def test_latest_takes_each_components_newest_and_reports_the_absent_ones(site):
    point = select_site(site, components=ALL, **WHERE)
    assert chosen(point) == {"postgres": "20261123T020000Z-0002", "redis": "20261123T021000Z-0004",
                             "files": "20261123T023000Z-0005"}
    assert point.absent == ["secrets"]


def test_a_time_takes_each_component_at_or_before_it(site):
    point = select_site(site, components=["postgres", "redis"], point="2026-11-23T02:05:00Z", **WHERE)
    # postgres of day two (02:00) but redis of day one: day two's redis (02:10) is after the point.
    assert chosen(point) == {"postgres": "20261123T020000Z-0002", "redis": "20261122T021000Z-0003"}


def test_a_component_with_backups_but_none_at_the_point_is_an_error_naming_it(site):
    with pytest.raises(NotFoundError, match="files.*lifeline_restore_components"):
        select_site(site, components=ALL, point="2026-11-22T12:00:00Z", **WHERE)


def test_a_pinned_backup_id_takes_the_other_components_at_its_consistent_time(site):
    point = select_site(site, components=["postgres", "redis", "secrets"], point="20261122T021000Z-0003", **WHERE)
    assert chosen(point) == {"redis": "20261122T021000Z-0003", "postgres": "20261122T020000Z-0001"}
    assert point.point == "2026-11-22T02:10:00Z"
    assert point.absent == ["secrets"]
    # files has backups, but none as old as the pinned one: the site cannot be rebuilt at that point.
    with pytest.raises(NotFoundError, match="files"):
        select_site(site, components=ALL, point="20261122T021000Z-0003", **WHERE)


def test_a_pinned_id_of_no_component_is_not_found(site):
    with pytest.raises(NotFoundError, match="20261101T000000Z-dead"):
        select_site(site, components=ALL, point="20261101T000000Z-dead", **WHERE)


def test_a_required_component_without_backups_is_an_error(site):
    with pytest.raises(NotFoundError, match="secrets"):
        select_site(site, components=["postgres", "secrets"], required=["postgres", "secrets"], **WHERE)


def test_a_required_component_not_among_the_candidates_is_a_configuration_error(site):
    with pytest.raises(ConfigError, match="mongodb"):
        select_site(site, components=ALL, required=["mongodb"], **WHERE)


def test_a_host_without_any_backup_is_not_found(repo):
    with pytest.raises(NotFoundError, match="no backups"):
        select_site(Catalog([repo], trust=trust()), components=ALL, **WHERE)


def test_a_component_whose_only_backups_are_untrusted_is_refused_not_skipped(repo, site):
    forger = Signer(generate_signing_key()[0])
    repo.put_bytes(manifest("20261123T030000Z-0006", finished="2026-11-23T03:01:00Z",
                            component="secrets").prefix + "manifest.json",
                   manifest("20261123T030000Z-0006", finished="2026-11-23T03:01:00Z",
                            component="secrets").to_json(forger))
    with pytest.raises(UntrustedError):
        select_site(site, components=ALL, **WHERE)
