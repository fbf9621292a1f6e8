# -*- coding: utf-8 -*-
# Copyright: Lifeline contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The portable Redis stream read back as hostile input: every malformed stream is refused."""
from __future__ import annotations

import hashlib
import struct

import pytest

from ansible_collections.lifeline.dr.plugins.module_utils.errors import IntegrityError
from ansible_collections.lifeline.dr.plugins.module_utils.redis_portable import (
    MAGIC,
    MAX_PAYLOAD,
    NO_TTL,
    TAG_END,
    TAG_KEY,
    TAG_SELECT,
    PortableReader,
    PortableWriter,
    read_file,
    validate_file,
)


def _stream(keys=((0, b"a", NO_TTL, b"pa"), (0, b"b", 1900000000000, b"pb"), (3, b"c", NO_TTL, b"pc"))) -> bytes:
    writer = PortableWriter()
    out = []
    db = None
    for kdb, key, exp, payload in keys:
        if kdb != db:
            writer.select(kdb)
            db = kdb
        writer.key(key, exp, payload)
        out.append(writer.take())   # taken in pieces, as a backup streams it
    out.append(writer.end())
    return b"".join(out)


def _read(data: bytes, chunk: int = 7) -> tuple:
    reader = PortableReader("test stream")
    records = []
    for i in range(0, len(data), chunk):
        records += reader.feed(data[i:i + chunk])
    return records, reader.finish()


def _resealed(body: bytes, count: int) -> bytes:
    """``body`` (header and records) with a valid end record, so only the body's flaw is tested."""
    return body + struct.pack(">BQ", TAG_END, count) + hashlib.sha256(body).digest()


def test_portable_round_trip_keeps_keys_expiry_and_databases_in_any_chunking():
    for chunk in (1, 5, 64, 1 << 20):
        records, summary = _read(_stream(), chunk)
        assert [(r.db, r.key, r.expire_at_ms, r.payload) for r in records] == [
            (0, b"a", NO_TTL, b"pa"), (0, b"b", 1900000000000, b"pb"), (3, b"c", NO_TTL, b"pc")]
        assert summary == {"keys": 3, "databases": {"0": 2, "3": 1}, "volatile": {"0": 1}}


def test_portable_empty_server_is_a_valid_stream_of_no_keys():
    records, summary = _read(_stream(keys=()))
    assert records == [] and summary["keys"] == 0


@pytest.mark.parametrize("cut", [0, 4, 8, 13, 20, -41, -1])
def test_portable_refuses_truncated_stream(cut):
    data = _stream()
    reader = PortableReader("cut stream")
    with pytest.raises(IntegrityError, match="truncated|not a valid"):
        reader.feed(data[:cut] if cut else b"")
        reader.finish()


def test_portable_refuses_flipped_byte_by_its_sha256():
    data = bytearray(_stream())
    data[20] ^= 0x01   # inside the first key's payload area
    with pytest.raises(IntegrityError, match="sha256|not a valid"):
        _read(bytes(data))


def test_portable_refuses_wrong_key_count_in_end_record():
    data = _stream()
    body = data[:-41]
    bad = body + struct.pack(">BQ", TAG_END, 99) + data[-32:]
    with pytest.raises(IntegrityError, match="counts 99 keys, the stream holds 3"):
        _read(bad)


def test_portable_refuses_oversized_payload_length_before_buffering_it():
    body = MAGIC + struct.pack(">BI", TAG_SELECT, 0) + struct.pack(">BI", TAG_KEY, 1) + b"k" + \
        struct.pack(">qI", NO_TTL, MAX_PAYLOAD + 1)
    reader = PortableReader("huge")
    with pytest.raises(IntegrityError, match="payload length .* over the limit"):
        reader.feed(body)


def test_portable_refuses_oversized_key_length():
    body = MAGIC + struct.pack(">BI", TAG_SELECT, 0) + struct.pack(">BI", TAG_KEY, 0xFFFFFFFF)
    with pytest.raises(IntegrityError, match="key length .* over the limit"):
        PortableReader("huge").feed(body)


@pytest.mark.parametrize("body, why", [
    (b"REDIS0010", "header"),
    (MAGIC + struct.pack(">BI", TAG_KEY, 1) + b"k", "before any select"),
    (MAGIC + struct.pack(">BI", TAG_SELECT, 1 << 20), "database index"),
    (MAGIC + b"\x07", "unknown record type"),
    (MAGIC + struct.pack(">BI", TAG_SELECT, 0) + struct.pack(">BI", TAG_KEY, 1) + b"k" + struct.pack(">qI", -5, 0),
     "expiry"),
])
def test_portable_refuses_malformed_records(body, why):
    with pytest.raises(IntegrityError, match=why):
        _read(_resealed(body, 0))


def test_portable_refuses_bytes_after_the_end_record():
    with pytest.raises(IntegrityError, match="after the end record"):
        _read(_stream() + b"\x01")


def test_portable_file_readers_check_the_end_record(tmp_path):
    good, bad = tmp_path / "good", tmp_path / "bad"
    good.write_bytes(_stream())
    bad.write_bytes(_stream()[:-10])
    assert validate_file(str(good))["keys"] == 3
    assert len(list(read_file(str(good)))) == 3
    with pytest.raises(IntegrityError, match="truncated"):
        validate_file(str(bad))
    with pytest.raises(IntegrityError, match="truncated"):
        list(read_file(str(bad)))
