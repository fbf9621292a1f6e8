# -*- coding: utf-8 -*-
# Copyright: Lifeline contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The GFS plan as pure logic: periods that hold a backup, series, pins, chains and bad policies."""
from __future__ import annotations

import datetime

import pytest

from ansible_collections.lifeline.dr.plugins.module_utils.errors import ConfigError
from ansible_collections.lifeline.dr.plugins.module_utils.retention import Item, Policy, plan

UTC = datetime.timezone.utc
NOW = datetime.datetime(2026, 12, 6, 5, 0, tzinfo=UTC)


def item(day: datetime.date, hour: int = 2, *, kind="full", parent=None, labels=(), n: int = 0) -> Item:
    when = datetime.datetime(day.year, day.month, day.day, hour, tzinfo=UTC)
    return Item(when.strftime("%Y%m%dT%H%M%SZ") + "-%04x" % n, when, kind, parent, tuple(labels))


def daily_items(days: int, start=datetime.date(2026, 12, 5)) -> list:
    return [item(start - datetime.timedelta(days=d)) for d in range(days)]


def kept(decisions) -> list:
    return [d.backup_id for d in decisions if d.keep]


def test_default_gfs_over_a_year_of_dailies_keeps_7_daily_4_weekly_12_monthly():
    items = daily_items(400)
    decisions = plan(items, Policy(), now=NOW)
    keep = kept(decisions)
    reasons = {d.backup_id: d.reasons for d in decisions}
    daily = [i for i in keep if any(r.startswith("daily") for r in reasons[i])]
    weekly = [i for i in keep if any(r.startswith("weekly") for r in reasons[i])]
    monthly = [i for i in keep if any(r.startswith("monthly") for r in reasons[i])]
    assert (len(daily), len(weekly), len(monthly)) == (7, 4, 12)
    assert len(keep) < 7 + 4 + 12  # periods overlap: the newest is daily, weekly and monthly at once
    assert decisions[0].reasons[0] == "newest restorable backup"
    # The 12th monthly is the newest backup of the month 11 months back (the last day of it).
    assert any(r == "monthly 2026-01" for r in reasons["20260131T020000Z-0000"])
    assert not any(d.keep for d in decisions if d.backup_id < "20260101")


def test_several_backups_a_day_keep_the_newest_of_each_day():
    day = datetime.date(2026, 12, 5)
    items = [item(day, h, n=h) for h in (1, 9, 17)]
    decisions = plan(items, Policy(daily=1, weekly=0, monthly=0), now=NOW)
    assert kept(decisions) == [items[2].backup_id]
    assert decisions[1].reasons == ["beyond the retention policy"]


def test_a_job_that_stopped_does_not_age_out_its_last_backups():
    # Periods holding a backup count, not calendar days: two months of silence keep 7 dailies.
    items = daily_items(30, start=datetime.date(2026, 10, 1))
    assert len(kept(plan(items, Policy(daily=7, weekly=0, monthly=0), now=NOW))) == 7


def test_schema_dumps_and_safety_backups_never_take_the_full_backups_slots():
    day = datetime.date(2026, 12, 5)
    full = item(day, 1, n=1)
    schema = item(day, 3, kind="schema", n=2)
    safety = item(day, 4, labels=["safety"], n=3)
    decisions = {d.backup_id: d for d in plan([full, schema, safety], Policy(daily=1, weekly=0, monthly=0), now=NOW)}
    assert all(d.keep for d in decisions.values())
    assert "newest restorable backup" in decisions[full.backup_id].reasons


def test_pins_by_label_and_by_date_and_an_expired_pin():
    items = daily_items(20)
    labelled = item(datetime.date(2026, 1, 1), labels=["keep"], n=7)
    policy = Policy(daily=1, weekly=0, monthly=0, pins=(
        (items[10].backup_id, "2026-12-06"), (items[11].backup_id, "2026-12-05"), (items[12].backup_id, "forever")))
    decisions = {d.backup_id: d for d in plan(items + [labelled], policy, now=NOW)}
    assert decisions[labelled.backup_id].reasons == ["pinned by label keep"]
    assert decisions[items[10].backup_id].reasons == ["pinned until 2026-12-06"]
    assert not decisions[items[11].backup_id].keep  # its day has passed
    assert decisions[items[12].backup_id].reasons == ["pinned for good"]


def test_a_kept_incremental_keeps_its_whole_chain_and_nothing_else_of_older_chains():
    day = datetime.date(2026, 12, 1)
    full = item(day, n=1)
    inc1 = item(day + datetime.timedelta(days=1), kind="incremental", parent=full.backup_id, n=2)
    inc2 = item(day + datetime.timedelta(days=2), kind="incremental", parent=inc1.backup_id, n=3)
    old_full = item(day - datetime.timedelta(days=3), n=4)
    decisions = {d.backup_id: d for d in plan([old_full, full, inc1, inc2], Policy(daily=1, weekly=0, monthly=0),
                                              now=NOW)}
    assert [b for b, d in decisions.items() if d.keep] == [inc2.backup_id, inc1.backup_id, full.backup_id]
    assert decisions[full.backup_id].reasons == ["parent of kept %s" % inc1.backup_id]
    assert not decisions[old_full.backup_id].keep


def test_protected_ids_only_add_keeps():
    items = daily_items(5)
    decisions = {d.backup_id: d for d in plan(items, Policy(daily=1, weekly=0, monthly=0), now=NOW,
                                              protected=[items[3].backup_id, "20990101T000000Z-ffff"])}
    assert [b for b, d in decisions.items() if d.keep] == [items[0].backup_id, items[3].backup_id]


@pytest.mark.parametrize("params,match", [
    ({"keep_daily": 0, "keep_weekly": 0, "keep_monthly": 0}, "would keep nothing but the newest"),
    ({"keep_daily": -1}, "keep_daily must be a whole number"),
    ({"keep_weekly": "4"}, "keep_weekly must be a whole number"),
    ({"pins": {"not-an-id": "forever"}}, "is not a backup id"),
    ({"pins": {"20261123T020000Z-4f2a": "next week"}}, "not an ISO-8601 time"),
])
def test_a_bad_policy_is_refused_naming_the_setting(params, match):
    with pytest.raises(ConfigError, match=match):
        Policy.from_params(params)


def test_defaults_are_7_4_12_with_the_keep_label():
    policy = Policy.from_params({})
    assert (policy.daily, policy.weekly, policy.monthly, policy.pin_labels) == (7, 4, 12, ("keep",))
