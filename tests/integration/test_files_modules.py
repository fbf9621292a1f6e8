# -*- coding: utf-8 -*-
# Copyright: Lifeline contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""files_backup, files_restore and backup_verify (component files) through the real Ansible CLI."""
from __future__ import annotations

import os

from lifeline_it import adhoc


def _common(p: dict) -> dict:
    return {k: p[k] for k in ("repositories", "site", "host", "state_dir", "signing_key", "trusted_signers")}


def test_files_modules_back_up_verify_plan_and_restore_a_directory(files_params, tmp_path):
    top = tmp_path / "app" / "uploads"
    (top / "a").mkdir(parents=True)
    (top / "a" / "one.txt").write_text("one")
    rc, result, output = adhoc("lifeline.dr.files_backup", dict(_common(files_params), paths=[str(top)],
                                                                recipients=files_params["recipients"]))
    assert rc == 0, output
    assert (result["status"], result["kind"], result["skipped_paths"]) == ("ok", "full", {})
    assert result["stored_in"] == ["local", "s3"] and result["members"] == 3

    rc, verified, output = adhoc("lifeline.dr.backup_verify", dict(_common(files_params), component="files",
                                                                   identity=files_params["identity"]))
    assert rc == 0, output
    assert all(r["ok"] for r in verified["results"]) and "3 members" in verified["results"][0]["detail"]

    root = tmp_path / "restored"
    args = dict(_common(files_params), identity=files_params["identity"], root=str(root))
    rc, plan, output = adhoc("lifeline.dr.files_restore", args, check=True)
    assert rc == 0, output
    assert plan["plan"]["paths"] == {str(top): {"dest": str(root) + str(top), "action": "create"}}
    assert not root.exists()

    rc, report, output = adhoc("lifeline.dr.files_restore", args)
    assert rc == 0, output
    assert report["verified"] and report["written"] == [str(root) + str(top)]
    with open(str(root) + str(top) + "/a/one.txt", encoding="utf-8") as fh:
        assert fh.read() == "one"


def test_files_backup_module_names_a_missing_path(files_params):
    rc, result, output = adhoc("lifeline.dr.files_backup", dict(_common(files_params), paths=["/no/such/place"],
                                                                recipients=files_params["recipients"]))
    assert rc != 0, output
    assert result["error"] == "SourceError" and "/no/such/place does not exist" in result["msg"]
    assert not os.path.exists(files_params["repositories"][0]["path"])


def test_files_modules_document_every_key_they_return(files_params, tmp_path):
    from test_playbook_module_defaults import _returns, undocumented  # pylint: disable=import-outside-toplevel
    top = tmp_path / "docs" / "tree"
    top.mkdir(parents=True)
    (top / "f").write_text("x")
    common = _common(files_params)
    rc, backed_up, output = adhoc("lifeline.dr.files_backup", dict(common, paths=[str(top)],
                                                                   recipients=files_params["recipients"]))
    assert rc == 0, output
    rc, restored, output = adhoc("lifeline.dr.files_restore", dict(common, identity=files_params["identity"],
                                                                   root=str(tmp_path / "r")))
    assert rc == 0, output
    # the ad-hoc json callback adds the module's name as "action"
    assert undocumented({k: v for k, v in backed_up.items() if k != "action"}, _returns("files_backup")) == []
    assert undocumented({k: v for k, v in restored.items() if k != "action"}, _returns("files_restore")) == []
