# -*- coding: utf-8 -*-
# Copyright: Lifeline contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The Done-when of the local default, as a user runs it: scripts/local-services.py start, then
`ansible-playbook -i inventories/local playbooks/backup.yml` and `restore-site.yml`; the restored
cluster must equal the source in pg_dumpall.

One set of services per module (starting them and running both playbooks is the expensive part);
the fixture records what the first backup and restore produced, and each test only reads that
record or compares the target before and after its own playbook run, so no test depends on
another having run.
"""
from __future__ import annotations

import contextlib
import os
import re
import uuid

import pytest

from lifeline_it import ansible_playbook, local_services, pg_dumpall_normalized

from services import Postgres


def _server(info: dict, which: str) -> Postgres:
    pg = Postgres(info[which + "_dir"], port=info[which + "_port"])
    pg.password = info["postgres_password"]
    return pg


@contextlib.contextmanager
def local_site(workdir: str):
    """scripts/local-services.py's services under a new state directory (the other
    test_playbook_*.py modules use it too): yields the env for ansible_playbook, the state
    directory, services.json, and the source and target servers."""
    state = os.path.join(workdir, "local-" + uuid.uuid4().hex[:8])
    with local_services(state) as info:
        yield {"env": {"LIFELINE_LOCAL_STATE": state}, "state": state, "info": info,
               "source": _server(info, "source"), "target": _server(info, "target")}


@pytest.fixture(scope="module")
def deployment(workdir):
    with local_site(workdir) as site:
        env, source, target = site["env"], site["source"], site["target"]
        backup = ansible_playbook("backup.yml", env_extra=env)
        restore = ansible_playbook("restore-site.yml", env_extra=env) if backup.returncode == 0 else None
        yield {"env": env, "source": source, "target": target, "backup": backup, "restore": restore,
               "source_dumpall": pg_dumpall_normalized(source),
               "target_dumpall": pg_dumpall_normalized(target)}


def test_backup_and_restore_site_playbooks_succeed_and_print_the_rto(deployment):
    backup, restore = deployment["backup"], deployment["restore"]
    assert backup.returncode == 0, backup.stdout
    assert re.search(r"source-db: backup \d{8}T\d{6}Z-[0-9a-f]{4} of 3 database\(s\)", backup.stdout)
    assert re.search(r"stored\s+in\s+local\s+and\s+s3", backup.stdout), backup.stdout
    assert restore is not None and restore.returncode == 0, restore.stdout if restore else ""
    assert re.search(r"TOTAL \(RTO\)\s+\d+\.\d s", restore.stdout), restore.stdout
    for phase in ("install tools", "pick backups", "servers", "restore ", "  postgres "):
        assert phase in restore.stdout
    assert "RPO postgres: data as of" in restore.stdout
    assert re.search(r"failed=0", restore.stdout)


def test_restored_cluster_equals_the_source_in_pg_dumpall(deployment):
    assert deployment["restore"] is not None and deployment["restore"].returncode == 0
    assert "shop" in deployment["source_dumpall"] and "424242" in deployment["source_dumpall"]
    assert deployment["target_dumpall"] == deployment["source_dumpall"]


def test_restore_site_again_without_replace_fails_with_already_exists_and_leaves_the_target(deployment):
    target = deployment["target"]
    before = pg_dumpall_normalized(target)

    again = ansible_playbook("restore-site.yml", env_extra=deployment["env"])

    assert again.returncode != 0
    assert "already exists" in again.stdout
    assert "lifeline_restore_replace" in again.stdout
    assert pg_dumpall_normalized(target) == before


def test_restore_site_with_replace_true_replaces_the_existing_databases(deployment):
    target, source = deployment["target"], deployment["source"]
    target.psql("CREATE TABLE public.stale_marker (id int); INSERT INTO public.stale_marker VALUES (1)", db="shop")

    replaced = ansible_playbook("restore-site.yml", "-e", "lifeline_restore_replace=true",
                                env_extra=deployment["env"])

    assert replaced.returncode == 0, replaced.stdout
    assert "TOTAL (RTO)" in replaced.stdout
    assert target.psql("SELECT to_regclass('public.stale_marker') IS NULL", db="shop") == "t"
    assert pg_dumpall_normalized(target) == pg_dumpall_normalized(source)
