# -*- coding: utf-8 -*-
# Copyright: Lifeline contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The Ansible layer: each module run through the real `ansible` CLI (ad hoc, connection local,
JSON arguments), against real PostgreSQL and S3 (moto_server)."""
from __future__ import annotations

import json
import os
import stat


from lifeline_it import (
    HOST,
    SITE,
    adhoc,
    backup_dir,
    files_under,
    flipped,
    manifests_under,
    run_backup_for,
    s3_client,
    s3_key,
    s3_keys,
)


def _common(params: dict) -> dict:
    return {"repositories": params["repositories"], "site": SITE, "host": HOST, "state_dir": params["state_dir"],
            "signing_key": params["signing_key"], "trusted_signers": params["trusted_signers"]}


def _pg(params: dict) -> dict:
    return {"login_host": params["login_host"], "port": params["port"], "login_password": params["login_password"]}


def backup_args(params: dict, **extra) -> dict:
    return dict(_common(params), **_pg(params), recipients=params["recipients"], **extra)


def verify_args(params: dict, **extra) -> dict:
    return dict(_common(params), **_pg(params), identity=params["identity"], **extra)


def test_postgres_backup_check_mode_reports_the_plan_and_stores_nothing(params, local_repo, moto, bucket):
    rc, result, output = adhoc("lifeline.dr.postgres_backup", backup_args(params), check=True)

    assert rc == 0, output
    assert result["status"] == "planned"
    assert result["plan"] == ["globals", "database analytics-ü", "database postgres", "database shop"]
    assert result["stored_in"] == ["local", "s3"]
    assert result["backup_id"] is None
    assert files_under(local_repo) == []
    assert s3_keys(moto, bucket) == []
    assert not os.path.exists(os.path.join(params["state_dir"], "status"))


def test_postgres_backup_check_mode_creates_no_file_or_directory(params, local_repo):
    rc, result, output = adhoc("lifeline.dr.postgres_backup", backup_args(params), check=True)

    assert rc == 0 and result["status"] == "planned", output
    assert files_under(params["state_dir"]) == []
    assert not os.path.exists(local_repo)


def test_postgres_backup_failure_exits_nonzero_with_the_cause_in_the_output(params, local_repo):
    rc, result, output = adhoc("lifeline.dr.postgres_backup", backup_args(params, databases=["nope"]))

    assert rc != 0
    assert result["failed"] is True
    assert result["error"] == "NotFoundError"
    assert "'nope' does not exist" in result["msg"]
    assert "'nope' does not exist" in output
    assert manifests_under(local_repo) == []


def test_postgres_backup_with_require_all_repositories_fails_when_s3_is_down_but_local_keeps_the_backup(
        params, closed_s3, local_repo):
    repos = [params["repositories"][0], {"name": "s3", "s3": closed_s3}]
    args = backup_args(dict(params, repositories=repos), require_all_repositories=True)

    rc, result, output = adhoc("lifeline.dr.postgres_backup", args)

    assert rc != 0, output
    assert result["failed"] is True
    assert "stored in local only" in result["msg"]
    assert closed_s3["endpoint_url"] in result["msg"]
    kept = manifests_under(local_repo)
    assert len(kept) == 1
    backup_id = kept[0].split("/")[3]
    assert backup_id in result["msg"]


def test_postgres_backup_failed_for_a_down_repository_still_reports_the_backup_it_stored(
        params, closed_s3, local_repo):
    repos = [params["repositories"][0], {"name": "s3", "s3": closed_s3}]
    args = backup_args(dict(params, repositories=repos), require_all_repositories=True)

    rc, result, output = adhoc("lifeline.dr.postgres_backup", args)

    assert rc != 0, output
    kept = manifests_under(local_repo)
    assert len(kept) == 1
    assert result["backup_id"] == kept[0].split("/")[3]
    assert result["stored_in"] == ["local"]
    assert result["status"] == "partial"
    assert result["changed"] is True


def test_postgres_backup_without_require_all_repositories_succeeds_partially_with_a_warning(
        params, closed_s3, local_repo):
    repos = [params["repositories"][0], {"name": "s3", "s3": closed_s3}]
    args = backup_args(dict(params, repositories=repos), require_all_repositories=False)

    rc, result, output = adhoc("lifeline.dr.postgres_backup", args)

    assert rc == 0, output
    assert result["status"] == "partial" and result["stored_in"] == ["local"]
    assert "s3" in result["failed_repositories"]
    assert any("stored in local only" in w for w in result.get("warnings", []))
    assert manifests_under(local_repo) == ["it/src/postgres/%s/manifest.json" % result["backup_id"]]


def test_backup_info_lists_backups_oldest_first_with_the_repositories_holding_them(params):
    first = run_backup_for(params).manifest.backup_id
    second = run_backup_for(params).manifest.backup_id

    rc, result, output = adhoc("lifeline.dr.backup_info", dict(_common(params), point=first))

    assert rc == 0, output
    assert [b["backup_id"] for b in result["backups"]] == [first, second]
    assert all(b["repositories"] == ["local", "s3"] for b in result["backups"])
    assert result["latest"]["backup_id"] == second
    assert result["selected"]["backup_id"] == first
    assert result["selected"]["facts"]["databases"] == ["analytics-ü", "postgres", "shop"]
    assert result["changed"] is False


def test_backup_info_chooses_one_backup_per_component_for_a_site_restore(params, age_keys):
    backup_id = run_backup_for(params).manifest.backup_id

    rc, result, output = adhoc("lifeline.dr.backup_info", dict(
        _common(params), components=["postgres", "redis"], point="latest", identity=age_keys[0]))

    assert rc == 0, output
    assert result["site"]["selected"]["postgres"]["backup_id"] == backup_id
    assert result["site"]["selected"]["postgres"]["can_decrypt"] is True
    assert result["site"]["absent"] == ["redis"]

    rc, result, output = adhoc("lifeline.dr.backup_info", dict(
        _common(params), components=["postgres", "redis"], require_components=True, point="latest"))
    assert rc != 0 and "redis" in result["msg"], output


def test_backup_verify_passes_on_a_good_backup_of_every_database(params):
    backup_id = run_backup_for(params).manifest.backup_id

    rc, result, output = adhoc("lifeline.dr.backup_verify", verify_args(params))

    assert rc == 0, output
    assert result["ok"] is True and result["backup_id"] == backup_id


def test_backup_verify_passes_on_a_good_backup_and_records_the_result(params, local_repo, moto, bucket):
    backup_id = run_backup_for(params, databases=["shop", "analytics-ü"]).manifest.backup_id

    rc, result, output = adhoc("lifeline.dr.backup_verify", verify_args(params))

    assert rc == 0, output
    assert result["ok"] is True and result["backup_id"] == backup_id
    assert len(result["results"]) == 3 * 2  # globals + 2 databases, in both repositories
    assert all(r["ok"] for r in result["results"])
    assert result["recorded_in"] == ["local", "s3"]
    assert [f for f in files_under(backup_dir(local_repo, backup_id)) if f.startswith("verify/")]
    assert [k for k in s3_keys(moto, bucket) if "/%s/verify/" % backup_id in k]


def test_backup_verify_fails_naming_the_repository_and_artifact_when_a_byte_flips_in_s3(params, moto, bucket):
    backup_id = run_backup_for(params, databases=["shop"]).manifest.backup_id
    client = s3_client(moto)
    key = s3_key(backup_id, "db-shop.dump.zst.age")
    data = client.get_object(Bucket=bucket, Key=key)["Body"].read()
    client.put_object(Bucket=bucket, Key=key, Body=flipped(data))

    rc, result, output = adhoc("lifeline.dr.backup_verify", verify_args(params))

    assert rc != 0
    assert "db-shop.dump.zst.age in s3" in result["msg"]
    assert "in local" not in result["msg"]
    assert result["error"] == "IntegrityError"


def test_backup_key_creates_a_0600_key_file_once(tmp_path):
    path = tmp_path / "keys" / "identity.txt"

    rc, first, output = adhoc("lifeline.dr.backup_key", {"path": str(path)})
    assert rc == 0, output
    assert first["changed"] is True
    assert first["recipient"].startswith("age1") and first["key_id"] == [first["recipient"]]
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    content = path.read_text()
    assert content.startswith("AGE-SECRET-KEY-1")
    assert "AGE-SECRET-KEY" not in output  # the secret never reaches the output

    rc, second, output = adhoc("lifeline.dr.backup_key", {"path": str(path)})
    assert rc == 0, output
    assert second["changed"] is False
    assert second["recipient"] == first["recipient"]
    assert path.read_text() == content


def test_backup_key_creates_an_aes_key_file_once(tmp_path):
    path = tmp_path / "aes.key"

    rc, first, output = adhoc("lifeline.dr.backup_key", {"path": str(path), "type": "aes-256-gcm"})
    assert rc == 0, output
    assert first["changed"] is True and first["key_id"][0].startswith("aes:")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    key = path.read_text().strip()
    assert len(key) == 64 and key not in output

    rc, second, output = adhoc("lifeline.dr.backup_key", {"path": str(path), "type": "aes-256-gcm"})
    assert rc == 0, output
    assert second["changed"] is False and second["key_id"] == first["key_id"]


def test_backup_key_describes_the_key_a_backup_needs_and_whether_ours_opens_it(params, other_age_keys):
    backup_id = run_backup_for(params).manifest.backup_id
    args = dict(_common(params))
    del args["state_dir"]

    rc, ours, output = adhoc("lifeline.dr.backup_key", dict(args, identity=params["identity"]))
    assert rc == 0, output
    assert ours["backup_id"] == backup_id
    assert ours["encryption"] == "age"
    assert ours["key_id"] == params["recipients"]
    assert ours["can_decrypt"] is True

    rc, other, output = adhoc("lifeline.dr.backup_key", dict(args, identity=other_age_keys[0]))
    assert rc == 0, output
    assert other["can_decrypt"] is False
    assert other["key_id"] == params["recipients"]


def test_postgres_restore_with_safety_backup_stores_the_replaced_database_first_and_keeps_it(
        params, local_repo, target_pg):
    run_backup_for(params, databases=["shop"], include_globals=True)
    # The target already holds a different "shop": 3 rows that the restore will replace.
    target_pg.psql("CREATE ROLE app_owner")
    target_pg.psql("CREATE DATABASE shop")
    target_pg.psql("CREATE TABLE before_restore (id int); INSERT INTO before_restore VALUES (1), (2), (3)", db="shop")
    target = dict(params, port=target_pg.port, login_password=target_pg.password)
    rc, result, output = adhoc("lifeline.dr.postgres_restore", dict(
        _common(params), **_pg(target), identity=params["identity"], recipients=params["recipients"],
        replace=True, safety_backup=True, safety_backup_host="target-host", keep_replaced=True,
        staging_dir=os.path.join(params["state_dir"], "staging")))
    assert rc == 0, output
    assert [d["action"] for d in result["databases"]] == ["replace"]
    assert "safety_backup" in result["phases"]
    # The safety backup holds the replaced content, under its own host name and label; it is
    # found by the id the restore returned, never as that host's "latest".
    safety = result["safety_backup"]
    assert safety["host"] == "target-host" and safety["databases"] == ["shop"]
    rc, info, output = adhoc("lifeline.dr.backup_info", dict(_common(params), host="target-host",
                                                             point=safety["backup_id"]))
    assert rc == 0, output
    assert info["selected"]["facts"]["databases"] == ["shop"]
    assert info["selected"]["labels"] == ["safety"]
    rc, _info, output = adhoc("lifeline.dr.backup_info", dict(_common(params), host="target-host", point="latest"))
    assert rc != 0 and "safety" in output
    safety_root = os.path.join(local_repo, SITE, "target-host")
    (path,) = manifests_under(safety_root)
    with open(os.path.join(safety_root, path), encoding="utf-8") as fh:
        manifest = json.load(fh)
    (art,) = [a for a in manifest["artifacts"] if a["kind"] == "database"]
    assert art["meta"]["tables"] == {"public.before_restore": 3}
    # keep_replaced: the old database is still there under a lifeline_replaced_ name.
    kept = target_pg.psql("SELECT datname FROM pg_database WHERE datname LIKE 'lifeline\\_replaced\\_%'")
    assert kept.startswith("lifeline_replaced_")
    assert target_pg.psql("SELECT count(*) FROM before_restore", db=kept) == "3"
    assert target_pg.psql("SELECT count(*) FROM sales.\"order\"", db="shop") == "20000"
