# -*- coding: utf-8 -*-
# Copyright: Lifeline contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Secrets stay secret through the real playbooks: the PostgreSQL password, the age identity and
the S3 secret key never appear in `ansible-playbook -vvv` output, never in any process's argv while
the playbooks run, only in 0600 files, and never in plaintext in a backup artifact.

argv is sampled for the playbook's own process tree only: other sessions on this machine may use
the same well-known test password for their own servers.
"""
from __future__ import annotations

import os
import stat
import uuid

import pytest

from lifeline_it import DescendantArgvWatcher, ansible_playbook, local_services, s3_keys

S3_SECRET = "local-demo-secret"


class _Endpoint:
    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint


def _files(root: str):
    for dirpath, _dirs, names in os.walk(root):
        for name in names:
            path = os.path.join(dirpath, name)
            if os.path.isfile(path) and not os.path.islink(path):
                yield path


@pytest.fixture(scope="module")
def verbose_run(workdir):
    state = os.path.join(workdir, "secrets-" + uuid.uuid4().hex[:8])
    with local_services(state) as info:
        with open(os.path.join(state, "identity.txt"), encoding="utf-8") as fh:
            identity = fh.read().strip()
        secrets = {"postgres password": info["postgres_password"], "age identity": identity,
                   "age identity prefix": "AGE-SECRET-KEY-", "S3 secret key": S3_SECRET}
        env = {"LIFELINE_LOCAL_STATE": state}
        runs, watchers = {}, {}
        for playbook in ("backup.yml", "restore-site.yml"):
            watcher = DescendantArgvWatcher(secrets.values(), interval=0.05)
            try:
                runs[playbook] = ansible_playbook(playbook, "-vvv", env_extra=env, on_start=watcher.start)
            finally:
                watcher.stop()
            watchers[playbook] = watcher
        # What is on disk (and in S3) while the services still exist: services.json goes on stop.
        files = {}
        for path in _files(state):
            with open(path, "rb") as fh:
                data = fh.read()
            found = [label for label, value in secrets.items() if value.encode() in data]
            files[os.path.relpath(path, state)] = (stat.S_IMODE(os.lstat(path).st_mode), found, data)
        import boto3  # pylint: disable=import-outside-toplevel
        client = boto3.client("s3", endpoint_url=info["s3_endpoint"], region_name="us-east-1",
                              aws_access_key_id="local-demo-access", aws_secret_access_key=S3_SECRET)
        objects = {key: client.get_object(Bucket=info["bucket"], Key=key)["Body"].read()
                   for key in s3_keys(_Endpoint(info["s3_endpoint"]), info["bucket"])}
        yield {"secrets": secrets, "runs": runs, "watchers": watchers, "files": files, "objects": objects}


def test_playbooks_ran(verbose_run):
    for playbook, run in verbose_run["runs"].items():
        assert run.returncode == 0, "%s failed:\n%s" % (playbook, run.stdout[-5000:])


@pytest.mark.parametrize("playbook", ["backup.yml", "restore-site.yml"])
def test_verbose_playbook_output_contains_no_secret(verbose_run, playbook):
    output = verbose_run["runs"][playbook].stdout
    # really the -vvv output, with the module's arguments printed (and the secret ones masked)
    assert "ESTABLISH LOCAL CONNECTION" in output and "module_args" in output
    assert "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER" in output
    leaked = [label for label, value in verbose_run["secrets"].items() if value in output]
    assert leaked == []


@pytest.mark.parametrize("playbook", ["backup.yml", "restore-site.yml"])
def test_no_process_argv_carries_a_secret_while_the_playbook_runs(verbose_run, playbook):
    watcher = verbose_run["watchers"][playbook]
    module = {"backup.yml": "AnsiballZ_postgres_backup", "restore-site.yml": "AnsiballZ_postgres_restore"}[playbook]
    assert watcher.samples >= 10
    assert any(module.encode() in argv for argv in watcher.seen), "the sampler never saw the module run"
    assert watcher.hits == []


def test_every_file_holding_a_secret_is_mode_0600(verbose_run):
    files = verbose_run["files"]
    holding = {path: (mode, found) for path, (mode, found, _data) in files.items() if found}
    assert "identity.txt" in holding and "services.json" in holding  # the walk does find secrets
    too_open = {path: (oct(mode), found) for path, (mode, found) in holding.items() if mode != 0o600}
    assert too_open == {}


def test_backup_artifacts_never_contain_the_plaintext_password(verbose_run):
    password = verbose_run["secrets"]["postgres password"].encode()
    local = {path: data for path, (_mode, _found, data) in verbose_run["files"].items()
             if path.startswith("repo" + os.sep)}
    assert len([p for p in local if p.endswith(".age")]) >= 4
    assert len([k for k in verbose_run["objects"] if k.endswith(".age")]) >= 4
    assert [p for p, data in local.items() if password in data] == []
    assert [k for k, data in verbose_run["objects"].items() if password in data] == []
