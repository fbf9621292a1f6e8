"""Benchmark: what the operator waits for. backup.yml and restore-site.yml end to end, against
pg_dump -Fc -Z0 and pg_restore -j2 of the same database in the same run.

  .venv/bin/python benchmarks/site_rto.py [--scale 50] [--text-rows 3000000] [--data mixed]
                                          [--provisioned-host]

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
says nothing about S3.
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


def playbook(name: str, env: dict, extra: dict) -> dict:
    """Run a playbook with the JSON callback; return its parsed output (raises on failure)."""
    proc = subprocess.run([PLAYBOOK, "-i", os.path.join(ROOT, "inventories", "local"),
                           name, "-e", json.dumps(extra)], cwd=ROOT, env=env,
                          capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit("%s failed (rc %d):\n%s\n%s" % (name, proc.returncode, proc.stdout[-4000:], proc.stderr[-2000:]))
    return json.loads(proc.stdout)


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
        start = time.monotonic()
        for db in dbs:
            sh([pg_dump, "-Fc", "-Z0", "-d", db], src, stdout=subprocess.DEVNULL)
        rows["floor_s"] = time.monotonic() - start
        rows["backup_yml_s"] = timed(playbook, "playbooks/backup.yml", env, extra)[0]

        plain = os.path.join(work, "bench.Fc")
        sh([pg_dump, "-Fc", "-f", plain, DB], src)
        sh(["psql", "-X", "-q", "-c", "CREATE DATABASE base_restore"], dst)
        rows["pg_restore_j2_s"] = timed(sh, [os.path.join(PG_BIN, "pg_restore"), "-j2", "-d", "base_restore", plain], dst)[0]
        sh(["psql", "-X", "-q", "-c", "DROP DATABASE base_restore"], dst)
        os.unlink(plain)

        rows["restore_site_yml_s"], out = timed(playbook, "playbooks/restore-site.yml", env, extra)
        result = registered(out, "Restore PostgreSQL backup", "restored-db")
        rows["restore_module_s"] = result["total_seconds"]
        rows["restore_phases"] = result["phases"]
        rows["database_bytes"] = db_bytes
    finally:
        subprocess.run(services + ["stop"], env=env, check=False, stdout=subprocess.DEVNULL)
        shutil.rmtree(work, ignore_errors=True)

    overhead = rows["restore_site_yml_s"] - rows["restore_module_s"]
    print("\nPostgreSQL database: %.0f MiB (pgbench scale %d + %d %s text/jsonb rows)%s"
          % (rows["database_bytes"] / 2 ** 20, args.scale, args.text_rows, args.data,
             ", provisioned host (package tasks run)" if args.provisioned_host else ""))
    print("%-52s %8.2f s" % ("Ansible start-up (one-task play)", rows["ansible_startup_s"]))
    print("%-52s %8.2f s" % ("floor: pg_dump -Fc -Z0 of every database", rows["floor_s"]))
    print("%-52s %8.2f s  %.2fx floor (target <= 1.3)" % ("backup.yml end to end", rows["backup_yml_s"],
                                                          rows["backup_yml_s"] / rows["floor_s"]))
    print("%-52s %8.2f s" % ("baseline: pg_restore -j2 of the big database", rows["pg_restore_j2_s"]))
    print("%-52s %8.2f s  %.2fx baseline (target <= 1.2)" % ("restore-site.yml end to end", rows["restore_site_yml_s"],
                                                             rows["restore_site_yml_s"] / rows["pg_restore_j2_s"]))
    print("%-52s %8.2f s  %.2fx baseline" % ("  of which the restore module", rows["restore_module_s"],
                                             rows["restore_module_s"] / rows["pg_restore_j2_s"]))
    print("%-52s %8.2f s  (target <= 5)" % ("  fixed overhead (playbook minus module)", overhead))
    print("  module phases: %s" % rows["restore_phases"])
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(rows, fh, indent=2)


if __name__ == "__main__":
    main()
