# -*- coding: utf-8 -*-
# Copyright: Lifeline contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""WAL gap detection over archive listings (plugins/module_utils/pitr_verify.py)."""
from __future__ import annotations

import pytest

from ansible_collections.lifeline.dr.plugins.module_utils.errors import ConfigError
from ansible_collections.lifeline.dr.plugins.module_utils.pitr_verify import describe, find_gaps


def seg(tli: int, log: int, n: int) -> str:
    return "%08X%08X%08X" % (tli, log, n)


def test_a_contiguous_archive_across_a_log_boundary_has_no_gap():
    names = [seg(1, 0, n) for n in range(0xF0, 0x100)] + [seg(1, 1, n) for n in range(0, 5)]
    assert find_gaps(names, start=seg(1, 0, 0xF0)) == []


def test_one_missing_segment_is_named_with_its_neighbours():
    names = [seg(1, 0, n) for n in (2, 3, 4, 6, 7)]
    gaps = find_gaps(names, start=seg(1, 0, 2))
    assert [(g.first_missing, g.missing, g.after, g.before) for g in gaps] == [(seg(1, 0, 5), 1, seg(1, 0, 4), seg(1, 0, 6))]
    assert describe(gaps) == "%s is missing (between %s and %s)" % (seg(1, 0, 5), seg(1, 0, 4), seg(1, 0, 6))


def test_a_missing_first_segment_of_the_oldest_backup_and_a_run_across_logs_are_found():
    names = [seg(1, 0, 3), seg(1, 0, 0xFE), seg(1, 1, 2)]
    gaps = find_gaps(names, start=seg(1, 0, 1))
    assert [(g.first_missing, g.last_missing, g.missing) for g in gaps] == [
        (seg(1, 0, 1), seg(1, 0, 2), 2), (seg(1, 0, 4), seg(1, 0, 0xFD), 250), (seg(1, 0, 0xFF), seg(1, 1, 1), 3)]


def test_segments_before_the_window_and_timeline_switches_are_no_gap():
    names = [seg(1, 0, 1), seg(1, 0, 5), seg(1, 0, 6), seg(2, 0, 6), seg(2, 0, 7)]
    assert find_gaps(names, start=seg(1, 0, 5)) == []


def test_a_larger_segment_size_has_fewer_segments_per_log_and_a_wrong_one_is_refused():
    names = [seg(1, 0, 0x3F), seg(1, 1, 0)]
    assert find_gaps(names, start=None, segment_size=64 * 1024 * 1024) == []
    with pytest.raises(ConfigError, match="wal_segment_size"):
        find_gaps([seg(1, 0, 0x40)], start=None, segment_size=64 * 1024 * 1024)
    with pytest.raises(ConfigError, match="power of two"):
        find_gaps(names, start=None, segment_size=3)


def test_names_that_are_not_segments_are_ignored():
    assert find_gaps([seg(1, 0, 1), "../../etc", seg(1, 0, 2) + ".partial", "00000002.history"], start=None) == []
