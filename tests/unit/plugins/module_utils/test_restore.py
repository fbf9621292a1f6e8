# -*- coding: utf-8 -*-
# Copyright: Lifeline contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The shared restore side, through a minimal component that restores files into a directory:
real backups (run_backup, age, two local repositories), real staging, real signals and locks.

``DirectoryRestore`` is the smallest honest component restore, not a stand-in for anything
under test: it stages every artifact, then copies them into place inside the shield, as the
postgres restore swaps its databases.
"""
from __future__ import annotations

import contextlib
import io
import os
import shutil
import signal

import pytest

from keys import SIGNER, trust
from ansible_collections.lifeline.dr.plugins.module_utils.backup import run_backup
from ansible_collections.lifeline.dr.plugins.module_utils.catalog import Catalog
from ansible_collections.lifeline.dr.plugins.module_utils.component import Component, Source
from ansible_collections.lifeline.dr.plugins.module_utils.crypto import generate_age_identity
from ansible_collections.lifeline.dr.plugins.module_utils.errors import LockedError, RestoreError, SourceError
from ansible_collections.lifeline.dr.plugins.module_utils.pipeline import Codec
from ansible_collections.lifeline.dr.plugins.module_utils.repository import LocalRepository
from ansible_collections.lifeline.dr.plugins.module_utils.restore import (
    RestoreAction,
    RestoreJob,
    SignalGuard,
    step,
)

IDENTITY, RECIPIENT = generate_age_identity()
CODEC = Codec(recipients=[RECIPIENT], identities=[IDENTITY])
FILES = {"notes.txt": b"restore me\n" * 1000, "keys.json": b'{"secret": true}\n'}
#: how the restored files are named in the target (their artifact names)
RESTORED = {name + CODEC.suffix: data for name, data in FILES.items()}


class _Blob(Source):
    kind = "file"

    def __init__(self, name: str, data: bytes) -> None:
        self.name, self.data, self.meta = name, data, {}

    @contextlib.contextmanager
    def open(self):
        yield io.BytesIO(self.data)


class _Blobs(Component):
    name = "files"

    def prepare(self) -> None:
        pass

    def plan(self) -> list:
        return sorted(FILES)

    def artifacts(self):
        for name, data in sorted(FILES.items()):
            yield _Blob(name, data)


class DirectoryRestore(RestoreJob):
    def __init__(self, entry, *, target_dir: str, root: str, during=None) -> None:
        super().__init__(entry, CODEC, staging_dir=os.path.join(root, "staging"), state_dir=os.path.join(root, "state"))
        self.target_dir, self.during = target_dir, during

    def target(self) -> str:
        return "dir-" + self.target_dir

    def plan(self) -> dict:
        return {"files": {a.name: RestoreAction.CREATE.value for a in self.manifest.artifacts}}

    def to_stage(self, plan: dict) -> list:
        return list(self.manifest.artifacts)

    def apply(self, plan, staging, before_replace) -> dict:
        staged = [self.fetch(art, staging) for art in self.manifest.artifacts]
        if self.during:
            self.during(self, staging)
        with self.guard.shielded():
            for path in staged:
                shutil.copy(path, self.target_dir)
        return {"files": sorted(plan["files"])}


@pytest.fixture
def backed_up(tmp_path):
    repos = [LocalRepository("first", str(tmp_path / "repo1")), LocalRepository("second", str(tmp_path / "repo2"))]
    outcome = run_backup(_Blobs(), repos, CODEC, site="s", host="h1", state_dir=str(tmp_path / "state"), signer=SIGNER)
    assert outcome.stored_in == ["first", "second"]
    return Catalog(repos, trust=trust()).select(site="s", host="h1", component="files", kinds=("full",))


@pytest.fixture
def target_dir(tmp_path):
    path = tmp_path / "target"
    path.mkdir()
    return path


def staged_leftovers(tmp_path) -> list:
    root = tmp_path / "staging"
    return sorted(os.listdir(root)) if root.exists() else []


def test_run_stages_applies_and_reports_the_common_result(tmp_path, backed_up, target_dir):
    result = DirectoryRestore(backed_up, target_dir=str(target_dir), root=str(tmp_path)).run()

    assert {p.name: p.read_bytes() for p in target_dir.iterdir()} == RESTORED
    assert result["files"] == sorted(RESTORED) and result["backup_id"] == backed_up.manifest.backup_id
    assert result["served_by"] == ["first"] and result["warnings"] == []
    assert set(result["phases"]) == {"plan", "fetch"}
    assert staged_leftovers(tmp_path) == []


def test_run_warns_about_a_damaged_copy_it_fell_back_from(tmp_path, backed_up, target_dir):
    path = tmp_path / "repo1" / backed_up.manifest.prefix / "notes.txt.zst.age"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))

    result = DirectoryRestore(backed_up, target_dir=str(target_dir), root=str(tmp_path)).run()

    assert result["served_by"] == ["first", "second"]
    (warning,) = result["warnings"]
    assert "notes.txt.zst.age" in warning and "first" in warning and "second" in warning
    assert (target_dir / "notes.txt.zst.age").read_bytes() == FILES["notes.txt"]


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
def test_a_signal_while_staged_removes_the_plaintext_changes_nothing_and_restores_the_handlers(
        tmp_path, backed_up, target_dir, signum):
    before = signal.getsignal(signum)
    seen = []

    def killed(job, staging):
        seen.extend(os.listdir(staging.path))
        os.kill(os.getpid(), signum)

    with pytest.raises(RestoreError) as err:
        DirectoryRestore(backed_up, target_dir=str(target_dir), root=str(tmp_path), during=killed).run()

    assert "interrupted by %s" % signal.Signals(signum).name in str(err.value)
    assert "notes.txt.zst.age" in seen
    assert staged_leftovers(tmp_path) == [] and list(target_dir.iterdir()) == []
    assert signal.getsignal(signum) is before


def test_a_signal_inside_the_shield_is_recorded_and_the_shielded_work_completes():
    guard = SignalGuard()
    done = []
    with guard.installed():
        with guard.shielded():
            os.kill(os.getpid(), signal.SIGTERM)
            done.append("swap")
    assert done == ["swap"] and guard.received == signal.SIGTERM


def test_a_second_restore_of_the_same_target_is_refused_naming_the_first(tmp_path, backed_up, target_dir):
    def second(job, staging):
        DirectoryRestore(backed_up, target_dir=str(target_dir), root=str(tmp_path)).run()

    with pytest.raises(LockedError) as err:
        DirectoryRestore(backed_up, target_dir=str(target_dir), root=str(tmp_path), during=second).run()

    assert "pid %d" % os.getpid() in str(err.value)
    assert staged_leftovers(tmp_path) == []


def test_staging_left_by_a_killed_restore_is_removed_and_reported(tmp_path, backed_up, target_dir):
    stale = tmp_path / "staging" / "restore-999999999-0badc0de"
    stale.mkdir(parents=True)
    (stale / "notes.txt.zst.age").write_bytes(b"plaintext of a killed run")

    result = DirectoryRestore(backed_up, target_dir=str(target_dir), root=str(tmp_path)).run()

    assert not stale.exists()
    assert any(str(stale) in w for w in result["warnings"])


def test_an_os_error_while_applying_is_a_restore_error_naming_the_backup_and_cause(tmp_path, backed_up):
    missing = tmp_path / "no-such-dir" / "x"

    with pytest.raises(RestoreError) as err:
        DirectoryRestore(backed_up, target_dir=str(missing), root=str(tmp_path)).run()

    assert backed_up.manifest.backup_id in str(err.value) and "No such file or directory" in str(err.value)
    assert staged_leftovers(tmp_path) == []


def test_step_names_the_step_and_lets_engine_errors_through():
    with pytest.raises(RestoreError) as err:
        with step("reading the archive"):
            raise PermissionError(13, "Permission denied", "/srv/x")
    assert str(err.value) == "reading the archive failed: Permission denied (/srv/x)"
    with pytest.raises(SourceError):
        with step("reading the archive"):
            raise SourceError("pg_restore failed")
