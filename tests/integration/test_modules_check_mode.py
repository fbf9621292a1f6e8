# -*- coding: utf-8 -*-
# Copyright: Lifeline contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Honest check mode and `changed`, module by module, through the real `ansible` CLI (ad hoc,
connection local) against real PostgreSQL and S3 (moto_server): a check run fails where the
real run would, and `changed` says whether something was written."""
from __future__ import annotations

import os
import stat

from lifeline_it import HOST, SITE, adhoc, backup_dir, files_under, flip_byte, run_backup_for


def _common(params: dict) -> dict:
    return {"repositories": params["repositories"], "site": SITE, "host": HOST, "state_dir": params["state_dir"],
            "signing_key": params["signing_key"], "trusted_signers": params["trusted_signers"]}


def _backup_args(params: dict, **extra) -> dict:
    return dict(_common(params), login_host=params["login_host"], port=params["port"],
                login_password=params["login_password"], recipients=params["recipients"], **extra)


def _verify_args(params: dict, **extra) -> dict:
    return dict(_common(params), login_host=params["login_host"], port=params["port"],
                login_password=params["login_password"], identity=params["identity"], **extra)


def _with_down_s3(params: dict, closed_s3: dict) -> dict:
    return dict(params, repositories=[params["repositories"][0], {"name": "s3", "s3": closed_s3}])


def _verify_records(local_repo: str, backup_id: str) -> list:
    return [f for f in files_under(backup_dir(local_repo, backup_id)) if f.startswith("verify/")]


def test_postgres_backup_check_mode_fails_like_the_real_run_when_a_repository_is_unreachable(
        params, closed_s3, local_repo):
    rc, result, output = adhoc("lifeline.dr.postgres_backup",
                               _backup_args(_with_down_s3(params, closed_s3)), check=True)

    assert rc != 0, output
    assert result["failed"] is True
    assert result["error"] == "RepositoryError"
    assert "check mode" in result["msg"] and "local only" in result["msg"]
    assert closed_s3["endpoint_url"] in result["msg"]
    assert result["status"] == "planned"
    assert result["stored_in"] == ["local"]
    assert list(result["failed_repositories"]) == ["s3"]
    assert files_under(local_repo) == []


def test_postgres_backup_check_mode_only_warns_about_an_unreachable_repository_without_require_all(
        params, closed_s3, local_repo):
    args = _backup_args(_with_down_s3(params, closed_s3), require_all_repositories=False)

    rc, result, output = adhoc("lifeline.dr.postgres_backup", args, check=True)

    assert rc == 0, output
    assert result["status"] == "planned" and result["stored_in"] == ["local"]
    assert any("local only" in w and closed_s3["endpoint_url"] in w for w in result.get("warnings", []))
    assert result["message"].startswith("check mode")
    assert files_under(local_repo) == []


def test_backup_verify_is_changed_exactly_when_it_stores_a_record(params, local_repo):
    backup_id = run_backup_for(params, databases=["shop"]).manifest.backup_id

    rc, checked, output = adhoc("lifeline.dr.backup_verify", _verify_args(params), check=True)
    assert rc == 0, output
    assert checked["ok"] is True and checked["changed"] is False and checked["recorded_in"] == []
    assert _verify_records(local_repo, backup_id) == []

    rc, unrecorded, output = adhoc("lifeline.dr.backup_verify", _verify_args(params, record=False))
    assert rc == 0, output
    assert unrecorded["changed"] is False and unrecorded["recorded_in"] == []
    assert _verify_records(local_repo, backup_id) == []

    rc, recorded, output = adhoc("lifeline.dr.backup_verify", _verify_args(params))
    assert rc == 0, output
    assert recorded["changed"] is True and recorded["recorded_in"] == ["local", "s3"]
    assert len(_verify_records(local_repo, backup_id)) == 1


def test_backup_verify_that_fails_still_reports_the_record_it_stored_as_a_change(params, local_repo):
    backup_id = run_backup_for(params, databases=["shop"]).manifest.backup_id
    flip_byte(os.path.join(backup_dir(local_repo, backup_id), "db-shop.dump.zst.age"))

    rc, result, output = adhoc("lifeline.dr.backup_verify", _verify_args(params))

    assert rc != 0, output
    assert result["error"] == "IntegrityError" and "db-shop.dump.zst.age in local" in result["msg"]
    assert result["ok"] is False
    assert result["changed"] is True and result["recorded_in"] == ["local", "s3"]
    assert [r["repository"] for r in result["results"] if not r["ok"]] == ["local"]
    assert len(_verify_records(local_repo, backup_id)) == 1


def test_backup_key_with_path_ignores_repositories_so_group_module_defaults_can_set_them(params, tmp_path):
    path = tmp_path / "identity.txt"

    rc, result, output = adhoc("lifeline.dr.backup_key", dict(_common(params), path=str(path)))

    assert rc == 0, output
    assert result["changed"] is True and result["recipient"].startswith("age1")
    assert "backup_id" not in result
    assert path.read_text().startswith("AGE-SECRET-KEY-1")


def test_backup_key_creates_an_ed25519_signing_key_once_and_returns_only_its_public_half(tmp_path):
    path = tmp_path / "keys" / "signing.pem"

    rc, first, output = adhoc("lifeline.dr.backup_key", {"path": str(path), "type": "ed25519"})
    assert rc == 0, output
    assert first["changed"] is True
    assert first["public_key"].startswith("-----BEGIN PUBLIC KEY-----")
    assert first["key_id"][0].startswith("ed25519:")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(path.parent).st_mode) == 0o700
    private = path.read_text()
    assert private.startswith("-----BEGIN PRIVATE KEY-----")
    assert private.splitlines()[1] not in output

    rc, second, output = adhoc("lifeline.dr.backup_key", {"path": str(path), "type": "ed25519"})
    assert rc == 0, output
    assert second["changed"] is False
    assert second["public_key"] == first["public_key"] and second["key_id"] == first["key_id"]
    assert path.read_text() == private


def test_backup_key_check_mode_creates_no_key_file(tmp_path):
    path = tmp_path / "signing.pem"

    rc, result, output = adhoc("lifeline.dr.backup_key", {"path": str(path), "type": "ed25519"}, check=True)

    assert rc == 0, output
    assert result["changed"] is True and result["public_key"] is None
    assert not path.exists()
