# -*- coding: utf-8 -*-
# Copyright: Lifeline contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The secrets component end to end: real files with real owners, a local repository and S3 on
moto_server, the modules through the real Ansible CLI. The secret bytes are a random token, so
"nowhere in the output" is a meaningful assertion."""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import uuid

import pytest

import keys
from forge import put_artifact, write_manifest
from lifeline_it import PYTHON, ROOT, VENV_BIN, adhoc, ansible_env, as_nobody, files_under, flip_byte
from test_playbook_module_defaults import _returns, undocumented

from ansible_collections.lifeline.dr.plugins.module_utils import components, config
from ansible_collections.lifeline.dr.plugins.module_utils.backup import run_backup
from ansible_collections.lifeline.dr.plugins.module_utils.errors import ConfigError, IntegrityError, RestoreError
from ansible_collections.lifeline.dr.plugins.module_utils.manifest import MANIFEST_NAME
from ansible_collections.lifeline.dr.plugins.module_utils.verify import verify_backup

SITE, HOST = "it", "src"
UID, GID = 1, 1  # daemon:daemon on Debian: a non-root owner that exists on every host


@pytest.fixture
def token() -> bytes:
    return ("s3cr3t-" + uuid.uuid4().hex).encode()


@pytest.fixture
def sources(tmp_path, token) -> dict:
    """Two secret files: an env file owned by daemon (0600) and a key owned by root (0400)."""
    src = tmp_path / "src" / "etc" / "app"
    src.mkdir(parents=True)
    env, key = src / "env", src / "tls.key"
    env.write_bytes(b"DB_PASSWORD=" + token + b"\n")
    key.write_bytes(b"-----BEGIN KEY-----\n" + token[::-1] + b"\n")
    os.chown(env, UID, GID)
    os.chmod(env, 0o600)
    os.chmod(key, 0o400)
    return {"env": str(env), "key": str(key)}


@pytest.fixture
def sparams(tmp_path, moto, bucket, age_keys, sources) -> dict:
    identity, recipient = age_keys
    return {"repositories": [{"name": "local", "path": str(tmp_path / "repo")},
                             {"name": "s3", "s3": moto.s3_settings(bucket)}],
            "recipients": [recipient], "identity": identity, "state_dir": str(tmp_path / "state"),
            "site": SITE, "host": HOST, "paths": [sources["env"], sources["key"]],
            "root": str(tmp_path / "root"), **keys.signing_params()}


def backup(p: dict, **over):
    p = dict(p, **over)
    component = components.get("secrets").backup(p)
    outcome = run_backup(component, config.repositories(p), config.codec(p), site=SITE, host=HOST,
                         state_dir=p["state_dir"], signer=config.signer(p))
    return outcome, component


def restore_job(p: dict, **over):
    p = dict(p, **over)
    entry = config.catalog(p).select(site=SITE, host=HOST, component="secrets", point=p.get("point", "latest"))
    return components.get("secrets").restore(entry, config.codec(p), p)


def under(root: str, path: str) -> str:
    return os.path.join(root, path.lstrip("/"))


def manifest_file(p: dict, backup_id: str) -> str:
    return os.path.join(p["repositories"][0]["path"], SITE, HOST, "secrets", backup_id, MANIFEST_NAME)


def other_file_at(path: str) -> str:
    os.makedirs(os.path.dirname(path))
    with open(path, "wb") as fh:
        fh.write(b"other content")
    return path


def content_digests(paths: list) -> list:
    """sha256 of each file's content, in hex of both cases: must appear in no output or manifest."""
    found = []
    for path in paths:
        with open(path, "rb") as fh:
            digest = hashlib.sha256(fh.read()).hexdigest()
        found += [digest, digest.upper()]
    return found


def local_only(p: dict) -> dict:
    return dict(p, repositories=p["repositories"][:1])


def test_secrets_round_trip_from_s3_keeps_content_owner_group_and_mode(sparams, sources):
    outcome, component = backup(sparams)
    assert outcome.status.value == "ok" and outcome.stored_in == ["local", "s3"]
    assert component.warnings == []

    report = restore_job(dict(sparams, repositories=sparams["repositories"][1:])).run()

    assert report["served_by"] == ["s3"] and report["changed"] is True
    for path, mode, owner in ((sources["env"], 0o600, (UID, GID)), (sources["key"], 0o400, (0, 0))):
        restored = under(sparams["root"], path)
        info = os.lstat(restored)
        with open(path, "rb") as a, open(restored, "rb") as b:
            assert a.read() == b.read()
        assert (info.st_mode & 0o7777, info.st_uid, info.st_gid) == (mode, *owner)
    env = next(f for f in report["files"] if f["source_path"] == sources["env"])
    assert env["action"] == "create" and env["verified"] is True and env["owner"] == "daemon"
    assert os.stat(os.path.dirname(under(sparams["root"], sources["env"]))).st_mode & 0o777 == 0o700
    assert sorted(os.listdir(os.path.dirname(under(sparams["root"], sources["env"])))) == ["env", "tls.key"]


