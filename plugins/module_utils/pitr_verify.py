# -*- coding: utf-8 -*-
# Copyright: Lifeline contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""WAL gaps: a segment missing between the oldest base backup and the newest archived segment
breaks every restore past it, yet ``pgbackrest verify`` (2.45) checks only the files that exist.
The archive listing (hostile input: names are validated) is walked segment by segment instead,
and every missing one is named.

A segment name is timeline (8 hex), log (8 hex), segment within the log (8 hex); a log holds
0x100000000 / wal_segment_size segments (256 with the default 16 MiB).
"""
from __future__ import annotations

import dataclasses
import re

from ansible_collections.lifeline.dr.plugins.module_utils.errors import ConfigError

DEFAULT_SEGMENT_SIZE = 16 * 1024 * 1024
_SEGMENT_RE = re.compile(r"^[0-9A-F]{24}$")
#: more missing segments than this are summarised (a wiped archive would list millions)
NAMED_MAX = 50


@dataclasses.dataclass(frozen=True)
class Gap:
    after: str          # the last segment present before the gap
    before: str         # the first segment present after it
    missing: int        # how many segments are missing
    first_missing: str
    last_missing: str

    def describe(self) -> str:
        if self.missing == 1:
            return "%s is missing (between %s and %s)" % (self.first_missing, self.after, self.before)
        return "%d segments %s .. %s are missing (between %s and %s)" % (
            self.missing, self.first_missing, self.last_missing, self.after, self.before)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _number(segment: str, per_log: int) -> tuple:
    """(timeline, position) of a segment name."""
    tli, log, seg = int(segment[:8], 16), int(segment[8:16], 16), int(segment[16:], 16)
    if seg >= per_log:
        raise ConfigError("WAL segment %s does not fit a segment size of %d bytes: set wal_segment_size to the "
                          "cluster's (SHOW wal_segment_size)" % (segment, 0x100000000 // per_log))
    return tli, log * per_log + seg


def _name(tli: int, position: int, per_log: int) -> str:
    return "%08X%08X%08X" % (tli, position // per_log, position % per_log)


def find_gaps(segments, *, start: str | None, segment_size: int = DEFAULT_SEGMENT_SIZE) -> list:
    """Gaps in ``segments`` (names present in the archive) from ``start`` (the oldest base
    backup's first segment; None: the oldest present) to the newest present, per timeline. A
    timeline switch is no gap: each timeline is checked from its first segment present (or
    ``start`` on its own timeline)."""
    if segment_size <= 0 or 0x100000000 % segment_size:
        raise ConfigError("wal_segment_size %r is not a power of two up to 1 GiB" % segment_size)
    per_log = 0x100000000 // segment_size
    by_tli: dict = {}
    for name in segments:
        if _SEGMENT_RE.match(name):
            tli, pos = _number(name, per_log)
            by_tli.setdefault(tli, set()).add(pos)
    gaps = []
    start_tli, start_pos = _number(start, per_log) if start else (None, None)
    for tli in sorted(by_tli):
        present = by_tli[tli]
        first = start_pos if tli == start_tli and start_pos is not None else min(present)
        if start_tli is not None and tli < start_tli:
            continue  # older than the window: expired history, no restore needs it
        held = sorted(p for p in present if p >= first)
        expected = [first] if first not in present else []
        previous = first if first in present else None
        for pos in held:
            if previous is not None and pos > previous + 1:
                gaps.append(Gap(after=_name(tli, previous, per_log), before=_name(tli, pos, per_log),
                                missing=pos - previous - 1, first_missing=_name(tli, previous + 1, per_log),
                                last_missing=_name(tli, pos - 1, per_log)))
            elif previous is None and expected:
                gaps.append(Gap(after="(oldest base backup start)", before=_name(tli, pos, per_log),
                                missing=pos - first, first_missing=_name(tli, first, per_log),
                                last_missing=_name(tli, pos - 1, per_log)))
            previous = pos
    return gaps


def describe(gaps: list) -> str:
    shown = gaps[:NAMED_MAX]
    more = len(gaps) - len(shown)
    return "; ".join(g.describe() for g in shown) + ("; and %d more gaps" % more if more else "")
