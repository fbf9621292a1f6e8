# -*- coding: utf-8 -*-
# Copyright: Lifeline contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""setup.yml with the local inventory: the common role installs the host's signing key (0600)
and writes a CLI configuration that points at it, trusts lifeline_trusted_signers and uses the
collection-wide lifeline_state_dir, with a section per component (Redis's password in a 0600
file of its own); the host CLI run with that configuration makes signed backups of every
component that the catalog accepts and verify passes. A second run changes nothing."""
from __future__ import annotations

import json
import os
import re
import stat
import subprocess

import pytest

from lifeline_it import PYTHON, ansible_playbook, child_env, files_under
from test_playbooks import local_site

CLI = "import sys; from ansible_collections.lifeline.dr.plugins.module_utils.cli import main; sys.exit(main())"


@pytest.fixture(scope="module")
def setup_run(workdir):
    with local_site(workdir) as site:
        first = ansible_playbook("setup.yml", env_extra=site["env"])
        yield dict(site, first=first, etc=os.path.join(site["state"], "etc", "source-db"))


def _config(setup_run) -> dict:
    with open(os.path.join(setup_run["etc"], "lifeline.json"), encoding="utf-8") as fh:
        return json.load(fh)


def _cli(setup_run, *args: str, **env_extra: str) -> subprocess.CompletedProcess:
    env = child_env({"LIFELINE_PG_PASSWORD": setup_run["info"]["postgres_password"], **env_extra})
    return subprocess.run([PYTHON, "-c", CLI, "--config", os.path.join(setup_run["etc"], "lifeline.json"), *args],
                          env=env, capture_output=True, text=True, timeout=300, check=False)


def test_setup_installs_the_hosts_signing_key_root_only(setup_run):
    assert setup_run["first"].returncode == 0, setup_run["first"].stdout
    key = os.path.join(setup_run["etc"], "signing_key.pem")
    assert stat.S_IMODE(os.stat(key).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(setup_run["etc"]).st_mode) == 0o700
    with open(os.path.join(setup_run["state"], "signing_key.pem"), encoding="utf-8") as fh:
        assert open(key, encoding="utf-8").read().strip() == fh.read().strip()
    assert "PRIVATE KEY" not in setup_run["first"].stdout


def test_setup_points_the_cli_config_at_the_key_the_trusted_signers_and_lifeline_state_dir(setup_run):
    config = _config(setup_run)
    assert stat.S_IMODE(os.stat(os.path.join(setup_run["etc"], "lifeline.json")).st_mode) == 0o600
    assert config["signing_key_file"] == os.path.join(setup_run["etc"], "signing_key.pem")
    assert config["trusted_signers"] == {"source-db": [setup_run["info"]["signing_public_key"]]}
    # lifeline_common_state_dir follows the inventory's lifeline_state_dir
    assert config["state_dir"] == os.path.join(setup_run["state"], "state", "source-db")
    assert os.path.isdir(config["state_dir"])
    assert config["port"] == setup_run["info"]["source_port"] and config["host"] == "source-db"


def test_host_cli_with_the_setup_config_makes_a_signed_backup_the_catalog_trusts(setup_run):
    backup = _cli(setup_run, "backup", "postgres")
    assert backup.returncode == 0, backup.stderr
    backup_id = json.loads(backup.stdout)["backup_id"]

    listed = _cli(setup_run, "list")

    assert listed.returncode == 0, listed.stderr
    backups = json.loads(listed.stdout)["backups"]
    assert [b["backup_id"] for b in backups] == [backup_id]
    assert backups[0]["signed_by"].startswith("ed25519:")


def test_setup_config_has_a_section_per_component_and_no_password(setup_run):
    config, info = _config(setup_run), setup_run["info"]
    secret = os.path.join(setup_run["etc"], "redis_password")
    assert config["redis"] == {"login_host": "127.0.0.1", "port": info["redis_source_port"], "format": "rdb",
                               "login_password_file": secret}
    assert config["files"]["paths"] == [os.path.join(setup_run["state"], "site", "srv", "app")]
    assert [os.path.basename(p) for p in config["secrets"]["paths"]] == ["app.env", "tls.key"]
    assert stat.S_IMODE(os.stat(secret).st_mode) == 0o600
    with open(secret, encoding="utf-8") as fh:
        assert fh.read() == info["redis_password"] + "\n"
    with open(os.path.join(setup_run["etc"], "lifeline.json"), encoding="utf-8") as fh:
        text = fh.read()
    assert info["redis_password"] not in text and info["postgres_password"] not in text


@pytest.mark.parametrize("component", ["redis", "files", "secrets"])
def test_host_cli_backs_up_every_component_from_the_setup_config(setup_run, component):
    # LIFELINE_PG_PASSWORD is set (as for the postgres timer): Redis must log in with its own.
    backup = _cli(setup_run, "backup", component)
    assert backup.returncode == 0, backup.stderr
    made = json.loads(backup.stdout)
    assert made["status"] == "ok" and made["backup_id"]
    listed = json.loads(_cli(setup_run, "list", "--component", component).stdout)["backups"]
    assert made["backup_id"] in [b["backup_id"] for b in listed]
    # The host holds no identity (it only encrypts): an operator hands one in to verify.
    verified = _cli(setup_run, "verify", "--component", component, "--point", made["backup_id"],
                    LIFELINE_IDENTITY_FILE=os.path.join(setup_run["state"], "identity.txt"))
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert setup_run["info"]["redis_password"] not in backup.stdout + backup.stderr


def test_backup_check_mode_prints_the_plan_and_stores_nothing(setup_run):
    repo = os.path.join(setup_run["state"], "repo")
    before = files_under(repo)

    run = ansible_playbook("backup.yml", "--check", env_extra=setup_run["env"])

    assert run.returncode == 0, run.stdout
    said = " ".join(run.stdout.split())
    assert ("source-db (check mode): would back up globals, database analytics-ü, database postgres, "
            "database shop into local and s3") in said
    assert files_under(repo) == before


def test_setup_again_changes_nothing(setup_run):
    assert setup_run["first"].returncode == 0, setup_run["first"].stdout

    again = ansible_playbook("setup.yml", env_extra=setup_run["env"])

    assert again.returncode == 0, again.stdout
    assert re.search(r"source-db\s*:\s*ok=\d+\s+changed=0\s", again.stdout), again.stdout


def test_the_setup_config_carries_the_prune_policy_and_the_cli_prunes_with_it(setup_run):
    config = _config(setup_run)
    assert (config["keep_daily"], config["keep_weekly"], config["keep_monthly"]) == (7, 4, 12)
    assert config["pin_labels"] == ["keep"] and config["orphan_age_hours"] == 24
    dry = _cli(setup_run, "prune", "--component", "postgres", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    report = json.loads(dry.stdout)
    assert report["status"] == "planned" and report["deleted"] == 0
    assert all(p["action"] == "keep" for p in report["plan"])  # one backup at most: the newest stays
