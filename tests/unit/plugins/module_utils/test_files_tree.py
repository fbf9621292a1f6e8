# -*- coding: utf-8 -*-
# Copyright: Lifeline contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The signed file tree of an rsync snapshot: recorded, read back as hostile input, compared."""
from __future__ import annotations

import io
import json
import os

import pytest

from ansible_collections.lifeline.dr.plugins.module_utils import files_tree
from ansible_collections.lifeline.dr.plugins.module_utils.errors import IntegrityError


@pytest.fixture
def snap(tmp_path) -> str:
    top = tmp_path / "snap" / "srv" / "data"
    (top / "sub").mkdir(parents=True)
    (top / "a.txt").write_bytes(b"hello\n")
    os.chmod(top / "a.txt", 0o640)
    os.symlink("a.txt", top / "link")
    os.setxattr(top / "a.txt", "user.origin", b"x")
    return str(tmp_path / "snap")


def _tree_file(tmp_path, base: str) -> str:
    out = io.BytesIO()
    assert files_tree.write_tree(base, ["srv/data"], out) == 4
    path = tmp_path / "tree.jsonl"
    path.write_bytes(out.getvalue())
    return str(path)


def test_a_recorded_tree_matches_its_snapshot_and_names_each_entry(snap, tmp_path):
    path = _tree_file(tmp_path, snap)
    tree = files_tree.read_tree(path, ["srv/data"], "t")
    assert sorted(tree) == ["srv/data", "srv/data/a.txt", "srv/data/link", "srv/data/sub"]
    assert tree["srv/data/a.txt"]["m"] == 0o640 and tree["srv/data/a.txt"]["s"] == 6
    assert tree["srv/data/link"]["l"] == "a.txt" and "user.origin" in tree["srv/data/a.txt"]["x"]
    assert files_tree.compare(snap, ["srv/data"], tree, "t") == 4
    assert files_tree.read_tree(path, ["srv/other"], "t") == {}


@pytest.mark.parametrize("change, cause", [
    (lambda top: open(top + "/a.txt", "ab").write(b"!"), "a.txt differs \\(content, size\\)"),
    (lambda top: os.chmod(top + "/a.txt", 0o4755), "a.txt differs \\(mode\\)"),
    (lambda top: os.chown(top + "/a.txt", 4242, 4242), "a.txt differs \\(group, owner\\)"),
    (lambda top: (os.unlink(top + "/link"), os.symlink("/etc/shadow", top + "/link")), "link differs \\(link target\\)"),
    (lambda top: os.setxattr(top + "/a.txt", "user.origin", b"y"), "a.txt differs \\(xattrs/ACLs\\)"),
    (lambda top: os.rmdir(top + "/sub"), "sub is missing"),
    (lambda top: os.mkfifo(top + "/sub/fifo"), "fifo is not in the signed tree"),
])
def test_any_change_to_the_snapshot_is_named(snap, tmp_path, change, cause):
    tree = files_tree.read_tree(_tree_file(tmp_path, snap), ["srv/data"], "t")
    change(snap + "/srv/data")
    with pytest.raises(IntegrityError, match=cause):
        files_tree.compare(snap, ["srv/data"], tree, "t")


@pytest.mark.parametrize("line", [
    b"not json\n",
    json.dumps({"n": "srv/data", "t": "b", "m": 0, "u": 0, "g": 0, "x": {}}).encode() + b"\n",
    json.dumps({"n": "srv/data", "t": "f", "m": 0, "u": 0, "g": 0, "x": {}, "s": 1, "h": "zz"}).encode() + b"\n",
    json.dumps({"n": "srv/data", "t": "d", "m": -1, "u": 0, "g": 0, "x": {}}).encode() + b"\n",
    json.dumps({"n": "srv/data", "t": "l", "m": 0, "u": 0, "g": 0, "x": {}}).encode() + b"\n",
])
def test_a_malformed_tree_is_refused(tmp_path, line):
    path = tmp_path / "bad.jsonl"
    path.write_bytes(line)
    with pytest.raises(IntegrityError, match="malformed entry|not a file tree"):
        files_tree.read_tree(str(path), ["srv/data"], "t")
