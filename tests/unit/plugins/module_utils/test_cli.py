# -*- coding: utf-8 -*-
# Copyright: Lifeline contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The host CLI: distinct exit codes per cause, no traceback, components from the registry."""
from __future__ import annotations

import json

import pytest
from keys import PRIVATE_PEM, trusted_signers

from ansible_collections.lifeline.dr.plugins.module_utils import cli, components
from ansible_collections.lifeline.dr.plugins.module_utils.errors import (
    ConfigError,
    IntegrityError,
    LifelineError,
    NotFoundError,
    UntrustedError,
)


def write_config(tmp_path, **params) -> str:
    path = tmp_path / "lifeline.json"
    path.write_text(json.dumps(params))
    return str(path)


def test_exit_codes_are_distinct_per_error_kind():
    kinds = [cls for cls in vars(__import__(LifelineError.__module__, fromlist=["x"])).values()
             if isinstance(cls, type) and issubclass(cls, LifelineError)]
    codes = [k.exit_code for k in kinds]
    assert len(codes) == len(set(codes)) >= 11
    assert not set(codes) & {cli.EXIT_OK, cli.EXIT_PARTIAL, cli.EXIT_USAGE}


def test_a_usage_error_exits_2(tmp_path):
    with pytest.raises(SystemExit) as exc:
        cli.main(["backup", "no-such-component"], default_config=write_config(tmp_path))
    assert exc.value.code == cli.EXIT_USAGE


def test_a_missing_config_file_is_a_config_error_not_a_traceback(tmp_path, capsys):
    code = cli.main(["list"], default_config=str(tmp_path / "nope.json"))
    assert code == ConfigError.exit_code
    assert "config file" in capsys.readouterr().err


def test_an_unreadable_identity_file_is_named_without_traceback(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("LIFELINE_IDENTITY_FILE", str(tmp_path / "missing-identity.txt"))
    code = cli.main(["list"], default_config=write_config(tmp_path, repositories=[{"path": str(tmp_path)}]))
    err = capsys.readouterr().err
    assert code == ConfigError.exit_code
    assert "identity file" in err and "Traceback" not in err


def test_backup_without_a_signing_key_says_how_to_make_one(tmp_path, capsys):
    config = write_config(tmp_path, repositories=[{"path": str(tmp_path / "repo")}], recipients=[],
                          state_dir=str(tmp_path / "state"))
    code = cli.main(["backup", "postgres"], default_config=config)
    assert code == ConfigError.exit_code
    assert "openssl genpkey -algorithm ed25519" in capsys.readouterr().err


def test_list_of_an_empty_repository_exits_0_and_verify_of_nothing_is_not_found(tmp_path, capsys):
    config = write_config(tmp_path, repositories=[{"path": str(tmp_path / "repo")}], host="db1",
                          trusted_signers=trusted_signers("db1"))
    assert cli.main(["list"], default_config=config) == cli.EXIT_OK
    assert json.loads(capsys.readouterr().out)["backups"] == []
    assert cli.main(["verify"], default_config=config) == NotFoundError.exit_code


def test_an_internal_error_exits_70_with_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(cli, "run", lambda args, params: 1 / 0)
    assert cli.main(["list"], default_config=write_config(tmp_path)) == cli.EXIT_INTERNAL
    err = capsys.readouterr().err
    assert err.startswith("lifeline: internal error: ZeroDivisionError") and "Traceback" not in err


def test_the_signing_key_can_come_from_a_file_named_in_the_environment(tmp_path, monkeypatch):
    key = tmp_path / "signing.pem"
    key.write_text(PRIVATE_PEM)
    monkeypatch.setenv("LIFELINE_SIGNING_KEY_FILE", str(key))
    assert cli.load_config(write_config(tmp_path))["signing_key"] == PRIVATE_PEM


def test_the_registry_names_known_components_and_refuses_others():
    assert "postgres" in components.names()
    assert components.get("postgres").name == "postgres"
    with pytest.raises(ConfigError, match="unknown component 'mongo'; Lifeline knows: files, postgres, redis, secrets$"):
        components.get("mongo")


def test_untrusted_is_its_own_exit_code_under_integrity():
    assert issubclass(UntrustedError, IntegrityError)
    assert UntrustedError.exit_code != IntegrityError.exit_code


def test_a_components_section_overrides_the_top_level_for_it_alone(tmp_path, monkeypatch):
    secret = tmp_path / "redis_password"
    secret.write_text("redis-pw\n")
    params = {"site": "s", "login_host": "10.0.0.5", "port": 5432, "login_password": "pg-pw",
              "redis": {"port": 6380, "login_password_file": str(secret)}, "files": {"paths": ["/srv"]}}
    monkeypatch.delenv("LIFELINE_REDIS_PASSWORD", raising=False)
    redis = cli.component_params(params, "redis")
    assert redis["port"] == 6380 and redis["login_password"] == "redis-pw" and redis["site"] == "s"
    assert "login_host" not in redis and "login_password_file" not in redis   # never PostgreSQL's
    assert "login_password" not in cli.component_params(params, "files")
    assert cli.component_params(params, "postgres")["login_password"] == "pg-pw"
    monkeypatch.setenv("LIFELINE_REDIS_PASSWORD", "from-env")
    assert cli.component_params(params, "redis")["login_password"] == "from-env"


def test_a_bad_section_or_missing_password_file_is_a_config_error_naming_it(tmp_path, monkeypatch):
    monkeypatch.delenv("LIFELINE_REDIS_PASSWORD", raising=False)
    with pytest.raises(ConfigError, match="'redis' in the config file must be a JSON object"):
        cli.component_params({"redis": ["x"]}, "redis")
    missing = str(tmp_path / "nope")
    with pytest.raises(ConfigError, match="redis password file %s" % missing):
        cli.component_params({"redis": {"login_password_file": missing}}, "redis")


def test_the_login_password_can_come_from_a_file_named_in_the_environment(tmp_path, monkeypatch):
    secret = tmp_path / "password"
    secret.write_text("pass: with spaces \n")
    monkeypatch.setenv("LIFELINE_PASSWORD_FILE", str(secret))
    # one trailing line break belongs to the file; the spaces belong to the password
    assert cli.load_config(write_config(tmp_path))["login_password"] == "pass: with spaces "
    secret.write_text("")  # a component scheduled without a password
    assert "login_password" not in cli.load_config(write_config(tmp_path))
    monkeypatch.setenv("LIFELINE_PASSWORD_FILE", str(tmp_path / "missing"))
    with pytest.raises(ConfigError, match="password file .*missing"):
        cli.load_config(write_config(tmp_path))


def test_a_malformed_min_interval_exits_3_before_anything_runs(tmp_path, capsys):
    config = write_config(tmp_path, repositories=[{"path": str(tmp_path / "repo")}], state_dir=str(tmp_path / "s"))
    assert cli.main(["backup", "files", "--min-interval", "soon"], default_config=config) == ConfigError.exit_code
    assert "min_interval 'soon' is not a duration" in capsys.readouterr().err
    assert not (tmp_path / "repo").exists()
