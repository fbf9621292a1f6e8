# -*- coding: utf-8 -*-
# Copyright: Lifeline contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""STAND-IN for the ``wal-g`` executable, for tests only (installed with a ``#!/usr/bin/python3``
line put in front, see test_pitr_walg_standin.standin_bytes): WAL-G's binary cannot be had on the test
machine. It records every call (argv) in ``walg-calls.log`` beside itself, reads the JSON config
given with ``--config`` and keeps WAL and base backups UNCOMPRESSED and UNENCRYPTED under
WALG_FILE_PREFIX in WAL-G's layout (``wal_005/<segment>.zst``, ``basebackups_005/<name>`` and
``<name>_backup_stop_sentinel.json``). A base backup uses PostgreSQL's non-exclusive backup API
through psql, as WAL-G does. It proves what Lifeline asks of WAL-G and how it reads the answers,
nothing about WAL-G itself.

Commands: wal-push, wal-fetch, backup-push [--full], backup-fetch, backup-list --detail --json,
st ls wal_005/, wal-verify integrity timeline --json, delete retain FULL <n> [--confirm].
"""
import datetime
import glob
import json
import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
SEG_PER_ID = 256


def now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def fail(message: str) -> None:
    sys.stderr.write("ERROR: %s\n" % message)
    sys.exit(1)


def psql(conf: dict, script: str) -> str:
    exe = sorted(glob.glob("/usr/lib/postgresql/*/bin/psql"))[-1]
    proc = subprocess.run([exe, "-X", "-At", "-v", "ON_ERROR_STOP=1", "-h", conf.get("PGHOST", "/var/run/postgresql"),
                           "-p", conf.get("PGPORT", "5432"), "-U", conf.get("PGUSER", "postgres"), "-d", "postgres"],
                          input=script, capture_output=True, text=True, check=False)
    if proc.returncode:
        fail("psql: %s" % proc.stderr.strip())
    return proc.stdout


def backups(prefix: str) -> list:
    out = []
    for path in glob.glob(os.path.join(prefix, "basebackups_005", "*_backup_stop_sentinel.json")):
        with open(path, encoding="utf-8") as fh:
            out.append(json.load(fh))
    return sorted(out, key=lambda b: b["finish_time"])


def segno(name: str) -> int:
    return int(name[8:16], 16) * SEG_PER_ID + int(name[16:24], 16)


def seg_name(tli: int, number: int) -> str:
    return "%08X%08X%08X" % (tli, number // SEG_PER_ID, number % SEG_PER_ID)


def backup_push(conf: dict, prefix: str, data_dir: str, full: bool) -> None:
    os.makedirs(prefix, exist_ok=True)
    work = tempfile.mkdtemp(prefix="standin-", dir=prefix)
    copy = os.path.join(work, "data")
    out = os.path.join(work, "out")
    started = now()
    psql(conf, "\n".join([
        "SELECT l AS start_lsn, pg_walfile_name(l) AS start_file, (SELECT system_identifier FROM pg_control_system()) "
        "AS sysid, current_setting('server_version_num') AS version FROM pg_backup_start('walg-standin', true) l \\gset",
        "\\! %s %s __copy %s %s" % (sys.executable, os.path.abspath(__file__), data_dir, copy),
        "SELECT lsn AS stop_lsn, labelfile FROM pg_backup_stop(true) \\gset",
        "\\o %s" % out, "\\qecho :start_lsn", "\\qecho :start_file", "\\qecho :stop_lsn", "\\qecho :sysid",
        "\\qecho :version", "\\qecho :labelfile", ""]))
    with open(out, encoding="utf-8") as fh:
        start_lsn, start_file, stop_lsn, sysid, version, label = fh.read().split("\n", 5)
    with open(os.path.join(copy, "backup_label"), "w", encoding="utf-8") as fh:
        fh.write(label.rstrip("\n") + "\n")
    previous = backups(prefix)
    steps = int(conf.get("WALG_DELTA_MAX_STEPS", "0"))
    name = "base_" + start_file
    delta_count = 0
    if not full and previous and previous[-1].get("DeltaCount", 0) < steps:
        delta_count = previous[-1].get("DeltaCount", 0) + 1
        name += "_D_" + previous[-1]["backup_name"][5:29]
    root = os.path.join(prefix, "basebackups_005")
    os.makedirs(root, exist_ok=True)
    os.rename(copy, os.path.join(root, name))
    sentinel = {"backup_name": name, "start_time": started, "finish_time": now(), "hostname": os.uname()[1],
                "data_dir": data_dir, "pg_version": int(version), "start_lsn": start_lsn.upper(),
                "finish_lsn": stop_lsn.upper(), "is_permanent": False, "system_identifier": int(sysid),
                "uncompressed_size": 1, "compressed_size": 1, "DeltaCount": delta_count}
    with open(os.path.join(root, name + "_backup_stop_sentinel.json"), "w", encoding="utf-8") as fh:
        json.dump(sentinel, fh)
    shutil.rmtree(work)


def left_out(directory: str, names: list) -> list:
    """What a base backup leaves out: the postmaster's files, WAL and its archive status."""
    directory = directory.rstrip("/")
    if directory.endswith("archive_status"):
        return names
    if directory.endswith("pg_wal"):
        return [n for n in names if n != "archive_status"]
    return [n for n in names if n in ("postmaster.pid", "postmaster.opts")]


