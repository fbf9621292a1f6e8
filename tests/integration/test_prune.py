# -*- coding: utf-8 -*-
# Copyright: Lifeline contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Prune against a real local repository and a real moto S3 bucket: GFS deletes from both, the
dry run changes nothing, and each "never deletes" rule holds, also against an attacker who can
write to the bucket (forged, unsigned and overwritten manifests)."""
from __future__ import annotations

import datetime
import os

import pytest
from keys import SIGNER
from lifeline_it import s3_client
from prune_world import COMPONENT, HOST, NOW, SITE, World, at

from ansible_collections.lifeline.dr.plugins.module_utils.backup import run_backup
from ansible_collections.lifeline.dr.plugins.module_utils.errors import ConfigError, LockedError, RepositoryError
from ansible_collections.lifeline.dr.plugins.module_utils.files_backup import FilesComponent
from ansible_collections.lifeline.dr.plugins.module_utils.locking import Lock
from ansible_collections.lifeline.dr.plugins.module_utils.manifest import MANIFEST_NAME
from ansible_collections.lifeline.dr.plugins.module_utils.pipeline import Codec
from ansible_collections.lifeline.dr.plugins.module_utils.crypto import Encryption
from ansible_collections.lifeline.dr.plugins.module_utils.prune import prune_with
from ansible_collections.lifeline.dr.plugins.module_utils.repository import LocalRepository
from ansible_collections.lifeline.dr.plugins.module_utils.signing import Signer, generate_signing_key

ONE_DAILY = {"keep_daily": 1, "keep_weekly": 0, "keep_monthly": 0, "components": [COMPONENT]}


@pytest.fixture
def world(tmp_path, moto, bucket):
    w = World(tmp_path, moto, bucket)
    yield w
    w.close()


def actions(report) -> dict:
    return {p["backup_id"]: p["action"] for p in report["plan"]}


def test_gfs_deletes_from_every_repository_and_the_dry_run_changes_nothing(world):
    made = [world.backup(at(d)) for d in range(10)]  # one a day, newest first
    before = (world.ids(0), world.ids(1))
    plan = prune_with(world.params(keep_daily=3, keep_weekly=0, keep_monthly=0, components=[COMPONENT]),
                      check_mode=True, now=NOW)
    assert plan["status"] == "planned" and plan["changed"]
    assert (world.ids(0), world.ids(1)) == before  # the dry run deleted nothing
    assert not os.path.exists(os.path.join(world.state_dir, "locks"))  # nor wrote a lock file
    expected = {m.backup_id: ("keep" if i < 3 else "delete") for i, m in enumerate(made)}
    assert actions(plan) == expected
    first = plan["plan"][0]
    assert first["reasons"][:2] == ["newest restorable backup", "daily 2026-12-06"]
    assert plan["plan"][-1]["reasons"] == ["beyond the retention policy"]
    assert plan["freed_bytes"] == 7 * 1000 * 2  # seven backups, two copies each

    done = prune_with(world.params(keep_daily=3, keep_weekly=0, keep_monthly=0, components=[COMPONENT]), now=NOW)
    assert done["status"] == "ok" and done["deleted"] == 7
    assert actions(done) == expected
    kept = sorted(m.backup_id for m in made[:3])
    assert world.ids(0) == kept and world.ids(1) == kept
    assert not os.path.exists(os.path.join(world.local_path, made[5].prefix))  # empty directories go too
    again = prune_with(world.params(keep_daily=3, keep_weekly=0, keep_monthly=0, components=[COMPONENT]), now=NOW)
    assert not again["changed"] and again["deleted"] == 0


def test_a_forged_newer_manifest_takes_no_slot_and_a_forged_overwrite_is_never_deleted(world):
    real = [world.backup(at(d)) for d in (3, 2, 1)]
    attacker = Signer(generate_signing_key()[0])
    forged_new = world.backup(at(0), n=9, signer=attacker)    # claims to be the newest
    unsigned_new = world.backup(at(0), n=8, signer=None)      # no signature at all
    # The attacker cannot delete but can put: overwrite the oldest real backup's manifest with junk,
    # hoping prune takes its artifacts for an orphan.
    for repo in world.repos:
        repo.put_bytes(real[0].prefix + MANIFEST_NAME, b'{"format": "lifeline-manifest", "parent_id": "x"}')
    report = prune_with(world.params(**ONE_DAILY), now=NOW + datetime.timedelta(days=30))
    acts = actions(report)
    assert acts[real[2].backup_id] == "keep"        # the newest trusted backup survives the forgery
    assert acts[real[1].backup_id] == "delete"
    for victim in (real[0], forged_new, unsigned_new):
        assert acts[victim.backup_id] == "keep"
        assert any("manifest not trusted" in r for r in
                   next(p for p in report["plan"] if p["backup_id"] == victim.backup_id)["reasons"])
        assert world.keys(0, victim) and world.keys(1, victim)  # nothing of them was deleted
    assert not [o for o in report["orphans"] if o["action"] == "delete"]
    assert world.keys(0, real[0]) == [real[0].prefix + "files.tar.zst", real[0].prefix + MANIFEST_NAME]


def test_an_untrusted_manifest_naming_a_parent_keeps_that_parent(world):
    full = world.backup(at(3))
    world.backup(at(1))
    world.backup(at(0), n=1, kind="incremental", parent=full.backup_id,
                 signer=Signer(generate_signing_key()[0]))  # e.g. signed by a key no longer trusted
    report = prune_with(world.params(**ONE_DAILY), now=NOW)
    assert actions(report)[full.backup_id] == "keep"
    assert world.keys(0, full)


def test_a_retained_incremental_chain_is_kept_whole(world):
    old_full = world.backup(at(9))
    full = world.backup(at(5), n=1)
    inc1 = world.backup(at(4), n=2, kind="incremental", parent=full.backup_id)
    inc2 = world.backup(at(3), n=3, kind="incremental", parent=inc1.backup_id)
    report = prune_with(world.params(**ONE_DAILY), now=NOW)
    assert actions(report) == {inc2.backup_id: "keep", inc1.backup_id: "keep", full.backup_id: "keep",
                               old_full.backup_id: "delete"}
    assert world.ids(0) == sorted([full.backup_id, inc1.backup_id, inc2.backup_id])
    assert world.ids(1) == world.ids(0)


def test_pins_by_label_and_by_option_are_never_pruned(world):
    labelled = world.backup(at(40), labels=["keep"])
    pinned = world.backup(at(30), n=1)
    expired = world.backup(at(20), n=2)
    world.backup(at(0), n=3)
    report = prune_with(world.params(pins={pinned.backup_id: "2027-01-31", expired.backup_id: "2026-12-01"},
                                     **ONE_DAILY), now=NOW)
    acts = actions(report)
    assert (acts[labelled.backup_id], acts[pinned.backup_id], acts[expired.backup_id]) == ("keep", "keep", "delete")


def test_another_hosts_backups_in_the_same_bucket_are_never_touched(world):
    theirs = [world.backup(at(d), host="h2") for d in range(5)]
    world.backup(at(2))
    world.backup(at(1), n=1)
    # A manifest of h2, copied under h1's path by someone with write access: not h1's backup.
    foreign = world.backup(at(0), n=4, host="h2")
    for repo in world.repos:
        repo.put_bytes("%s/%s/%s/%s/%s" % (SITE, HOST, COMPONENT, foreign.backup_id, MANIFEST_NAME),
                       repo.get_bytes(foreign.prefix + MANIFEST_NAME))
    report = prune_with(world.params(**ONE_DAILY), now=NOW + datetime.timedelta(days=5))
    assert report["deleted"] == 1
    assert world.ids(0, host="h2") == sorted(m.backup_id for m in theirs + [foreign])
    assert world.ids(1, host="h2") == world.ids(0, host="h2")
    assert foreign.backup_id in world.ids(0)  # the copy under h1's path is not trusted, so kept


def test_a_backup_in_progress_holds_the_lock_and_its_directory_is_no_orphan(world):
    old = world.backup(at(5))
    world.backup(at(1), n=1)
    with Lock(os.path.join(world.state_dir, "locks"), "%s-%s-%s" % (SITE, HOST, COMPONENT)):
        with pytest.raises(LockedError, match="another run holds"):
            prune_with(world.params(**ONE_DAILY), now=NOW)
    assert old.backup_id in world.ids(0)
    # A backup that started a minute ago and has no manifest yet (its lock gone with a crash).
    fresh = "%s/%s/%s/%s/" % (SITE, HOST, COMPONENT, (NOW - datetime.timedelta(minutes=1)).strftime("%Y%m%dT%H%M%SZ-beef"))
    for repo in world.repos:
        repo.put_bytes(fresh + "files.tar.zst", b"partial")
    report = prune_with(world.params(**ONE_DAILY), now=NOW)
    orphan = [o for o in report["orphans"] if o["key"] == fresh]
    assert [o["action"] for o in orphan] == ["keep", "keep"]
    assert "in progress" in orphan[0]["reason"]
    assert world.keys(0, fresh) and world.keys(1, fresh)


def test_orphans_temp_files_and_multipart_uploads_older_than_a_day_are_removed(world, moto, bucket):
    world.backup(at(1))
    orphan = "%s/%s/%s/%s/" % (SITE, HOST, COMPONENT, at(3).strftime("%Y%m%dT%H%M%SZ-dead"))
    for repo in world.repos:
        repo.put_bytes(orphan + "files.tar.zst", b"x" * 500)
    # Ids of a run that started now: moto reports a fixed initiation time (2010) for every
    # multipart upload, so prune's age is the newer of that and the id's time, as for orphans.
    running = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ-0000")
    tmp_dir = os.path.join(world.local_path, SITE, HOST, COMPONENT, running)
    os.makedirs(tmp_dir)
    tmp_file = os.path.join(tmp_dir, ".lifeline-tmp-0123456789ab-files.tar.zst")
    with open(tmp_file, "wb") as fh:
        fh.write(b"y" * 300)
    client = s3_client(moto)
    upload_key = "lifeline/%s/%s/%s/%s/files.tar.zst" % (SITE, HOST, COMPONENT, running)
    upload = client.create_multipart_upload(Bucket=bucket, Key=upload_key)["UploadId"]

    # Everything was written just now: nothing is old enough yet.
    report = prune_with(world.params(**ONE_DAILY), now=datetime.datetime.now(datetime.timezone.utc))
    assert report["orphans"] and all(o["action"] == "keep" for o in report["orphans"]), [(o["what"], o["action"], o["reason"]) for o in report["orphans"]]
    assert os.path.exists(tmp_file)

    later = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=2)
    plan = prune_with(world.params(**ONE_DAILY), check_mode=True, now=later)
    whats = sorted((o["what"], o["repository"], o["action"]) for o in plan["orphans"])
    assert whats == [("backup directory without a manifest", "local", "delete"),
                     ("backup directory without a manifest", "s3", "delete"),
                     ("multipart upload", "s3", "delete"), ("temp file", "local", "delete")]
    assert plan["freed_bytes"] == 500 + 500 + 300
    assert os.path.exists(tmp_file)  # still a dry run
    report = prune_with(world.params(**ONE_DAILY), now=later)
    assert report["status"] == "ok", report["errors"]
    assert not os.path.exists(tmp_file)
    assert not world.keys(0, orphan) and not world.keys(1, orphan)
    assert not client.list_multipart_uploads(Bucket=bucket).get("Uploads")
    assert upload  # the upload existed before prune aborted it


def test_a_listing_failure_deletes_nothing_anywhere(world, closed_s3):
    made = [world.backup(at(d), repos=world.repos[:1]) for d in range(5)]
    params = world.params(**ONE_DAILY)
    params["repositories"][1] = {"name": "s3", "s3": closed_s3}
    with pytest.raises(RepositoryError, match="listing failed, so nothing is pruned"):
        prune_with(params, now=NOW)
    assert world.ids(0) == sorted(m.backup_id for m in made)
    status = os.path.join(world.state_dir, "status", "prune-%s-%s.json" % (SITE, HOST))
    assert '"failed"' in open(status, encoding="utf-8").read()


def test_nothing_is_pruned_after_a_failed_backup_run(world, tmp_path):
    made = [world.backup(at(d)) for d in range(4)]
    source = tmp_path / "data"
    source.mkdir()
    (source / "a.txt").write_text("a")
    blocked = tmp_path / "not-a-dir"
    blocked.write_text("a file where the repository should be")
    component = FilesComponent([str(source)], site=SITE, host=HOST, state_dir=world.state_dir)
    with pytest.raises(RepositoryError):  # a real run that fails: its repository cannot be created
        run_backup(component, [LocalRepository("broken", str(blocked / "repo"))],
                   Codec(encryption=Encryption.NONE), site=SITE, host=HOST, state_dir=world.state_dir,
                   signer=SIGNER)
    report = prune_with(world.params(**ONE_DAILY), now=NOW)
    assert report["status"] == "partial" and not report["changed"]
    assert "last backup run failed" in report["skipped"][COMPONENT]
    assert world.ids(0) == sorted(m.backup_id for m in made)


def test_unsigned_backups_allowed_for_reading_are_kept_and_take_no_slot(world):
    legacy = [world.backup(at(d), signer=None) for d in (9, 8)]
    signed = [world.backup(at(d), n=1) for d in (2, 1)]
    report = prune_with(world.params(allow_unsigned=True, **ONE_DAILY), now=NOW)
    acts = actions(report)
    assert [acts[m.backup_id] for m in legacy] == ["keep", "keep"]
    assert (acts[signed[0].backup_id], acts[signed[1].backup_id]) == ("delete", "keep")


def test_the_host_cli_prunes_with_exit_codes_timers_can_act_on(world, tmp_path, capsys):
    import json  # pylint: disable=import-outside-toplevel
    from ansible_collections.lifeline.dr.plugins.module_utils import cli  # pylint: disable=import-outside-toplevel
    made = [world.backup(at(d, hour=1)) for d in range(3)]
    config = tmp_path / "lifeline.json"
    config.write_text(json.dumps(world.params(keep_daily=1, keep_weekly=0, keep_monthly=0)))
    assert cli.main(["--config", str(config), "prune", "--component", COMPONENT, "--dry-run"]) == cli.EXIT_OK
    plan = json.loads(capsys.readouterr().out)
    assert plan["status"] == "planned" and [p["action"] for p in plan["plan"]] == ["keep", "delete", "delete"]
    assert len(world.ids(0)) == 3
    with Lock(os.path.join(world.state_dir, "locks"), "%s-%s-%s" % (SITE, HOST, COMPONENT)):
        assert cli.main(["--config", str(config), "prune", "--component", COMPONENT]) == LockedError.exit_code
    assert cli.main(["--config", str(config), "prune", "--component", COMPONENT]) == cli.EXIT_OK
    assert json.loads(capsys.readouterr().out)["deleted"] == 2
    assert world.ids(0) == world.ids(1) == [made[0].backup_id]
    config.write_text(json.dumps(world.params(keep_daily=0, keep_weekly=0, keep_monthly=0)))
    assert cli.main(["--config", str(config), "prune"]) == 3  # ConfigError: a policy that keeps nothing
    assert "would keep nothing" in capsys.readouterr().err


def test_a_real_backup_labelled_keep_is_pinned_and_a_bad_label_is_refused_before_anything_runs(world, tmp_path):
    source = tmp_path / "data"
    source.mkdir()
    (source / "a.txt").write_text("a")
    codec = Codec(encryption=Encryption.NONE)

    def backup(**kwargs):
        component = FilesComponent([str(source)], site=SITE, host=HOST, state_dir=world.state_dir, level="full")
        return run_backup(component, world.repos, codec, site=SITE, host=HOST, state_dir=world.state_dir,
                          signer=SIGNER, **kwargs)
    pinned = backup(labels=["keep"]).manifest
    assert pinned.labels == ["keep"]
    newer = backup().manifest
    newest = backup().manifest
    report = prune_with(world.params(**ONE_DAILY))
    assert actions(report) == {newest.backup_id: "keep", newer.backup_id: "delete", pinned.backup_id: "keep"}
    assert world.ids(0) == world.ids(1) == sorted([pinned.backup_id, newest.backup_id])
    for bad in ("no spaces", "safety"):
        with pytest.raises(ConfigError, match="label"):
            backup(labels=[bad])
    assert world.ids(0) == sorted([pinned.backup_id, newest.backup_id])


def test_a_delete_the_store_refuses_is_reported_and_leaves_that_copy_whole(world):
    import subprocess  # pylint: disable=import-outside-toplevel
    old = world.backup(at(3))
    world.backup(at(1), n=1)
    # An immutable directory (chattr +i): even root's unlink fails, as a locked object would.
    locked_dir = os.path.join(world.local_path, old.prefix)
    subprocess.run(["chattr", "+i", locked_dir], check=True)
    try:
        report = prune_with(world.params(**ONE_DAILY), now=NOW)
    finally:
        subprocess.run(["chattr", "-i", locked_dir], check=True)
    assert report["status"] == "partial" and report["deleted"] == 0
    assert len(report["errors"]) == 1 and "backup %s in local" % old.backup_id in report["errors"][0]
    assert "not permitted" in report["errors"][0]
    assert world.keys(0, old) == [old.prefix + "files.tar.zst", old.prefix + MANIFEST_NAME]  # whole
    assert world.keys(1, old) == []  # the S3 copy went, manifest first
