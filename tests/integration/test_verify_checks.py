# -*- coding: utf-8 -*-
# Copyright: Lifeline contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""verify with the real postgres content checks (pg_restore --list) on real backups: a damaged
copy is reported, and its check's pg_restore process and temp files are gone afterwards."""
from __future__ import annotations

import os

from lifeline_it import backup_dir, catalog_entry, flip_byte, run_backup_for

from ansible_collections.lifeline.dr.plugins.module_utils import components, config
from ansible_collections.lifeline.dr.plugins.module_utils.verify import verify_backup

SHOP = "db-shop.dump.zst.age"


def children_named(name: str) -> list:
    """pids (zombies included) of this process's children running ``name``."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open("/proc/%s/stat" % pid, "rb") as fh:
                stat = fh.read()
        except OSError:
            continue
        comm = stat[stat.index(b"(") + 1:stat.rindex(b")")]
        ppid = int(stat[stat.rindex(b")") + 2:].split()[1])
        if ppid == os.getpid() and comm == name.encode():
            found.append(int(pid))
    return found


def deleted_open_files() -> set:
    """Files this process holds open that have no name any more (what TemporaryFile makes)."""
    held = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink("/proc/self/fd/" + fd)
        except OSError:
            continue
        if target.endswith("(deleted)"):
            held.add(target)
    return held


def test_verifying_a_damaged_copy_leaves_no_pg_restore_process_and_no_temp_file(params, local_repo):
    backup_id = run_backup_for(params, databases=["shop"]).manifest.backup_id
    # in the age header: decryption fails before pg_restore --list got a byte, so it still waits
    flip_byte(os.path.join(backup_dir(local_repo, backup_id), SHOP), offset=40)
    entry = catalog_entry(params, backup_id)
    held_before = deleted_open_files()

    report = verify_backup(entry, config.codec(params), record=False,
                           check_for=components.get("postgres").checks(params, entry.manifest))

    results = {(r["artifact"], r["repository"]): r for r in report["results"]}
    assert report["ok"] is False
    assert results[(SHOP, "local")]["ok"] is False and results[(SHOP, "s3")]["ok"] is True
    assert results[(SHOP, "s3")]["detail"].endswith("archive entries")
    assert children_named("pg_restore") == []
    assert deleted_open_files() <= held_before
