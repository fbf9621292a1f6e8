# -*- coding: utf-8 -*-
# Copyright: Lifeline contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The files component's rsync method: hard-link snapshots with real rsync, manifests in a real
local repository and S3 (moto_server), restored and compared."""
from __future__ import annotations

import os

import pytest

from test_files_roundtrip import backup, restore, snapshot, tree  # noqa: F401  pylint: disable=unused-import

from ansible_collections.lifeline.dr.plugins.module_utils.backup import Status
from ansible_collections.lifeline.dr.plugins.module_utils.errors import ConfigError, IntegrityError, RestoreError


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
    assert report["verified"] and "as the manifest records" in report["checks"][0]
    assert _seconds_for_links(snapshot(root + tree)) == _seconds_for_links(before)


def test_rsync_target_must_be_a_plain_path_or_ssh_target(files_params, tree):  # noqa: F811
    with pytest.raises(ConfigError, match="rsync location"):
        backup(files_params, paths=[tree], method="rsync", rsync_target="host:/x; rm -rf /")


def test_rsync_restore_refuses_a_snapshot_outside_rsync_target_and_a_mismatched_count(files_params, tree, tmp_path):  # noqa: F811
    target = str(tmp_path / "snapshots")
    params = dict(files_params, paths=[tree], method="rsync", rsync_target=target)
    outcome = backup(params)
    with pytest.raises(IntegrityError, match="not under rsync_target"):
        restore(params, root=str(tmp_path / "r"), rsync_target=str(tmp_path / "elsewhere"))
    os.unlink(outcome.manifest.facts["location"] + tree + "/plain.txt")
    root = tmp_path / "r2"
    with pytest.raises(RestoreError, match="recorded %d" % outcome.manifest.facts["members"]):
        restore(params, root=str(root))
    assert not os.path.exists(str(root) + tree)
