"""Benchmark: redis_backup / redis_restore against BGSAVE + cp and a restart that loads the RDB.

  .venv/bin/python benchmarks/redis_backup.py [--keys 1000000] [--rounds 3]

Builds a throwaway redis-server with --keys keys of mixed types (60 % strings, then hashes,
lists, sets, sorted sets and streams of a few fields each, 10 % with a TTL) in two databases,
then times, in the same run against the same data:
  baseline  BGSAVE, wait for it, cp dump.rdb                         (the classic manual backup)
  rdb       the engine's RDB backup, no compression/encryption      (BGSAVE + CRC-64 check + sha256)
  rdb+      the same with zstd -3 x2 threads and age                 (what a default run does)
  portable  the engine's portable export (SCAN + PTTL + DUMP), none/none: keys/s
  restart   stop an empty server, place the RDB, start it, wait until loaded
  restore   the engine's restore of the RDB into that running, empty server
            (stage with the CRC-64 check, the target replicates from Lifeline, verify)
each --rounds times, alternated, and prints the medians and ratios. Targets (issue #7): rdb <= 1.2x baseline; portable >= 100,000 keys/s;
restore <= 1.5x restart. Ratios matter; seconds drift with the machine.
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from statistics import median

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "lib"))
# pylint: disable=wrong-import-position
from collection import ensure_importable  # noqa: E402

ensure_importable()
from redis_server import RedisServer  # noqa: E402
from ansible_collections.lifeline.dr.plugins.module_utils import crypto  # noqa: E402
from ansible_collections.lifeline.dr.plugins.module_utils.backup import run_backup  # noqa: E402
from ansible_collections.lifeline.dr.plugins.module_utils.catalog import Catalog  # noqa: E402
from ansible_collections.lifeline.dr.plugins.module_utils.pipeline import Codec  # noqa: E402
from ansible_collections.lifeline.dr.plugins.module_utils.redis_component import Format, RedisComponent  # noqa: E402
from ansible_collections.lifeline.dr.plugins.module_utils.redis_restore import (  # noqa: E402
    RedisRestore,
    RedisRestoreOptions,
)
from ansible_collections.lifeline.dr.plugins.module_utils.redis_server import wait_ready  # noqa: E402
from ansible_collections.lifeline.dr.plugins.module_utils.repository import LocalRepository  # noqa: E402
from ansible_collections.lifeline.dr.plugins.module_utils.signing import (  # noqa: E402
    Signer,
    TrustStore,
    generate_signing_key,
)


def timed(func, *args, **kwargs):
    start = time.monotonic()
    result = func(*args, **kwargs)
    return time.monotonic() - start, result


def populate(server: RedisServer, keys: int) -> None:
    strings = keys * 6 // 10
    with server.client() as c:
        c.call("DEBUG", "POPULATE", strings // 2, "str", 64)
        c.call("SELECT", 1)
        c.call("DEBUG", "POPULATE", strings - strings // 2, "str1", 64)
        c.call("SELECT", 0)
        kinds = [("HSET", ("f1", "v1", "f2", "value-two", "f3", "3")), ("RPUSH", ("a", "b", "c", "d")),
                 ("SADD", ("m1", "m2", "m3")), ("ZADD", (1, "a", 2, "b", 3, "c")), ("XADD", ("*", "k", "v", "n", "1"))]
        batch = []
        for i in range(keys - strings):
            cmd, args = kinds[i % len(kinds)]
            key = "%s:%d" % (cmd.lower(), i)
            batch.append((cmd, key, *args))
            if i % 10 == 0:
                batch.append(("PEXPIRE", key, 3_600_000))
            if len(batch) >= 10000:
                c.pipeline(batch)
                batch = []
        c.pipeline(batch)
        total = sum(v["keys"] for v in c.keyspace().values())
    print("populated %d keys" % total, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--keys", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=3, help="alternated rounds; medians are reported")
    args = parser.parse_args()
    work = tempfile.mkdtemp(prefix="lifeline-bench-redis-")
    pem, pub = generate_signing_key()
    identity, recipient = crypto.generate_age_identity()
    plain = Codec(compression="none", encryption="none")
    full = Codec(recipients=[recipient], identities=[identity])
    repo = LocalRepository("local", os.path.join(work, "repo"))
    os.makedirs(os.path.join(work, "src"))
    src = RedisServer(os.path.join(work, "src"), config={"enable-debug-command": "yes"}).start()
    dst = None
    rows = []
    try:
        populate(src, args.keys)

        def baseline():
            # What an operator scripts: BGSAVE, poll until it is done, copy the file.
            with src.client() as c:
                c.call("BGSAVE")
                while c.info("persistence")["rdb_bgsave_in_progress"] != "0":
                    time.sleep(0.05)
            shutil.copyfile(os.path.join(src.dir, "dump.rdb"), os.path.join(work, "copy.rdb"))

        def backup(fmt: Format, codec: Codec):
            return run_backup(RedisComponent(src.conn, fmt=fmt), [repo], codec, site="bench", host="bench",
                              state_dir=os.path.join(work, "state"), signer=Signer(pem))

        # Alternated rounds, medians: the machine's load drifts within a run.
        t_base, t_rdb, t_full = [], [], []
        for _round in range(args.rounds):
            t_base.append(timed(baseline)[0])
            secs, out_rdb = timed(backup, Format.RDB, plain)
            t_rdb.append(secs)
            secs, out_full = timed(backup, Format.RDB, full)
            t_full.append(secs)
        t_base, t_rdb, t_full = median(t_base), median(t_rdb), median(t_full)
        t_port, out_port = timed(backup, Format.PORTABLE, plain)
        size = os.path.getsize(os.path.join(work, "copy.rdb"))
        keys = out_port.manifest.artifacts[0].meta["keys"]
        rows += [("baseline BGSAVE + cp", t_base, ""),
                 ("rdb backup (none/none)", t_rdb, "%.2fx baseline (target <= 1.2x)" % (t_rdb / t_base)),
                 ("rdb backup (zstd+age)", t_full, "%.2fx baseline; %d -> %d bytes" % (
                     t_full / t_base, size, out_full.manifest.artifacts[0].size)),
                 ("portable export", t_port, "%d keys/s (target >= 100,000)" % (keys / t_port))]

        os.makedirs(os.path.join(work, "dst"))
        dst = RedisServer(os.path.join(work, "dst")).start()

        def restart():
            dst.stop()
            shutil.copyfile(os.path.join(work, "copy.rdb"), os.path.join(dst.dir, "dump.rdb"))
            dst.start(timeout=600)
            wait_ready(dst.conn, timeout=600)

        def empty():
            with dst.client() as c:
                c.call("FLUSHALL")
            dst.stop()
            os.unlink(os.path.join(dst.dir, "dump.rdb"))
            dst.start()

        entry = Catalog([repo], trust=TrustStore({"bench": [pub]})).select(
            site="bench", host="bench", component="redis", point=out_rdb.manifest.backup_id)
        t_restart, t_restore = [], []
        for _round in range(args.rounds):
            t_restart.append(timed(restart)[0])
            empty()
            job = RedisRestore(entry, plain, dst.conn, RedisRestoreOptions(
                staging_dir=os.path.join(work, "staging"), state_dir=os.path.join(work, "state")))
            secs, report = timed(job.run)
            t_restore.append(secs)
        t_restart, t_restore = median(t_restart), median(t_restore)
        rows += [("restart loading the RDB", t_restart, ""),
                 ("restore into running server", t_restore, "%.2fx restart (target <= 1.5x); phases %s" % (
                     t_restore / t_restart, report["phases"]))]
    finally:
        src.stop()
        if dst is not None:
            dst.stop()
        shutil.rmtree(work, ignore_errors=True)
    print("\n| step | seconds | |\n| --- | --- | --- |")
    for name, secs, note in rows:
        print("| %s | %.2f | %s |" % (name, secs, note))


if __name__ == "__main__":
    main()
