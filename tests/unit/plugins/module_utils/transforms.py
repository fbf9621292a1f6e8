# -*- coding: utf-8 -*-
# Copyright: Lifeline contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Drives an update()/finalize() transform (cipher or compressor) the way a stream does: in
pieces of odd sizes."""
from __future__ import annotations

import itertools


def pieces(data: bytes, sizes):
    """``data`` cut into pieces of the sizes in ``sizes``, cycled."""
    pos = 0
    for size in itertools.cycle(sizes):
        if pos >= len(data):
            return
        yield data[pos:pos + size]
        pos += size


def feed(transform, data: bytes, sizes) -> bytes:
    """Push ``data`` through ``transform`` in pieces of the sizes in ``sizes``, cycled."""
    out = [transform.update(piece) for piece in pieces(data, sizes)]
    out.append(transform.finalize())
    return b"".join(out)
