"""Benchmark: how fast pg_restore -j2 reads each kind of custom-format archive of one database.

  .venv/bin/python benchmarks/pg_restore_formats.py [--scale 50] [--text-rows 4500000] [--rounds 4]

The restore stages what the backup streamed: a pg_dump -Fc -Z0 archive written to a pipe. Such an
archive has no data offsets in its table of contents (pg_dump seeks back to write them only into
a file) and holds one length-prefixed chunk per COPY row. This times, round by round on the same
generated database (as pg_backup_restore.py makes it) and the same empty target:
  stream-Z0  pg_dump -Fc -Z0 | cat > file   (what the restore stages)
  file-Z0    pg_dump -Fc -Z0 -f file        (offsets in the TOC)
  gzip       pg_dump -Fc -f file            (the baseline the restore benchmarks compare with)
and prints each round and the medians of the ratios to gzip.
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "lib"))
sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
# pylint: disable=wrong-import-position
from pg_backup_restore import BODY, DB, generate, sh  # noqa: E402
from services import PG_BIN, Postgres  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--scale", type=int, default=50)
    parser.add_argument("--text-rows", type=int, default=4_500_000)
    parser.add_argument("--data", choices=sorted(BODY), default="mixed")
    parser.add_argument("--rounds", type=int, default=4)
    args = parser.parse_args()
    work = tempfile.mkdtemp(prefix="lifeline-formats-", dir=os.environ.get("LIFELINE_BENCH_DIR", "/var/tmp"))
    os.chmod(work, 0o755)
    pg_dump, pg_restore = os.path.join(PG_BIN, "pg_dump"), os.path.join(PG_BIN, "pg_restore")
    files = {name: os.path.join(work, name + ".dump") for name in ("stream-Z0", "file-Z0", "gzip")}
    runs: dict = {name: [] for name in files}
    try:
        with Postgres(os.path.join(work, "src")) as src, Postgres(os.path.join(work, "dst")) as dst:
            generate(src, args.scale, args.text_rows, args.data)
            with open(files["stream-Z0"], "wb") as out:
                dump = subprocess.Popen([pg_dump, "-Fc", "-Z0", "-h", src.host, "-p", str(src.port), "-U", src.user, DB],
                                        env=dict(os.environ, PGPASSWORD=src.password), stdout=subprocess.PIPE)
                shutil.copyfileobj(dump.stdout, out)  # a pipe: pg_dump cannot seek back
                if dump.wait() != 0:
                    raise SystemExit("pg_dump failed")
            sh([pg_dump, "-Fc", "-Z0", "-f", files["file-Z0"], DB], src)
            sh([pg_dump, "-Fc", "-f", files["gzip"], DB], src)
            for _round in range(args.rounds):
                for name, path in files.items():
                    sh(["psql", "-X", "-q", "-c", "CREATE DATABASE restored"], dst)
                    start = time.monotonic()
                    sh([pg_restore, "-j2", "-d", "restored", path], dst)
                    runs[name].append(time.monotonic() - start)
                    sh(["psql", "-X", "-q", "-c", "DROP DATABASE restored"], dst)
                print("  ".join("%s %.2f s" % (name, values[-1]) for name, values in runs.items()), flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    for name, values in runs.items():
        ratio = statistics.median(a / b for a, b in zip(values, runs["gzip"]))
        print("%-10s median %6.2f s  %.2fx gzip (pairs)  runs: %s" % (
            name, statistics.median(values), ratio, " ".join("%.2f" % v for v in values)))


if __name__ == "__main__":
    main()
