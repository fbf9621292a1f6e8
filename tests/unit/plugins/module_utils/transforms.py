# -*- coding: utf-8 -*-
# Copyright: Lifeline contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Drives an update()/finalize() transform (cipher or compressor) the way a stream does."""
from __future__ import annotations

import itertools


def feed(transform, data: bytes, pieces) -> bytes:
    """Push ``data`` through ``transform`` in pieces of the sizes in ``pieces``, cycled."""
    out = []
    pos = 0
    for size in itertools.cycle(pieces):
        if pos >= len(data):
            break
        out.append(transform.update(data[pos:pos + size]))
        pos += size
    out.append(transform.finalize())
    return b"".join(out)
