# -*- coding: utf-8 -*-
# Copyright: Lifeline contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""RDB checks: the header; the in-process CRC-64 check and redis-check-rdb (the real tool) over a
pipe, on real snapshots made by a throwaway redis-server: good, truncated, with a flipped byte
(bad CRC-64), and saved without a checksum (then only redis-check-rdb can check it)."""
from __future__ import annotations

import os
import shutil

import pytest

from ansible_collections.lifeline.dr.plugins.module_utils.errors import IntegrityError
from ansible_collections.lifeline.dr.plugins.module_utils.redis_rdb import (
    RdbCheck,
    RdbChecksum,
    check_file,
    check_header,
    crc64_function,
    finish_check,
    stream_check,
)

from redis_server import RedisServer

pytestmark = pytest.mark.skipif(not shutil.which("redis-server"), reason="redis-server not installed")


def _snapshot(directory: str, config: dict | None = None) -> bytes:
    server = RedisServer(directory, config=config)
    try:
        server.start()
        with server.client() as client:
            for i in range(200):
                client.call("SET", "key:%d" % i, "value-%d" % i * 5)
            client.call("SET", "ttl", "v", "EX", 1000)
            client.call("SAVE")
        with open(os.path.join(server.dir, "dump.rdb"), "rb") as fh:
            return fh.read()
    finally:
        server.cleanup()


@pytest.fixture(scope="module")
def rdb_bytes(tmp_path_factory) -> bytes:
    return _snapshot(str(tmp_path_factory.mktemp("rdb")))


@pytest.fixture(scope="module")
def unsummed_rdb(tmp_path_factory) -> bytes:
    """Saved by a server with ``rdbchecksum no``: its trailer is eight zero bytes."""
    return _snapshot(str(tmp_path_factory.mktemp("rdb0")), {"rdbchecksum": "no"})


def _damaged(data: bytes, damage: str) -> bytes:
    data = bytearray(data)
    if damage == "truncated":
        return bytes(data[:len(data) // 2])
    if damage == "flipped":
        data[len(data) // 2] ^= 0x20   # inside a value: only the CRC-64 trailer can tell
        return bytes(data)
    return bytes(data[:-8])


def _crc_check(data: bytes, step: int) -> RdbChecksum:
    check = RdbChecksum("it", crc64_function())
    for i in range(0, len(data), step):
        check.write(data[i:i + step])
    return check


def test_crc64_is_redis_crc64_jones():
    assert crc64_function()(b"123456789") == 0xE9C6D914C4B8D9CA   # the vector in Redis's crc64.c


@pytest.mark.parametrize("step", [1, 7, 8, 9, 4096, 1 << 20])
def test_crc_check_passes_a_good_snapshot_in_any_chunking(rdb_bytes, step):
    detail = _crc_check(rdb_bytes, step).close()
    assert "CRC-64 checksum OK" in detail


@pytest.mark.parametrize("damage", ["truncated", "flipped", "no-trailer"])
def test_crc_check_refuses_damaged_snapshot(rdb_bytes, damage):
    with pytest.raises(IntegrityError, match="truncated or corrupt|corrupt or truncated"):
        _crc_check(_damaged(rdb_bytes, damage), 4096).close()


def test_crc_check_starts_over_on_reset(rdb_bytes):
    check = _crc_check(_damaged(rdb_bytes, "flipped"), 4096)
    check.reset()   # the fetch falls back to another copy
    for i in range(0, len(rdb_bytes), 4096):
        check.write(rdb_bytes[i:i + 4096])
    assert "OK" in check.close()


def test_snapshot_without_checksum_is_parsed_whole_by_redis_check_rdb(tmp_path, unsummed_rdb):
    assert unsummed_rdb[-8:] == b"\0" * 8
    check = stream_check("unsummed")
    check.write(unsummed_rdb)
    path = tmp_path / "dump.rdb"
    path.write_bytes(unsummed_rdb)
    with open(path, "rb") as fh:
        detail = finish_check(check, lambda: fh)
    assert "without a checksum" in detail and "201 keys" in detail and check.counts["keys"] == 201


def test_snapshot_without_checksum_but_damaged_is_refused(tmp_path, unsummed_rdb):
    data = _damaged(unsummed_rdb, "truncated")[:-8] + b"\xff" + b"\0" * 8   # ends as if whole
    check = stream_check("unsummed")
    check.write(data)
    path = tmp_path / "dump.rdb"
    path.write_bytes(data)
    with open(path, "rb") as fh, pytest.raises(IntegrityError, match="redis-check-rdb rejects"):
        finish_check(check, lambda: fh)


@pytest.mark.parametrize("head", [b"", b"REDIS", b"REDIS00x1", b"PGDMP0010", b"\x00" * 9])
def test_rdb_header_refuses_what_is_not_an_rdb(head):
    with pytest.raises(IntegrityError, match="not a Redis RDB snapshot"):
        check_header(head, "thing")


def test_rdb_header_reads_the_version():
    assert check_header(b"REDIS0010", "x") == 10


def test_rdb_check_counts_keys_of_a_good_snapshot_in_any_chunking(rdb_bytes):
    check = RdbCheck("good")
    try:
        for i in range(0, len(rdb_bytes), 100):
            check.write(rdb_bytes[i:i + 100])
        detail = check.close()
    finally:
        check.abort()
    assert check.counts == {"keys": 201, "expires": 1, "already_expired": 0}
    assert "checksum OK" in detail


@pytest.mark.parametrize("damage", ["truncated", "flipped", "no-trailer"])
def test_rdb_check_refuses_damaged_snapshot(tmp_path, rdb_bytes, damage):
    path = tmp_path / "dump.rdb"
    path.write_bytes(_damaged(rdb_bytes, damage))
    with pytest.raises(IntegrityError, match="redis-check-rdb rejects"):
        check_file(str(path), "damaged")


def test_rdb_check_refuses_garbage_at_once(tmp_path):
    path = tmp_path / "dump.rdb"
    path.write_bytes(b"not an rdb at all, just text\n" * 100)
    with pytest.raises(IntegrityError, match="not a Redis RDB snapshot"):
        check_file(str(path), "garbage")
