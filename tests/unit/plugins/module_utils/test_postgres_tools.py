# -*- coding: utf-8 -*-
# Copyright: Lifeline contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Which client tool version runs. Only PostgreSQL 15 is installed on this machine, so the other
versions are STAND-INS: tmp directories laid out like Debian's /usr/lib/postgresql/N/bin holding
executable scripts that answer ``--version`` as that release's tool would. They prove the
selection logic, not that the real 13/14/16/17 binaries behave."""
from __future__ import annotations

import os

import pytest

from ansible_collections.lifeline.dr.plugins.module_utils.errors import DependencyError
from ansible_collections.lifeline.dr.plugins.module_utils.postgres_tools import find_tool


def stand_in(directory, name: str, version: str) -> str:
    """An executable stand-in for ``name`` of PostgreSQL ``version`` (not the real tool)."""
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(str(directory), name)
    with open(path, "w", encoding="utf-8") as fh:
        fh.write("#!/bin/sh\necho '%s (PostgreSQL) %s (Debian %s-1.pgdg120+1)'\n" % (name, version, version))
    os.chmod(path, 0o755)
    return path


@pytest.fixture
def debian_root(tmp_path):
    """Returns a function installing stand-ins of ``name`` for the given versions, Debian-style."""
    root = tmp_path / "usr-lib-postgresql"

    def install(name: str, *versions: str) -> str:
        for version in versions:
            stand_in(root / version.split(".")[0] / "bin", name, version)
        return str(root)
    return install


def test_backup_uses_the_pg_dump_of_the_servers_major_version_when_installed(debian_root):
    root = debian_root("pg_dump", "15.8", "16.4", "17.2")
    tool = find_tool("pg_dump", at_least=15, prefer=15, root=root, path="")
    assert (tool.major, tool.version) == (15, "15.8")
    assert tool.path == os.path.join(root, "15", "bin", "pg_dump")


def test_backup_falls_back_to_the_newest_pg_dump_not_older_than_the_server(debian_root):
    root = debian_root("pg_dump", "13.16", "16.4", "17.2")
    assert find_tool("pg_dump", at_least=15, prefer=15, root=root, path="").version == "17.2"


def test_backup_without_a_new_enough_pg_dump_names_the_package_to_install(debian_root):
    root = debian_root("pg_dump", "13.16", "15.8")
    with pytest.raises(DependencyError) as err:
        find_tool("pg_dump", at_least=16, prefer=16, root=root, path="")
    assert "postgresql-client-16" in str(err.value) and "15.8" in str(err.value)


def test_restore_of_a_pg_dump_16_archive_into_a_15_server_uses_pg_restore_16(debian_root):
    root = debian_root("pg_restore", "15.8", "16.4")
    assert find_tool("pg_restore", at_least=16, prefer=15, root=root, path="").version == "16.4"


def test_restore_of_a_pg_dump_16_archive_with_only_pg_restore_15_names_postgresql_client_16(debian_root):
    root = debian_root("pg_restore", "15.8")
    with pytest.raises(DependencyError, match="postgresql-client-16"):
        find_tool("pg_restore", at_least=16, prefer=15, root=root, path="")


def test_restore_prefers_the_target_servers_pg_restore_when_it_reads_the_archive(debian_root):
    root = debian_root("pg_restore", "15.8", "16.4", "17.2")
    assert find_tool("pg_restore", at_least=15, prefer=16, root=root, path="").version == "16.4"


def test_without_the_debian_layout_the_tool_on_path_is_judged_by_the_version_it_reports(tmp_path):
    bindir = tmp_path / "bin"
    stand_in(bindir, "pg_dump", "16.1")
    tool = find_tool("pg_dump", at_least=15, prefer=15, root=str(tmp_path / "none"), path=str(bindir))
    assert (tool.major, tool.path) == (16, str(bindir / "pg_dump"))
    with pytest.raises(DependencyError, match="postgresql-client-17"):
        find_tool("pg_dump", at_least=17, prefer=17, root=str(tmp_path / "none"), path=str(bindir))


def test_debians_pg_wrapper_on_path_is_not_a_candidate(tmp_path, debian_root):
    root = debian_root("pg_dump", "15.8")
    wrapper = stand_in(tmp_path / "share", "pg_wrapper", "17.2")
    (tmp_path / "bin").mkdir()
    os.symlink(wrapper, tmp_path / "bin" / "pg_dump")
    assert find_tool("pg_dump", at_least=15, root=root, path=str(tmp_path / "bin")).version == "15.8"


def test_bin_dir_is_the_only_candidate_and_must_be_new_enough(tmp_path, debian_root):
    root = debian_root("pg_restore", "17.2")
    stand_in(tmp_path / "custom", "pg_restore", "14.13")
    assert find_tool("pg_restore", at_least=13, bin_dir=str(tmp_path / "custom"), root=root).version == "14.13"
    with pytest.raises(DependencyError, match="14.13"):
        find_tool("pg_restore", at_least=15, bin_dir=str(tmp_path / "custom"), root=root)
    with pytest.raises(DependencyError, match="not found in"):
        find_tool("psql", bin_dir=str(tmp_path / "custom"), root=root)


def test_a_tool_that_reports_no_postgresql_version_is_an_error_naming_it(tmp_path):
    path = tmp_path / "9" / "bin" / "pg_dump"
    path.parent.mkdir(parents=True)
    path.write_text("#!/bin/sh\necho 'something else'\n")
    path.chmod(0o755)
    with pytest.raises(DependencyError, match="did not report a PostgreSQL version"):
        find_tool("pg_dump", root=str(tmp_path), path="")


def test_the_real_pg_dump_15_on_this_machine_is_found_with_its_version():
    tool = find_tool("pg_dump", at_least=15, prefer=15)
    assert tool.major == 15 and tool.version.startswith("15.")
