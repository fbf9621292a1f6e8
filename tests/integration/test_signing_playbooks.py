# -*- coding: utf-8 -*-
# Copyright: Lifeline contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Signed manifests as the operator meets them in the playbooks: backup.yml without a signing
key says how to make one; restore-site.yml refuses a backup whose signer it does not trust, and
reads 0.1.0 (unsigned) backups only with lifeline_allow_unsigned, before the target changes."""
from __future__ import annotations

import json
import os
import uuid

import pytest

from lifeline_it import ansible_playbook, local_services, manifests_under, pg_dumpall_normalized

from services import Postgres
from ansible_collections.lifeline.dr.plugins.module_utils.signing import generate_signing_key


def _target(info: dict) -> Postgres:
    pg = Postgres(info["target_dir"], port=info["target_port"])
    pg.password = info["postgres_password"]
    return pg


@pytest.fixture(scope="module")
def site(workdir):
    state = os.path.join(workdir, "signing-" + uuid.uuid4().hex[:8])
    with local_services(state) as info:
        env = {"LIFELINE_LOCAL_STATE": state}
        backup = ansible_playbook("backup.yml", env_extra=env)
        assert backup.returncode == 0, backup.stdout
        yield {"env": env, "info": info, "state": state}


def _extra(**variables) -> list:
    return ["-e", json.dumps(variables)]


def test_backup_without_a_signing_key_fails_saying_how_to_make_one(site):
    run = ansible_playbook("backup.yml", *_extra(lifeline_signing_key=""), env_extra=site["env"])
    assert run.returncode != 0
    assert "openssl genpkey -algorithm ed25519" in run.stdout
    assert "lifeline_trusted_signers" in run.stdout


def test_restore_site_refuses_a_backup_whose_signer_is_not_trusted_and_changes_nothing(site):
    target = _target(site["info"])
    before = pg_dumpall_normalized(target)
    stranger = generate_signing_key()[1]  # a key the source never had
    run = ansible_playbook("restore-site.yml", *_extra(lifeline_trusted_signers={"source-db": [stranger]}),
                           env_extra=site["env"])
    assert run.returncode != 0
    assert "does not verify with any key trusted for host 'source-db'" in run.stdout
    assert pg_dumpall_normalized(target) == before


def test_restore_site_reads_an_unsigned_backup_only_when_allowed(site):
    # Strip the signature from every manifest, as 0.1.0 wrote them.
    repo = os.path.join(site["state"], "repo")
    for rel in manifests_under(repo):
        path = os.path.join(repo, rel)
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
        data.pop("signature")
        with open(path, "w", encoding="utf-8") as fh:
            json.dump(data, fh)
    only_local = _extra(lifeline_repositories=[{"name": "local", "path": repo}])
    refused = ansible_playbook("restore-site.yml", *only_local, env_extra=site["env"])
    assert refused.returncode != 0
    assert "is not signed" in refused.stdout and "lifeline_allow_unsigned" in refused.stdout
    allowed = ansible_playbook("restore-site.yml", *only_local, "-e", "lifeline_allow_unsigned=true",
                               env_extra=site["env"])
    assert allowed.returncode == 0, allowed.stdout
    assert "unsigned" in allowed.stdout  # the warning
