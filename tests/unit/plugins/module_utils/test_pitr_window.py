# -*- coding: utf-8 -*-
# Copyright: Lifeline contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The recoverable window from pgbackrest info (hostile input), target parsing and checks, the
proof that recovery stopped at the target, and pgBackRest errors turned into typed errors."""
from __future__ import annotations

import datetime

import pytest

from ansible_collections.lifeline.dr.plugins.module_utils.errors import (
    ConfigError,
    DecryptionError,
    IntegrityError,
    NotFoundError,
    RepositoryError,
    RestoreError,
)
from ansible_collections.lifeline.dr.plugins.module_utils.pgbackrest_run import SystemIdMismatch, classify
from ansible_collections.lifeline.dr.plugins.module_utils.pitr_restore import prove
from ansible_collections.lifeline.dr.plugins.module_utils.pitr_window import (
    RecoveryTarget,
    TargetKind,
    newest_archive_dirs,
    segment_times,
    window,
)

UTC = datetime.timezone.utc
T0 = 1795474557


def info(backups=1, archive_max="000000010000000000000009") -> dict:
    return {"name": "lifeline", "db": [{"id": 1, "system-id": 7711504486521387995, "version": "15"}],
            "archive": [{"id": "15-1", "min": "000000010000000000000001", "max": archive_max}],
            "backup": [{"label": "20261123-22555%dF" % i, "type": "full", "error": False,
                        "timestamp": {"start": T0 + 100 * i, "stop": T0 + 100 * i + 4},
                        "archive": {"start": "000000010000000000000002", "stop": "000000010000000000000003"},
                        "info": {"size": 10, "repository": {"size": 5}}} for i in range(backups)]}


def at(seconds: float) -> datetime.datetime:
    return datetime.datetime.fromtimestamp(T0 + seconds, UTC)


def test_window_runs_from_the_oldest_backups_end_to_the_newest_segments_archive_time():
    listing = {"000000010000000000000009-abc.zst": {"type": "file", "time": T0 + 500},
               "000000010000000000000008-def.zst": {"type": "file", "time": T0 + 400},
               "000000010000000000000002.00000028.backup": {"type": "file", "time": T0 + 900}}
    win = window(info(backups=2), segment_times=segment_times(listing))

    assert win.oldest == at(4) and win.newest == at(501)  # listing times are truncated seconds
    assert win.last_segment == "000000010000000000000009" and win.system_id == 7711504486521387995
    assert newest_archive_dirs(info()) == ["15-1/0000000100000000"]


@pytest.mark.parametrize("when,message", [(-60, "before the oldest restorable time"),
                                          (600, "after the newest archived WAL")])
def test_a_time_outside_the_window_is_refused_and_says_nothing_was_touched(when, message):
    win = window(info(), segment_times={"000000010000000000000009": at(500)})
    with pytest.raises(ConfigError, match=message + ".*nothing was touched"):
        win.check(RecoveryTarget.parse(kind="time", value=at(when).isoformat()))
    win.check(RecoveryTarget.parse(kind="time", value=at(250).isoformat()))  # inside: no error


def test_no_base_backup_means_nothing_to_restore():
    with pytest.raises(NotFoundError, match="no base backup"):
        window(info(backups=0), segment_times={}).check(RecoveryTarget.parse())


@pytest.mark.parametrize("field,value", [("label", "../../etc"), ("timestamp", {"start": "x", "stop": 1}),
                                         ("archive", {"start": "../x", "stop": "000000010000000000000003"})])
def test_hostile_info_fields_are_rejected(field, value):
    data = info()
    data["backup"][0][field] = value
    with pytest.raises(IntegrityError):
        window(data, segment_times={})


def test_restore_point_reads_latest_a_backup_label_or_a_time():
    assert RecoveryTarget.from_point("latest").kind is TargetKind.LATEST
    assert RecoveryTarget.from_point("20261123-020000F").pgbackrest_args()[0] == "--set=20261123-020000F"
    target = RecoveryTarget.from_point("2026-11-23T14:02:11.5+01:00")
    assert target.pgbackrest_args() == ["--type=time", "--target=2026-11-23 13:02:11.500000+00",
                                        "--target-action=promote"]
    with pytest.raises(ConfigError, match="not an ISO-8601 time"):
        RecoveryTarget.from_point("yesterday")


def test_proof_accepts_a_stop_just_after_the_target_and_refuses_an_earlier_stop():
    target = RecoveryTarget.parse(kind="time", value="2026-11-23T22:56:10.169205Z")
    prove(target, "before 2026-11-23 22:56:11.262578+00", datetime.datetime(2026, 11, 23, 22, 56, 8, tzinfo=UTC))
    with pytest.raises(RestoreError, match="did not stop at the target"):
        prove(target, "no recovery target specified", None)  # WAL ran out before the target
    with pytest.raises(RestoreError):
        prove(target, "before 2026-11-23 22:56:09.000000+00", None)
    with pytest.raises(RestoreError):  # something after the target was replayed
        prove(target, "before 2026-11-23 22:56:11.262578+00", datetime.datetime(2026, 11, 23, 22, 56, 10, 500000, tzinfo=UTC))
    prove(RecoveryTarget.parse(kind="name", value="before-migration"), 'at restore point "before-migration"', None)


def test_pgbackrest_failures_become_errors_that_name_the_cause_without_echoing_garbage():
    garbage = "FormatError: key/value found outside of section at line 1: \x8d\x01\xff\r\x00binary"
    error = classify(garbage, what="info")
    assert isinstance(error, DecryptionError) and "wrong pgBackRest cipher passphrase" in str(error)
    assert "\x00" not in str(error) and "\x8d" not in str(error)
    assert isinstance(classify("ERROR: [044]: backup and archive info files exist but do not match the database\n"
                               "HINT: is this the correct stanza? system-id 1 != 2", what="backup"), SystemIdMismatch)
    assert isinstance(classify("missing stanza path", what="info"), NotFoundError)
    assert isinstance(classify("HostConnectError: unable to get address for 'nowhere'", what="info"), RepositoryError)
