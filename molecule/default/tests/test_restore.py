"""After setup.yml, backup.yml on lifeline-source and restore-site.yml on the fresh
lifeline-restored, all run as the unprivileged lifeline-admin with sudo: the two clusters hold the
same roles, databases, data and settings, and the hosts hold what the roles put there.

The checks read the containers as root through podman (SOURCE, RESTORED); the `host` fixture is
the connection the playbooks used (the inventory's user), to prove who that was."""
import json

import testinfra

testinfra_hosts = ["lifeline-restored"]  # the comparison runs once; it reads both containers

SOURCE = testinfra.get_host("podman://lifeline-source")
RESTORED = testinfra.get_host("podman://lifeline-restored")


def dumpall(target) -> list:
    out = target.check_output("runuser -u postgres -- pg_dumpall")
    # PostgreSQL writes a random \\restrict key into every dump (CVE-2025-8714 fix).
    return [line for line in out.splitlines() if not line.startswith(("\\restrict", "\\unrestrict"))]


def test_playbooks_connected_as_an_unprivileged_user_that_escalates_with_sudo(host):
    assert host.user().name == "lifeline-admin"
    assert host.user().uid != 0
    assert RESTORED.file("/etc/sudoers.d/lifeline-admin").mode == 0o440


def test_restore_target_runs_the_backups_major_version():
    assert RESTORED.package("postgresql-15").is_installed
    assert RESTORED.service("postgresql@15-main").is_running


def test_pg_dumpall_of_source_and_restored_cluster_match():
    source, restored = dumpall(SOURCE), dumpall(RESTORED)
    assert len(source) > 1000
    assert source == restored


def test_sample_rows_and_large_object_arrived():
    psql = "runuser -u postgres -- psql -X -A -t -d shop -c "
    assert RESTORED.check_output(psql + "'SELECT count(*) FROM sales.\"order\"'") == "20000"
    assert "Grüße" in RESTORED.check_output(psql + "\"SELECT convert_from(lo_get(424242), 'UTF8')\"")


def test_restored_host_read_from_s3_because_its_local_repository_is_empty():
    assert not RESTORED.file("/var/backups/lifeline/molecule").exists
    assert SOURCE.file("/var/backups/lifeline/molecule/lifeline-source/postgres").is_directory


def test_source_backup_files_and_signing_key_are_private():
    mode = SOURCE.check_output("find /var/backups/lifeline -type f -printf '%m\\n' | sort -u")
    assert mode.split() == ["600"]
    assert SOURCE.file("/etc/lifeline/lifeline.json").mode == 0o600
    assert SOURCE.file("/etc/lifeline/signing_key.pem").mode == 0o600
    assert SOURCE.file("/var/lib/lifeline").mode == 0o700


def test_restore_target_got_no_signing_key_or_cli_config():
    assert not RESTORED.file("/etc/lifeline/signing_key.pem").exists
    assert not RESTORED.file("/etc/lifeline/lifeline.json").exists


def test_host_cli_config_points_at_the_signing_key_and_trusts_the_source():
    config = json.loads(SOURCE.check_output("cat /etc/lifeline/lifeline.json"))
    assert config["signing_key_file"] == "/etc/lifeline/signing_key.pem"
    assert list(config["trusted_signers"]) == ["lifeline-source"]
    assert config["state_dir"] == "/var/lib/lifeline"


def test_host_cli_makes_a_signed_backup_and_lists_it():
    made = SOURCE.run("LIFELINE_PG_PASSWORD=molecule-pg-password /usr/local/sbin/lifeline backup postgres")
    assert made.rc == 0, made.stderr
    backup_id = json.loads(made.stdout)["backup_id"]
    listed = json.loads(SOURCE.check_output("/usr/local/sbin/lifeline list"))
    mine = [b for b in listed["backups"] if b["backup_id"] == backup_id]
    assert mine and mine[0]["signed_by"].startswith("ed25519:") and mine[0]["repositories"] == ["local", "s3"]


def test_postgresql_17_was_refused_and_nothing_of_it_installed():
    assert not RESTORED.package("postgresql-client-17").is_installed
    assert not RESTORED.file("/usr/lib/postgresql/17").exists


# ---- Redis, files and secrets (issue 7): the same restore point, from S3 alone -----------------

def _tree(target) -> list:
    """Every entry under /srv/app: type, mode, owner, link target, and the sha256 of each file."""
    out = target.check_output(
        "cd /srv/app && find . -printf '%y %m %u:%g %l %p\\n' | sort && "
        "find . -type f -print0 | sort -z | xargs -0 sha256sum")
    return out.splitlines()


def test_files_arrive_with_contents_owners_modes_and_links():
    source, restored = _tree(SOURCE), _tree(RESTORED)
    assert len(source) > 40
    assert source == restored
    assert RESTORED.file("/srv/app/current").linked_to == "/srv/app/uploads/readme.txt"
    assert RESTORED.file("/srv/app/empty").is_directory
    # the hard link is still one inode with two names
    inode = "stat -c %i "
    assert (RESTORED.check_output(inode + "/srv/app/uploads/first.bin")
            == RESTORED.check_output(inode + "/srv/app/uploads/2026/photo-1.bin"))


def test_files_keep_their_acl_and_xattr():
    acl = RESTORED.check_output("getfacl -c /srv/app/uploads/2026/photo-2.bin")
    assert "user:appuser:rw-" in acl
    assert RESTORED.check_output("getfattr --only-values -n user.origin /srv/app/uploads/2026/photo-3.bin") == "camera-7"


def test_secrets_arrive_with_owner_and_mode_and_same_contents():
    for path, mode, owner in (("/etc/app/app.env", 0o600, "appuser"), ("/etc/app/tls.key", 0o400, "root")):
        f = RESTORED.file(path)
        assert f.mode == mode and f.user == owner
        assert RESTORED.check_output("sha256sum " + path) == SOURCE.check_output("sha256sum " + path)


def _redis(target, command: str) -> str:
    return target.check_output("REDISCLI_AUTH=molecule-redis-password redis-cli " + command)


def test_redis_keys_of_every_type_and_their_ttls_arrive():
    for db in (0, 3):
        assert _redis(RESTORED, "-n %d DBSIZE" % db) == _redis(SOURCE, "-n %d DBSIZE" % db)
    assert _redis(RESTORED, "-n 0 DBSIZE") == "506"
    assert _redis(RESTORED, "GET key:500") == "value-500"
    assert _redis(RESTORED, "HGET user:1 lang") == "Grüße"
    assert _redis(RESTORED, "XLEN events") == "1"
    assert _redis(RESTORED, "TYPE board") == "zset"
    ttl = int(_redis(RESTORED, "TTL session:abc"))
    assert 0 < ttl <= 86400
    assert int(_redis(RESTORED, "-n 3 PTTL cache:1")) > 0
    assert _redis(RESTORED, "TTL key:1") == "-1"


def test_restored_redis_data_survives_a_restart_with_appendonly():
    assert _redis(RESTORED, "CONFIG GET appendonly").splitlines()[1] == "yes"
    RESTORED.check_output("systemctl restart redis-server")
    RESTORED.check_output("timeout 30 sh -c 'until REDISCLI_AUTH=molecule-redis-password redis-cli ping | grep -q PONG; do sleep 0.2; done'")
    assert _redis(RESTORED, "-n 0 DBSIZE") == "506"
