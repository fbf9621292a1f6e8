# -*- coding: utf-8 -*-
# Copyright: Lifeline contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""files_restore's final moves against a symlink planted in the restore root while the restore
runs (after the plan and the extraction, just before the moves): the restore refuses with an
error naming the destination, and nothing lands where the link points."""
from __future__ import annotations

import os

import pytest

from ansible_collections.lifeline.dr.plugins.module_utils import files_restore
from ansible_collections.lifeline.dr.plugins.module_utils.errors import RestoreError

from test_files_roundtrip import backup, restore


@pytest.fixture
def site(tmp_path) -> dict:
    data = tmp_path / "src" / "data"
    (data / "sub").mkdir(parents=True)
    (data / "a.txt").write_text("a\n")
    (data / "sub" / "b.txt").write_text("b\n")
    outside = tmp_path / "outside"   # where an attacker wants the files to go (think /etc)
    outside.mkdir()
    return {"data": str(data), "root": str(tmp_path / "r"), "outside": str(outside)}


def _plant_before_moves(monkeypatch, plant) -> None:
    real = files_restore.put_in_place

    def planted(*args, **kwargs):
        plant()
        return real(*args, **kwargs)
    monkeypatch.setattr(files_restore, "put_in_place", planted)


@pytest.mark.parametrize("points_to", ["outside", "the real directory"])
def test_a_parent_swapped_for_a_symlink_is_refused_naming_the_destination(files_params, site, monkeypatch, points_to):
    backup(files_params, paths=[site["data"]])
    dest = site["root"] + site["data"]
    parent = os.path.dirname(dest)   # <root>/.../src, where the staging directory also is

    def plant():
        os.rename(parent, parent + ".real")
        os.symlink(site["outside"] if points_to == "outside" else parent + ".real", parent)
    _plant_before_moves(monkeypatch, plant)
    with pytest.raises(RestoreError, match="putting %s in place|refusing to put %s in place" % (dest, dest)) as exc:
        restore(files_params, root=site["root"])
    if points_to != "outside":
        assert "%s is a symlink" % parent in str(exc.value)
    assert os.listdir(site["outside"]) == []
    assert not os.path.exists(os.path.join(parent + ".real", "data"))


def test_a_merge_keeps_a_planted_symlink_and_never_writes_through_it(files_params, site, monkeypatch):
    backup(files_params, paths=[site["data"]])
    restore(files_params, root=site["root"])
    dest = site["root"] + site["data"]
    os.unlink(os.path.join(dest, "sub", "b.txt"))   # so the merge has something to write in sub

    def plant():
        os.rename(os.path.join(dest, "sub"), os.path.join(dest, "sub.real"))
        os.symlink(site["outside"], os.path.join(dest, "sub"))
    _plant_before_moves(monkeypatch, plant)
    report = restore(files_params, root=site["root"])
    assert os.path.join(dest, "sub") in report["kept_newer"]
    assert os.path.islink(os.path.join(dest, "sub")) and os.listdir(site["outside"]) == []
