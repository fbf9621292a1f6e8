"""Benchmark: what the operator waits for. backup.yml and restore-site.yml end to end, against
pg_dump -Fc -Z0 and pg_restore -j2 of the same database in the same run.

  .venv/bin/python benchmarks/site_rto.py [--scale 50] [--text-rows 3000000] [--data mixed]
                                          [--provisioned-host] [--postgres-only] [--repeat 3]

Starts the embedded local default (scripts/local-services.py: source and target PostgreSQL, S3)
in a private state directory, loads the generated database into the source, then times:
  ansible    ansible-playbook of a one-task play on the same inventory (Ansible's own start-up)
  floor      pg_dump -Fc -Z0 > /dev/null of every database backup.yml backs up
  backup     ansible-playbook backup.yml (every database and the roles, to the local repository)
  baseline   pg_restore -j2 of a pg_dump -Fc file of the big database into an empty database
  restore    ansible-playbook restore-site.yml onto the empty target server
and the restore's own phase table. Targets (issue #6): restore-site.yml <= 1.2x pg_restore -j2,
at most 5 s of fixed overhead (everything but the restore phase) on a provisioned host;
backup.yml <= 1.3x the floor. With --provisioned-host the roles' package tasks run too (the
packages are installed already, as on a provisioned host), so apt round trips are counted.
Only a local repository is used: moto (the local S3) is a Python test server whose throughput
says nothing about S3. --repeat N runs every contender N times and reports medians (the machine
is shared); the slowest tasks of each playbook (from the JSON callback's task durations) show
where the seconds go. --postgres-only restricts both playbooks to PostgreSQL, so the ratios
compare like with like (the local site also backs up and restores Redis, files and secrets).
"""
from __future__ import annotations

import argparse
import datetime
import json
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

PYTHON = os.path.join(ROOT, ".venv", "bin", "python")
PLAYBOOK = os.path.join(ROOT, ".venv", "bin", "ansible-playbook")


def timed(func, *args, **kwargs):
    start = time.monotonic()
    result = func(*args, **kwargs)
    return time.monotonic() - start, result


