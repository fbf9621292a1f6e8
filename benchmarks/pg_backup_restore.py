"""Benchmark: postgres_backup / postgres_restore against pg_dump/pg_restore, same run, same data.

  .venv/bin/python benchmarks/pg_backup_restore.py [--scale 50] [--text-rows 3000000] [--data mixed|repetitive]

Builds a throwaway PostgreSQL 15 with a generated database (pgbench scale 50 plus 3 M rows of
text/jsonb, about 1.6 GB), then times, each against the same database:
  floor     pg_dump -Fc -Z0 > /dev/null                (the dump alone)
  baseline  pg_dump -Fc > file                         (gzip inside pg_dump: the common default)
  lifeline  the engine's backup (pg_dump -Fc -Z0 | zstd -3 x2 threads | age | sha256 -> local repo)
  restore   pg_restore -j2 of the baseline file into an empty database
  lifeline  the engine's restore (fetch, check, decrypt, stage, pg_restore -j2, verify rows, swap)
and prints a table of ratios. Targets (issue #2): backup <= 1.3x floor and >= 2.5x faster than
pg_dump -Fc at no larger size; restore <= 1.2x pg_restore -j2. Ratios matter; seconds drift.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "lib"))
# pylint: disable=wrong-import-position
from collection import ensure_importable  # noqa: E402
from services import PG_BIN, Postgres  # noqa: E402

ensure_importable()
from ansible_collections.lifeline.dr.plugins.module_utils import crypto  # noqa: E402
from ansible_collections.lifeline.dr.plugins.module_utils.backup import run_backup  # noqa: E402
from ansible_collections.lifeline.dr.plugins.module_utils.catalog import Catalog  # noqa: E402
from ansible_collections.lifeline.dr.plugins.module_utils.signing import (  # noqa: E402
    Signer,
    TrustStore,
    generate_signing_key,
)
from ansible_collections.lifeline.dr.plugins.module_utils.pipeline import Codec  # noqa: E402
from ansible_collections.lifeline.dr.plugins.module_utils.postgres import PgConnection  # noqa: E402
from ansible_collections.lifeline.dr.plugins.module_utils.postgres_dump import PostgresComponent  # noqa: E402
from ansible_collections.lifeline.dr.plugins.module_utils.postgres_restore import (  # noqa: E402
    PostgresRestore,
    RestoreOptions,
)
from ansible_collections.lifeline.dr.plugins.module_utils.repository import LocalRepository  # noqa: E402

DB = "bench"


def timed(func, *args, **kwargs):
    start = time.monotonic()
    result = func(*args, **kwargs)
    return time.monotonic() - start, result


def sh(argv, pg: Postgres, **kwargs):
    env = dict(os.environ, PGPASSWORD=pg.password, PGHOST=pg.host, PGPORT=str(pg.port), PGUSER=pg.user)
    return subprocess.run(argv, env=env, check=True, **kwargs)


# "repetitive" compresses about 12:1 (gzip is cheap there, so pg_dump -Fc is close to the floor);
# "mixed" adds random hex, about 4:1 like the production-like data in machine-notes.md.
BODY = {"repetitive": "md5(g::text) || ' lorem ipsum dolor sit amet ' || (g % 977)",
        "mixed": "md5(random()::text) || md5(random()::text) || ' lorem ipsum dolor sit amet ' || (g % 977)"}
VALUE = {"repetitive": "g % 7", "mixed": "round(random() * 1e6)"}


def generate(pg: Postgres, scale: int, text_rows: int, data: str) -> int:
    sh(["psql", "-X", "-q", "-c", "CREATE DATABASE %s" % DB], pg)
    sh([os.path.join(PG_BIN, "pgbench"), "-i", "-q", "-s", str(scale), DB], pg, stdout=subprocess.DEVNULL,
       stderr=subprocess.DEVNULL)
    sh(["psql", "-X", "-q", "-d", DB, "-c",
        "CREATE TABLE notes (id bigint PRIMARY KEY, body text, doc jsonb); "
        "INSERT INTO notes SELECT g, %s, "
        "jsonb_build_object('n', g, 'tag', 't' || (g %% 31), 'ok', g %% 2 = 0, 'v', %s) "
        "FROM generate_series(1, %d) g" % (BODY[data], VALUE[data], text_rows)], pg)
    sh(["psql", "-X", "-q", "-d", DB, "-c", "VACUUM ANALYZE"], pg)
    out = sh(["psql", "-X", "-A", "-t", "-d", DB, "-c", "SELECT pg_database_size(current_database())"],
             pg, capture_output=True, text=True)
    return int(out.stdout.strip())


def conn(pg: Postgres) -> PgConnection:
    return PgConnection(host=pg.host, port=pg.port, user=pg.user, password=pg.password)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--scale", type=int, default=50)
    parser.add_argument("--text-rows", type=int, default=3_000_000)
    parser.add_argument("--data", choices=sorted(BODY), default="mixed")
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()
    work = tempfile.mkdtemp(prefix="lifeline-bench-", dir=os.environ.get("LIFELINE_BENCH_DIR", "/var/tmp"))
    os.chmod(work, 0o755)
    identity, recipient = crypto.generate_age_identity()
    codec = Codec(recipients=[recipient], identities=[identity])
    signer = Signer(generate_signing_key()[0])
    rows = {}
    try:
        with Postgres(os.path.join(work, "src")) as src, Postgres(os.path.join(work, "dst")) as dst:
            db_bytes = generate(src, args.scale, args.text_rows, args.data)
            sh(["psql", "-X", "-q", "-d", DB, "-c", "CHECKPOINT"], src)
            pg_dump = os.path.join(PG_BIN, "pg_dump")
            # Warm the cache once so every contender reads from memory alike.
            sh([pg_dump, "-Fc", "-Z0", DB], src, stdout=subprocess.DEVNULL)
            floor, _out = timed(sh, [pg_dump, "-Fc", "-Z0", DB], src, stdout=subprocess.DEVNULL)
            plain = os.path.join(work, "bench.Fc")
            base, _out = timed(sh, [pg_dump, "-Fc", "-f", plain, DB], src)
            base_size = os.path.getsize(plain)
            repo = LocalRepository("bench", os.path.join(work, "repo"))
            comp = PostgresComponent(conn(src), databases=[DB], include_globals=False)
            ours, outcome = timed(run_backup, comp, [repo], codec, site="bench", host="src",
                                  state_dir=os.path.join(work, "state"), signer=signer)
            ours_size = sum(a.size for a in outcome.manifest.artifacts)
            rows["backup"] = {"floor_s": floor, "pg_dump_Fc_s": base, "lifeline_s": ours,
                              "pg_dump_Fc_bytes": base_size, "lifeline_bytes": ours_size,
                              "database_bytes": db_bytes}

            sh(["psql", "-X", "-q", "-c", "CREATE DATABASE base_restore"], dst)
            r_base, _out = timed(sh, [os.path.join(PG_BIN, "pg_restore"), "-j2", "-d", "base_restore", plain], dst)
            sh(["psql", "-X", "-q", "-c", "DROP DATABASE base_restore"], dst)
            entry = Catalog([repo], trust=TrustStore({"src": [signer.public_pem]})).select(site="bench", host="src", component="postgres")
            job = PostgresRestore(entry, codec, conn(dst), RestoreOptions(
                include_globals=False, jobs=2, staging_dir=os.path.join(work, "staging"),
                state_dir=os.path.join(work, "state")))
            r_ours, report = timed(job.run)
            rows["restore"] = {"pg_restore_j2_s": r_base, "lifeline_s": r_ours, "phases": report["phases"]}
    finally:
        shutil.rmtree(work, ignore_errors=True)

    b, r = rows["backup"], rows["restore"]
    mb = 1024 * 1024
    print("\nPostgreSQL database: %.0f MiB (pgbench scale %d + %d %s text/jsonb rows)"
          % (b["database_bytes"] / mb, args.scale, args.text_rows, args.data))
    line = "%-44s %9.2f %10s %8s"
    print("%-44s %9s %10s %8s" % ("", "seconds", "MiB", "ratio"))
    print(line % ("floor: pg_dump -Fc -Z0 > /dev/null", b["floor_s"], "-", "1.00"))
    print(line % ("baseline: pg_dump -Fc (gzip)", b["pg_dump_Fc_s"], "%.1f" % (b["pg_dump_Fc_bytes"] / mb),
                  "%.2f" % (b["pg_dump_Fc_s"] / b["floor_s"])))
    print(line % ("lifeline backup (zstd+age, local repo)", b["lifeline_s"], "%.1f" % (b["lifeline_bytes"] / mb),
                  "%.2f" % (b["lifeline_s"] / b["floor_s"])))
    print("  backup vs floor: %.2fx (target <= 1.3); speed-up vs pg_dump -Fc: %.2fx (target >= 2.5); "
          "size vs pg_dump -Fc: %.2f (target <= 1.0)"
          % (b["lifeline_s"] / b["floor_s"], b["pg_dump_Fc_s"] / b["lifeline_s"],
             b["lifeline_bytes"] / b["pg_dump_Fc_bytes"]))
    print(line % ("baseline: pg_restore -j2 of the -Fc file", r["pg_restore_j2_s"], "-", "1.00"))
    print(line % ("lifeline restore (verify + swap included)", r["lifeline_s"], "-",
                  "%.2f" % (r["lifeline_s"] / r["pg_restore_j2_s"])))
    print("  restore vs pg_restore -j2: %.2fx (target <= 1.2); phases: %s"
          % (r["lifeline_s"] / r["pg_restore_j2_s"], r["phases"]))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(rows, fh, indent=2)


if __name__ == "__main__":
    main()
