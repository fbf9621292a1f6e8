# -*- coding: utf-8 -*-
# Copyright: Lifeline contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The manifest: a lossless round trip, refusal of anything damaged or foreign, and the names
and times it is built from."""
from __future__ import annotations

import datetime
import json

import pytest

from ansible_collections.lifeline.dr.plugins.module_utils.errors import ConfigError, IntegrityError
from ansible_collections.lifeline.dr.plugins.module_utils.manifest import (
    FORMAT,
    VERSION,
    Artifact,
    Manifest,
    backup_prefix,
    check_name,
    is_backup_id,
    new_backup_id,
)
from ansible_collections.lifeline.dr.plugins.module_utils.timeutil import isotime, parse_time

UTC = datetime.timezone.utc


def sample(**overrides) -> Manifest:
    fields = dict(
        backup_id="20261123T020000Z-1a2b", site="fra", host="db1", component="postgres",
        kind="full", started="2026-11-23T02:00:00Z", finished="2026-11-23T02:10:00Z",
        consistent_at="2026-11-23T02:00:05Z", compression="zstd", encryption="age",
        key_id=["age1example"],
        artifacts=[Artifact(name="globals.sql.zst.age", kind="globals", size=120, sha256="ab" * 32,
                            plain_size=300),
                   Artifact(name="db-app.dump.zst.age", kind="database", size=4096,
                            sha256="cd" * 32, plain_size=9000, meta={"database": "app"})],
        tools={"pg_dump": "15.8"}, facts={"server_version": "15.8"}, labels=["nightly"])
    fields.update(overrides)
    return Manifest(**fields)


def test_to_json_then_from_json_gives_back_an_equal_manifest():
    manifest = sample(kind="incremental", parent_id="20261122T020000Z-ffff")
    again = Manifest.from_json(manifest.to_json())
    assert again == manifest
    assert isinstance(again.artifacts[1], Artifact)
    assert again.artifacts[1].meta == {"database": "app"}


def test_json_names_its_format_and_version_and_is_byte_stable():
    raw = sample().to_json()
    data = json.loads(raw)
    assert data["format"] == FORMAT == "lifeline-manifest"
    assert data["version"] == VERSION == 1
    # Written to every repository from the same bytes and read back for comparison: it must
    # not depend on dict order.
    assert Manifest.from_json(raw).to_json() == raw
    assert raw.endswith(b"\n")


def test_unknown_extra_fields_are_ignored_so_a_newer_writer_stays_readable():
    data = sample().to_dict()
    data["future_field"] = {"x": 1}
    assert Manifest.from_dict(data) == sample()


def test_prefix_is_site_host_component_and_id():
    assert sample().prefix == "fra/db1/postgres/20261123T020000Z-1a2b/"


def test_artifact_lookup_by_name_and_an_unknown_name_is_an_integrity_error():
    manifest = sample()
    assert manifest.artifact("globals.sql.zst.age").kind == "globals"
    with pytest.raises(IntegrityError, match="20261123T020000Z-1a2b has no artifact 'nope'"):
        manifest.artifact("nope")


def _mutated(change) -> bytes:
    data = sample().to_dict()
    change(data)
    return json.dumps(data).encode()


@pytest.mark.parametrize("raw, message", [
    (b"", "is not valid JSON"),
    (b'{"format": "lifeline-manifest", "version": 1', "is not valid JSON"),
    (b"[1, 2]", "is not a Lifeline manifest"),
    (b'{"format": "restic-snapshot"}', "is not a Lifeline manifest"),
    (_mutated(lambda d: d.update(version=2)), "has schema version 2; this Lifeline reads version 1"),
    (_mutated(lambda d: d.pop("version")), "has schema version None"),
    (_mutated(lambda d: d.pop("finished")), "is incomplete or malformed"),
    (_mutated(lambda d: d["artifacts"][0].pop("sha256")), "is incomplete or malformed"),
    (_mutated(lambda d: d["artifacts"][0].update(colour="red")), "is incomplete or malformed"),
    (_mutated(lambda d: d.update(backup_id="../../etc")), "has an invalid backup_id '../../etc'"),
    (_mutated(lambda d: d.update(backup_id="latest")), "has an invalid backup_id"),
], ids=["empty", "truncated", "list", "foreign", "newer-version", "no-version", "missing-field",
        "artifact-missing-field", "artifact-unknown-field", "path-in-id", "word-as-id"])
def test_a_damaged_or_foreign_manifest_is_an_integrity_error_naming_where(raw, message):
    with pytest.raises(IntegrityError) as info:
        Manifest.from_json(raw, where="s/h/c/x/manifest.json in repo-a")
    assert message in str(info.value)
    assert str(info.value).startswith("s/h/c/x/manifest.json in repo-a ")


# --- ids, names, times -----------------------------------------------------------------------

def test_new_backup_ids_encode_the_start_time_and_differ():
    when = datetime.datetime(2026, 11, 23, 2, 0, 0, tzinfo=UTC)
    ids = {new_backup_id(when) for _attempt in range(50)}
    assert all(i.startswith("20261123T020000Z-") and is_backup_id(i) for i in ids)
    assert len(ids) > 1


@pytest.mark.parametrize("text", ["20261123T020000Z-1A2B", "20261123T020000Z", "2026-11-23",
                                  "20261123T020000Z-1a2b/..", "", "latest"])
def test_is_backup_id_refuses_anything_but_the_exact_form(text):
    assert not is_backup_id(text)


@pytest.mark.parametrize("text, expected", [
    ("2026-11-23T02:00:00Z", datetime.datetime(2026, 11, 23, 2, 0, tzinfo=UTC)),
    ("2026-11-23T03:00:00+01:00", datetime.datetime(2026, 11, 23, 2, 0, tzinfo=UTC)),
    ("2026-11-23T02:00:00", datetime.datetime(2026, 11, 23, 2, 0, tzinfo=UTC)),
    (" 2026-11-23 02:00:00Z ", datetime.datetime(2026, 11, 23, 2, 0, tzinfo=UTC)),
])
def test_parse_time_reads_iso_8601_and_takes_a_time_without_zone_as_utc(text, expected):
    assert parse_time(text) == expected
    assert parse_time(text).tzinfo == UTC


@pytest.mark.parametrize("text", ["yesterday", "23/11/2026", ""])
def test_parse_time_refuses_anything_else_with_an_example(text):
    with pytest.raises(ConfigError, match="is not an ISO-8601 time .example: 2026-11-23T02:00:00Z"):
        parse_time(text)


def test_isotime_writes_utc_with_a_z():
    berlin = datetime.timezone(datetime.timedelta(hours=1))
    assert isotime(datetime.datetime(2026, 11, 23, 3, 0, 0, tzinfo=berlin)) == "2026-11-23T02:00:00.000Z"


@pytest.mark.parametrize("value", ["db1", "db-1.example_x", "A", "9" * 128])
def test_check_name_accepts_safe_names(value):
    assert check_name("host", value) == value


@pytest.mark.parametrize("value", ["", ".", "..", "../x", "a/b", ".hidden", "-flag", "a b",
                                   "x" * 129, "é", None, 5])
def test_check_name_refuses_names_that_could_escape_or_collide(value):
    with pytest.raises(ConfigError, match="host .* must be 1-128 characters"):
        check_name("host", value)


def test_backup_prefix_ends_with_a_slash_so_db1_never_matches_db10():
    assert backup_prefix("fra", "db1", "postgres") == "fra/db1/postgres/"
    assert backup_prefix("fra", "db1", "postgres", "20261123T020000Z-1a2b") == \
        "fra/db1/postgres/20261123T020000Z-1a2b/"
    with pytest.raises(ConfigError, match="component"):
        backup_prefix("fra", "db1", "../x")


def test_isotime_keeps_milliseconds_so_backups_in_one_second_order():
    first = datetime.datetime(2026, 11, 23, 2, 0, 0, 100000, tzinfo=UTC)
    second = first + datetime.timedelta(milliseconds=5)
    assert isotime(first) == "2026-11-23T02:00:00.100Z"
    assert isotime(first) < isotime(second)
    assert parse_time(isotime(second)) == second.replace(microsecond=105000)