def copy_data(src: str, dst: str) -> None:
    shutil.copytree(src, dst, ignore=left_out)


def wal_verify(conf: dict, prefix: str) -> None:
    current, tli = psql(conf, "SELECT pg_walfile_name(pg_current_wal_lsn()), (SELECT timeline_id FROM "
                              "pg_control_checkpoint())").strip().split("|")
    have = {n[:24] for n in os.listdir(os.path.join(prefix, "wal_005")) if len(n) == 28 and n.endswith(".zst")}
    known = backups(prefix)
    first = segno(known[0]["backup_name"][5:29]) if known else 1
    details = []
    for number in range(first, segno(current)):
        name = seg_name(int(tli), number)
        status = "FOUND" if name in have else "MISSING_LOST"
        if details and details[-1]["status"] == status:
            details[-1].update(end_segment=name, segments_count=details[-1]["segments_count"] + 1)
        else:
            details.append({"timeline_id": int(tli), "start_segment": name, "end_segment": name,
                            "segments_count": 1, "status": status})
    highest = max([int(h[:8], 16) for h in have] or [int(tli)])
    print(json.dumps({
        "integrity": {"status": "FAILURE" if any(d["status"] == "MISSING_LOST" for d in details) else "OK",
                      "details": details},
        "timeline": {"status": "OK" if highest <= int(tli) else "FAILURE",
                     "details": {"current_timeline_id": int(tli), "highest_storage_timeline_id": highest}}}))


def delete_retain(prefix: str, keep: int, confirm: bool) -> None:
    known = backups(prefix)
    fulls = [b for b in known if "_D_" not in b["backup_name"]]
    if len(fulls) <= keep:
        print("INFO: nothing to delete")
        return
    boundary = fulls[-keep]
    doomed = [b for b in known if b["finish_time"] < boundary["finish_time"] and not b["is_permanent"]]
    oldest_wal = boundary["backup_name"][5:29]
    wal = [p for p in glob.glob(os.path.join(prefix, "wal_005", "*")) if os.path.basename(p)[:24] < oldest_wal]
    for b in doomed:
        print("INFO: %s backup %s" % ("deleting" if confirm else "would delete", b["backup_name"]))
        if confirm:
            shutil.rmtree(os.path.join(prefix, "basebackups_005", b["backup_name"]))
            os.unlink(os.path.join(prefix, "basebackups_005", b["backup_name"] + "_backup_stop_sentinel.json"))
    for p in wal:
        print("INFO: %s %s" % ("deleting" if confirm else "would delete", os.path.basename(p)))
        if confirm:
            os.unlink(p)


def main(args: list) -> None:
    if args[:1] == ["__copy"]:
        copy_data(args[1], args[2])
        return
    with open(os.path.join(HERE, "walg-calls.log"), "a", encoding="utf-8") as fh:
        fh.write(json.dumps(args) + "\n")
    conf = json.load(open(args[args.index("--config") + 1], encoding="utf-8"))
    prefix = conf["WALG_FILE_PREFIX"]
    cmd = [a for a in args if a != "--config" and a != args[args.index("--config") + 1]]
    if cmd[0] == "wal-push":
        dest = os.path.join(prefix, "wal_005", os.path.basename(cmd[1]) + ".zst")
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        with open(cmd[1], "rb") as fh:
            data = fh.read()
        if os.path.exists(dest):
            with open(dest, "rb") as fh:
                if fh.read() != data:
                    fail("segment %s already archived with different content" % os.path.basename(cmd[1]))
            return
        with open(dest + ".tmp", "wb") as fh:
            fh.write(data)
        os.rename(dest + ".tmp", dest)
    elif cmd[0] == "wal-fetch":
        src = os.path.join(prefix, "wal_005", cmd[1] + ".zst")
        if not os.path.exists(src):
            fail("Archive '%s' does not exist." % cmd[1])
        shutil.copy(src, cmd[2])
    elif cmd[0] == "backup-push":
        backup_push(conf, prefix, cmd[1], "--full" in cmd)
    elif cmd[0] == "backup-fetch":
        known = backups(prefix)
        name = known[-1]["backup_name"] if cmd[2] == "LATEST" and known else cmd[2]
        src = os.path.join(prefix, "basebackups_005", name)
        if not os.path.isdir(src):
            fail("Backup '%s' not found in storage" % name)
        shutil.copytree(src, cmd[1], dirs_exist_ok=True)
    elif cmd[0] == "backup-list":
        known = backups(prefix)
        if not known:
            sys.stderr.write("INFO: No backups found\n")
            return
        print(json.dumps(known))
    elif cmd[:2] == ["st", "ls"]:
        print("type size last modified name")
        for path in sorted(glob.glob(os.path.join(prefix, cmd[2], "*"))):
            when = datetime.datetime.fromtimestamp(os.stat(path).st_mtime, datetime.timezone.utc)
            stamp = when.strftime("%Y-%m-%d %H:%M:%S.%f")
            print("obj  %d %s +0000 UTC %s" % (os.path.getsize(path), stamp, os.path.basename(path)))
    elif cmd[0] == "wal-verify":
        wal_verify(conf, prefix)
    elif cmd[:3] == ["delete", "retain", "FULL"]:
        delete_retain(prefix, int(cmd[3]), "--confirm" in cmd)
    else:
        fail("stand-in: unknown command %s" % cmd)


if __name__ == "__main__":
    main(sys.argv[1:])