def playbook(name: str, env: dict, extra: dict, *args: str) -> dict:
    """Run a playbook with the JSON callback; return its parsed output (raises on failure)."""
    proc = subprocess.run([PLAYBOOK, "-i", os.path.join(ROOT, "inventories", "local"),
                           name, "-e", json.dumps(extra), *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit("%s failed (rc %d):\n%s\n%s" % (name, proc.returncode, proc.stdout[-4000:], proc.stderr[-2000:]))
    return json.loads(proc.stdout)


def task_profile(result: dict) -> list:
    """(seconds, play / task) of every task, slowest first: where a playbook's time goes."""
    rows = []
    for play in result["plays"]:
        for task in play["tasks"]:
            span = task["task"]["duration"]
            start = datetime.datetime.fromisoformat(span["start"].replace("Z", "+00:00"))
            end = datetime.datetime.fromisoformat(span["end"].replace("Z", "+00:00"))
            rows.append(((end - start).total_seconds(), "%s / %s" % (play["play"]["name"][:40], task["task"]["name"][:70])))
    return sorted(rows, reverse=True)


def reset_target(dst: Postgres, info: dict, restored: str) -> None:
    """Empty the target again (databases, Redis, restored files) so the next restore-site.yml run
    restores onto an empty target like the first."""
    for db in dst.psql("SELECT datname FROM pg_database WHERE datallowconn AND NOT datistemplate"
                       " AND datname <> 'postgres'").split():
        sh(["psql", "-X", "-q", "-c", 'DROP DATABASE "%s" WITH (FORCE)' % db], dst)
    subprocess.run(["redis-cli", "-p", str(info["redis_target_port"]), "--no-auth-warning", "FLUSHALL"], check=True,
                   env=dict(os.environ, REDISCLI_AUTH=info["redis_password"]), stdout=subprocess.DEVNULL)
    shutil.rmtree(restored, ignore_errors=True)


def registered(result: dict, task_name_start: str, host: str) -> dict:
    for play in result["plays"]:
        for task in play["tasks"]:
            if task["task"]["name"].startswith(task_name_start) and host in task["hosts"]:
                return task["hosts"][host]
    raise KeyError(task_name_start)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--scale", type=int, default=50)
    parser.add_argument("--text-rows", type=int, default=3_000_000)
    parser.add_argument("--data", choices=sorted(BODY), default="mixed")
    parser.add_argument("--provisioned-host", action="store_true",
                        help="run the roles' package tasks too (packages already installed)")
    parser.add_argument("--postgres-only", action="store_true",
                        help="back up and restore PostgreSQL only (the site also has Redis, files, secrets)")
    parser.add_argument("--repeat", type=int, default=1,
                        help="run each contender this many times and report medians (the machine is shared)")
    parser.add_argument("--profile", type=int, default=12, help="print this many slowest tasks of each playbook")
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()

    work = tempfile.mkdtemp(prefix="lifeline-site-bench-", dir=os.environ.get("LIFELINE_BENCH_DIR", "/var/tmp"))
    os.chmod(work, 0o755)
    env = dict(os.environ, LIFELINE_LOCAL_STATE=os.path.join(work, "state"), ANSIBLE_STDOUT_CALLBACK="json",
               PATH=os.path.join(ROOT, ".venv", "bin") + os.pathsep + os.environ["PATH"])
    services = [PYTHON, os.path.join(ROOT, "scripts", "local-services.py")]
    subprocess.run(services + ["start"], env=env, check=True, stdout=subprocess.DEVNULL)
    rows: dict = {}
    try:
        with open(os.path.join(work, "state", "services.json"), encoding="utf-8") as fh:
            info = json.load(fh)
        src = Postgres(info["source_dir"], port=info["source_port"])
        dst = Postgres(info["target_dir"], port=info["target_port"])
        db_bytes = generate(src, args.scale, args.text_rows, args.data)
        sh(["psql", "-X", "-q", "-d", DB, "-c", "CHECKPOINT"], src)
        extra = {"lifeline_repositories": [{"name": "local", "path": os.path.join(work, "repo")}]}
        backup_tags = []
        if args.postgres_only:  # like with like: the baselines are PostgreSQL's own tools
            backup_tags = ["--tags", "backup_postgres"]
            extra["lifeline_restore_components"] = ["postgres"]
        if args.provisioned_host:
            extra.update(lifeline_common_install_packages=True, lifeline_postgresql_install_packages=True)

        noop = os.path.join(work, "noop.yml")
        with open(noop, "w", encoding="utf-8") as fh:
            fh.write("- name: Start-up only\n  hosts: source-db\n  gather_facts: false\n  tasks:\n"
                     "    - name: Nothing\n      ansible.builtin.debug:\n        msg: ok\n")
        rows["ansible_startup_s"] = timed(playbook, noop, env, extra)[0]

        pg_dump = os.path.join(PG_BIN, "pg_dump")
        dbs = src.psql("SELECT datname FROM pg_database WHERE datallowconn AND NOT datistemplate").split()
        for db in dbs:  # warm the cache so every contender reads from memory alike
            sh([pg_dump, "-Fc", "-Z0", "-d", db], src, stdout=subprocess.DEVNULL)
        plain = os.path.join(work, "bench.Fc")
        sh([pg_dump, "-Fc", "-f", plain, DB], src)
        # Each contender right after its baseline, round by round: the ratio of each pair holds
        # when the shared machine's speed drifts between rounds; the medians of the pairs count.
        runs: dict = {k: [] for k in ("floor", "backup_yml", "pg_restore_j2", "restore_site_yml", "restore_module")}
        for n in range(args.repeat):
            start = time.monotonic()
            for db in dbs:
                sh([pg_dump, "-Fc", "-Z0", "-d", db], src, stdout=subprocess.DEVNULL)
            runs["floor"].append(time.monotonic() - start)
            seconds, backup_out = timed(playbook, "playbooks/backup.yml", env, extra, *backup_tags)
            runs["backup_yml"].append(seconds)

            sh(["psql", "-X", "-q", "-c", "CREATE DATABASE base_restore"], dst)
            runs["pg_restore_j2"].append(timed(sh, [os.path.join(PG_BIN, "pg_restore"), "-j2", "-d", "base_restore", plain],
                                               dst)[0])
            sh(["psql", "-X", "-q", "-c", "DROP DATABASE base_restore"], dst)
            if n:
                reset_target(dst, info, os.path.join(work, "state", "restored"))
            seconds, restore_out = timed(playbook, "playbooks/restore-site.yml", env, extra)
            result = registered(restore_out, "Restore PostgreSQL backup", "restored-db")
            runs["restore_site_yml"].append(seconds)
            runs["restore_module"].append(result["total_seconds"])
        os.unlink(plain)
        for key, values in runs.items():
            rows[key + "_runs_s"] = values
            rows[key + "_s"] = statistics.median(values)
        pairs = {"backup_yml_ratio": ("backup_yml", "floor"), "restore_site_yml_ratio": ("restore_site_yml", "pg_restore_j2"),
                 "restore_module_ratio": ("restore_module", "pg_restore_j2")}
        for key, (num, den) in pairs.items():
            rows[key] = statistics.median(a / b for a, b in zip(runs[num], runs[den]))
        rows["overhead_s"] = statistics.median(a - b for a, b in zip(runs["restore_site_yml"], runs["restore_module"]))
        rows["restore_phases"] = result["phases"]
        rows["backup_profile"] = task_profile(backup_out)[:args.profile]
        rows["restore_profile"] = task_profile(restore_out)[:args.profile]
        rows["database_bytes"] = db_bytes
    finally:
        subprocess.run(services + ["stop"], env=env, check=False, stdout=subprocess.DEVNULL)
        shutil.rmtree(work, ignore_errors=True)

    overhead = rows["overhead_s"]
    print("\nPostgreSQL database: %.0f MiB (pgbench scale %d + %d %s text/jsonb rows)%s%s; medians of %d rounds (ratios: median of each round's pair)"
          % (rows["database_bytes"] / 2 ** 20, args.scale, args.text_rows, args.data,
             ", provisioned host (package tasks run)" if args.provisioned_host else "",
             ", PostgreSQL only" if args.postgres_only else ", whole local site (PostgreSQL, Redis, files, secrets)",
             args.repeat))
    print("%-52s %8.2f s" % ("Ansible start-up (one-task play)", rows["ansible_startup_s"]))
    print("%-52s %8.2f s" % ("floor: pg_dump -Fc -Z0 of every database", rows["floor_s"]))
    print("%-52s %8.2f s  %.2fx floor (target <= 1.3)" % ("backup.yml end to end", rows["backup_yml_s"],
                                                          rows["backup_yml_ratio"]))
    print("%-52s %8.2f s" % ("baseline: pg_restore -j2 of the big database", rows["pg_restore_j2_s"]))
    print("%-52s %8.2f s  %.2fx baseline (target <= 1.2)" % ("restore-site.yml end to end", rows["restore_site_yml_s"],
                                                             rows["restore_site_yml_ratio"]))
    print("%-52s %8.2f s  %.2fx baseline" % ("  of which the restore module", rows["restore_module_s"],
                                             rows["restore_module_ratio"]))
    print("%-52s %8.2f s  (target <= 5)" % ("  fixed overhead (playbook minus module)", overhead))
    print("  module phases (last run): %s" % rows["restore_phases"])
    if args.repeat > 1:
        for key in ("floor", "backup_yml", "pg_restore_j2", "restore_site_yml", "restore_module"):
            print("  runs %-20s %s" % (key, " ".join("%.2f" % v for v in rows[key + "_runs_s"])))
    for key in ("backup_profile", "restore_profile"):
        print("slowest tasks, %s (last run):" % key.split("_", maxsplit=1)[0])
        for seconds, name in rows[key]:
            print("  %6.2f s  %s" % (seconds, name))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(rows, fh, indent=2)


if __name__ == "__main__":
    main()
