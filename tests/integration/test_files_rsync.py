# -*- coding: utf-8 -*-
# Copyright: Lifeline contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The files component's rsync method: hard-link snapshots with real rsync, manifests in a real
local repository and S3 (moto_server), restored and compared."""
from __future__ import annotations

import os
import shutil

import pytest

import keys

from test_files_roundtrip import backup, restore, snapshot, tree  # noqa: F401  pylint: disable=unused-import

from ansible_collections.lifeline.dr.plugins.module_utils.backup import Status
from ansible_collections.lifeline.dr.plugins.module_utils.errors import ConfigError, IntegrityError
from ansible_collections.lifeline.dr.plugins.module_utils.manifest import MANIFEST_NAME
from ansible_collections.lifeline.dr.plugins.module_utils.repository import LocalRepository


def _seconds_for_links(entries: dict) -> dict:
    """rsync sets a symlink's mtime to whole microseconds at best (lutimes); compare those in seconds."""
    return {k: dict(v, mtime=v["mtime"] // 10**6) if "link" in v else v for k, v in entries.items()}


def test_rsync_snapshots_hard_link_unchanged_files_and_restore_every_attribute(files_params, tree, tmp_path):  # noqa: F811
    target = str(tmp_path / "snapshots")
    params = dict(files_params, paths=[tree], method="rsync", rsync_target=target)
    before = snapshot(tree)
    first = backup(params)
    second = backup(params)
    for outcome in (first, second):
        assert outcome.status is Status.OK and outcome.manifest.kind == "full" and outcome.manifest.parent_id is None
        assert outcome.manifest.facts["method"] == "rsync" and outcome.manifest.artifacts[0].kind == "rsync-log"
    loc1, loc2 = first.manifest.facts["location"], second.manifest.facts["location"]
    assert loc1.startswith(target + "/it/src/") and second.manifest.facts["link_dest"] == loc1
    assert first.manifest.facts["members"] == len(before)
    # Browsable, and unchanged files are one inode in both snapshots.
    assert os.stat(loc1 + tree + "/sub/deep.bin").st_ino == os.stat(loc2 + tree + "/sub/deep.bin").st_ino
    root = str(tmp_path / "restored")
    report = restore(params, root=root)
    assert report["verified"] and "each as the signed file tree records" in report["checks"][0]
    assert _seconds_for_links(snapshot(root + tree)) == _seconds_for_links(before)


def test_rsync_target_must_be_a_plain_path_or_ssh_target(files_params, tree):  # noqa: F811
    with pytest.raises(ConfigError, match="rsync location"):
        backup(files_params, paths=[tree], method="rsync", rsync_target="host:/x; rm -rf /")


def test_rsync_restore_refuses_a_snapshot_outside_rsync_target_and_needs_rsync_target(files_params, tree, tmp_path):  # noqa: F811
    target = str(tmp_path / "snapshots")
    params = dict(files_params, paths=[tree], method="rsync", rsync_target=target)
    backup(params)
    with pytest.raises(IntegrityError, match="not a snapshot of src under rsync_target"):
        restore(params, root=str(tmp_path / "r"), rsync_target=str(tmp_path / "elsewhere"))
    with pytest.raises(ConfigError, match="set rsync_target"):
        restore(params, root=str(tmp_path / "r"), rsync_target=None)
    assert not os.path.exists(str(tmp_path / "r") + tree)


def _swap_for_setuid_binary(path: str) -> None:
    """Another host that can write to the shared target swaps a file, keeping the entry count."""
    os.unlink(path)
    shutil.copy("/bin/true", path)
    os.chmod(path, 0o4755)


@pytest.mark.parametrize("change", ["setuid-binary", "mode-only", "removed", "added", "xattr"])
def test_rsync_restore_refuses_a_tampered_snapshot_and_places_nothing(files_params, tree, tmp_path, change):  # noqa: F811
    target = str(tmp_path / "snapshots")
    params = dict(files_params, paths=[tree], method="rsync", rsync_target=target)
    outcome = backup(params)
    assert [a.kind for a in outcome.manifest.artifacts] == ["rsync-log", "rsync-tree"]
    snap = outcome.manifest.facts["location"] + tree
    if change == "setuid-binary":
        _swap_for_setuid_binary(snap + "/plain.txt")
        cause = "/plain.txt differs \\(content, group, mode, owner, size\\)"
    elif change == "mode-only":
        os.chmod(snap + "/plain.txt", 0o4755)
        cause = "/plain.txt differs \\(mode\\)"
    elif change == "removed":
        os.unlink(snap + "/plain.txt")
        cause = "/plain.txt is missing"
    elif change == "added":
        with open(snap + "/sub/planted", "w", encoding="utf-8") as fh:
            fh.write("x")
        cause = "/sub/planted is not in the signed tree"
    else:
        os.setxattr(snap + "/sub/deep.bin", "security.capability", bytes.fromhex("0100000200200000000000000000000000000000"))
        cause = "/sub/deep.bin differs \\(xattrs/ACLs\\)"
    root = tmp_path / "r"
    with pytest.raises(IntegrityError, match=cause):
        restore(params, root=str(root))
    assert not os.path.exists(str(root) + tree)
    assert not [n for n in os.listdir(str(root) + os.path.dirname(tree)) if n.startswith(".lifeline-restore-")]
    with pytest.raises(IntegrityError, match="file tree its signed backup records"):
        restore(params, root=str(root), paths=[tree + "/sub"])  # a part of the backup is checked too


def test_an_rsync_backup_without_a_signed_file_tree_is_refused(files_params, tree, tmp_path):  # noqa: F811
    target = str(tmp_path / "snapshots")
    params = dict(files_params, paths=[tree], method="rsync", rsync_target=target)
    m = backup(params).manifest
    m.artifacts = [a for a in m.artifacts if a.kind != "rsync-tree"]  # as made before trees were recorded
    repo = LocalRepository("forge", files_params["repositories"][0]["path"])
    repo.put_bytes(m.prefix + MANIFEST_NAME, m.to_json(keys.SIGNER))
    root = tmp_path / "r"
    with pytest.raises(IntegrityError, match="without a signed file tree"):
        restore(dict(params, repositories=[files_params["repositories"][0]]), root=str(root))
    assert not os.path.exists(str(root) + tree)
