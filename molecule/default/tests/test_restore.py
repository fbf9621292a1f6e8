"""After backup.yml on lifeline-source and restore-site.yml on the fresh lifeline-restored:
the two clusters hold the same roles, databases, data and settings."""
import testinfra

testinfra_hosts = ["lifeline-restored"]  # the comparison runs once; it reads both containers

SOURCE = testinfra.get_host("podman://lifeline-source")


def dumpall(host) -> list:
    out = host.check_output("runuser -u postgres -- pg_dumpall")
    # PostgreSQL writes a random \\restrict key into every dump (CVE-2025-8714 fix).
    return [line for line in out.splitlines() if not line.startswith(("\\restrict", "\\unrestrict"))]


def test_restore_target_runs_the_backups_major_version(host):
    assert host.package("postgresql-15").is_installed
    assert host.service("postgresql@15-main").is_running


def test_pg_dumpall_of_source_and_restored_cluster_match(host):
    source, restored = dumpall(SOURCE), dumpall(host)
    assert len(source) > 1000
    assert source == restored


def test_sample_rows_and_large_object_arrived(host):
    psql = "runuser -u postgres -- psql -X -A -t -d shop -c "
    assert host.check_output(psql + "'SELECT count(*) FROM sales.\"order\"'") == "20000"
    assert "Grüße" in host.check_output(psql + "\"SELECT convert_from(lo_get(424242), 'UTF8')\"")


def test_restored_host_read_from_s3_because_its_local_repository_is_empty(host):
    assert not host.file("/var/backups/lifeline/molecule").exists
    assert SOURCE.file("/var/backups/lifeline/molecule/lifeline-source/postgres").is_directory


def test_source_backup_files_are_private(host):
    del host
    mode = SOURCE.check_output("find /var/backups/lifeline -type f -printf '%m\\n' | sort -u")
    assert mode.split() == ["600"]
    assert SOURCE.file("/etc/lifeline/lifeline.json").mode == 0o600
    assert SOURCE.file("/var/lib/lifeline").mode == 0o700


def test_host_cli_lists_the_backup(host):
    del host
    out = SOURCE.check_output("/usr/local/sbin/lifeline list")
    assert '"backup_id"' in out and '"s3"' in out
