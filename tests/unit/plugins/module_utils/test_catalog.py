# -*- coding: utf-8 -*-
# Copyright: Lifeline contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The catalog over real local repositories: ordering by the manifest's own times, one entry per
backup across repositories, point-in-time selection, damaged copies and host scoping."""
from __future__ import annotations

import os

import pytest

from keys import SIGNER, trust

from ansible_collections.lifeline.dr.plugins.module_utils.catalog import Catalog
from ansible_collections.lifeline.dr.plugins.module_utils.errors import NotFoundError, RepositoryError
from ansible_collections.lifeline.dr.plugins.module_utils.manifest import (
    MANIFEST_NAME,
    Artifact,
    Manifest,
)
from ansible_collections.lifeline.dr.plugins.module_utils.repository import LocalRepository
from ansible_collections.lifeline.dr.plugins.module_utils.s3 import S3Repository

SCOPE = {"site": "fra", "host": "db1", "component": "postgres"}


def manifest(backup_id: str, *, finished: str, consistent_at: str | None = None,
             site="fra", host="db1", component="postgres") -> Manifest:
    started = "%s-%s-%sT%s:%s:%sZ" % (backup_id[0:4], backup_id[4:6], backup_id[6:8],
                                      backup_id[9:11], backup_id[11:13], backup_id[13:15])
    return Manifest(backup_id=backup_id, site=site, host=host, component=component, kind="full",
                    started=started, finished=finished, consistent_at=consistent_at or started,
                    compression="zstd", encryption="none", key_id=[],
                    artifacts=[Artifact(name="db.dump.zst", kind="database", size=10,
                                        sha256="0" * 64, plain_size=20)])


def store(repo, m: Manifest, key_prefix: str | None = None) -> str:
    key = (key_prefix or m.prefix) + MANIFEST_NAME
    repo.put_bytes(key, m.to_json(SIGNER))
    return key


@pytest.fixture
def repos(tmp_path):
    return [LocalRepository("first", str(tmp_path / "first")),
            LocalRepository("second", str(tmp_path / "second"))]


def ids(entries) -> list:
    return [e.manifest.backup_id for e in entries]


# --- ordering and merging --------------------------------------------------------------------

def test_entries_are_ordered_by_finished_not_by_write_order_id_or_mtime(repos):
    repo = repos[0]
    # A long backup started first but finished last; ids sort the other way round.
    long_run = manifest("20261123T010000Z-aaaa", finished="2026-11-23T05:00:00Z")
    short_run = manifest("20261123T020000Z-bbbb", finished="2026-11-23T02:30:00Z")
    oldest = manifest("20261122T010000Z-cccc", finished="2026-11-22T01:30:00Z")
    keys = {m.backup_id: store(repo, m) for m in (long_run, short_run, oldest)}
    # mtimes contradict the manifests too (wal-g#694: LATEST by mtime restored the wrong backup)
    os.utime(repo.path_of(keys[oldest.backup_id]), (2_000_000_000, 2_000_000_000))
    os.utime(repo.path_of(keys[long_run.backup_id]), (1_000_000_000, 1_000_000_000))
    entries = Catalog([repo], trust=trust()).entries(**SCOPE)
    assert ids(entries) == ["20261122T010000Z-cccc", "20261123T020000Z-bbbb", "20261123T010000Z-aaaa"]
    assert Catalog([repo], trust=trust()).select(**SCOPE).manifest.backup_id == "20261123T010000Z-aaaa"


def test_a_backup_in_two_repositories_is_one_entry_listing_both_in_configuration_order(repos):
    m = manifest("20261123T020000Z-1a2b", finished="2026-11-23T02:10:00Z")
    for repo in repos:
        store(repo, m)
    only_second = manifest("20261124T020000Z-3c4d", finished="2026-11-24T02:10:00Z")
    store(repos[1], only_second)

    entries = Catalog(repos, trust=trust()).entries(**SCOPE)
    assert ids(entries) == ["20261123T020000Z-1a2b", "20261124T020000Z-3c4d"]
    assert [r.name for r in entries[0].repositories] == ["first", "second"]
    assert [r.name for r in entries[1].repositories] == ["second"]

    reversed_entries = Catalog(list(reversed(repos)), trust=trust()).entries(**SCOPE)
    assert [r.name for r in reversed_entries[0].repositories] == ["second", "first"]


def test_summary_reports_size_artifacts_and_repositories(repos):
    m = manifest("20261123T020000Z-1a2b", finished="2026-11-23T02:10:00Z")
    m.artifacts.append(Artifact(name="g.sql.zst", kind="globals", size=5, sha256="1" * 64, plain_size=7))
    for repo in repos:
        store(repo, m)
    summary = Catalog(repos, trust=trust()).select(**SCOPE).summary()
    assert summary["backup_id"] == "20261123T020000Z-1a2b"
    assert summary["size"] == 15
    assert summary["artifacts"] == 2
    assert summary["repositories"] == ["first", "second"]


# --- selection -------------------------------------------------------------------------------

@pytest.fixture
def three_backups(repos):
    """Nightly backups of three days; consistent_at is a little after each start."""
    made = [manifest("20261121T020000Z-0001", finished="2026-11-21T02:20:00Z",
                     consistent_at="2026-11-21T02:00:10Z"),
            manifest("20261122T020000Z-0002", finished="2026-11-22T02:20:00Z",
                     consistent_at="2026-11-22T02:00:10Z"),
            manifest("20261123T020000Z-0003", finished="2026-11-23T02:20:00Z",
                     consistent_at="2026-11-23T02:00:10Z")]
    for m in made:
        store(repos[0], m)
    return Catalog(repos, trust=trust())


@pytest.mark.parametrize("point", ["latest", ""])
def test_select_latest_returns_the_newest_backup(three_backups, point):
    assert three_backups.select(**SCOPE, point=point).manifest.backup_id == "20261123T020000Z-0003"


def test_select_by_id_returns_that_backup(three_backups):
    assert three_backups.select(**SCOPE, point="20261122T020000Z-0002").manifest.backup_id == \
        "20261122T020000Z-0002"


def test_select_of_an_unknown_id_names_the_newest(three_backups):
    with pytest.raises(NotFoundError) as info:
        three_backups.select(**SCOPE, point="20261122T020000Z-9999")
    message = str(info.value)
    assert "postgres backup of host 'db1' in site 'fra'" in message
    assert "with id 20261122T020000Z-9999" in message
    assert "the newest is 20261123T020000Z-0003" in message


@pytest.mark.parametrize("point, expected", [
    ("2026-11-22T02:00:10Z", "20261122T020000Z-0002"),        # exactly at: included
    ("2026-11-22T02:00:09Z", "20261121T020000Z-0001"),        # a second before: the previous one
    ("2026-11-22T12:00:00+01:00", "20261122T020000Z-0002"),   # zones are honoured
    ("2026-11-22T02:15:00Z", "20261122T020000Z-0002"),        # before it finished, after consistent_at
    ("2030-01-01T00:00:00Z", "20261123T020000Z-0003"),
])
def test_select_at_or_before_a_time_uses_the_consistent_point(three_backups, point, expected):
    assert three_backups.select(**SCOPE, point=point).manifest.backup_id == expected


def test_select_before_the_oldest_backup_names_the_oldest(three_backups):
    with pytest.raises(NotFoundError) as info:
        three_backups.select(**SCOPE, point="2026-11-21T02:00:00Z")
    message = str(info.value)
    assert "at or before 2026-11-21T02:00:00.000Z" in message
    assert "the oldest is 20261121T020000Z-0001 from 2026-11-21T02:00:10Z" in message


def test_select_without_any_backup_names_every_repository(repos):
    with pytest.raises(NotFoundError) as info:
        Catalog(repos, trust=trust()).select(**SCOPE)
    message = str(info.value)
    assert "no postgres backup of host 'db1' in site 'fra'" in message
    assert repos[0].root in message and repos[1].root in message


# --- damage ----------------------------------------------------------------------------------

@pytest.mark.parametrize("corrupt_in", [0, 1], ids=["corrupt-first", "corrupt-second"])
def test_a_corrupt_manifest_warns_and_the_intact_copy_is_used(repos, corrupt_in):
    m = manifest("20261123T020000Z-1a2b", finished="2026-11-23T02:10:00Z")
    for index, repo in enumerate(repos):
        key = store(repo, m)
        if index == corrupt_in:
            repo.put_bytes(key, m.to_json()[:40])  # truncated
    catalog = Catalog(repos, trust=trust())
    entries = catalog.entries(**SCOPE)
    assert ids(entries) == ["20261123T020000Z-1a2b"]
    assert [r.name for r in entries[0].repositories] == [repos[1 - corrupt_in].name]
    assert len(catalog.warnings) == 1
    assert "is not valid JSON" in catalog.warnings[0]
    assert repos[corrupt_in].root in catalog.warnings[0]


def test_a_copy_whose_manifest_differs_from_the_first_is_not_listed_as_holding_the_backup(repos):
    m = manifest("20261123T020000Z-1a2b", finished="2026-11-23T02:10:00Z")
    store(repos[0], m)
    altered = manifest("20261123T020000Z-1a2b", finished="2026-11-23T02:10:00Z")
    altered.artifacts[0].sha256 = "f" * 64
    store(repos[1], altered)
    catalog = Catalog(repos, trust=trust())
    entries = catalog.entries(**SCOPE)
    assert [r.name for r in entries[0].repositories] == ["first"]
    assert entries[0].manifest.artifacts[0].sha256 == "0" * 64
    assert len(catalog.warnings) == 1
    assert "differs from the copy in" in catalog.warnings[0]


def test_a_backup_whose_only_manifest_is_corrupt_is_not_listed(repos):
    m = manifest("20261123T020000Z-1a2b", finished="2026-11-23T02:10:00Z")
    repos[0].put_bytes(m.prefix + MANIFEST_NAME, b"\x00garbage")
    catalog = Catalog(repos, trust=trust())
    assert catalog.entries(**SCOPE) == []
    assert len(catalog.warnings) == 1


def test_keys_that_are_not_manifests_of_a_backup_id_are_ignored(repos):
    m = manifest("20261123T020000Z-1a2b", finished="2026-11-23T02:10:00Z")
    store(repos[0], m)
    repos[0].put_bytes(m.prefix + "verify/20261123T030000Z.json", b"{}")
    repos[0].put_bytes(m.prefix + "db.dump.zst", b"data")
    repos[0].put_bytes("fra/db1/postgres/not-an-id/manifest.json", m.to_json())
    repos[0].put_bytes("fra/db1/postgres/20261124T020000Z-ffff/manifest.json.bak", m.to_json())
    catalog = Catalog(repos, trust=trust())
    assert ids(catalog.entries(**SCOPE)) == ["20261123T020000Z-1a2b"]
    assert catalog.warnings == []


def test_one_unreachable_repository_is_a_warning_and_the_others_are_used(repos, unreachable_endpoint):
    m = manifest("20261123T020000Z-1a2b", finished="2026-11-23T02:10:00Z")
    store(repos[0], m)
    offline = S3Repository("offsite", bucket="backups", endpoint_url=unreachable_endpoint,
                           access_key="a", secret_key="b", connect_timeout=1, max_attempts=1)
    catalog = Catalog([offline, repos[0]], trust=trust())
    assert ids(catalog.entries(**SCOPE)) == ["20261123T020000Z-1a2b"]
    assert len(catalog.warnings) == 1
    assert "cannot reach" in catalog.warnings[0]


def test_no_readable_repository_is_a_repository_error(unreachable_endpoint):
    offline = S3Repository("offsite", bucket="backups", endpoint_url=unreachable_endpoint,
                           access_key="a", secret_key="b", connect_timeout=1, max_attempts=1)
    with pytest.raises(RepositoryError, match="no repository could be read: .*cannot reach"):
        Catalog([offline], trust=trust()).entries(**SCOPE)


# --- scoping ---------------------------------------------------------------------------------

def test_another_hosts_sites_or_components_backups_never_show_up(repos):
    mine = manifest("20261123T020000Z-0001", finished="2026-11-23T02:10:00Z")
    store(repos[0], mine)
    others = [
        manifest("20261123T020000Z-0002", finished="2026-11-23T03:00:00Z", host="db10"),
        manifest("20261123T020000Z-0003", finished="2026-11-23T03:00:00Z", host="db"),
        manifest("20261123T020000Z-0004", finished="2026-11-23T03:00:00Z", site="ber"),
        manifest("20261123T020000Z-0005", finished="2026-11-23T03:00:00Z", component="redis"),
        manifest("20261123T020000Z-0006", finished="2026-11-23T03:00:00Z", component="postgres2"),
    ]
    for m in others:
        store(repos[0], m)
        store(repos[1], m)
    catalog = Catalog(repos, trust=trust())
    assert ids(catalog.entries(**SCOPE)) == ["20261123T020000Z-0001"]
    assert catalog.select(**SCOPE).manifest.host == "db1"
    assert ids(catalog.entries(site="fra", host="db10", component="postgres")) == ["20261123T020000Z-0002"]


def test_a_manifest_of_another_host_misplaced_under_this_hosts_path_is_not_listed(repos):
    # A copy by hand (or a confused sync) put db2's manifest into db1's directory. Listing it as a
    # db1 backup would restore db2's data onto db1.
    foreign = manifest("20261123T020000Z-0002", finished="2026-11-23T03:00:00Z", host="db2")
    store(repos[0], foreign, key_prefix="fra/db1/postgres/20261123T020000Z-0002/")
    renamed = manifest("20261123T020000Z-0003", finished="2026-11-23T03:00:00Z")
    store(repos[0], renamed, key_prefix="fra/db1/postgres/20261123T020000Z-0004/")
    catalog = Catalog(repos, trust=trust())
    assert catalog.entries(**SCOPE) == []
    assert len(catalog.warnings) == 2
    assert any("db2" in w for w in catalog.warnings)
