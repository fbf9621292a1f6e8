# -*- coding: utf-8 -*-
# Copyright: Lifeline contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The host CLI as the schedule role's timers run it, against a real PostgreSQL, a local
repository and S3 on moto: the password comes from a 0600 file (a systemd credential), a second
run within --min-interval skips with exit 0 and a "skipped" line, a longer tier still runs."""
from __future__ import annotations

import json
import os
import subprocess

import pytest

from lifeline_it import PYTHON, adhoc, child_env, manifests_under

from ansible_collections.lifeline.dr.plugins.module_utils.errors import SourceError

CLI = "import sys; from ansible_collections.lifeline.dr.plugins.module_utils.cli import main; sys.exit(main())"


@pytest.fixture
def host_config(tmp_path, params) -> dict:
    """lifeline.json as the common role writes it (no password in it) and a 0600 password file."""
    config = {k: v for k, v in params.items() if k not in ("login_password", "identity")}
    config.update(site="it", host="src", login_host=params["login_host"], port=params["port"])
    path = tmp_path / "lifeline.json"
    path.write_text(json.dumps(config))
    secret = tmp_path / "postgres.password"
    secret.write_text(params["login_password"] + "\n")
    os.chmod(secret, 0o600)
    return {"config": str(path), "password_file": str(secret), "repo": params["repositories"][0]["path"],
            "state": params["state_dir"]}


def lifeline(host_config, *args, password_file=None) -> subprocess.CompletedProcess:
    env = child_env({"LIFELINE_PASSWORD_FILE": password_file or host_config["password_file"]})
    env.pop("PGPASSWORD", None)
    return subprocess.run([PYTHON, "-c", CLI, "--config", host_config["config"], *args], env=env,
                          capture_output=True, text=True, timeout=300, check=False)


def test_a_scheduled_run_within_min_interval_skips_with_exit_0_and_says_so(host_config):
    first = lifeline(host_config, "backup", "postgres", "--min-interval", "12h", "--label", "daily")
    assert first.returncode == 0, first.stderr
    made = json.loads(first.stdout)
    assert made["status"] == "ok" and made["stored_in"] == ["local", "s3"]
    record = open(os.path.join(host_config["state"], "status", "it-src-postgres.json"), encoding="utf-8").read()

    second = lifeline(host_config, "backup", "postgres", "--min-interval", "12h", "--label", "daily")

    assert second.returncode == 0, second.stderr
    assert json.loads(second.stdout)["status"] == "skipped"
    assert second.stderr.startswith("lifeline: skipped: postgres backup %s finished " % made["backup_id"])
    assert "within min_interval 12h" in second.stderr
    assert len(manifests_under(host_config["repo"])) == 1
    # monitoring's record still names the backup that made the run unnecessary
    assert open(os.path.join(host_config["state"], "status", "it-src-postgres.json"),
                encoding="utf-8").read() == record


def test_the_weekly_tier_runs_after_a_daily_backup_and_records_its_label(host_config):
    assert lifeline(host_config, "backup", "postgres", "--label", "daily").returncode == 0
    weekly = lifeline(host_config, "backup", "postgres", "--min-interval", "12h", "--label", "weekly")
    assert weekly.returncode == 0, weekly.stderr
    assert json.loads(weekly.stdout)["status"] == "ok"
    listed = lifeline(host_config, "list")
    assert [b["labels"] for b in json.loads(listed.stdout)["backups"]] == [["daily"], ["weekly"]]


def test_min_interval_from_the_config_file_applies_too(host_config):
    config = json.loads(open(host_config["config"], encoding="utf-8").read())
    with open(host_config["config"], "w", encoding="utf-8") as fh:
        json.dump(dict(config, min_interval="1h"), fh)
    assert lifeline(host_config, "backup", "postgres").returncode == 0
    again = lifeline(host_config, "backup", "postgres")
    assert again.returncode == 0 and json.loads(again.stdout)["status"] == "skipped"


def test_a_wrong_password_file_fails_with_the_source_exit_code_and_no_backup(host_config, tmp_path):
    wrong = tmp_path / "wrong.password"
    wrong.write_text("not-the-password\n")
    run = lifeline(host_config, "backup", "postgres", "--min-interval", "12h", password_file=str(wrong))
    assert run.returncode == SourceError.exit_code
    assert "not-the-password" not in run.stderr + run.stdout
    assert manifests_under(host_config["repo"]) == []


def test_a_malformed_min_interval_is_a_config_error(host_config):
    run = lifeline(host_config, "backup", "postgres", "--min-interval", "twelve hours")
    assert run.returncode == 3 and "12h, 90m, 1d12h" in run.stderr
    assert manifests_under(host_config["repo"]) == []


def test_postgres_backup_module_with_min_interval_skips_unchanged_after_the_timers_backup(host_config, params):
    # the timer's run (host CLI), then an AWX job (the module) within the interval
    timer = lifeline(host_config, "backup", "postgres", "--label", "daily")
    assert timer.returncode == 0, timer.stderr
    args = {k: params[k] for k in ("repositories", "recipients", "login_host", "port", "login_password",
                                   "state_dir", "signing_key", "trusted_signers")}
    args.update(site="it", host="src", min_interval="12h")

    rc, result, output = adhoc("lifeline.dr.postgres_backup", args)

    assert rc == 0, output
    assert result["status"] == "skipped" and result["changed"] is False and result["backup_id"] is None
    assert json.loads(timer.stdout)["backup_id"] in result["message"]
    assert len(manifests_under(host_config["repo"])) == 1
    rc, result, output = adhoc("lifeline.dr.postgres_backup", dict(args, min_interval="0"))
    assert rc == 0 and result["status"] == "ok" and result["changed"] is True, output
    assert len(manifests_under(host_config["repo"])) == 2
