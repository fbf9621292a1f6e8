# -*- coding: utf-8 -*-
# Copyright: Lifeline contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""meta/runtime.yml's action group: one play sets repositories, site, host, state_dir,
trusted_signers and the signing key once under `module_defaults: group/lifeline.dr.lifeline`,
and every module runs with them (backup_key included, in both of its modes). The results of
that play are then checked against each module's RETURN documentation: every key a module
returns, and every key inside a documented list or dict, is documented."""
from __future__ import annotations

import importlib
import json
import os
import subprocess

import pytest
import yaml

from lifeline_it import HOST, PYTHON, ROOT, SITE, VENV_BIN, ansible_env

PLAYBOOK = """
- name: Every Lifeline module under one module_defaults group
  hosts: localhost
  gather_facts: false
  module_defaults:
    group/lifeline.dr.lifeline:
      repositories: "{{ repositories }}"
      site: "{{ site }}"
      host: "{{ source_host }}"
      state_dir: "{{ state_dir }}"
      trusted_signers: "{{ trusted_signers }}"
      signing_key: "{{ signing_key }}"
  tasks:
    - name: Generate an identity file (path mode, the group's repositories ignored)
      lifeline.dr.backup_key:
        path: "{{ key_path }}"
      register: key_file

    - name: Check a backup
      lifeline.dr.postgres_backup: "{{ source | combine({'recipients': recipients}) }}"
      check_mode: true
      register: backup_check

    - name: Back up
      lifeline.dr.postgres_backup: "{{ source | combine({'recipients': recipients}) }}"
      register: backup

    - name: List and select
      lifeline.dr.backup_info:
        point: latest
      register: info

    - name: Verify
      lifeline.dr.backup_verify: "{{ source | combine({'identity': identity}) }}"
      register: verify

    - name: Describe the backup's key
      lifeline.dr.backup_key:
        identity: "{{ identity }}"
      register: key_describe

    - name: Restore onto the target
      lifeline.dr.postgres_restore: "{{ target | combine({'identity': identity}) }}"
      register: restore

    - name: Plan a second restore
      lifeline.dr.postgres_restore: "{{ target | combine({'identity': identity, 'replace': true}) }}"
      check_mode: true
      register: restore_check

    - name: Keep every result for the test
      ansible.builtin.copy:
        content: "{{ {'key_file': key_file, 'backup_check': backup_check, 'backup': backup, 'info': info,
                      'verify': verify, 'key_describe': key_describe, 'restore': restore,
                      'restore_check': restore_check} | to_json }}"
        dest: "{{ results_path }}"
        mode: "0600"
"""

MODULE_OF = {"key_file": "backup_key", "backup_check": "postgres_backup", "backup": "postgres_backup",
             "info": "backup_info", "verify": "backup_verify", "key_describe": "backup_key",
             "restore": "postgres_restore", "restore_check": "postgres_restore"}

# Keys Ansible itself adds to every result.
STANDARD_KEYS = {"changed", "failed", "msg", "invocation", "warnings", "deprecations", "skipped"}


def _returns(module: str) -> dict:
    mod = importlib.import_module("ansible_collections.lifeline.dr.plugins.modules." + module)
    return yaml.safe_load(mod.RETURN)


def undocumented(result: dict, doc: dict, where: str = "") -> list:
    """Keys of ``result`` missing from ``doc``, descending into documented ``contains``."""
    missing = []
    for key, value in result.items():
        if not where and (key in STANDARD_KEYS or key.startswith("_ansible")):
            continue
        spec = doc.get(key)
        if spec is None:
            missing.append(where + key)
            continue
        contains = spec.get("contains")
        if not contains:
            continue
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, dict):
                missing.extend(undocumented(item, contains, where + key + "."))
    return missing


@pytest.fixture
def results(params, target_pg, tmp_path):
    out = tmp_path / "results.json"
    pg = {"login_host": params["login_host"], "login_password": params["login_password"]}
    extra = {
        "repositories": params["repositories"], "site": SITE, "source_host": HOST,
        "state_dir": params["state_dir"], "trusted_signers": params["trusted_signers"],
        "signing_key": params["signing_key"], "recipients": params["recipients"], "identity": params["identity"],
        "source": dict(pg, port=params["port"]), "target": dict(pg, port=target_pg.port, login_password=target_pg.password),
        "key_path": str(tmp_path / "keys" / "identity.txt"), "results_path": str(out),
    }
    vars_file = tmp_path / "vars.json"
    fd = os.open(vars_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(extra, fh)
    playbook = tmp_path / "module_defaults.yml"
    playbook.write_text(PLAYBOOK, encoding="utf-8")
    run = subprocess.run([os.path.join(VENV_BIN, "ansible-playbook"), "-i", "localhost,", "-c", "local",
                          "-e", "ansible_python_interpreter=" + PYTHON, "-e", "@%s" % vars_file, str(playbook)],
                         cwd=ROOT, env=ansible_env(), capture_output=True, text=True, timeout=600, check=False)
    assert run.returncode == 0, run.stdout + run.stderr
    with open(out, encoding="utf-8") as fh:
        return json.load(fh)


def test_every_module_runs_with_the_groups_module_defaults(results, params, target_pg, tmp_path):
    assert results["key_file"]["recipient"].startswith("age1")
    assert (tmp_path / "keys" / "identity.txt").exists()
    assert results["backup_check"]["status"] == "planned"
    assert results["backup"]["status"] == "ok" and results["backup"]["stored_in"] == ["local", "s3"]
    backup_id = results["backup"]["backup_id"]
    assert results["info"]["selected"]["backup_id"] == backup_id
    assert results["info"]["selected"]["signed_by"].startswith("ed25519:")
    assert results["verify"]["ok"] is True and results["verify"]["backup_id"] == backup_id
    assert results["key_describe"]["can_decrypt"] is True and results["key_describe"]["backup_id"] == backup_id
    assert results["restore"]["backup_id"] == backup_id
    assert sorted(d["name"] for d in results["restore"]["databases"]) == ["analytics-ü", "postgres", "shop"]
    assert target_pg.psql("SELECT count(*) FROM sales.\"order\"", db="shop") == "20000"
    assert results["restore_check"]["plan"]["databases"]["shop"] == "replace"
    # staging_dir defaults to <state_dir>/staging, the group's state_dir
    assert os.path.isdir(os.path.join(params["state_dir"], "staging"))


def test_every_returned_key_is_documented_in_the_modules_return(results):
    missing = {name: undocumented(result, _returns(MODULE_OF[name])) for name, result in results.items()}

    assert {name: keys for name, keys in missing.items() if keys} == {}