def test_secrets_backup_warns_about_mode_0644_and_still_backs_it_up(sparams, sources):
    os.chmod(sources["key"], 0o644)

    outcome, component = backup(sparams)

    assert outcome.status.value == "ok"
    assert len(component.warnings) == 1 and sources["key"] in component.warnings[0] and "0644" in component.warnings[0]
    assert [a.meta.get("mode") for a in outcome.manifest.artifacts] == ["0600", "0644", None]


def test_secrets_backup_refuses_encryption_none_before_reading_anything(sparams):
    with pytest.raises(ConfigError, match="always encrypted"):
        backup(sparams, encryption="none")
    assert files_under(sparams["repositories"][0]["path"]) == []


def test_secrets_backup_refuses_a_symlink_at_the_source_path(sparams, sources, tmp_path):
    link = str(tmp_path / "link.env")
    os.symlink(sources["env"], link)

    with pytest.raises(ConfigError, match="symlink"):
        backup(sparams, paths=[sources["key"], link])
    assert [f for f in files_under(sparams["repositories"][0]["path"]) if f.endswith(MANIFEST_NAME)] == []


def test_secrets_restore_refuses_a_different_existing_file_without_replace_and_changes_nothing(sparams, sources):
    backup(sparams)
    existing = other_file_at(under(sparams["root"], sources["key"]))

    with pytest.raises(RestoreError, match="replace"):
        restore_job(sparams).run()

    with open(existing, "rb") as fh:
        assert fh.read() == b"other content"
    assert os.listdir(os.path.dirname(existing)) == ["tls.key"]  # env not written, no temporaries


def test_secrets_restore_with_replace_replaces_the_different_file_atomically(sparams, sources):
    backup(sparams)
    existing = other_file_at(under(sparams["root"], sources["key"]))
    inode = os.stat(existing).st_ino

    report = restore_job(sparams, replace=True).run()

    actions = {f["source_path"]: f["action"] for f in report["files"]}
    assert actions == {sources["env"]: "create", sources["key"]: "replace"}
    with open(existing, "rb") as fh, open(sources["key"], "rb") as src:
        assert fh.read() == src.read()
    assert os.stat(existing).st_ino != inode  # renamed over, not rewritten in place


def test_secrets_restore_replaces_a_symlink_in_place_of_a_file_without_writing_through_it(sparams, sources, tmp_path):
    backup(sparams)
    victim = tmp_path / "victim"
    victim.write_bytes(b"untouched")
    link = under(sparams["root"], sources["env"])
    os.makedirs(os.path.dirname(link))
    os.symlink(str(victim), link)

    with pytest.raises(RestoreError, match="not a regular file"):
        restore_job(sparams).run()
    report = restore_job(sparams, replace=True).run()

    assert victim.read_bytes() == b"untouched"
    assert not os.path.islink(link) and os.stat(link).st_uid == UID
    assert {f["source_path"]: f["action"] for f in report["files"]}[sources["env"]] == "replace"


def test_secrets_second_restore_changes_nothing_and_a_changed_mode_is_only_corrected(sparams, sources):
    backup(sparams)
    restore_job(sparams).run()
    env = under(sparams["root"], sources["env"])
    inode = os.stat(env).st_ino

    again = restore_job(sparams).run()
    assert again["changed"] is False
    assert {f["action"] for f in again["files"]} == {"unchanged"}

    os.chmod(env, 0o644)
    fixed = restore_job(sparams).run()
    assert {f["source_path"]: f["action"] for f in fixed["files"]}[sources["env"]] == "attributes"
    assert os.stat(env).st_mode & 0o777 == 0o600 and os.stat(env).st_ino == inode


def test_secrets_restore_refuses_a_symlinked_directory_under_the_root(sparams, sources, tmp_path):
    backup(sparams)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    first = sources["env"].lstrip("/").split("/")[0]
    os.makedirs(sparams["root"])
    os.symlink(str(elsewhere), os.path.join(sparams["root"], first))

    with pytest.raises(RestoreError, match="symlink"):
        restore_job(sparams).run()
    assert os.listdir(str(elsewhere)) == []


