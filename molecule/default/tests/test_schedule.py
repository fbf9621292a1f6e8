"""After setup.yml (the schedule role) on lifeline-source, in groups postgres, redis and files with
secret paths: a timer per component and tier is active in systemd's list, in UTC, persistent, with
a randomized delay; prune's unit is installed and its timer on;
starting a backup service runs the host CLI with its password from a systemd credential and
takes a backup (a new manifest), and a run within lifeline_schedule_min_interval skips."""
import json

import testinfra

testinfra_hosts = ["lifeline-source"]

SOURCE = testinfra.get_host("podman://lifeline-source")
COMPONENTS = ("postgres", "redis", "files", "secrets")
TIERS = ("daily", "weekly", "monthly")
PG_BACKUPS = "/var/backups/lifeline/molecule/lifeline-source/postgres"


def _manifests() -> list:
    out = SOURCE.check_output("find %s -name manifest.json | sort" % PG_BACKUPS)
    return out.splitlines()


def _show(unit: str, *props: str) -> dict:
    out = SOURCE.check_output("systemctl show %s %s" % (unit, " ".join("-p " + p for p in props)))
    return dict(line.split("=", 1) for line in out.splitlines())


def test_list_timers_shows_a_timer_per_component_and_tier_with_a_next_run():
    listed = SOURCE.check_output("systemctl list-timers --no-pager --no-legend 'lifeline-*'")
    for component in COMPONENTS:
        for tier in TIERS:
            name = "lifeline-backup-%s@%s.timer" % (tier, component)
            lines = [line for line in listed.splitlines() if name in line]
            assert lines and not lines[0].lstrip().startswith("n/a"), listed
            assert SOURCE.check_output("systemctl is-enabled " + name) == "enabled"
            assert SOURCE.check_output("systemctl is-active " + name) == "active"


def test_timers_run_in_utc_persistently_with_a_randomized_delay():
    for tier, calendar in (("daily", "*-*-* 02:00:00 UTC"), ("weekly", "Sun *-*-* 03:00:00 UTC"),
                           ("monthly", "*-*-01 04:00:00 UTC")):
        shown = _show("lifeline-backup-%s@postgres.timer" % tier, "TimersCalendar", "Persistent", "RandomizedDelayUSec")
        assert "OnCalendar=%s" % calendar in shown["TimersCalendar"]
        assert shown["Persistent"] == "yes" and shown["RandomizedDelayUSec"] == "30min"


def test_backup_services_run_at_low_priority_with_a_timeout():
    shown = _show("lifeline-backup-daily@postgres.service", "Nice", "IOSchedulingClass", "IOSchedulingPriority",
                  "TimeoutStartUSec", "Type", "UMask")
    assert shown == {"Nice": "10", "IOSchedulingClass": "2", "IOSchedulingPriority": "7",
                     "TimeoutStartUSec": "6h", "Type": "oneshot", "UMask": "0077"}


def test_prune_unit_is_installed_and_its_timer_is_on_by_default():
    assert SOURCE.file("/etc/systemd/system/lifeline-prune.service").contains("/usr/local/sbin/lifeline prune")
    assert SOURCE.run("systemctl is-enabled lifeline-prune.timer").stdout.strip() == "enabled"


def test_no_cron_fallback_on_a_systemd_host_and_passwords_are_root_only():
    assert not SOURCE.file("/etc/cron.d/lifeline").exists
    assert SOURCE.file("/etc/lifeline/credentials").mode == 0o700
    for component in COMPONENTS:
        assert SOURCE.file("/etc/lifeline/credentials/%s.password" % component).mode == 0o600
    assert "molecule-pg-password" not in SOURCE.check_output("systemctl cat lifeline-backup-daily@postgres.service")


def test_starting_the_weekly_service_takes_a_labelled_backup_and_the_next_one_skips():
    before = _manifests()
    started = SOURCE.run("systemctl start lifeline-backup-weekly@postgres.service")
    assert started.rc == 0, SOURCE.run("journalctl --no-pager -o cat -u lifeline-backup-weekly@postgres.service").stdout
    after = _manifests()
    assert len(after) == len(before) + 1
    new = json.loads(SOURCE.check_output("cat " + sorted(set(after) - set(before))[0]))
    assert new["labels"] == ["weekly"] and new["host"] == "lifeline-source"
    assert _show("lifeline-backup-weekly@postgres.service", "Result")["Result"] == "success"

    again = SOURCE.run("systemctl start lifeline-backup-weekly@postgres.service")
    assert again.rc == 0
    assert _manifests() == after
    journal = SOURCE.check_output("journalctl --no-pager -o cat -u lifeline-backup-weekly@postgres.service")
    assert "lifeline: skipped: postgres backup %s finished" % new["backup_id"] in journal


def test_the_daily_service_skips_after_the_backups_of_this_run():
    # backup.yml (side_effect) and the weekly one above are newer than lifeline_schedule_min_interval
    before = _manifests()
    assert SOURCE.run("systemctl start lifeline-backup-daily@postgres.service").rc == 0
    assert _manifests() == before
    assert "lifeline: skipped:" in SOURCE.check_output(
        "journalctl --no-pager -o cat -u lifeline-backup-daily@postgres.service")
