# -*- coding: utf-8 -*-
# Copyright: Lifeline contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""restore-site.yml as an operator runs it in a DR (inventories/local against throwaway
services from scripts/local-services.py): --check prints the plan and changes nothing, a wrong
identity stops in the pick phase before anything is installed or restored, and
lifeline_restore_databases rolls one database back while the others stay as they are.

One set of services and one backup per module; every test either changes nothing or first puts
the target into the state it needs, so the tests do not depend on each other's order.
"""
from __future__ import annotations

import json
import os
import re
import subprocess

import pytest

from lifeline_it import ansible_playbook, files_under, pg_dump_normalized, pg_dumpall_normalized
from test_playbooks import local_site

from services import free_port

from ansible_collections.lifeline.dr.plugins.module_utils import crypto

NOT_RUN_AFTER_PICK = ("Install client tools", "Restore PostgreSQL backup", "TOTAL (RTO)")


@pytest.fixture(scope="module")
def site(workdir):
    with local_site(workdir) as services:
        backup = ansible_playbook("backup.yml", env_extra=services["env"])
        assert backup.returncode == 0, backup.stdout
        yield dict(services, backup_id=re.search(r"source-db: backup (\S+) of", backup.stdout).group(1))


def _extra_vars(site, name: str, data: dict) -> str:
    """``-e @file`` (0600), so secrets such as an identity never appear in argv."""
    path = os.path.join(site["state"], name + ".json")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(data, fh)
    return "@" + path


def _said(run) -> str:
    """The run's output with white space collapsed (the YAML callback wraps long lines)."""
    return " ".join(run.stdout.split())


def _target_state(site) -> dict:
    """Everything restore-site.yml could change on the target: the cluster and the host's files."""
    host_files = {sub: files_under(os.path.join(site["state"], sub, "restored-db")) for sub in ("state", "etc")}
    return {"cluster": pg_dumpall_normalized(site["target"]), "files": host_files}


def test_restore_site_check_mode_prints_the_plan_and_changes_nothing_on_the_target(site):
    before = _target_state(site)

    run = ansible_playbook("restore-site.yml", "--check", env_extra=site["env"])

    assert run.returncode == 0, run.stdout
    said = _said(run)
    assert "Restore plan for restored-db (check mode: nothing was changed)" in said
    assert "backup: %s of source-db, PostgreSQL 15" % site["backup_id"] in said
    assert "identity: opens it (age to age1" in said
    assert re.search(r"PostgreSQL server: already runs at 127\.0\.0\.1:\d+", said), said
    assert "roles (globals): would be applied" in said
    # A fresh server's empty "postgres" is replaced; the others do not exist there yet.
    assert "analytics-ü: would create" in said
    assert "postgres: would replace-empty" in said
    assert "shop: would create" in said
    assert "TOTAL (RTO)" not in said
    assert _target_state(site) == before


def test_restore_site_check_mode_on_a_host_without_a_server_says_one_would_be_installed(site):
    port = free_port()  # nothing listens here: the target looks like a fresh machine

    run = ansible_playbook("restore-site.yml", "--check", "-e", "lifeline_postgresql_port=%d" % port,
                           # look up packages in the apt lists as they are, without a network refresh
                           "-e", "lifeline_postgresql_apt_cache_valid_time=999999999",
                           env_extra=site["env"])

    assert run.returncode == 0, run.stdout
    said = _said(run)
    assert "PostgreSQL server: would install PostgreSQL 15 (nothing listens at 127.0.0.1:%d)" % port in said
    assert "databases: would be created on the new server: analytics-ü, postgres, shop" in said
    assert "would configure postgresql@15-main to listen on port %d" % port in said


def _installable_package_not_installed() -> str | None:
    """A Debian package apt could install here but that is not installed (None if there is none)."""
    for name in ("hello", "cowsay", "sl", "acl"):
        status = subprocess.run(["dpkg-query", "--show", "--showformat", "${db:Status-Status}", name],
                                capture_output=True, text=True, check=False).stdout.strip()
        policy = subprocess.run(["apt-cache", "policy", name], capture_output=True, text=True, check=False).stdout
        if status != "installed" and "Candidate:" in policy and "Candidate: (none)" not in policy:
            return name
    return None


