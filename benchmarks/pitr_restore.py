"""Benchmark: a point-in-time restore through Lifeline against pgBackRest's own restore.

  .venv/bin/python benchmarks/pitr_restore.py [--scale 70] [--wal-seconds 300] [--runs 3]

Builds a throwaway PostgreSQL 15 cluster (pgbench scale --scale: 70 is about 1.05 GB) archiving
into a local path repository with pgBackRest (zst, aes-256-cbc, as Lifeline configures it),
takes a full base backup, then runs pgbench for --wal-seconds (archive_timeout 1 s) so the
restore replays that much WAL, and stops the source. Then, alternating, in the same run on the
same repository, each into a new data directory:
  baseline  pgbackrest restore --type=default --archive-mode=off, pg_ctl start, wait until
            promoted (what an operator scripts by hand)
  lifeline  postgres_pitr's restore to latest: window check, the same pgbackrest restore, start,
            promotion, proof from the timeline history, system identifier, the WAL-end check
and prints the medians and lifeline / baseline. Target (issue 8): <= 1.1. Ratios matter; seconds
drift with the machine.
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "lib"))
# pylint: disable=wrong-import-position
from collection import ensure_importable  # noqa: E402

ensure_importable()
import psycopg2  # noqa: E402
from services import PitrPostgres, free_port, service_dir  # noqa: E402
from ansible_collections.lifeline.dr.plugins.module_utils import pitr  # noqa: E402
from ansible_collections.lifeline.dr.plugins.module_utils.pgbackrest_config import PitrSettings  # noqa: E402
from ansible_collections.lifeline.dr.plugins.module_utils.pitr_server import Server  # noqa: E402
from ansible_collections.lifeline.dr.plugins.module_utils.pitr_window import RecoveryTarget  # noqa: E402
from ansible_collections.lifeline.dr.plugins.module_utils.postgres import PgConnection  # noqa: E402

PASS = "benchmark pitr passphrase, long enough"
PG_BIN = "/usr/lib/postgresql/15/bin"


def settings(base: str, *, data_dir: str, port: int, socket_dir: str) -> PitrSettings:
    return PitrSettings(repositories=[{"name": "local", "path": os.path.join(base, "repo")}], site="bench",
                        host="src", data_dir=data_dir, cipher_pass=PASS, port=port, socket_dir=socket_dir,
                        spool_path=os.path.join(base, "spool"), log_path=os.path.join(base, "log"),
                        lock_path=os.path.join(base, "lock"), process_max=2)


def as_postgres(argv: list, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(argv, check=True, capture_output=True, text=True, user="postgres" if os.geteuid() == 0 else None,
                          cwd="/", **kw)


def prepare(base: str, scale: int, wal_seconds: int) -> PitrPostgres:
    src = PitrPostgres(os.path.join(base, "src"))
    src.start()
    conn = PgConnection(host=src.host, port=src.port, user=src.user, password=src.password)
    config = os.path.join(base, "etc", "src.conf")
    env = dict(os.environ, PGPASSWORD=src.password)
    subprocess.run([os.path.join(PG_BIN, "pgbench"), "-i", "-q", "-s", str(scale), "-h", src.host, "-p", str(src.port),
                    "-U", src.user, "postgres"], check=True, env=env, capture_output=True)
    pitr.configure(settings(base, data_dir=src.data, port=src.port, socket_dir=src.dir), conn, config_path=config,
                   archive_timeout=1)
    started = time.monotonic()
    taken = pitr.backup(settings(base, data_dir=src.data, port=src.port, socket_dir=src.dir), conn,
                        config_path=config, kind=pitr.BackupType.FULL)
    print("cluster %s, base backup %s in %.1f s (%d MiB in the repository)"
          % (src.psql("SELECT pg_size_pretty(pg_database_size('postgres'))"), taken["backup"]["label"],
             time.monotonic() - started, taken["backup"]["repo_size"] // 2 ** 20), flush=True)
    subprocess.run([os.path.join(PG_BIN, "pgbench"), "-T", str(wal_seconds), "-c", "2", "-h", src.host, "-p",
                    str(src.port), "-U", src.user, "postgres"], check=True, env=env, capture_output=True)
    last = src.psql("SELECT pg_walfile_name(pg_current_wal_insert_lsn())")
    src.psql("SELECT pg_switch_wal()")
    while src.psql("SELECT coalesce(last_archived_wal, '') FROM pg_stat_archiver") < last:
        time.sleep(0.5)
    first = taken["backup"]["wal_stop"]
    print("WAL after the base backup: %s .. %s (%d s of pgbench)" % (first, last, wal_seconds), flush=True)
    src.stop()
    return src


def wait_promoted(port: int, password: str) -> None:
    while True:
        try:
            db = psycopg2.connect(host="127.0.0.1", port=port, user="postgres", password=password, dbname="postgres")
            try:
                with db.cursor() as cur:
                    cur.execute("SELECT pg_is_in_recovery()")
                    if not cur.fetchone()[0]:
                        return
            finally:
                db.close()
        except psycopg2.OperationalError:
            pass
        time.sleep(0.3)


def baseline(base: str, target: str, port: int, password: str, config: str) -> float:
    data = os.path.join(target, "data")
    started = time.monotonic()
    os.makedirs(data, mode=0o700)
    shutil.chown(data, "postgres")
    as_postgres(["pgbackrest", "--config=" + config, "--stanza=lifeline", "--pg1-path=" + data, "--archive-mode=off",
                 "--type=default", "restore"])
    as_postgres([os.path.join(PG_BIN, "pg_ctl"), "-D", data, "-o", "-p %d -k %s" % (port, target), "-l",
                 os.path.join(target, "log"), "-w", "-t", "3600", "start"])
    wait_promoted(port, password)
    return time.monotonic() - started


def lifeline(base: str, target: str, port: int, password: str, config: str) -> float:
    data = os.path.join(target, "data")
    conn = PgConnection(host="127.0.0.1", port=port, user="postgres", password=password)
    started = time.monotonic()
    result = pitr.restore(settings(base, data_dir=data, port=port, socket_dir=target), conn, config_path=config,
                          target=RecoveryTarget.parse(kind="latest"), socket_dir=target, recovery_timeout=3600)
    seconds = time.monotonic() - started
    print("  lifeline phases: %s" % result["phases"], flush=True)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", maxsplit=1)[0])
    parser.add_argument("--scale", type=int, default=70)
    parser.add_argument("--wal-seconds", type=int, default=300)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    base = service_dir("pitr-bench")
    try:
        src = prepare(base, args.scale, args.wal_seconds)
        config = os.path.join(base, "etc", "restore.conf")
        # the config file both restores read (the one a Lifeline restore writes)
        pitr.info(settings(base, data_dir=src.data, port=src.port, socket_dir=src.dir), config_path=config)
        times: dict = {"baseline": [], "lifeline": []}
        for run in range(args.runs):
            pair = [("baseline", baseline), ("lifeline", lifeline)]
            # the second restore of a pair finds the repository in the page cache: take turns going first
            for name, func in pair if run % 2 == 0 else pair[::-1]:
                target = os.path.join(base, "t-%s-%d" % (name, run))
                os.makedirs(target)
                shutil.chown(target, "postgres")
                port = free_port()
                seconds = func(base, target, port, src.password, config)
                times[name].append(seconds)
                print("run %d %-8s %7.1f s" % (run + 1, name, seconds), flush=True)
                Server(os.path.join(target, "data"), port=port, pg_ctl=os.path.join(PG_BIN, "pg_ctl")).stop()
                shutil.rmtree(target, ignore_errors=True)
        a, b = statistics.median(times["lifeline"]), statistics.median(times["baseline"])
        print("median: lifeline %.1f s, pgbackrest restore + start + promotion %.1f s: ratio %.2f (target <= 1.1)"
              % (a, b, a / b))
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
