# -*- coding: utf-8 -*-
# Copyright: Lifeline contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""min_interval: a scheduled run skips when a backup that stands in for it is recent enough.

run_backup over real local repositories, the real pipeline and real signing; the source is a
few bytes (the component double from the backup tests is a source of bytes, not the code under test).
"""
from __future__ import annotations

import contextlib
import datetime
import io
import json
import os
import threading

import pytest

from keys import SIGNER
from ansible_collections.lifeline.dr.plugins.module_utils.backup import Status, run_backup
from ansible_collections.lifeline.dr.plugins.module_utils.component import Component, Source
from ansible_collections.lifeline.dr.plugins.module_utils.errors import ConfigError
from ansible_collections.lifeline.dr.plugins.module_utils.locking import Lock
from ansible_collections.lifeline.dr.plugins.module_utils.manifest import MANIFEST_NAME
from ansible_collections.lifeline.dr.plugins.module_utils.pipeline import Codec
from ansible_collections.lifeline.dr.plugins.module_utils.recent import format_interval, parse_interval, tier_rank
from ansible_collections.lifeline.dr.plugins.module_utils.repository import LocalRepository
from ansible_collections.lifeline.dr.plugins.module_utils.signing import Signer, generate_signing_key

SCOPE = {"site": "fra", "host": "db1"}
CODEC = Codec(compression="zstd", encryption="none")
HOUR = datetime.timedelta(hours=1)


class _Bytes(Source):
    name, kind = "data.bin", "data"

    def __init__(self) -> None:
        self.meta = {}

    @contextlib.contextmanager
    def open(self):
        yield io.BytesIO(b"scheduled backup\n" * 100)


class OneArtifact(Component):
    name = "files"

    def __init__(self, *, kind: str = "full", labels=()) -> None:
        super().__init__()
        self.kind, self.labels = kind, list(labels)
        self.prepared = False

    def prepare(self) -> None:
        self.prepared = True

    def plan(self) -> list:
        return ["data.bin"]

    def artifacts(self):
        yield _Bytes()


@pytest.fixture
def repos(tmp_path):
    return [LocalRepository("local", str(tmp_path / "local")), LocalRepository("copy", str(tmp_path / "copy"))]


@pytest.fixture
def state_dir(tmp_path) -> str:
    return str(tmp_path / "state")


def backup(repos, state_dir, *, min_interval=None, signer=SIGNER, check_mode=False, **component):
    return run_backup(OneArtifact(**component), repos, CODEC, state_dir=state_dir, signer=signer,
                      min_interval=min_interval, check_mode=check_mode, **SCOPE)


def manifests(repo) -> list:
    return sorted(os.path.join(d, f) for d, _x, names in os.walk(repo.root) for f in names if f == MANIFEST_NAME)


def status(state_dir) -> dict:
    with open(os.path.join(state_dir, "status", "fra-db1-files.json"), encoding="utf-8") as fh:
        return json.load(fh)


@pytest.mark.parametrize("text, seconds", [("12h", 43200), ("90m", 5400), ("1d12h", 129600), ("3600", 3600),
                                           ("0", 0), ("2w", 1209600), (" 1h 30m ", 5400), (600, 600)])
def test_intervals_are_written_like_systemd_durations(text, seconds):
    assert parse_interval(text).total_seconds() == seconds


@pytest.mark.parametrize("text", ["12 hours", "h", "-1h", "1.5h", "", "12h5", True, None, -3])
def test_a_malformed_interval_is_a_config_error_that_shows_the_format(text):
    with pytest.raises(ConfigError, match=r"12h, 90m, 1d12h"):
        parse_interval(text)


def test_intervals_print_back_compactly():
    assert format_interval(datetime.timedelta(hours=26, minutes=3)) == "1d2h3m"
    assert format_interval(datetime.timedelta(seconds=4)) == "4s"


def test_tiers_rank_daily_below_weekly_below_monthly():
    assert tier_rank([]) == tier_rank(["daily"]) == tier_rank(["safety"]) == 0
    assert tier_rank(["weekly"]) == 1 and tier_rank(["monthly", "daily"]) == 2


def test_a_second_run_within_min_interval_skips_and_writes_nothing(repos, state_dir):
    first = backup(repos, state_dir)
    record = status(state_dir)
    second = backup(repos, state_dir, min_interval=12 * HOUR)
    assert second.status is Status.SKIPPED and second.manifest is None
    assert second.message.startswith("skipped: files backup %s finished" % first.manifest.backup_id)
    assert "within min_interval 12h" in second.message
    assert [len(manifests(r)) for r in repos] == [1, 1]
    # the record monitoring reads still describes the backup that made the run unnecessary
    assert status(state_dir) == record and record["backup_id"] == first.manifest.backup_id


def test_without_min_interval_or_with_zero_every_run_backs_up(repos, state_dir):
    backup(repos, state_dir)
    assert backup(repos, state_dir).status is Status.OK
    assert backup(repos, state_dir, min_interval=datetime.timedelta(0)).status is Status.OK
    assert [len(manifests(r)) for r in repos] == [3, 3]


def test_a_backup_older_than_min_interval_does_not_count(repos, state_dir):
    backup(repos, state_dir)
    assert backup(repos, state_dir, min_interval=datetime.timedelta(microseconds=1)).status is Status.OK


def test_a_backup_missing_from_one_repository_does_not_make_the_next_run_skip(repos, tmp_path, state_dir):
    backup(repos[:1], state_dir)  # as a partial run leaves it: stored in "local" only
    again = backup(repos, state_dir, min_interval=12 * HOUR)
    assert again.status is Status.OK
    assert [len(manifests(r)) for r in repos] == [2, 1]


def test_the_weekly_run_is_not_skipped_for_a_daily_backup_but_the_daily_is_for_a_weekly(repos, state_dir):
    backup(repos, state_dir, labels=["daily"])
    weekly = backup(repos, state_dir, min_interval=12 * HOUR, labels=["weekly"])
    assert weekly.status is Status.OK and weekly.manifest.labels == ["weekly"]
    assert backup(repos, state_dir, min_interval=12 * HOUR, labels=["daily"]).status is Status.SKIPPED
    assert backup(repos, state_dir, min_interval=12 * HOUR).status is Status.SKIPPED
    assert backup(repos, state_dir, min_interval=12 * HOUR, labels=["monthly"]).status is Status.OK


def test_safety_and_schema_only_backups_never_stand_in_for_a_full_one(repos, state_dir):
    backup(repos, state_dir, labels=["safety"])
    backup(repos, state_dir, kind="schema")
    assert backup(repos, state_dir, min_interval=12 * HOUR).status is Status.OK
    # while a schema-only run is skipped by a recent schema-only backup
    assert backup(repos, state_dir, min_interval=12 * HOUR, kind="schema").status is Status.SKIPPED


def test_a_backup_signed_by_another_key_does_not_count(repos, state_dir):
    other = Signer(generate_signing_key()[0])
    backup(repos, state_dir, signer=other)
    assert backup(repos, state_dir, min_interval=12 * HOUR).status is Status.OK


def test_an_unreadable_catalog_means_run_not_skip(repos, state_dir):
    backup(repos, state_dir)
    for repo in repos:  # a manifest that no longer parses: the run goes ahead
        for path in manifests(repo):
            os.chmod(path, 0o600)
            with open(path, "w", encoding="utf-8") as fh:
                fh.write("{not json")
    assert backup(repos, state_dir, min_interval=12 * HOUR).status is Status.OK


def test_check_mode_reports_the_skip_without_touching_anything(repos, state_dir):
    backup(repos, state_dir)
    planned = backup(repos, state_dir, min_interval=12 * HOUR, check_mode=True)
    assert planned.status is Status.SKIPPED and planned.plan == []


def test_a_run_waiting_for_the_lock_skips_once_the_holder_has_committed(repos, state_dir):
    # The timer's run holds the lock; AWX's run waits for it, then finds the backup made meanwhile.
    results = []
    waiter = threading.Thread(target=lambda: results.append(run_backup(
        OneArtifact(), repos, CODEC, state_dir=state_dir, signer=SIGNER, lock_wait=30,
        min_interval=12 * HOUR, **SCOPE)))
    with Lock(os.path.join(state_dir, "locks"), "fra-db1-files"):
        waiter.start()
        # the holder's backup (its own state dir, so this test's lock stays held meanwhile)
        made = backup(repos, os.path.join(state_dir, "holder"))
        assert not results  # still waiting
    waiter.join(60)
    assert results and results[0].status is Status.SKIPPED
    assert made.manifest.backup_id in results[0].message
    assert [len(manifests(r)) for r in repos] == [1, 1]