def test_restore_site_check_mode_without_the_restore_tools_stops_before_the_pick_and_says_what_to_run(site):
    package = _installable_package_not_installed()
    if package is None:
        pytest.skip("no installable package is missing on this machine")
    before = _target_state(site)
    tools = {"lifeline_common_install_packages": True, "lifeline_common_extra_packages": [package]}

    run = ansible_playbook("restore-site.yml", "--check", "-e", json.dumps(tools), env_extra=site["env"])

    assert run.returncode != 0
    said = _said(run)
    assert "Check mode cannot read the repository from restored-db" in said
    assert package in said and "--tags restore_tools first" in said
    assert "Find the backups to restore" not in said
    for later in NOT_RUN_AFTER_PICK:
        assert later not in said
    assert _installable_package_not_installed() == package  # check mode installed nothing
    assert _target_state(site) == before


def test_restore_site_with_a_wrong_identity_fails_in_the_pick_phase_before_install_or_restore(site):
    before = _target_state(site)
    wrong_identity, _recipient = crypto.generate_age_identity()

    run = ansible_playbook("restore-site.yml", "-e", _extra_vars(site, "wrong", {"lifeline_identity": wrong_identity}),
                           env_extra=site["env"])

    assert run.returncode != 0
    said = _said(run)
    assert "cannot decrypt the postgres backup %s" % site["backup_id"] in said
    assert "Set lifeline_identity to the matching private key" in said
    assert wrong_identity not in said
    for later in NOT_RUN_AFTER_PICK:
        assert later not in said
    assert _target_state(site) == before


def test_restore_site_refuses_a_database_the_backup_does_not_hold_before_installing_anything(site):
    run = ansible_playbook("restore-site.yml", "-e", "lifeline_restore_databases=shop,nope", env_extra=site["env"])

    assert run.returncode != 0
    said = _said(run)
    assert "has no database nope" in said
    assert "lifeline_restore_databases" in said
    for later in NOT_RUN_AFTER_PICK:
        assert later not in said


def test_restore_site_with_restore_databases_rolls_one_database_back_and_leaves_the_others(site):
    source, target = site["source"], site["target"]
    full = ansible_playbook("restore-site.yml", "-e", "lifeline_restore_replace=true", env_extra=site["env"])
    assert full.returncode == 0, full.stdout
    target.psql("DELETE FROM sales.\"order\" WHERE id % 2 = 0", db="shop")
    target.psql("CREATE TABLE public.kept_change (id int)", db="analytics-ü")
    target.psql("CREATE ROLE made_after_the_backup")

    rollback = ansible_playbook("restore-site.yml", "-e", "lifeline_restore_databases=shop",
                                "-e", "lifeline_restore_replace=true", "-e", "lifeline_restore_globals=false",
                                env_extra=site["env"])

    assert rollback.returncode == 0, rollback.stdout
    assert re.search(r"shop \(replace\): .*row counts of 2 tables .*as in the manifest", _said(rollback)), rollback.stdout
    assert "TOTAL (RTO)" in _said(rollback)
    assert pg_dump_normalized(target, "shop") == pg_dump_normalized(source, "shop")
    assert target.psql("SELECT to_regclass('public.kept_change') IS NOT NULL", db="analytics-ü") == "t"
    assert target.psql("SELECT count(*) FROM pg_roles WHERE rolname = 'made_after_the_backup'") == "1"


def test_restore_site_tag_restore_pick_only_picks_and_checks_the_key(site):
    before = _target_state(site)

    run = ansible_playbook("restore-site.yml", "--tags", "restore_pick", env_extra=site["env"])

    assert run.returncode == 0, run.stdout
    said = _said(run)
    assert "Restoring source-db at latest: postgres %s (data as of" % site["backup_id"] in said
    assert "the identity opens every one" in said
    for later in NOT_RUN_AFTER_PICK + ("Install the engine's packages",):
        assert later not in said
    assert _target_state(site) == before
