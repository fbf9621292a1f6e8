# -*- coding: utf-8 -*-
# Copyright: Lifeline contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The files component with real GNU tar, a real local repository and a real S3 (moto_server):
what comes back must be what went in, metadata included; bad input is refused by name and
leaves nothing half-restored."""
from __future__ import annotations

import io
import json
import os
import subprocess
import tarfile
import threading
import time

import pytest

import keys
from lifeline_it import as_nobody

from ansible_collections.lifeline.dr.plugins.module_utils import components, config
from ansible_collections.lifeline.dr.plugins.module_utils.backup import Status, run_backup
from ansible_collections.lifeline.dr.plugins.module_utils.errors import (
    ConfigError,
    IntegrityError,
    NotFoundError,
    SourceError,
)
from ansible_collections.lifeline.dr.plugins.module_utils.manifest import MANIFEST_NAME
from ansible_collections.lifeline.dr.plugins.module_utils.pipeline import Codec, aad_for, store_stream
from ansible_collections.lifeline.dr.plugins.module_utils.repository import LocalRepository

ODD = os.fsdecode(b"caf\xe9-latin1.txt")  # not UTF-8
FILES = components.get("files")


def backup(params: dict, **extra):
    p = dict(params, **extra)
    return run_backup(FILES.backup(p), config.repositories(p), config.codec(p), site=p["site"],
                      host=p["host"], state_dir=p["state_dir"], signer=config.signer(p),
                      check_mode=bool(p.get("check_mode")))


def restore(params: dict, *, point: str = "latest", check_mode: bool = False, **extra):
    p = dict(params, **extra)
    entry = config.catalog(p).select(site=p["site"], host=p["host"], component="files", point=point)
    job = FILES.restore(entry, config.codec(p), p)
    return job.plan() if check_mode else job.run()


def snapshot(top: str) -> dict:
    """Every entry below ``top`` with what a restore must keep: type, owner, mode, mtime, size,
    link target, inode group (hard links), ACL and user xattrs."""
    out, inodes = {}, {}
    for dirpath, dirnames, filenames in os.walk(top):
        for name in [""] + dirnames + filenames:
            path = os.path.join(dirpath, name) if name else dirpath
            if not name and dirpath != top:
                continue
            st = os.lstat(path)
            rel = os.path.relpath(path, top)
            info = {"mode": st.st_mode, "uid": st.st_uid, "gid": st.st_gid, "size": st.st_size}
            if not os.path.isdir(path) or os.path.islink(path):
                info["mtime"] = st.st_mtime_ns // 1000
            if os.path.islink(path):
                info["link"] = os.readlink(path)
            elif os.path.isfile(path):
                with open(path, "rb") as fh:
                    info["data"] = hash(fh.read())
                info["blocks_small"] = st.st_blocks * 512 < st.st_size // 2
                if st.st_nlink > 1:
                    info["inode"] = inodes.setdefault(st.st_ino, len(inodes))
                info["xattr"] = {k: os.getxattr(path, k) for k in os.listxattr(path) if k.startswith("user.")}
                info["acl"] = subprocess.run(["getfacl", "-cp", path], capture_output=True, check=True).stdout
            out[rel] = info
    return out


@pytest.fixture
def tree(tmp_path) -> str:
    """A directory holding every kind of entry the files component must keep."""
    top = tmp_path / "src" / "data"
    (top / "sub" / "empty").mkdir(parents=True)
    (top / "plain.txt").write_text("hello\n")
    (top / "sub" / "deep.bin").write_bytes(os.urandom(50000))
    os.chown(top / "plain.txt", 12345, 23456)
    os.chmod(top / "plain.txt", 0o640)
    os.chmod(top / "sub", 0o2750)
    os.link(top / "plain.txt", top / "hardlink.txt")
    os.symlink("sub/deep.bin", top / "rel-link")
    os.symlink("/etc/hostname", top / "abs-link")
    with open(top / "sparse.img", "wb") as fh:
        fh.truncate(64 * 1024 * 1024)
        fh.seek(32 * 1024 * 1024)
        fh.write(b"middle")
    os.setxattr(top / "sub" / "deep.bin", "user.origin", b"lifeline \x00\xff")
    subprocess.run(["setfacl", "-m", "u:4242:rw", str(top / "sub" / "deep.bin")], check=True)
    (top / ODD).write_bytes(b"odd name\n")
    os.utime(top / "sub" / "deep.bin", ns=(1_600_000_000_123_456_789, 1_600_000_000_123_456_789))
    return str(top)


def test_full_roundtrip_keeps_owners_modes_mtimes_links_acls_xattrs_sparse_and_odd_names(files_params, tree, tmp_path):
    before = snapshot(tree)
    outcome = backup(files_params, paths=[tree])
    assert outcome.status is Status.OK and outcome.stored_in == ["local", "s3"]
    assert outcome.manifest.kind == "full" and outcome.manifest.facts["paths"] == [tree]
    assert "GNU tar" in outcome.manifest.tools["tar"]
    # Restored from S3 alone, under a root: /x/y lands at <root>/x/y.
    params = dict(files_params, repositories=[files_params["repositories"][1]])
    root = str(tmp_path / "restored")
    report = restore(params, root=root)
    assert report["verified"] and len(report["checks"]) == 2
    assert report["paths"] == [{"path": tree, "dest": root + tree, "action": "create"}]
    after = snapshot(root + tree)
    assert after == before
    assert after["sparse.img"]["blocks_small"], "the sparse file came back dense"
    assert ODD in after and after["plain.txt"]["uid"] == 12345


def test_incremental_chain_honours_deletions_excludes_and_changes(files_params, tree, tmp_path):
    data = files_params | {"paths": [tree], "exclude": ["*.cache"]}
    with open(os.path.join(tree, "skip.cache"), "w", encoding="utf-8") as fh:
        fh.write("excluded")
    with open(os.path.join(tree, "sub", "keep.txt"), "w", encoding="utf-8") as fh:
        fh.write("moves with its directory")
    full = backup(data)
    os.unlink(os.path.join(tree, "sub", "deep.bin"))
    with open(os.path.join(tree, "new.txt"), "w", encoding="utf-8") as fh:
        fh.write("added after the full backup")
    inc1 = backup(data)
    os.rename(os.path.join(tree, "sub"), os.path.join(tree, "moved"))
    inc2 = backup(data)
    assert (inc1.manifest.kind, inc1.manifest.parent_id) == ("incremental", full.manifest.backup_id)
    assert inc2.manifest.parent_id == inc1.manifest.backup_id
    assert inc1.manifest.artifacts[0].size < full.manifest.artifacts[0].size // 10
    os.unlink(os.path.join(tree, "skip.cache"))
    expected = snapshot(tree)
    root = str(tmp_path / "r")
    report = restore(data, root=root)
    assert report["backups"] == [full.manifest.backup_id, inc1.manifest.backup_id, inc2.manifest.backup_id]
    got = snapshot(root + tree)
    assert got == expected
    assert "sub" not in got and "skip.cache" not in got
    # An older point of the chain: the deleted file is back, the later one is not.
    root2 = str(tmp_path / "r2")
    restore(data, root=root2, point=full.manifest.backup_id)
    assert os.path.exists(root2 + tree + "/sub/deep.bin") and not os.path.exists(root2 + tree + "/new.txt")


def test_restore_into_existing_directory_keeps_newer_files_unless_replace(files_params, tree):
    backup(files_params, paths=[tree])
    newer = os.path.join(tree, "plain.txt")
    with open(newer, "w", encoding="utf-8") as fh:
        fh.write("edited after the backup")
    older = os.path.join(tree, "sub", "deep.bin")
    os.utime(older, ns=(1_000_000_000_000_000_000, 1_000_000_000_000_000_000))
    with open(older, "wb") as fh:
        fh.write(b"older")
    os.utime(older, ns=(1_000_000_000_000_000_000, 1_000_000_000_000_000_000))
    with open(os.path.join(tree, "extra"), "w", encoding="utf-8") as fh:
        fh.write("not in the backup")
    check = restore(files_params, check_mode=True)
    assert check["paths"][tree]["action"] == "merge"
    report = restore(files_params)
    assert newer in report["kept_newer"]
    with open(newer, encoding="utf-8") as fh:
        assert fh.read() == "edited after the backup"
    assert os.path.getsize(older) == 50000 and os.path.exists(os.path.join(tree, "extra"))
    restore(files_params, replace=True)
    with open(newer, encoding="utf-8") as fh:
        assert fh.read() == "hello\n"
    assert not os.path.exists(os.path.join(tree, "extra"))
    assert not [n for n in os.listdir(os.path.dirname(tree)) if n.startswith(".lifeline-")]


def test_restore_of_chosen_path_writes_only_it(files_params, tree, tmp_path):
    backup(files_params, paths=[tree])
    root = str(tmp_path / "one")
    report = restore(files_params, root=root, paths=[tree + "/sub/deep.bin"])
    assert report["written"] == [root + tree + "/sub/deep.bin"]
    assert sorted(os.listdir(root + tree)) == ["sub"] and os.listdir(root + tree + "/sub") == ["deep.bin"]
    with pytest.raises(NotFoundError, match="/elsewhere"):
        restore(files_params, root=root, paths=["/elsewhere"])


def test_check_mode_writes_nothing(files_params, tree, tmp_path):
    planned = backup(files_params, paths=[tree], check_mode=True)
    assert planned.status is Status.PLANNED and planned.plan == ["path %s (full)" % tree]
    assert not os.path.exists(files_params["state_dir"]) and not os.path.exists(tmp_path / "repo")
    backup(files_params, paths=[tree])
    root = tmp_path / "nothing"
    plan = restore(files_params, root=str(root), check_mode=True)
    assert plan["paths"] == {tree: {"dest": str(root) + tree, "action": "create"}}
    assert not root.exists()


def test_missing_chain_link_is_named_and_nothing_written(files_params, tree, tmp_path):
    backup(files_params, paths=[tree])
    inc1 = backup(files_params, paths=[tree])
    backup(files_params, paths=[tree])
    params = dict(files_params, repositories=[files_params["repositories"][0]])
    repo = files_params["repositories"][0]["path"]
    os.unlink(os.path.join(repo, "it", "src", "files", inc1.manifest.backup_id, MANIFEST_NAME))
    root = tmp_path / "never"
    with pytest.raises(NotFoundError, match=inc1.manifest.backup_id):
        restore(params, root=str(root))
    assert not root.exists()


@pytest.mark.parametrize("damage, cause", [("flip", "sha256"), ("truncate", "truncated")])
def test_corrupt_or_truncated_artifact_is_refused_and_nothing_written(files_params, tree, tmp_path, damage, cause):
    outcome = backup(files_params, paths=[tree])
    params = dict(files_params, repositories=[files_params["repositories"][0]])
    art = os.path.join(files_params["repositories"][0]["path"], outcome.manifest.prefix, outcome.manifest.artifacts[0].name)
    with open(art, "r+b") as fh:
        if damage == "truncate":
            fh.truncate(os.path.getsize(art) // 2)
        else:
            fh.seek(os.path.getsize(art) // 2)
            byte = fh.read(1)
            fh.seek(-1, 1)
            fh.write(bytes([byte[0] ^ 1]))
    root = tmp_path / "never"
    with pytest.raises(IntegrityError, match=cause):
        restore(params, root=str(root))
    assert not os.path.exists(str(root) + tree)
    assert not [n for n in os.listdir(os.path.dirname(str(root) + tree)) if n.startswith(".lifeline-")]


def test_nonexistent_or_relative_path_is_named(files_params, tmp_path):
    with pytest.raises(SourceError, match="/no/such/dir does not exist"):
        backup(files_params, paths=["/no/such/dir"])
    with pytest.raises(ConfigError, match="'relative/dir' is not absolute"):
        backup(files_params, paths=["relative/dir"])


def test_restore_root_not_writable_is_refused(files_params, tree, tmp_path):
    """Tests run as root, who may write anywhere: the plan runs in a child that dropped to
    'nobody' (uid 65534), for whom the 0755 root-owned restore root is not writable."""
    backup(files_params, paths=[tree])
    root = tmp_path / "locked"
    root.mkdir(mode=0o755)
    entry = config.catalog(files_params).select(site="it", host="src", component="files", point="latest")
    job = FILES.restore(entry, config.codec(files_params), dict(files_params, root=str(root)))
    message = as_nobody(job.plan)
    assert "restore root %s is not writable" % root in message
    assert os.listdir(root) == []


def test_file_changing_while_read_makes_backup_partial_with_path_named(files_params, tree):
    """An honest way to make tar meet a file it cannot read whole as root: a writer appends to
    a 40 MB file while tar reads it ("file changed as we read it")."""
    busy = os.path.join(tree, "busy.log")
    with open(busy, "wb") as fh:
        fh.write(os.urandom(40 * 1024 * 1024))
    stop = threading.Event()

    def writer():
        with open(busy, "ab") as fh:
            while not stop.is_set():
                fh.write(b"x")
                fh.flush()
                time.sleep(0.0005)

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        outcome = backup(files_params, paths=[tree])
    finally:
        stop.set()
        thread.join()
    assert outcome.status is Status.PARTIAL
    assert outcome.skipped == {busy: "file changed as we read it"}
    assert busy in outcome.message and outcome.manifest.facts["skipped"] == {busy: "file changed as we read it"}
    with open(os.path.join(files_params["state_dir"], "status", "it-src-files.json"), encoding="utf-8") as fh:
        record = json.load(fh)
    assert record["status"] == "partial" and busy in record["skipped_paths"]
    # The snapshot did not advance: the next run is a full one again (nothing committed to build on).
    again = backup(files_params, paths=[tree])
    assert again.status is Status.OK and again.manifest.kind == "full"


def _forge(files_params: dict, outcome, members: list) -> None:
    """A compromised host (trusted key) replaces the archive of a real backup with ``members``
    ((TarInfo, bytes) pairs), with true size and sha256, and re-signs the manifest."""
    repo_root = files_params["repositories"][0]["path"]
    m = outcome.manifest
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for info, data in members:
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    name = m.artifacts[0].name
    writer = LocalRepository("forge", repo_root).open_writer(m.prefix + name)
    result = store_stream(io.BytesIO(raw.getvalue()), [writer], Codec(recipients=files_params["recipients"]),
                          aad=aad_for(m.backup_id, name))
    writer.commit()
    art = m.artifacts[0]
    art.size, art.sha256, art.plain_size = result.size, result.sha256, result.plain_size
    art.meta.update(members=len(members), bytes=sum(len(data) for _info, data in members))
    LocalRepository("forge", repo_root).put_bytes(m.prefix + MANIFEST_NAME, m.to_json(keys.SIGNER))


def _info(name: str, kind=tarfile.REGTYPE, linkname: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, linkname
    return info


@pytest.mark.parametrize("evil, cause", [
    ([(_info("../../escaped"), b"x")], "'\\.\\.'"),
    ([(_info("/etc/lifeline-evil"), b"x")], "absolute"),
    ([(_info("other/place"), b"x")], "outside the backed-up paths"),
    ("link", "below the symlink"),
])
def test_hostile_archive_is_refused_before_extraction(files_params, tree, tmp_path, evil, cause):
    outcome = backup(files_params, paths=[tree])
    rel = tree.lstrip("/")
    if evil == "link":
        evil = [(_info(rel, tarfile.DIRTYPE), b""), (_info(rel + "/out", tarfile.SYMTYPE, str(tmp_path / "victim")), b""),
                (_info(rel + "/out/owned"), b"x")]
        (tmp_path / "victim").mkdir()
    _forge(files_params, outcome, evil)
    params = dict(files_params, repositories=[files_params["repositories"][0]])
    root = tmp_path / "target"
    with pytest.raises(IntegrityError, match=cause):
        restore(params, root=str(root))
    assert not os.path.exists("/etc/lifeline-evil") and not (tmp_path / "escaped").exists()
    assert not (tmp_path / "victim" / "owned").exists()
    assert not (root / rel).exists()


def _outside_state(top) -> dict:
    return {p.name: (p.lstat().st_ino, p.lstat().st_nlink, p.read_bytes() if p.is_file() else None)
            for p in top.iterdir()}


@pytest.mark.parametrize("shape, cause", [
    ("hardlink-to-symlink", "lies below the symlink"),
    ("hardlink-below-symlink", "below the symlink"),
    ("rename-through-symlink", "rename record names"),
])
def test_signed_two_link_chain_through_an_earlier_symlink_changes_nothing_outside_staging(
        files_params, tree, tmp_path, shape, cause):
    """A compromised host signs a full backup holding l -> <outside> and an incremental that
    reaches through l (each link is extracted by its own tar run, so l is a real symlink by then)."""
    full = backup(files_params, paths=[tree])
    with open(os.path.join(tree, "new.txt"), "w", encoding="utf-8") as fh:
        fh.write("changed")
    incr = backup(files_params, paths=[tree])
    assert incr.manifest.kind == "incremental" and incr.manifest.parent_id == full.manifest.backup_id
    rel = tree.lstrip("/")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "shadow").write_text("root:secret\n")
    (outside / "victim").mkdir()
    before = _outside_state(outside)
    top = _info(rel, tarfile.DIRTYPE)
    top.pax_headers = {"GNU.dumpdir": "Yl\x00"}
    _forge(files_params, full, [(top, b""), (_info(rel + "/l", tarfile.SYMTYPE, str(outside)), b"")])
    if shape == "hardlink-to-symlink":
        second = [(_info(rel, tarfile.DIRTYPE), b""), (_info(rel + "/h", tarfile.LNKTYPE, rel + "/l"), b""),
                  (_info(rel + "/h/planted"), b"#!/bin/sh\necho owned\n")]
        second[2][0].mode = 0o4755
    elif shape == "hardlink-below-symlink":
        second = [(_info(rel, tarfile.DIRTYPE), b""), (_info(rel + "/h", tarfile.LNKTYPE, rel + "/l/shadow"), b"")]
    else:
        moving = _info(rel, tarfile.DIRTYPE)
        moving.pax_headers = {"GNU.dumpdir": "R%s/l/victim\x00T%s/stolen\x00Yl\x00Dstolen\x00" % (rel, rel)}
        second = [(moving, b"")]
    _forge(files_params, incr, second)
    params = dict(files_params, repositories=[files_params["repositories"][0]])
    root = tmp_path / "target"
    with pytest.raises(IntegrityError, match=cause):
        restore(params, root=str(root))
    assert _outside_state(outside) == before
    assert not (root / rel).exists()
    assert not [n for n in os.listdir(root / os.path.dirname(rel)) if n.startswith(".lifeline-restore-")]


def test_files_restore_writes_only_below_the_sources_configured_paths(files_params, tree, tmp_path):
    """A signed manifest alone does not decide where a restore writes: allowed_paths (the source's
    lifeline_files_paths on the restoring side) must hold each directory restored."""
    backup(files_params, paths=[tree])
    root = tmp_path / "r"
    with pytest.raises(IntegrityError, match="holds %s, which is not under the source host's lifeline_files_paths "
                                             "\\(/srv/app\\)" % tree):
        restore(files_params, root=str(root), allowed_paths=["/srv/app"])
    with pytest.raises(IntegrityError, match="lifeline_files_paths \\(empty\\)"):
        restore(files_params, root=str(root), allowed_paths=[])
    assert not root.exists()
    report = restore(files_params, root=str(root), allowed_paths=[os.path.dirname(tree) + "/"])
    assert report["written_count"] == 1 and os.path.isdir(str(root) + tree)


def test_full_archive_restores_with_stock_tools_only(files_params, tree, tmp_path):
    """docs/runbook.md: age -d -i key | zstd -d | tar -x, nothing from Lifeline."""
    outcome = backup(files_params, paths=[tree])
    key = tmp_path / "key.txt"
    key.write_text(files_params["identity"])
    art = os.path.join(files_params["repositories"][0]["path"], outcome.manifest.prefix, outcome.manifest.artifacts[0].name)
    out = tmp_path / "stock"
    out.mkdir()
    subprocess.run("age -d -i %s %s | zstd -d | tar -x --acls --xattrs --xattrs-include='*' "
                   "--listed-incremental=/dev/null -C %s" % (key, art, out), shell=True, check=True)
    assert snapshot(str(out) + tree) == snapshot(tree)


def test_a_killed_restores_staging_next_to_the_target_is_removed_and_reported(files_params, tree, tmp_path):
    backup(files_params, paths=[tree])
    root = str(tmp_path / "again")
    parent = os.path.dirname(root + tree)
    os.makedirs(os.path.join(parent, ".lifeline-restore-dead1234", "half"))
    report = restore(files_params, root=root)
    assert any(".lifeline-restore-dead1234" in w for w in report["warnings"])
    assert not os.path.exists(os.path.join(parent, ".lifeline-restore-dead1234"))
    assert os.path.isdir(root + tree)


def test_restore_in_place_onto_a_mount_point_merges_and_replaces_within_its_filesystem(files_params, tmp_path):
    """A data directory is often its own filesystem: staging goes inside it, so nothing moves
    across filesystems, and replace swaps its contents (a mount point cannot be renamed)."""
    top = tmp_path / "mnt" / "data"
    top.mkdir(parents=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(top)], check=True)
    try:
        (top / "keep").mkdir()
        (top / "keep" / "a.txt").write_text("backed up")
        os.chmod(top, 0o750)
        backup(files_params, paths=[str(top)])
        (top / "keep" / "a.txt").unlink()
        (top / "extra.txt").write_text("not in the backup")
        report = restore(files_params)
        assert report["paths"][0]["action"] == "merge"
        assert (top / "keep" / "a.txt").read_text() == "backed up" and (top / "extra.txt").exists()
        restore(files_params, replace=True)
        assert sorted(os.listdir(top)) == ["keep"] and (top / "keep" / "a.txt").read_text() == "backed up"
        assert os.stat(top).st_mode & 0o777 == 0o750
    finally:
        subprocess.run(["umount", str(top)], check=True)