def undocumented_keys(result: dict, module: str) -> list:
    """Returned keys missing from the module's RETURN ("action" is ad hoc's own key)."""
    return undocumented({k: v for k, v in result.items() if k != "action"}, _returns(module))


def _module_args(p: dict, **extra) -> dict:
    args = {k: p[k] for k in ("repositories", "site", "host", "state_dir", "signing_key", "trusted_signers",
                              "recipients", "identity")}
    return dict(args, **extra)


def test_secrets_modules_check_mode_writes_nothing_no_output_or_manifest_holds_content_and_returns_are_documented(
        sparams, sources, token):
    rc, result, output = adhoc("lifeline.dr.secrets_backup", _module_args(sparams, paths=sparams["paths"]))
    assert rc == 0 and result["status"] == "ok", output
    assert [a["path"] for a in result["artifacts"]] == [*sparams["paths"], None]
    assert result["paths"] == sparams["paths"]
    backup_id = result["backup_id"]

    rc, plan, plan_output = adhoc("lifeline.dr.secrets_restore", _module_args(sparams, root=sparams["root"]),
                                  check=True)

    assert rc == 0, plan_output
    assert not os.path.exists(sparams["root"])
    assert plan["changed"] is True
    assert {(f["source_path"], f["mode"], f["owner"], f["action"]) for f in plan["plan"]["files"]} == {
        (sources["env"], "0600", "daemon", "create"), (sources["key"], "0400", "root", "create")}
    with open(manifest_file(sparams, backup_id), "rb") as fh:
        manifest = fh.read()
    rc, restored, restore_output = adhoc("lifeline.dr.secrets_restore", _module_args(sparams, root=sparams["root"]))
    assert rc == 0 and restored["changed"] is True and restored["verified"] is True, restore_output
    assert [c.split(" (")[0] for c in restored["checks"]] == [under(sparams["root"], p) for p in sparams["paths"]]
    assert [undocumented_keys(r, m) for r, m in ((result, "secrets_backup"), (plan, "secrets_restore"),
                                                 (restored, "secrets_restore"))] == [[], [], []]
    digests = content_digests(sparams["paths"])
    for text in (output, plan_output, restore_output, json.dumps(plan), manifest.decode()):
        assert token.decode() not in text and token[::-1].decode() not in text
        assert not any(d in text for d in digests)


def test_secrets_refused_backup_with_encryption_none_through_the_module(sparams):
    rc, result, _output = adhoc("lifeline.dr.secrets_backup", _module_args(sparams, paths=sparams["paths"],
                                                                           encryption="none"))
    assert rc != 0 and result["error"] == "ConfigError" and "always encrypted" in result["msg"]


def test_secrets_contents_are_absent_from_vvv_output_of_the_modules(sparams, token):
    outputs = []
    for module, args in (("lifeline.dr.secrets_backup", _module_args(sparams, paths=sparams["paths"])),
                         ("lifeline.dr.secrets_restore", _module_args(sparams, root=sparams["root"]))):
        argv = [os.path.join(VENV_BIN, "ansible"), "localhost", "-c", "local", "-vvv",
                "-e", "ansible_python_interpreter=" + PYTHON, "-m", module, "-a", json.dumps(args)]
        proc = subprocess.run(argv, cwd=ROOT, env=ansible_env(), capture_output=True, text=True, timeout=300,
                              check=False)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        outputs.append(proc.stdout + proc.stderr)

    assert os.path.exists(under(sparams["root"], sparams["paths"][0]))
    digests = content_digests(sparams["paths"])
    for text in outputs:
        assert token.decode() not in text and token[::-1].decode() not in text
        assert sparams["identity"] not in text
        assert not any(d in text for d in digests)


# ---------------------------------------------------------------- hostile repositories


def _forged(p: dict, edit) -> dict:
    """The latest backup's manifest edited by ``edit(body)`` and signed with the host's (trusted)
    key, as a compromised host could; returns the parameters reading the local copy only."""
    outcome, _component = backup(p)
    lp = local_only(p)
    path = manifest_file(lp, outcome.manifest.backup_id)
    with open(path, encoding="utf-8") as fh:
        body = json.load(fh)
    body.pop("signature")
    edit(body)
    write_manifest(lp["repositories"][0]["path"], body, keys.SIGNER)
    return lp


@pytest.mark.parametrize("field,value,match", [
    ("path", "../../etc/evil", "not an absolute path"),
    ("path", "etc/evil", "not an absolute path"),
    ("path", "/etc/../root/evil", "normalised"),
    ("path", "/etc/evil\0.txt", "NUL"),
    ("mode", "4755", "setuid"),
    ("mode", "0o600", "permission bits"),
    ("uid", -1, "numeric ids"),
    ("owner", "root:x", "account names"),
])
def test_secrets_restore_refuses_a_hostile_manifest_before_writing_anything(sparams, field, value, match):
    def edit(body):
        body["artifacts"][1]["meta"][field] = value

    lp = _forged(sparams, edit)

    with pytest.raises(RestoreError, match=match):
        restore_job(lp).run()
    assert not os.path.exists(sparams["root"])


