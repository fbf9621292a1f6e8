# -*- coding: utf-8 -*-
# Copyright: Lifeline contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""WAL-G's answers read back (hostile input: backup-list, st ls, wal-verify), its errors turned
into typed errors, retention, and the recovery settings a WAL-G restore writes."""
from __future__ import annotations

import datetime
import json
import os

import pytest

from ansible_collections.lifeline.dr.plugins.module_utils.errors import (
    ConfigError,
    DecryptionError,
    IntegrityError,
    NotFoundError,
    RepositoryError,
)
from ansible_collections.lifeline.dr.plugins.module_utils.pitr_walg import retained
from ansible_collections.lifeline.dr.plugins.module_utils.pitr_window import RecoveryTarget, TargetKind
from ansible_collections.lifeline.dr.plugins.module_utils.walg_restore import recovery_settings, write_recovery
from ansible_collections.lifeline.dr.plugins.module_utils.walg_run import (
    classify,
    parse_backup_list,
    parse_wal_listing,
    parse_wal_verify,
)

FULL = "base_000000010000000000000002"
DELTA = "base_000000010000000000000004_D_000000010000000000000002"


def entry(name: str, finish: str = "2026-12-06T02:00:09.123456789Z", **kw) -> dict:
    raw = {"backup_name": name, "start_time": "2026-12-06T02:00:00Z", "finish_time": finish,
           "start_lsn": "0/2000028", "finish_lsn": "0/3000100", "system_identifier": 7711504486521387995,
           "pg_version": 150004, "uncompressed_size": 100, "compressed_size": 10, "is_permanent": False}
    raw.update(kw)
    return raw


def test_backup_list_is_parsed_oldest_first_with_segments_and_times():
    out = json.dumps([entry(DELTA, "2026-12-06T04:00:00+01:00"), entry(FULL)])
    full, delta = parse_backup_list(out)
    assert (full.name, delta.name) == (FULL, DELTA) and delta.delta and not full.delta
    assert full.stop == datetime.datetime(2026, 12, 6, 2, 0, 9, 123456, tzinfo=datetime.timezone.utc)
    assert full.wal_start == "000000010000000000000002" and full.wal_stop == "000000010000000000000003"
    assert full.system_id == 7711504486521387995 and full.pg_version == 150004
    assert parse_backup_list("") == [] and parse_backup_list("null") == []


@pytest.mark.parametrize("bad", [
    {"backup_name": "../../etc"}, {"backup_name": "base_0000000100000000000000ZZ"}, {"finish_time": "yesterday"},
    {"start_lsn": "0/2; rm -rf /"}, {"system_identifier": "7711"}, {"uncompressed_size": -1},
])
def test_backup_list_with_a_hostile_entry_is_refused(bad):
    with pytest.raises(IntegrityError):
        parse_backup_list(json.dumps([dict(entry(FULL), **bad)]))


def test_wal_listing_keeps_segments_rounded_up_and_leaves_out_history_and_backup_files():
    out = "\n".join([
        "type size     last modified                           name",
        "obj  16777216 2026-12-06 02:00:01.5 +0000 UTC 000000010000000000000002.zst",
        "obj  300      2026-12-06 02:00:02 +0000 UTC 000000010000000000000002.00000028.backup.zst",
        "obj  16777216 2026-12-06 03:10:00.25 +0100 CET 000000010000000000000003.br",
        "obj  40       2026-12-06 04:00:00 +0000 UTC 00000002.history.zst",
        "dir  0        0001-01-01 00:00:00 +0000 UTC ../evil",
        "obj  1        2026-12-06 05:00:00 +0000 UTC ../000000010000000000000009.zst",
    ])
    times = parse_wal_listing(out)
    utc = datetime.timezone.utc
    assert times == {"000000010000000000000002": datetime.datetime(2026, 12, 6, 2, 0, 2, tzinfo=utc),
                     "000000010000000000000003": datetime.datetime(2026, 12, 6, 2, 10, 1, tzinfo=utc)}


def test_wal_verify_names_lost_ranges_and_refuses_unknown_statuses():
    report = parse_wal_verify(json.dumps({
        "integrity": {"status": "FAILURE", "details": [
            {"timeline_id": 1, "start_segment": "000000010000000000000002", "end_segment": "000000010000000000000005",
             "segments_count": 4, "status": "FOUND"},
            {"timeline_id": 1, "start_segment": "000000010000000000000006", "end_segment": "000000010000000000000006",
             "segments_count": 1, "status": "MISSING_LOST"}]},
        "timeline": {"status": "OK", "details": {"current_timeline_id": 1, "highest_storage_timeline_id": 1}}}))
    assert report["integrity"] == "FAILURE" and report["timeline"] == "OK"
    assert report["gaps"] == [{"timeline": 1, "first": "000000010000000000000006", "last": "000000010000000000000006",
                               "count": 1, "status": "MISSING_LOST"}]
    with pytest.raises(IntegrityError, match="unknown segment status"):
        odd = dict(start_segment="000000010000000000000006", end_segment="000000010000000000000006",
                   timeline_id=1, segments_count=1, status="FINE")
        parse_wal_verify(json.dumps({"integrity": {"details": [odd]}}))
    with pytest.raises(IntegrityError, match="no JSON"):
        parse_wal_verify("ERROR: connection refused")


@pytest.mark.parametrize("message, error", [
    ("ERROR: failed to decrypt: libsodium: message forged", DecryptionError),
    ("ERROR: No backups found", NotFoundError),
    ("ERROR: dial tcp 10.0.0.1:443: connect: connection refused", RepositoryError),
])
def test_walg_failures_become_typed_errors(message, error):
    assert isinstance(classify(message, what="wal-g backup-list"), error)


def test_retention_keeps_the_newest_full_backups_with_their_deltas_and_permanent_ones():
    def b(name, hour, permanent=False):
        return parse_backup_list(json.dumps([entry(name, "2026-12-06T%02d:00:00Z" % hour, is_permanent=permanent)]))[0]
    chain = [b(FULL, 1), b(DELTA, 2), b("base_000000010000000000000008", 3, permanent=True),
             b("base_00000001000000000000000A", 4), b("base_00000001000000000000000C_D_00000001000000000000000A", 5),
             b("base_000000010000000000000010", 6)]
    kept, deleted = retained(chain, 2)
    assert deleted == [FULL, DELTA]
    assert kept == [c.name for c in chain[2:]]
    assert retained(chain, 9) == ([c.name for c in chain], [])
    with pytest.raises(IntegrityError):
        retained(chain, 0)


def test_recovery_settings_promote_at_the_target_and_turn_archiving_off(tmp_path):
    when = RecoveryTarget.parse(kind="time", value="2026-12-06T02:00:00Z")
    conf = recovery_settings(when, "wal-g --config /etc/wal-g/from-db1.json wal-fetch \"%f\" \"%p\"")
    assert conf["recovery_target_time"] == "2026-12-06 02:00:00.000000+00" and conf["archive_mode"] == "off"
    assert conf["recovery_target_action"] == "promote" and conf["recovery_target_timeline"] == "latest"
    assert "recovery_target_action" not in recovery_settings(RecoveryTarget.parse(kind="latest"), "x")
    assert recovery_settings(RecoveryTarget.from_point(FULL), "x")["recovery_target"] == "immediate"
    assert RecoveryTarget.from_point(DELTA).kind is TargetKind.BACKUP
    named = recovery_settings(RecoveryTarget.parse(kind="name", value="before 'it'"), "x")
    write_recovery(str(tmp_path), named)
    text = (tmp_path / "postgresql.auto.conf").read_text()
    assert "recovery_target_name = 'before ''it'''" in text and "archive_mode = 'off'" in text
    assert os.path.exists(tmp_path / "recovery.signal")
    with pytest.raises(ConfigError, match="line break"):
        write_recovery(str(tmp_path), {"restore_command": "x\narchive_mode = on"})
