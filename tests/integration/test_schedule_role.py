# -*- coding: utf-8 -*-
# Copyright: Lifeline contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The schedule role run by ansible-playbook on this machine, every path in the test's directory:
the cron fallback's entries (UTC, tiers, skip interval, priorities, timeout, random delay, syslog),
passwords as 0600 files named by the entries and never in the output, idempotence, and the
settings it refuses before writing anything (a calendar systemd-analyze rejects, a bad cron time).
The systemd side (timers active, a started service takes a backup) runs in molecule."""
from __future__ import annotations

import json
import os
import re
import stat
import subprocess

import pytest

from lifeline_it import PYTHON, ROOT, VENV_BIN, ansible_env

PASSWORD = "pg-Secret-4711"


def play(tmp_path, **extra) -> subprocess.CompletedProcess:
    variables = {
        "lifeline_schedule_config_dir": str(tmp_path / "etc"),
        "lifeline_schedule_cron_file": str(tmp_path / "cron.d" / "lifeline"),
        "lifeline_schedule_systemd_dir": str(tmp_path / "systemd"),
        "lifeline_schedule_install_cron": False,
        "lifeline_schedule_passwords": {"postgres": PASSWORD, "redis": ""},
        "lifeline_schedule_cli_path": "/usr/local/sbin/lifeline",
        "group_names": ["postgres", "files"],
        "ansible_python_interpreter": PYTHON,
        **extra,
    }
    (tmp_path / "cron.d").mkdir(exist_ok=True)
    (tmp_path / "vars.json").write_text(json.dumps(variables))
    argv = [os.path.join(VENV_BIN, "ansible-playbook"), "-i", "localhost,", "-c", "local", "-v",
            "-e", "@" + str(tmp_path / "vars.json"), os.path.join("tests", "integration", "playbooks", "schedule-role.yml")]
    return subprocess.run(argv, cwd=ROOT, env=ansible_env(), capture_output=True, text=True, timeout=300, check=False)


def cron_lines(tmp_path) -> list:
    text = (tmp_path / "cron.d" / "lifeline").read_text()
    return [line for line in text.splitlines() if line and not line.startswith("#")]


@pytest.fixture
def cron_run(tmp_path):
    return play(tmp_path, lifeline_schedule_manager="cron")


def test_cron_fallback_runs_each_component_of_the_hosts_groups_per_tier_in_utc(cron_run, tmp_path):
    assert cron_run.returncode == 0, cron_run.stdout
    lines = cron_lines(tmp_path)
    assert lines[:3] == ["SHELL=/bin/sh", "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                         "CRON_TZ=UTC"]
    jobs = {re.search(r"logger -t (\S+)$", line).group(1): line for line in lines[3:]}
    assert sorted(jobs) == ["lifeline-backup-%s-%s" % (tier, comp) for tier in ("daily", "monthly", "weekly")
                            for comp in ("files", "postgres")] + ["lifeline-prune"]
    daily = jobs["lifeline-backup-daily-postgres"]
    assert daily.startswith("0 2 * * * root sleep $(shuf -i 0-1800 -n 1) && ")
    assert ("LIFELINE_PASSWORD_FILE=%s/etc/credentials/postgres.password nice -n 10 ionice -c 2 -n 7 timeout 21600s "
            "/usr/local/sbin/lifeline backup postgres --label daily --min-interval 12h --lock-wait 600 2>&1 | "
            "logger -t lifeline-backup-daily-postgres" % tmp_path) in daily
    assert jobs["lifeline-backup-weekly-files"].startswith("0 3 * * 0 root ")
    assert jobs["lifeline-backup-monthly-files"].startswith("0 4 1 * * root ")
    assert "%" not in "\n".join(lines)  # cron turns % into a line break
    assert jobs["lifeline-prune"].startswith("0 5 * * * root ")  # daily 05:00, on by default
    assert stat.S_IMODE(os.stat(tmp_path / "cron.d" / "lifeline").st_mode) == 0o644


def test_passwords_are_0600_files_never_in_the_output_and_empty_for_components_without_one(cron_run, tmp_path):
    creds = tmp_path / "etc" / "credentials"
    assert stat.S_IMODE(os.stat(creds).st_mode) == 0o700
    assert (creds / "postgres.password").read_text() == PASSWORD + "\n"
    assert (creds / "files.password").read_text() == ""
    assert sorted(os.listdir(creds)) == ["files.password", "postgres.password"]
    for name in os.listdir(creds):
        assert stat.S_IMODE(os.stat(creds / name).st_mode) == 0o600
    assert PASSWORD not in cron_run.stdout + cron_run.stderr
    assert PASSWORD not in (tmp_path / "cron.d" / "lifeline").read_text()


def test_a_second_run_changes_nothing_and_a_component_leaving_loses_its_entries_and_password(cron_run, tmp_path):
    again = play(tmp_path, lifeline_schedule_manager="cron")
    assert again.returncode == 0 and re.search(r"changed=0\s", again.stdout), again.stdout
    fewer = play(tmp_path, lifeline_schedule_manager="cron", group_names=["files"],
                 lifeline_schedule_tiers=["daily"], lifeline_schedule_prune_enabled=True,
                 lifeline_schedule_prune_args=["--dry-run"])
    assert fewer.returncode == 0, fewer.stdout
    tags = [line.rsplit(" ", 1)[1] for line in cron_lines(tmp_path)[3:]]
    assert tags == ["lifeline-backup-daily-files", "lifeline-prune"]
    assert cron_lines(tmp_path)[-1].startswith("0 5 * * * root ")
    assert "/usr/local/sbin/lifeline prune --dry-run 2>&1" in cron_lines(tmp_path)[-1]
    assert os.listdir(tmp_path / "etc" / "credentials") == ["files.password"]


def test_a_calendar_systemd_rejects_fails_at_setup_naming_the_variable_before_anything_is_written(tmp_path):
    run = play(tmp_path, lifeline_schedule_manager="systemd", lifeline_schedule_weekly_calendar="Sunday at three")
    assert run.returncode != 0
    said = " ".join(run.stdout.split())
    assert "lifeline_schedule_weekly_calendar (Sunday at three) is not a systemd calendar expression" in said
    # the timers it would have enabled: one per component of the host's groups and tier
    for tier in ("daily", "weekly", "monthly"):
        for component in ("postgres", "files"):
            assert "lifeline-backup-%s@%s.timer" % (tier, component) in said
    assert "lifeline-backup-daily@redis.timer" not in said and "lifeline-prune.timer" in said
    assert not (tmp_path / "etc").exists() and not (tmp_path / "systemd").exists()


@pytest.mark.parametrize("name, value, says", [
    ("lifeline_schedule_daily_cron", "0 2 * *", "lifeline_schedule_daily_cron (0 2 * *) is not a cron time"),
    ("lifeline_schedule_prune_cron", "0 5 * * * %", "lifeline_schedule_prune_cron (0 5 * * * %) is not a cron time"),
    ("lifeline_schedule_min_interval", "12 hours", "a duration like 12h, 90m or 1d12h (got 12 hours)"),
    ("lifeline_schedule_components", ["postgres", "mongo"], "may hold postgres, redis, files and secrets (got postgres, mongo)"),
])
def test_bad_cron_settings_fail_before_the_cron_file_is_written(tmp_path, name, value, says):
    run = play(tmp_path, lifeline_schedule_manager="cron", **{name: value})
    assert run.returncode != 0
    assert says in " ".join(run.stdout.split())
    assert not (tmp_path / "cron.d" / "lifeline").exists()


def test_manager_none_writes_nothing(tmp_path):
    run = play(tmp_path, lifeline_schedule_manager="none")
    assert run.returncode == 0, run.stdout
    assert os.listdir(tmp_path / "cron.d") == [] and not (tmp_path / "etc").exists()