def test_secrets_restore_refuses_a_manifest_listing_a_file_below_another_file(sparams, sources):
    def edit(body):
        body["artifacts"][1]["meta"]["path"] = sources["env"] + "/inner"

    lp = _forged(sparams, edit)

    with pytest.raises(RestoreError, match="a file below it"):
        restore_job(lp).run()
    assert not os.path.exists(sparams["root"])


def test_secrets_restore_refuses_a_backup_claiming_no_encryption(sparams):
    def edit(body):
        body["encryption"] = "none"

    lp = _forged(sparams, edit)

    with pytest.raises(ConfigError, match="always encrypted"):
        restore_job(lp).run()
    assert not os.path.exists(sparams["root"])


def _wrong_digests(sparams: dict, recipient: str) -> dict:
    """A backup whose (encrypted, well-formed) digests document names other content."""
    def edit(body):
        files = {a["name"].split(".")[0]: {"sha256": "0" * 64, "size": a["plain_size"]}
                 for a in body["artifacts"] if a["kind"] == "secret"}
        doc = json.dumps({"format": "lifeline-secrets-digests", "version": 1, "files": files}).encode()
        name = next(a["name"] for a in body["artifacts"] if a["kind"] == "digests")
        put_artifact(sparams["repositories"][0]["path"], body, name, doc, [recipient], kind="digests", meta={})

    return _forged(sparams, edit)


def test_secrets_restore_refuses_content_that_does_not_match_the_carried_digest(sparams, age_keys):
    lp = _wrong_digests(sparams, age_keys[1])

    with pytest.raises(IntegrityError, match="does not match the digest"):
        restore_job(lp).run()
    assert not os.path.exists(sparams["root"])  # no temporaries left; the directories it created removed


