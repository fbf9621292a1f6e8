# -*- coding: utf-8 -*-
# Copyright: Lifeline contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The RDB backup's fast path (CRC-64 in process, key counts of the fork from INFO keyspace)
against the slow one it replaced (redis-check-rdb parsing every record): on a real server under
writes and expiry, the counts recorded must be exactly those redis-check-rdb finds in the
stored snapshot; without crcmod's C extension the backup still checks everything, slower."""
from __future__ import annotations

import threading

from ansible_collections.lifeline.dr.plugins.module_utils import config, redis_rdb
from ansible_collections.lifeline.dr.plugins.module_utils.redis_checks import check_for
from ansible_collections.lifeline.dr.plugins.module_utils.verify import verify_backup

from test_redis import backup


def _writer(server, stop: threading.Event) -> None:
    """New keys, keys that expire within milliseconds and deletes, as fast as one client can."""
    with server.client() as c:
        i = 0
        while not stop.is_set():
            c.pipeline([("SET", "k%d" % i, "v"), ("SET", "gone%d" % i, "x", "PX", 3), ("DEL", "k%d" % (i - 50))])
            i += 1


def _verified(params: dict, outcome) -> list:
    entry = config.catalog(params).select(site="it", host="src", component="redis", point=outcome.manifest.backup_id)
    report = verify_backup(entry, config.codec(params), check_for=check_for(entry.manifest), record=False)
    assert report["ok"], report["results"]
    return [r["detail"] for r in report["results"]]


def test_counts_of_the_fork_match_redis_check_rdb_under_writes_and_expiry(redis_factory, redis_params):
    source = redis_factory()
    with source.client() as c:
        c.pipeline([("SET", "base%d" % i, "v") for i in range(2000)])
    stop = threading.Event()
    thread = threading.Thread(target=_writer, args=(source, stop))
    thread.start()
    try:
        outcomes = [backup(redis_params, source, method="file") for _i in range(4)]
    finally:
        stop.set()
        thread.join()
    for outcome in outcomes:
        meta = outcome.manifest.artifacts[0].meta
        assert meta["keys"] >= 2000 and "checksum OK" in meta["check"]
        # verify parses the stored RDB with redis-check-rdb and compares its count with meta["keys"]
        assert all("checksum OK" in d for d in _verified(redis_params, outcome))
    forks = [o.manifest.artifacts[0].meta for o in outcomes if "databases" in o.manifest.artifacts[0].meta]
    assert forks, "no backup took its counts from the fork"
    assert all(m["databases"] == {"0": m["keys"]} and "CRC-64" in m["check"] for m in forks)


def test_without_crcmod_the_backup_is_checked_and_counted_by_redis_check_rdb(redis_factory, redis_params, monkeypatch):
    monkeypatch.setattr(redis_rdb, "crc64_function", lambda: None)
    source = redis_factory()
    with source.client() as c:
        c.pipeline([("SET", "key%d" % i, "v") for i in range(300)] + [("EXPIRE", "key1", 1000)])
    meta = backup(redis_params, source, method="file").manifest.artifacts[0].meta
    assert "CRC-64" not in meta["check"] and "300 keys (1 with a TTL), checksum OK" in meta["check"]
    assert meta["keys"] == 300 and meta["expires"] == 1
