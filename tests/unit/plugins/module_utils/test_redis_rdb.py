# -*- coding: utf-8 -*-
# Copyright: Lifeline contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""RDB checks: the header, and redis-check-rdb (the real tool) over a pipe on a real snapshot
made by a throwaway redis-server: good, truncated and with a flipped byte (bad CRC64)."""
from __future__ import annotations

import os
import shutil

import pytest

from ansible_collections.lifeline.dr.plugins.module_utils.errors import IntegrityError
from ansible_collections.lifeline.dr.plugins.module_utils.redis_rdb import RdbCheck, check_file, check_header

from redis_server import RedisServer

pytestmark = pytest.mark.skipif(not shutil.which("redis-server"), reason="redis-server not installed")


@pytest.fixture(scope="module")
def rdb_bytes(tmp_path_factory) -> bytes:
    server = RedisServer(str(tmp_path_factory.mktemp("rdb")))
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
    data = bytearray(rdb_bytes)
    if damage == "truncated":
        data = data[:len(data) // 2]
    elif damage == "flipped":
        data[len(data) // 2] ^= 0x20   # inside a value: only the CRC64 trailer can tell
    else:
        data = data[:-8]
    path = tmp_path / "dump.rdb"
    path.write_bytes(bytes(data))
    with pytest.raises(IntegrityError, match="redis-check-rdb rejects"):
        check_file(str(path), "damaged")


def test_rdb_check_refuses_garbage_at_once(tmp_path):
    path = tmp_path / "dump.rdb"
    path.write_bytes(b"not an rdb at all, just text\n" * 100)
    with pytest.raises(IntegrityError, match="not a Redis RDB snapshot"):
        check_file(str(path), "garbage")
