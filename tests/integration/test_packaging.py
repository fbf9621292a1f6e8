# -*- coding: utf-8 -*-
# Copyright: Lifeline contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The collection as a release ships it: `ansible-galaxy collection build` holds the collection
and nothing of a developer's machine, declares its collection dependencies, and an execution
environment built with ansible-builder gets the collection's Python and system requirements."""
from __future__ import annotations

import json
import os
import re
import shutil
import tarfile

import pytest
import yaml

from lifeline_it import ROOT, VENV_BIN
from tools import run

#: files a developer's checkout holds that a release must not (build_ignore in galaxy.yml)
JUNK = [".state/local/services.json", ".state/collections/x", ".venv/bin/python", ".ci/run",
        ".ansible/tmp/x", ".pytest_cache/v/x", "tests/unit/.pytest_cache/x", "tests/output/junit.xml",
        "plugins/module_utils/__pycache__/x.cpython-311.pyc", "tests/lib/x.pyc", "benchmarks/results/run.json",
        "changelogs/.plugin-cache.yaml", "molecule/default/.cache/x", ".mypy_cache/x", "lifeline-dr-0.0.1.tar.gz",
        "context/Containerfile", ".gitignore", "plugins/modules/backup_info.py.swp", "README.md~"]


def _requirements(path: str) -> list:
    """The entries of a pip requirements or bindep file: lines without comments and blanks."""
    with open(os.path.join(ROOT, path), encoding="utf-8") as fh:
        lines = [line.split("#", 1)[0].strip() for line in fh]
    return [line for line in lines if line]


def _tree_with_junk(dest: str) -> None:
    listed = run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT).stdout
    for rel in filter(None, listed.decode().split("\0")):
        src = os.path.join(ROOT, rel)
        if os.path.isfile(src) and not os.path.islink(src):
            os.makedirs(os.path.join(dest, os.path.dirname(rel)), exist_ok=True)
            shutil.copy2(src, os.path.join(dest, rel))
    for rel in JUNK:
        os.makedirs(os.path.join(dest, os.path.dirname(rel)), exist_ok=True)
        with open(os.path.join(dest, rel), "w", encoding="utf-8") as fh:
            fh.write("junk\n")


@pytest.fixture(scope="module")
def tarball(tmp_path_factory) -> str:
    """The collection built from a copy of the checkout that also holds every kind of junk."""
    tree = str(tmp_path_factory.mktemp("tree"))
    out = str(tmp_path_factory.mktemp("build"))
    _tree_with_junk(tree)
    run([os.path.join(VENV_BIN, "ansible-galaxy"), "collection", "build", "--output-path", out], cwd=tree)
    (built,) = os.listdir(out)
    return os.path.join(out, built)


def test_collection_build_leaves_out_the_developers_environment_and_caches(tarball):
    with tarfile.open(tarball) as tar:
        names = tar.getnames()
    shipped_junk = [rel for rel in JUNK if rel in names]
    assert shipped_junk == []
    assert [n for n in names if n.split("/")[0] in {".state", ".venv", ".ci", ".ansible"} or "__pycache__" in n] == []


def test_collection_build_ships_license_changelog_and_ee_metadata(tarball):
    with tarfile.open(tarball) as tar:
        names = set(tar.getnames())
        manifest = json.load(tar.extractfile("MANIFEST.json"))
        copying = tar.extractfile("COPYING").read().decode()
    for needed in ("COPYING", "CHANGELOG.rst", "changelogs/changelog.yaml", "meta/runtime.yml",
                   "meta/execution-environment.yml", "requirements-ee.txt", "bindep.txt",
                   "plugins/modules/postgres_backup.py", "roles/postgresql/tasks/server.yml"):
        assert needed in names
    assert "GNU GENERAL PUBLIC LICENSE" in copying and "Version 3, 29 June 2007" in copying
    assert manifest["collection_info"]["license"] == ["GPL-3.0-or-later"]


