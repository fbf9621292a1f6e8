# -*- coding: utf-8 -*-
# Copyright: Lifeline contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Staging on a real file system: its own 0700 directory, names that cannot leave it, no
symlink followed, nothing left behind, and directories of dead restores cleaned up."""
from __future__ import annotations

import os
import pwd
import stat
import subprocess

import pytest

from ansible_collections.lifeline.dr.plugins.module_utils.errors import RestoreError
from ansible_collections.lifeline.dr.plugins.module_utils.staging import Staging, remove_stale


def mode(path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def dead_pid() -> int:
    proc = subprocess.Popen(["true"])  # pylint: disable=consider-using-with
    proc.wait()
    return proc.pid


def test_staging_makes_its_own_0700_directory_and_leaves_an_existing_staging_dir_mode_alone(tmp_path):
    shared = tmp_path / "tmp"
    shared.mkdir()
    os.chmod(shared, 0o1777)

    with Staging(str(shared)) as staging:
        assert os.path.dirname(staging.path) == str(shared)
        assert mode(staging.path) == 0o700
        with open(os.path.join(staging.path, "owner"), encoding="ascii") as fh:
            assert fh.read().split()[1] == str(os.getpid())

    assert mode(shared) == 0o1777
    assert os.listdir(shared) == []


def test_staging_creates_a_missing_staging_dir_0700(tmp_path):
    with Staging(str(tmp_path / "new" / "staging")):
        assert mode(tmp_path / "new" / "staging") == 0o700


def test_staged_files_are_0600_and_removed_with_the_directory_when_the_restore_fails(tmp_path):
    with pytest.raises(ValueError):
        with Staging(str(tmp_path)) as staging:
            staging.write_bytes("globals.sql.zst.age", b"CREATE ROLE secret;")
            assert mode(staging.file_path("globals.sql.zst.age")) == 0o600
            raise ValueError("restore failed")
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("name", ["../escaped", "../../../../tmp/x", "a/b", "..", ".hidden", "", "a\0b", "/etc/x"])
def test_staging_refuses_a_name_that_is_not_one_safe_path_part(tmp_path, name):
    with Staging(str(tmp_path / "staging")) as staging:
        with pytest.raises(RestoreError) as err:
            staging.create(name)
        assert "one path part" in str(err.value)
        assert os.listdir(staging.path) == ["owner"]
    assert sorted(os.listdir(tmp_path)) == ["staging"]


def test_staging_never_follows_a_symlink_planted_under_a_staged_name(tmp_path):
    victim = tmp_path / "victim"
    victim.write_bytes(b"precious")
    with Staging(str(tmp_path / "staging")) as staging:
        os.symlink(victim, staging.file_path("db-shop.dump"))
        with pytest.raises(RestoreError) as err:
            staging.create("db-shop.dump")
        assert "File exists" in str(err.value)
    assert victim.read_bytes() == b"precious"


def test_read_text_refuses_bytes_that_are_not_utf8(tmp_path):
    with Staging(str(tmp_path)) as staging:
        staging.write_bytes("globals.sql", b"CREATE ROLE \xff;")
        with pytest.raises(RestoreError) as err:
            staging.read_text("globals.sql")
    assert "not UTF-8" in str(err.value)


def test_check_space_names_the_staging_dir_and_the_fix(tmp_path):
    with Staging(str(tmp_path)) as staging:
        with pytest.raises(RestoreError) as err:
            staging.check_space(1 << 60)
    assert str(tmp_path) in str(err.value) and "staging_dir" in str(err.value)


def _leftover(root, pid: int, *, marker: bool = True) -> str:
    path = os.path.join(root, "restore-%d-0badc0de" % pid)
    os.mkdir(path, 0o700)
    with open(os.path.join(path, "db-shop.dump"), "wb") as fh:
        fh.write(b"decrypted dump")
    if marker:
        with open(os.path.join(path, "owner"), "w", encoding="ascii") as fh:
            fh.write("%s %d 1\n" % (os.uname().nodename, pid))
    return path


def test_remove_stale_removes_the_directory_of_a_dead_restore_and_says_so(tmp_path):
    pid = dead_pid()
    stale = _leftover(tmp_path, pid)
    unmarked = _leftover(tmp_path, dead_pid(), marker=False)

    warnings = remove_stale(str(tmp_path))

    assert not os.path.exists(stale) and not os.path.exists(unmarked)
    assert len(warnings) == 2 and any(stale in w and "pid %d" % pid in w for w in warnings)


def test_remove_stale_keeps_a_running_restore_and_what_is_not_its_own(tmp_path):
    live = os.path.join(tmp_path, "restore-%d-0badc0de" % os.getpid())
    os.mkdir(live)
    with open(os.path.join(live, "owner"), "w", encoding="ascii") as fh:
        fh.write("%s %d -\n" % (os.uname().nodename, os.getpid()))
    foreign = _leftover(tmp_path, dead_pid())
    nobody = pwd.getpwnam("nobody")
    os.chown(foreign, nobody.pw_uid, nobody.pw_gid)
    other_name = tmp_path / "backups"
    other_name.mkdir()
    target = tmp_path / "elsewhere"
    target.mkdir()
    (target / "keep").write_bytes(b"x")
    os.symlink(target, os.path.join(tmp_path, "restore-%d-0badc0df" % dead_pid()))

    assert remove_stale(str(tmp_path)) == []

    assert os.path.isdir(live) and os.path.isdir(foreign) and other_name.is_dir()
    assert (target / "keep").read_bytes() == b"x"


def test_remove_stale_of_a_missing_staging_dir_is_a_no_op(tmp_path):
    assert remove_stale(str(tmp_path / "absent")) == []
