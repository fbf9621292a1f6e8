# -*- coding: utf-8 -*-
# Copyright: Lifeline contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What goes wrong in real life, against real services: each failure must raise the right error
type, with a message that names the cause, and lose nothing (earlier backups stay intact and
listable, existing databases on a restore target stay exactly as they were)."""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time

import pytest
import keys  # tests/lib, on sys.path through conftest.py

from lifeline_it import (
    PYTHON,
    TMP_MARK,
    add_big_table,
    backup_dir,
    catalog_ids,
    child_env,
    databases,
    files_under,
    flipped,
    manifests_under,
    pg_dump_normalized,
    pg_dumpall_normalized,
    restore_for,
    roles,
    run_backup_for,
    s3_client,
    s3_key,
    s3_keys,
    seed_existing_shop,
    status_record,
    verify_ok,
    wait_for,
)

from ansible_collections.lifeline.dr.plugins.module_utils.errors import (
    ConfigError,
    DecryptionError,
    IntegrityError,
    LifelineError,
    LockedError,
    NotFoundError,
    RepositoryError,
    RestoreError,
    SourceError,
)

SHOP = "db-shop.dump.zst.age"
GLOBALS = "globals.sql.zst.age"


@pytest.fixture
def backed_up(params):
    """One good backup in local and S3; returns its id."""
    outcome = run_backup_for(params)
    assert outcome.status == "ok" and outcome.stored_in == ["local", "s3"]
    return outcome.manifest.backup_id


def _assert_backup_intact(params, backup_id):
    assert catalog_ids(params) == [backup_id]
    assert verify_ok(params, backup_id) == {"local": True, "s3": True}


# ---------------------------------------------------------------- keys


def test_restore_with_wrong_identity_raises_decryption_error_and_changes_nothing(
        params, backed_up, target_pg, other_age_keys):
    wrong_identity, wrong_recipient = other_age_keys
    before = pg_dumpall_normalized(target_pg)

    with pytest.raises(DecryptionError) as err:
        restore_for(dict(params, identity=wrong_identity), target_pg)

    message = str(err.value)
    assert "no identity matches" in message
    assert params["recipients"][0] in message or wrong_recipient in message  # says which keys are involved
    assert wrong_identity not in message and "AGE-SECRET-KEY" not in message
    assert pg_dumpall_normalized(target_pg) == before
    _assert_backup_intact(params, backed_up)


def test_restore_without_identity_fails_naming_lifeline_identity_and_changes_nothing(params, backed_up, target_pg):
    before = pg_dumpall_normalized(target_pg)

    with pytest.raises((ConfigError, DecryptionError)) as err:
        restore_for(dict(params, identity=""), target_pg)

    assert re.search(r"\blifeline_identity\b", str(err.value)), str(err.value)
    assert pg_dumpall_normalized(target_pg) == before
    _assert_backup_intact(params, backed_up)


# ---------------------------------------------------------------- damaged artifacts


def _damage_everywhere(params, moto, bucket, local_repo, backup_id, name, how):
    """Apply ``how`` (bytes -> bytes, or None to delete) to artifact ``name`` in every repository."""
    path = os.path.join(backup_dir(local_repo, backup_id), name)
    client = s3_client(moto)
    key = s3_key(backup_id, name)
    if how is None:
        os.unlink(path)
        client.delete_object(Bucket=bucket, Key=key)
        return
    with open(path, "rb") as fh:
        data = fh.read()
    with open(path, "wb") as fh:
        fh.write(how(data))
    client.put_object(Bucket=bucket, Key=key, Body=how(client.get_object(Bucket=bucket, Key=key)["Body"].read()))


@pytest.fixture
def target_with_content(target_pg):
    """The target already holds a database with data; returns the target's pg_dumpall before the test."""
    target_pg.psql("CREATE DATABASE keepme")
    target_pg.psql("CREATE TABLE t (id int); INSERT INTO t SELECT generate_series(1, 10)", db="keepme")
    return pg_dumpall_normalized(target_pg)


def _assert_existing_data_untouched(target_pg, dumpall_before):
    """The database that was there is exactly as it was and no temporary copy is left."""
    keepme_before = dumpall_before[dumpall_before.index("-- Database \"keepme\" dump"):]
    keepme_before = keepme_before[:keepme_before.index("-- PostgreSQL database dump complete")]
    assert keepme_before.count("COPY public.t (id) FROM stdin;") == 1
    assert keepme_before in pg_dumpall_normalized(target_pg)
    assert not [d for d in databases(target_pg) if d.startswith(("lifeline_restore_", "lifeline_replaced_"))]


