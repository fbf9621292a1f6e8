"""Benchmark: files_backup against restic and rsync --link-dest, same run, same tree.

  .venv/bin/python benchmarks/files_backup.py [--megabytes 1100] [--files 22000] [--workdir /var/tmp]

Generates a tree (default about 1.1 GB in 22,000 files: many small text files, some medium
ones, a few large; half compressible, half random), then times, each with peak RSS of the
process tree that did the work (GNU time; the engine runs in a child, so its RSS is its own; tar's is below it):
  restic     restic backup (Debian's restic, password from a file) into a fresh local repository
  lifeline   the engine's first (full) backup: tar | zstd -3 x2 | age -> local repository
  rsync      rsync -a of the tree (the first snapshot), then unchanged: rsync -a --link-dest
  lifeline   the engine's unchanged re-run (an incremental: every directory, no file data)
Targets (issue #7): first backup no slower than restic; unchanged re-run within 1.2x of
rsync --link-dest; bounded memory whatever the tree size. Ratios matter; seconds drift.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PYTHON = os.path.join(ROOT, ".venv", "bin", "python")

CHILD = r"""
import json, sys, time, resource
sys.path.insert(0, %(lib)r)
from collection import ensure_importable
ensure_importable()
from ansible_collections.lifeline.dr.plugins.module_utils import components, config
from ansible_collections.lifeline.dr.plugins.module_utils.backup import run_backup
p = json.loads(sys.argv[1])
start = time.monotonic()
o = run_backup(components.get("files").backup(p), config.repositories(p), config.codec(p), site="bench",
               host="bench", state_dir=p["state_dir"], signer=config.signer(p))
print(json.dumps({"seconds": time.monotonic() - start, "kind": o.manifest.kind, "status": o.status.value,
                  "stored": sum(a.size for a in o.manifest.artifacts), "members": o.manifest.facts["members"]}))
"""


def generate(top: str, megabytes: int, files: int) -> int:
    """Mixed sizes and compressibility; returns bytes written."""
    rng = random.Random(7)
    text = (b"lorem ipsum dolor sit amet, consectetur adipiscing elit " * 2000)
    total, budget = 0, megabytes * 1024 * 1024
    large = max(4, budget // (2 * 64 * 1024 * 1024))  # about half the bytes in 64 MB files
    for i in range(files):
        d = os.path.join(top, "d%03d" % (i % 400), "s%02d" % (i % 7))
        os.makedirs(d, exist_ok=True)
        if i < large:
            size = 64 * 1024 * 1024
        elif i % 50 == 0:
            size = rng.randint(256 * 1024, 4 * 1024 * 1024)
        else:
            size = rng.randint(100, 24 * 1024)
        with open(os.path.join(d, "f%06d.%s" % (i, "txt" if i % 2 else "bin")), "wb") as fh:
            left = size
            while left:
                n = min(left, 1024 * 1024)
                fh.write(text[:n] if i % 2 else os.urandom(n))
                left -= n
        total += size
    return total


def timed_child(argv, env=None) -> tuple:
    """(seconds, peak RSS in KiB of the largest process, stdout); GNU time measures the RSS."""
    start = time.monotonic()
    out = subprocess.run(["/usr/bin/time", "-f", "%M"] + argv, check=True, capture_output=True, env=env)
    seconds = time.monotonic() - start
    return seconds, int(out.stderr.decode().strip().splitlines()[-1]), out.stdout


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--megabytes", type=int, default=1100)
    ap.add_argument("--files", type=int, default=22000)
    ap.add_argument("--workdir", default="/var/tmp")
    args = ap.parse_args()
    sys.path.insert(0, os.path.join(ROOT, "tests", "lib"))
    from collection import ensure_importable  # pylint: disable=import-outside-toplevel
    ensure_importable()
    from ansible_collections.lifeline.dr.plugins.module_utils import crypto  # pylint: disable=import-outside-toplevel
    from ansible_collections.lifeline.dr.plugins.module_utils.signing import generate_signing_key  # pylint: disable=import-outside-toplevel

    work = tempfile.mkdtemp(prefix="lifeline-bench-files-", dir=args.workdir)
    try:
        tree = os.path.join(work, "tree")
        t0 = time.monotonic()
        size = generate(tree, args.megabytes, args.files)
        print("generated %d files, %.0f MB in %.0f s" % (args.files, size / 1e6, time.monotonic() - t0), flush=True)
        identity, recipient = crypto.generate_age_identity()
        private, _public = generate_signing_key()
        params = {"repositories": [{"name": "local", "path": os.path.join(work, "repo")}], "recipients": [recipient],
                  "identity": identity, "signing_key": private, "state_dir": os.path.join(work, "state"),
                  "paths": [tree], "site": "bench", "host": "bench"}
        child = [PYTHON, "-c", CHILD % {"lib": os.path.join(ROOT, "tests", "lib")}, json.dumps(params)]
        results = {}
        subprocess.run(["sync"], check=True)
        pw = os.path.join(work, "restic.pw")
        with open(pw, "w", encoding="utf-8") as fh:
            fh.write("bench-password\n")
        env = dict(os.environ, RESTIC_PASSWORD_FILE=pw, RESTIC_REPOSITORY=os.path.join(work, "restic"),
                   RESTIC_CACHE_DIR=os.path.join(work, "restic-cache"))
        subprocess.run(["restic", "init"], check=True, capture_output=True, env=env)
        results["restic backup (first)"] = timed_child(["restic", "backup", "--quiet", tree], env=env)[:2]
        secs, rss, out = timed_child(child)
        results["lifeline first (full)"] = (secs, rss)
        first = json.loads(out)
        results["rsync -a (first snapshot)"] = timed_child(["rsync", "-a", "-H", "-A", "-X", tree + "/",
                                                            os.path.join(work, "snap1")])[:2]
        results["rsync -a --link-dest (unchanged)"] = timed_child(
            ["rsync", "-a", "-H", "-A", "-X", "--link-dest=" + os.path.join(work, "snap1"), tree + "/",
             os.path.join(work, "snap2")])[:2]
        secs, rss, out = timed_child(child)
        results["lifeline unchanged re-run"] = (secs, rss)
        again = json.loads(out)
        results["restic backup (unchanged)"] = timed_child(["restic", "backup", "--quiet", tree], env=env)[:2]
        print("\n| run | seconds | peak RSS MB |\n|---|---:|---:|")
        for name, (secs, rss) in results.items():
            print("| %s | %.2f | %.0f |" % (name, secs, rss / 1024))
        r1 = results["lifeline first (full)"][0] / results["restic backup (first)"][0]
        r2 = results["lifeline unchanged re-run"][0] / results["rsync -a --link-dest (unchanged)"][0]
        print("\nfirst backup: lifeline/restic = %.2fx (target <= 1.0); stored %.0f MB of %.0f MB, %d members"
              % (r1, first["stored"] / 1e6, size / 1e6, first["members"]))
        print("unchanged re-run: lifeline/rsync --link-dest = %.2fx (target <= 1.2); %s, %d members stored"
              % (r2, again["kind"], again["members"]))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
