# -*- coding: utf-8 -*-
# Copyright: Lifeline contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""inventories/example, the inventory users copy: Ansible reads it, each group gets only its own
variables (the decryption identity only where restores run, a signing key only where backups
run), every variable it sets or mentions is one the playbooks or roles read (no typo), and every
variable has a comment."""
from __future__ import annotations

import glob
import json
import os
import re
import subprocess

import pytest

from lifeline_it import ROOT, VENV_BIN, ansible_env

EXAMPLE = os.path.join(ROOT, "inventories", "example")
VAR_LINE = re.compile(r"^(?:# ?)?(lifeline_\w+):")


@pytest.fixture(scope="module")
def hostvars() -> dict:
    run = subprocess.run([os.path.join(VENV_BIN, "ansible-inventory"), "-i", EXAMPLE, "--list"],
                         cwd=ROOT, env=ansible_env(), capture_output=True, text=True, timeout=120, check=True)
    return json.loads(run.stdout)["_meta"]["hostvars"]


def _group_var_files() -> list:
    return sorted(glob.glob(os.path.join(EXAMPLE, "group_vars", "*", "*.yml")))


def _collection_text() -> str:
    paths = (glob.glob(os.path.join(ROOT, "playbooks", "*.yml")) + glob.glob(os.path.join(ROOT, "playbooks", "tasks", "*.yml"))
             + glob.glob(os.path.join(ROOT, "roles", "*", "*", "*.yml")))
    return "\n".join(open(p, encoding="utf-8").read() for p in paths)


def test_the_identity_is_only_given_to_restore_targets_and_signing_keys_only_to_backed_up_hosts(hostvars):
    for host in ("db1.example.com", "db2.example.com"):
        assert "lifeline_identity" not in hostvars[host]
        assert "lifeline_signing_key" in hostvars[host]
    assert "lifeline_identity" in hostvars["db1-dr.example.com"]
    assert "lifeline_signing_key" not in hostvars["db1-dr.example.com"]
    assert hostvars["db1-dr.example.com"]["lifeline_restore_source"] == "db1.example.com"
    assert set(hostvars["db1-dr.example.com"]["lifeline_trusted_signers"]) == {"db1.example.com", "db2.example.com"}


def test_every_variable_the_example_sets_or_mentions_is_read_by_a_playbook_or_role():
    used = _collection_text()
    names = set()
    for path in _group_var_files() + [os.path.join(EXAMPLE, "hosts.yml")]:
        with open(path, encoding="utf-8") as fh:
            for line in fh:
                found = VAR_LINE.match(line.strip())
                if found:
                    names.add(found.group(1))
    assert len(names) > 20
    assert sorted(n for n in names if not re.search(r"\b%s\b" % n, used)) == []


def test_every_variable_in_the_example_group_vars_has_a_comment():
    uncommented = []
    for path in _group_var_files():
        with open(path, encoding="utf-8") as fh:
            lines = fh.read().splitlines()
        for index, line in enumerate(lines):
            if re.match(r"^\w+:", line) and "#" not in line:
                above = [previous for previous in lines[:index] if previous.strip()]
                if not above or not above[-1].lstrip().startswith("#"):
                    uncommented.append("%s: %s" % (os.path.relpath(path, EXAMPLE), line.split(":")[0]))
    assert uncommented == []