def test_restore_refuses_globals_with_flipped_byte_in_every_copy_and_leaves_target_untouched(
        params, moto, bucket, local_repo, backed_up, target_pg, target_with_content):
    _damage_everywhere(params, moto, bucket, local_repo, backed_up, GLOBALS, flipped)

    with pytest.raises(IntegrityError) as err:
        restore_for(params, target_pg)

    assert GLOBALS in str(err.value)
    assert re.search(r"altered|corrupt|sha256|failed authentication", str(err.value)), str(err.value)
    assert pg_dumpall_normalized(target_pg) == target_with_content
    assert catalog_ids(params) == [backed_up]


def test_restore_refuses_database_artifact_with_flipped_byte_in_every_copy(
        params, moto, bucket, local_repo, backed_up, target_pg, target_with_content):
    _damage_everywhere(params, moto, bucket, local_repo, backed_up, SHOP, flipped)

    with pytest.raises(IntegrityError) as err:
        restore_for(params, target_pg)

    assert SHOP in str(err.value)
    assert re.search(r"altered|corrupt|sha256|failed authentication", str(err.value)), str(err.value)
    _assert_existing_data_untouched(target_pg, target_with_content)
    assert "shop" not in databases(target_pg)
    assert catalog_ids(params) == [backed_up]


def test_restore_refuses_truncated_artifact(params, moto, bucket, local_repo, backed_up, target_pg,
                                            target_with_content):
    _damage_everywhere(params, moto, bucket, local_repo, backed_up, SHOP, lambda data: data[:len(data) // 2])

    with pytest.raises(IntegrityError) as err:
        restore_for(params, target_pg)

    assert "truncated" in str(err.value)
    assert SHOP in str(err.value)
    _assert_existing_data_untouched(target_pg, target_with_content)
    assert "shop" not in databases(target_pg)


def test_restore_names_the_artifact_missing_from_every_repository(
        params, moto, bucket, local_repo, backed_up, target_pg, target_with_content):
    _damage_everywhere(params, moto, bucket, local_repo, backed_up, SHOP, None)

    with pytest.raises(LifelineError) as err:
        restore_for(params, target_pg)

    assert isinstance(err.value, (RepositoryError, IntegrityError))
    assert SHOP in str(err.value)
    assert "local" in str(err.value) and "s3" in str(err.value)
    _assert_existing_data_untouched(target_pg, target_with_content)
    assert "shop" not in databases(target_pg)


def test_restore_with_a_damaged_later_artifact_leaves_the_target_cluster_untouched(
        params, moto, bucket, local_repo, backed_up, target_pg, target_with_content):
    """Damage to any artifact is found before anything is applied: no role, no database changes."""
    _damage_everywhere(params, moto, bucket, local_repo, backed_up, SHOP, flipped)

    with pytest.raises(IntegrityError):
        restore_for(params, target_pg)

    assert pg_dumpall_normalized(target_pg) == target_with_content


# ---------------------------------------------------------------- repositories


def test_unreachable_s3_as_only_repository_fails_fast_naming_the_endpoint(params, closed_s3, local_repo, moto,
                                                                          bucket):
    only_s3 = dict(params, repositories=[{"name": "s3", "s3": closed_s3}])
    started = time.monotonic()

    with pytest.raises(RepositoryError) as err:
        run_backup_for(only_s3)

    assert time.monotonic() - started < 30  # a bound against hanging, not a speed target
    assert closed_s3["endpoint_url"] in str(err.value)
    assert "cannot reach" in str(err.value)
    record = status_record(params)
    assert record["status"] == "failed" and record["backup_id"] is None
    assert closed_s3["endpoint_url"] in record["message"]
    assert files_under(local_repo) == [] and s3_keys(moto, bucket) == []


def test_backup_with_s3_down_and_local_up_is_partial_and_stored_in_local_only(params, closed_s3, local_repo):
    mixed = dict(params, repositories=[params["repositories"][0], {"name": "s3", "s3": closed_s3}])

    outcome = run_backup_for(mixed)

    assert outcome.status == "partial"
    assert outcome.stored_in == ["local"]
    assert list(outcome.failed) == ["s3"] and closed_s3["endpoint_url"] in outcome.failed["s3"]
    assert "local only" in outcome.message
    bid = outcome.manifest.backup_id
    assert manifests_under(local_repo) == ["it/src/postgres/%s/manifest.json" % bid]
    local_only = dict(params, repositories=[params["repositories"][0]])
    assert verify_ok(local_only, bid) == {"local": True}
    assert status_record(params)["status"] == "partial"


def test_full_disk_fails_with_no_space_left_and_leaves_no_manifest_or_temp_files(params, source_pg, tmp_path):
    small = tmp_path / "small"
    small.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(small)], check=True)
    try:
        small_repo = {"name": "small", "path": str(small)}
        everywhere = dict(params, repositories=[small_repo] + params["repositories"])
        earlier = run_backup_for(everywhere)
        assert earlier.status == "ok" and earlier.stored_in == ["small", "local", "s3"]
        before = files_under(str(small))
        add_big_table(source_pg, "shop", 8)  # ~8 MB of hex text: > 2 MiB even compressed
        only_small = dict(params, repositories=[small_repo])

        with pytest.raises(RepositoryError) as err:
            run_backup_for(only_small)

        assert "no space left on device" in str(err.value)
        assert "small" in str(err.value)
        assert files_under(str(small)) == before  # no manifest, no artifact, no temp file
        assert not [f for f in files_under(str(small)) if TMP_MARK in f]
        assert catalog_ids(everywhere) == [earlier.manifest.backup_id]
        assert verify_ok(everywhere, earlier.manifest.backup_id) == {"small": True, "local": True, "s3": True}
        assert status_record(params)["status"] == "failed"
    finally:
        subprocess.run(["umount", str(small)], check=True)