def test_every_collection_the_content_uses_is_a_declared_dependency(tarball):
    with tarfile.open(tarball) as tar:
        declared = json.load(tar.extractfile("MANIFEST.json"))["collection_info"]["dependencies"]
    used = set()
    for top in ("roles", "playbooks", "plugins"):
        for dirpath, _dirs, files in os.walk(os.path.join(ROOT, top)):
            for name in files:
                with open(os.path.join(dirpath, name), encoding="utf-8") as fh:
                    used.update(re.findall(r"^\s*-?\s*([a-z0-9_]+\.[a-z0-9_]+)\.[a-z0-9_]+:", fh.read(), re.M))
    used -= {"ansible.builtin", "lifeline.dr"}
    assert "community.postgresql" in used  # the scan does see FQCN tasks
    assert sorted(used) == sorted(declared)


def test_bindep_names_packages_this_debian_host_has(tarball):
    """bindep parses the file and finds every dpkg entry installed (install-deps.sh installs them)."""
    listed = run([os.path.join(VENV_BIN, "bindep"), "--file", os.path.join(ROOT, "bindep.txt"),
                  "--list_all=newline"], text=True).stdout.split()
    assert {"postgresql-client", "zstd", "age"} <= set(listed)
    missing = run([os.path.join(VENV_BIN, "bindep"), "--brief", "--file", os.path.join(ROOT, "bindep.txt")],
                  check=False, text=True)
    assert missing.returncode == 0, missing.stdout


def test_ee_requirements_hold_runtime_libraries_only():
    entries = _requirements("requirements-ee.txt")
    names = {re.split(r"[<>=!~\[ ]", entry, maxsplit=1)[0].lower() for entry in entries}
    assert {"boto3", "cryptography", "psycopg2-binary", "zstandard"} <= names
    assert names.isdisjoint({"pytest", "pytest-testinfra", "moto", "ansible-lint", "molecule", "pyrage",
                             "antsibull-changelog", "ansible-builder", "ansible", "ansible-core"})


def test_ansible_builder_create_renders_an_ee_that_collects_the_collections_requirements(tarball, tmp_path):
    """`ansible-builder create` on execution-environment.yml renders the build context; its
    builder stage (run here, as the Containerfile runs it, on the collection installed from the
    tarball) yields every requirement of requirements-ee.txt and bindep.txt."""
    context = str(tmp_path / "context")
    run([os.path.join(VENV_BIN, "ansible-builder"), "create", "--file", os.path.join(ROOT, "execution-environment.yml"),
         "--context", context], cwd=str(tmp_path))
    with open(os.path.join(context, "Containerfile"), encoding="utf-8") as fh:
        containerfile = fh.read()
    assert "ansible-galaxy collection install" in containerfile
    assert "introspect.py introspect" in containerfile and "install-from-bindep" in containerfile
    with open(os.path.join(context, "_build", "requirements.yml"), encoding="utf-8") as fh:
        galaxy = [c["name"] for c in yaml.safe_load(fh)["collections"]]
    assert "lifeline.dr" in galaxy and "community.postgresql" in galaxy

    # The galaxy stage: the collection installed from the release tarball (cwd outside the
    # checkout, whose ansible.cfg would find the checkout as lifeline.dr instead).
    collections = str(tmp_path / "collections")
    run([os.path.join(VENV_BIN, "ansible-galaxy"), "collection", "install", "--no-deps", "-p", collections,
         tarball], cwd=str(tmp_path))
    # The builder stage: the rendered introspection script over the installed collections.
    pip_out, bindep_out = str(tmp_path / "requirements.txt"), str(tmp_path / "bindep.txt")
    run([os.path.join(VENV_BIN, "python"), os.path.join(context, "_build", "scripts", "introspect.py"),
         "introspect", "--write-pip", pip_out, "--write-bindep", bindep_out, collections])
    with open(pip_out, encoding="utf-8") as fh:
        pip_lines = fh.read().splitlines()
    with open(bindep_out, encoding="utf-8") as fh:
        bindep_lines = fh.read().splitlines()
    assert sorted(pip_lines) == sorted("%s  # from collection lifeline.dr" % r for r in _requirements("requirements-ee.txt"))
    assert sorted(bindep_lines) == sorted("%s  # from collection lifeline.dr" % r for r in _requirements("bindep.txt"))
