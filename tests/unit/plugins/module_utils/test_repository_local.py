# -*- coding: utf-8 -*-
# Copyright: Lifeline contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""LocalRepository: the shared conformance suite, plus what only a directory can get wrong
(modes, a full disk, paths outside the root)."""
from __future__ import annotations

import errno
import os
import stat

import pytest

from repository_suite import RepositoryContract

from faults import FullDisk
from ansible_collections.lifeline.dr.plugins.module_utils.errors import ConfigError, RepositoryError
from ansible_collections.lifeline.dr.plugins.module_utils.config import open_repository
from ansible_collections.lifeline.dr.plugins.module_utils.repository import (
    LocalRepository,
)


def _all_files(root) -> list:
    return sorted(os.path.relpath(os.path.join(d, f), root)
                  for d, _dirs, files in os.walk(root) for f in files)


def _temp_files(root) -> list:
    return [f for f in _all_files(root) if ".lifeline-tmp-" in f]


class TestLocalRepositoryContract(RepositoryContract):
    @pytest.fixture
    def repo(self, tmp_path):
        return LocalRepository("local", str(tmp_path / "repo"))

    def leftovers(self, repo) -> list:
        return _temp_files(repo.root)


@pytest.fixture
def repo(tmp_path):
    return LocalRepository("local", str(tmp_path / "repo"))


@pytest.fixture
def umask():
    """``os.umask`` for one test; the previous umask is restored afterwards."""
    previous = os.umask(0o022)
    os.umask(previous)
    yield os.umask
    os.umask(previous)


# --- modes -----------------------------------------------------------------------------------

@pytest.mark.parametrize("mask", [0o000, 0o022, 0o077])
def test_every_directory_is_0700_and_every_file_0600_whatever_the_umask(tmp_path, umask, mask):
    umask(mask)
    repo = LocalRepository("local", str(tmp_path / "backups" / "repo"))
    repo.put_bytes("site/host/comp/20260101T000000Z-abcd/manifest.json", b"{}")
    modes = {}
    for dirpath, _dirs, files in os.walk(repo.root):
        modes[os.path.relpath(dirpath, repo.root)] = stat.S_IMODE(os.stat(dirpath).st_mode)
        for name in files:
            path = os.path.join(dirpath, name)
            modes[os.path.relpath(path, repo.root)] = stat.S_IMODE(os.stat(path).st_mode)
    assert modes == {
        ".": 0o700, "site": 0o700, "site/host": 0o700, "site/host/comp": 0o700,
        "site/host/comp/20260101T000000Z-abcd": 0o700,
        "site/host/comp/20260101T000000Z-abcd/manifest.json": 0o600,
    }


def test_check_creates_a_missing_root_as_0700(tmp_path, umask):
    umask(0o022)
    repo = LocalRepository("local", str(tmp_path / "new"))
    repo.check()
    assert stat.S_IMODE(os.stat(repo.root).st_mode) == 0o700


# --- full disk -------------------------------------------------------------------------------


@pytest.fixture
def disk_fills_after(monkeypatch):
    real_fdopen = os.fdopen

    def arm(room: int) -> None:
        monkeypatch.setattr(os, "fdopen", lambda *a, **kw: FullDisk(real_fdopen(*a, **kw), room))
    return arm


def test_full_disk_while_writing_is_a_repository_error_and_leaves_no_temp_file(repo, disk_fills_after):
    disk_fills_after(1000)
    writer = repo.open_writer("s/h/c/id/db.dump")
    writer.write(b"x" * 600)
    with pytest.raises(RepositoryError) as info:
        writer.write(b"x" * 600)
    message = str(info.value)
    assert "no space left on device" in message
    assert "s/h/c/id/db.dump" in message
    assert repo.root in message
    writer.abort()  # what a caller does after any failure: must be harmless now
    assert _all_files(repo.root) == []


def test_full_disk_through_put_bytes_leaves_nothing(repo, disk_fills_after):
    disk_fills_after(10)
    with pytest.raises(RepositoryError, match="no space left on device"):
        repo.put_bytes("k", b"y" * 100)
    assert _all_files(repo.root) == []


def test_full_disk_reported_by_fsync_at_commit_leaves_nothing(repo, monkeypatch):
    # Delayed allocation (ext4, XFS, NFS) can report ENOSPC only at fsync; simulated like above.
    writer = repo.open_writer("k")
    writer.write(b"z" * 100)

    def fsync(_fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    monkeypatch.setattr(os, "fsync", fsync)
    with pytest.raises(RepositoryError, match="no space left on device while committing k"):
        writer.commit()
    monkeypatch.undo()
    assert _all_files(repo.root) == []


# --- paths -----------------------------------------------------------------------------------

@pytest.mark.parametrize("key", ["../escape", "a/../../escape", "/tmp/escape"])
def test_a_key_can_never_write_outside_the_root(tmp_path, key):
    repo = LocalRepository("local", str(tmp_path / "repo"))
    with pytest.raises(ConfigError):
        repo.put_bytes(key, b"x")
    assert _all_files(tmp_path) == []


@pytest.mark.parametrize("path", ["", "relative/dir", "./repo"])
def test_a_relative_root_is_a_config_error(path):
    with pytest.raises(ConfigError, match="must be absolute"):
        LocalRepository("local", path)


def test_open_repository_builds_a_local_repository_from_path(tmp_path):
    repo = open_repository({"name": "disk", "path": str(tmp_path)})
    assert isinstance(repo, LocalRepository)
    assert repo.name == "disk"
    assert repo.root == str(tmp_path)


@pytest.mark.parametrize("spec, match", [
    ({"name": "x"}, "needs either path"),
    ({"name": "x", "path": "/srv", "s3": {"bucket": "b"}}, "either path or s3, not both"),
])
def test_open_repository_refuses_an_ambiguous_or_empty_spec(spec, match):
    with pytest.raises(ConfigError, match=match):
        open_repository(spec)


def test_describe_names_the_repository_and_its_directory(repo):
    assert repo.describe() == "local repository 'local' (%s)" % repo.root


def test_a_listing_that_fails_is_an_error_never_an_empty_catalog(tmp_path, monkeypatch):
    # Fault injection: root bypasses permissions, so EACCES on a directory is simulated.
    repo = LocalRepository("disk", str(tmp_path / "repo"))
    repo.put_bytes("fra/db1/postgres/x/manifest.json", b"{}")
    real_scandir = os.scandir

    def denied(path="."):
        if str(path).endswith("db1"):
            raise PermissionError(13, "Permission denied", str(path))
        return real_scandir(path)
    monkeypatch.setattr(os, "scandir", denied)
    with pytest.raises(RepositoryError, match="permission denied while listing"):
        list(repo.list("fra/"))


def test_a_prefix_nothing_was_stored_under_lists_as_empty(tmp_path):
    repo = LocalRepository("disk", str(tmp_path / "repo"))
    assert list(repo.list("fra/db1/")) == []
    repo.put_bytes("other/x", b"1")
    assert list(repo.list("fra/db1/")) == []


def test_a_root_that_is_a_file_is_an_error(tmp_path):
    (tmp_path / "repo").write_bytes(b"not a directory")
    with pytest.raises(RepositoryError, match="listing"):
        list(LocalRepository("disk", str(tmp_path / "repo")).list(""))


def test_new_directories_are_fsynced_into_their_parents(tmp_path, monkeypatch):
    synced = []
    real = LocalRepository.fsync_dir
    monkeypatch.setattr(LocalRepository, "fsync_dir", staticmethod(lambda p: (synced.append(p), real(p))))
    repo = LocalRepository("disk", str(tmp_path / "repo"))
    repo.put_bytes("a/b/c", b"1")
    for parent in (tmp_path, tmp_path / "repo", tmp_path / "repo" / "a"):
        assert str(parent) in synced