@pytest.mark.parametrize("damage", ["flip", "truncate"])
def test_secrets_restore_refuses_a_corrupt_or_truncated_artifact(sparams, damage):
    outcome, _component = backup(sparams)
    lp = local_only(sparams)
    art = outcome.manifest.artifacts[1]
    stored = os.path.join(os.path.dirname(manifest_file(lp, outcome.manifest.backup_id)), art.name)
    if damage == "flip":
        flip_byte(stored)
    else:
        os.truncate(stored, art.size // 2)

    with pytest.raises(IntegrityError, match="no intact copy of %s" % art.name):
        restore_job(lp).run()
    assert files_under(sparams["root"]) == []


def test_secrets_verify_reads_every_copy_and_matches_the_carried_digests(sparams):
    outcome, _component = backup(sparams)
    entry = config.catalog(sparams).select(site=SITE, host=HOST, component="secrets", point="latest")
    checks = components.get("secrets").checks(sparams, entry.manifest)

    report = verify_backup(entry, config.codec(sparams), check_for=checks, record=False)

    assert report["ok"] is True and len(report["results"]) == 6
    assert report["results"][-1]["detail"] == "digests of 2 files; 2 match the content read"
    assert outcome.manifest.backup_id == report["backup_id"]


def _owner_edit(owner: str, uid: int):
    def edit(body):
        body["artifacts"][0]["meta"].update(owner=owner, uid=uid)
    return edit


def test_secrets_restore_uses_the_recorded_id_with_a_warning_when_the_owner_is_unknown_here(sparams, sources):
    lp = _forged(sparams, _owner_edit("lifeline-nobody", 54321))

    report = restore_job(lp).run()

    assert os.stat(under(sparams["root"], sources["env"])).st_uid == 54321
    assert any("'lifeline-nobody' does not exist" in w and "54321" in w for w in report["warnings"])


def test_secrets_restore_refuses_an_unknown_owner_whose_id_belongs_to_another_account(sparams):
    lp = _forged(sparams, _owner_edit("lifeline-nobody", 1))  # uid 1 is daemon here

    with pytest.raises(RestoreError, match="belongs to user 'daemon'"):
        restore_job(lp).run()
    assert not os.path.exists(sparams["root"])


def test_secrets_restore_removes_temporaries_a_killed_restore_left(sparams, sources):
    backup(sparams)
    target_dir = os.path.dirname(under(sparams["root"], sources["env"]))
    os.makedirs(target_dir)
    leftover = os.path.join(target_dir, ".lifeline-tmp-secret-0123456789abcdef")
    with open(leftover, "wb") as fh:
        fh.write(b"half a secret")

    report = restore_job(sparams).run()

    assert sorted(os.listdir(target_dir)) == ["env", "tls.key"]
    assert any(leftover in w for w in report["warnings"])


@pytest.mark.parametrize("kind", ["directory", "fifo"])
def test_secrets_backup_refuses_a_path_that_is_not_a_regular_file(sparams, tmp_path, kind):
    path = str(tmp_path / kind)
    if kind == "directory":
        os.mkdir(path)
    else:
        os.mkfifo(path)

    with pytest.raises(ConfigError, match="not a regular file"):
        backup(sparams, paths=[path])


def test_secrets_verify_fails_when_the_content_does_not_match_the_carried_digests(sparams, age_keys):
    lp = _wrong_digests(sparams, age_keys[1])
    entry = config.catalog(lp).select(site=SITE, host=HOST, component="secrets", point="latest")

    report = verify_backup(entry, config.codec(lp), check_for=components.get("secrets").checks(lp, entry.manifest),
                           record=False)

    assert report["ok"] is False
    assert "does not match the digest" in report["results"][-1]["error"]
    assert [r["ok"] for r in report["results"][:-1]] == [True, True]


def test_secrets_restore_root_not_writable_is_refused_and_nothing_written(sparams, tmp_path):
    """Tests run as root: the plan runs as 'nobody', for whom a 0755 root-owned root is not writable
    (the secret is nobody's, so only the root's permissions stand in the way)."""
    secret = tmp_path / "nobodys" / "app.env"
    secret.parent.mkdir()
    secret.write_bytes(b"TOKEN=x\n")
    os.chmod(secret, 0o600)
    os.chown(secret, 65534, 65534)
    backup(sparams, paths=[str(secret)])
    top = tempfile.mkdtemp(prefix="lifeline-locked-", dir="/tmp")   # pytest's tmp_path is 0700: nobody cannot enter
    try:
        os.chmod(top, 0o755)
        job = restore_job(sparams, root=top)
        message = as_nobody(job.plan)
        assert "restore root %s is not writable (%s cannot be written" % (top, top) in message
        assert os.listdir(top) == []
    finally:
        shutil.rmtree(top)


# ---------------------------------------------------------------- where a restore may write


def test_secrets_restore_refuses_a_signed_path_outside_the_sources_configured_paths(sparams, sources):
    """A stolen host signing key signs a backup 'of' /etc/cron.d/...: the restoring side allows
    only the source's lifeline_secrets_paths from its own inventory."""
    def edit(body):
        body["artifacts"][1]["meta"]["path"] = "/etc/cron.d/lifeline-planted"

    lp = _forged(sparams, edit)
    allowed = [sources["env"], sources["key"]]
    with pytest.raises(IntegrityError, match="holds /etc/cron.d/lifeline-planted, which is not under the source "
                                             "host's lifeline_secrets_paths"):
        restore_job(lp, allowed_paths=allowed)
    with pytest.raises(IntegrityError, match="lifeline_secrets_paths \\(empty\\)"):
        restore_job(lp, allowed_paths=[])
    assert not os.path.exists(sparams["root"])


def test_secrets_restore_within_the_configured_paths_restores(sparams, sources):
    backup(sparams)
    report = restore_job(sparams, allowed_paths=[sources["env"], os.path.dirname(sources["key"])]).run()
    assert {f["action"] for f in report["files"]} == {"create"} and len(report["files"]) == 2


@pytest.mark.parametrize("swap", ["other-inode", "second-name"])
def test_secrets_owner_and_mode_fix_refuses_a_file_swapped_after_the_plan(sparams, sources, tmp_path, swap):
    backup(sparams)
    restore_job(sparams).run()
    env = under(sparams["root"], sources["env"])
    os.chmod(env, 0o644)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.write_bytes(open(env, "rb").read())  # same content: only owner and mode would be "fixed"
    os.chmod(elsewhere, 0o644)
    job = restore_job(sparams)
    plan = job.plan

    def plan_then_swap():
        out = plan()
        if swap == "other-inode":  # another file of the same content put in its place
            os.unlink(env)
            os.link(elsewhere, env)
            os.unlink(elsewhere)
        else:  # the same file gets a second name elsewhere: fchmod would change it there too
            os.link(env, elsewhere.with_name("second"))
        return out

    job.plan = plan_then_swap
    with pytest.raises(RestoreError, match="changed since it was inspected"):
        job.run()
    assert os.stat(env).st_mode & 0o777 == 0o644