# ---------------------------------------------------------------- the source


def test_backup_of_missing_database_names_it_and_lists_the_existing_ones(params, local_repo, moto, bucket):
    with pytest.raises(NotFoundError) as err:
        run_backup_for(params, databases=["nope"])

    message = str(err.value)
    assert "'nope'" in message
    for existing in ("shop", "postgres", "analytics-ü"):
        assert existing in message
    assert manifests_under(local_repo) == [] and s3_keys(moto, bucket) == []
    assert status_record(params)["status"] == "failed"


def test_backup_with_source_server_down_raises_source_error_naming_host_and_port(params, source_pg, local_repo):
    source_pg.stop()

    with pytest.raises(SourceError) as err:
        run_backup_for(params)

    assert "127.0.0.1:%d" % source_pg.port in str(err.value)
    assert manifests_under(local_repo) == []


# ---------------------------------------------------------------- interrupted and concurrent runs


def test_backup_killed_mid_stream_leaves_no_manifest_and_the_next_run_succeeds_without_waiting(
        params, source_pg, local_repo, moto, bucket, tmp_path):
    earlier = run_backup_for(params).manifest.backup_id
    add_big_table(source_pg, "shop", 60)  # makes the shop dump take well over a second
    cfg = tmp_path / "lifeline.json"
    fd = os.open(cfg, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(dict(params, site="it", host="src"), fh)
    code = ("import sys; from ansible_collections.lifeline.dr.plugins.module_utils.cli import main; "
            "sys.exit(main(sys.argv[1:]))")
    proc = subprocess.Popen([PYTHON, "-c", code, "--config", str(cfg), "backup", "postgres"],  # pylint: disable=consider-using-with
                            env=child_env(), start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    root = os.path.join(local_repo, "it", "src", "postgres")

    def shop_in_flight():
        if proc.poll() is not None:
            return "exited"
        for rel in files_under(root):
            if TMP_MARK in rel and "db-shop" in rel:
                with_size = os.path.join(root, rel)
                try:
                    if os.path.getsize(with_size) >= 1024 * 1024:
                        return rel
                except OSError:
                    pass
        return None

    try:
        seen = wait_for(shop_in_flight, timeout=60, interval=0.005)
        assert seen and seen != "exited", "the backup was not caught mid-stream: %r" % (proc.communicate(),)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
    assert proc.returncode == -signal.SIGKILL

    killed_id = seen.split("/")[0]
    assert killed_id != earlier
    assert manifests_under(local_repo) == ["it/src/postgres/%s/manifest.json" % earlier]
    assert not [k for k in s3_keys(moto, bucket) if killed_id in k and k.endswith("manifest.json")]
    assert catalog_ids(params) == [earlier]

    started = time.monotonic()
    outcome = run_backup_for(params, lock_wait=0)  # LockedError at once if a stale lock blocked it
    assert outcome.status == "ok"
    assert time.monotonic() - started < 60
    assert catalog_ids(params) == [earlier, outcome.manifest.backup_id]


def test_second_run_while_lock_is_held_raises_locked_error_naming_the_holder_pid(params, local_repo):
    lock_dir = os.path.join(params["state_dir"], "locks")
    code = ("import sys, time\n"
            "from ansible_collections.lifeline.dr.plugins.module_utils.locking import Lock\n"
            "with Lock(sys.argv[1], 'it-src-postgres'):\n"
            "    print('locked', flush=True)\n"
            "    time.sleep(120)\n")
    holder = subprocess.Popen([PYTHON, "-c", code, lock_dir], env=child_env(),  # pylint: disable=consider-using-with
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"

        with pytest.raises(LockedError) as err:
            run_backup_for(params, lock_wait=0.5)

        assert "pid %d" % holder.pid in str(err.value)
        assert manifests_under(local_repo) == []
    finally:
        holder.kill()
        holder.communicate()
    # the kernel released the lock with its holder: the next run goes ahead
    assert run_backup_for(params).status == "ok"


# ---------------------------------------------------------------- restore into an existing server


def test_restore_refuses_to_overwrite_existing_database_with_data_and_changes_nothing(params, backed_up, target_pg):
    seed_existing_shop(target_pg)
    before = pg_dumpall_normalized(target_pg)
    assert "app_owner" not in roles(target_pg)

    with pytest.raises(RestoreError) as err:
        restore_for(params, target_pg, replace=False)

    assert "'shop' already exists" in str(err.value)
    assert "replace" in str(err.value)
    assert pg_dumpall_normalized(target_pg) == before
    assert "app_owner" not in roles(target_pg)  # not even the globals were applied
    assert "analytics-ü" not in databases(target_pg)


def test_restore_with_replace_swaps_in_the_backup_and_the_old_content_is_gone(params, backed_up, source_pg,
                                                                              target_pg):
    seed_existing_shop(target_pg)

    report = restore_for(params, target_pg, replace=True)

    assert {d["name"]: d["action"] for d in report["databases"]}["shop"] == "replace"
    assert target_pg.psql("SELECT to_regclass('public.precious') IS NULL", db="shop") == "t"
    assert pg_dump_normalized(target_pg, "shop") == pg_dump_normalized(source_pg, "shop")
    assert not [d for d in databases(target_pg) if d.startswith(("lifeline_replaced_", "lifeline_restore_"))]


def test_restore_that_fails_verification_keeps_the_existing_database_and_drops_the_temporary_copy(
        params, backed_up, local_repo, target_pg, tmp_path):
    # A repository holding the same artifacts under a manifest whose row count for one table is wrong.
    tampered_root = tmp_path / "tampered"
    src_dir = backup_dir(local_repo, backed_up)
    dst_dir = backup_dir(str(tampered_root), backed_up)
    os.makedirs(dst_dir)
    for name in os.listdir(src_dir):
        with open(os.path.join(src_dir, name), "rb") as fh:
            data = fh.read()
        if name == "manifest.json":
            manifest = json.loads(data)
            shop = next(a for a in manifest["artifacts"] if a["name"] == SHOP)
            assert shop["meta"]["tables"]["crm.customer"] == 2000
            shop["meta"]["tables"]["crm.customer"] = 1999
            # Signed by the trusted key: the verification itself must catch the mismatch.
            data = json.dumps(keys.SIGNER.sign(manifest), indent=2, sort_keys=True).encode()
        with open(os.path.join(dst_dir, name), "wb") as fh:
            fh.write(data)
    tampered = dict(params, repositories=[{"name": "tampered", "path": str(tampered_root)}])
    seed_existing_shop(target_pg)
    shop_before = pg_dump_normalized(target_pg, "shop")

    with pytest.raises(RestoreError) as err:
        restore_for(tampered, target_pg, replace=True)

    assert "crm.customer: 2000 rows, manifest says 1999" in str(err.value)
    assert pg_dump_normalized(target_pg, "shop") == shop_before
    assert not [d for d in databases(target_pg) if d.startswith("lifeline_restore_")]
