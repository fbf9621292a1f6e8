# -*- coding: utf-8 -*-
# Copyright: Lifeline contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A hostile repository cannot hurt the host that restores (issue 6, section 2).

The attacker has what every backing-up host has: write access to the repository and the public
age recipient; in the last tests also a compromised host's own (trusted) signing key. Against a
real PostgreSQL 15 target, each forged backup is refused before anything on the target changes
(pg_dumpall of the whole cluster, roles included, is compared before and after), nothing is
written outside staging, and no command from the backup runs.
"""
from __future__ import annotations

import os
import subprocess
import uuid

import pytest
import keys  # tests/lib, on sys.path through conftest.py

from forge import plaintext_of, put_artifact, read_manifest, write_manifest
from lifeline_it import (
    HOST,
    SITE,
    catalog_entry,
    files_under,
    pg_dumpall_normalized,
    restore_for,
    roles,
    run_backup_for,
)

from ansible_collections.lifeline.dr.plugins.module_utils import config
from ansible_collections.lifeline.dr.plugins.module_utils.errors import RestoreError, UntrustedError
from ansible_collections.lifeline.dr.plugins.module_utils.manifest import FORMAT, VERSION, new_backup_id
from ansible_collections.lifeline.dr.plugins.module_utils.signing import Signer, generate_signing_key
from ansible_collections.lifeline.dr.plugins.module_utils.timeutil import isotime, utcnow

GLOBALS = "globals.sql.zst.age"
EVIL_GLOBALS = b"CREATE ROLE attacker;\nALTER ROLE attacker WITH SUPERUSER LOGIN PASSWORD 'owned';\n"


@pytest.fixture
def local_only(params) -> dict:
    """Restore parameters reading the local repository only (where the attacker writes)."""
    return dict(params, repositories=[params["repositories"][0]])


@pytest.fixture
def marker():
    """A path a command from the backup would create; it must never exist."""
    path = "/tmp/lifeline-hostile-%s" % uuid.uuid4().hex
    yield path
    if os.path.lexists(path):
        os.unlink(path)


def staging_files(params) -> list:
    return files_under(os.path.join(params["state_dir"], "staging"))


def forged_backup(params, source_pg) -> dict:
    """A complete backup as the attacker makes it: a pg_dump archive and globals that create a
    superuser, encrypted to the public recipient, correct sizes and sha256s, a manifest; returns
    the manifest body (not yet stored)."""
    now = isotime(utcnow())
    body = {"format": FORMAT, "version": VERSION, "backup_id": new_backup_id(utcnow()), "site": SITE,
            "host": HOST, "component": "postgres", "kind": "full", "started": now, "finished": now,
            "consistent_at": now, "compression": "zstd", "encryption": "age", "key_id": params["recipients"],
            "artifacts": [], "tools": {"server_major": 15}, "facts": {"databases": ["shop"]}, "labels": [],
            "parent_id": None}
    archive = subprocess.run(["pg_dump", "-Fc", "-h", source_pg.host, "-p", str(source_pg.port), "-U",
                              source_pg.user, "-d", "shop"], env=dict(os.environ, PGPASSWORD=source_pg.password),
                             capture_output=True, check=True).stdout
    put_artifact(params["repositories"][0]["path"], body, GLOBALS, EVIL_GLOBALS, params["recipients"],
                 kind="globals", meta={})
    put_artifact(params["repositories"][0]["path"], body, "db-shop.dump.zst.age", archive, params["recipients"],
                 kind="database", meta={"database": "shop", "owner": "postgres"})
    return body


def _assert_refused_before_any_change(target_pg, before: str, params) -> None:
    assert pg_dumpall_normalized(target_pg) == before
    assert "attacker" not in roles(target_pg)
    assert staging_files(params) == []


def test_forged_unsigned_backup_is_refused_with_untrusted_error_before_anything_changes(
        local_only, source_pg, target_pg):
    body = forged_backup(local_only, source_pg)
    write_manifest(local_only["repositories"][0]["path"], body)  # the attacker holds no signing key
    before = pg_dumpall_normalized(target_pg)

    with pytest.raises(UntrustedError) as latest:
        restore_for(local_only, target_pg)
    with pytest.raises(UntrustedError) as by_id:
        restore_for(local_only, target_pg, point=body["backup_id"])

    assert "not signed" in str(latest.value) and "no trusted postgres backup" in str(latest.value)
    assert "backup %s is refused" % body["backup_id"] in str(by_id.value) and "not signed" in str(by_id.value)
    _assert_refused_before_any_change(target_pg, before, local_only)


def test_forged_backup_signed_by_another_hosts_key_is_refused(local_only, source_pg, target_pg):
    other_private, other_public = generate_signing_key()
    trusting = dict(local_only, trusted_signers={HOST: [keys.PUBLIC_PEM], "other": [other_public]})
    body = forged_backup(trusting, source_pg)
    write_manifest(trusting["repositories"][0]["path"], body, Signer(other_private))
    before = pg_dumpall_normalized(target_pg)

    with pytest.raises(UntrustedError) as err:
        restore_for(trusting, target_pg, point=body["backup_id"])

    assert "does not verify with any key trusted for host %r" % HOST in str(err.value)
    _assert_refused_before_any_change(target_pg, before, trusting)


def test_signed_backup_with_a_path_traversal_artifact_name_is_refused_and_nothing_is_written_outside_staging(
        local_only, source_pg, target_pg, marker):
    body = forged_backup(local_only, source_pg)
    shop = next(a for a in body["artifacts"] if a["kind"] == "database")
    shop["name"] = "../../../.." + marker
    write_manifest(local_only["repositories"][0]["path"], body, keys.SIGNER)  # a compromised host signs
    before = pg_dumpall_normalized(target_pg)

    with pytest.raises(UntrustedError) as err:
        restore_for(local_only, target_pg, point=body["backup_id"])

    assert "unsafe artifact name" in str(err.value) and marker in str(err.value)
    assert not os.path.lexists(marker)
    _assert_refused_before_any_change(target_pg, before, local_only)


def _with_globals_line(params, backup_id: str, line: str) -> int:
    """Insert ``line`` into the real globals of ``backup_id`` after its first CREATE ROLE, and
    re-sign the manifest with the trusted key (a compromised host); returns the line number."""
    entry = catalog_entry(params, backup_id)
    text = plaintext_of(entry, config.codec(params), GLOBALS).decode()
    lines = text.splitlines()
    at = next(i for i, t in enumerate(lines) if t.startswith("CREATE ROLE")) + 1
    lines.insert(at, line)
    repo = params["repositories"][0]["path"]
    body = read_manifest(repo, backup_id)
    os.unlink(os.path.join(repo, SITE, HOST, "postgres", backup_id, GLOBALS))
    put_artifact(repo, body, GLOBALS, ("\n".join(lines) + "\n").encode(), params["recipients"],
                 kind="globals", meta={})
    write_manifest(repo, body, keys.SIGNER)
    return at + 1


@pytest.mark.parametrize("command", [
    "\\! touch {marker}",
    "\\o {marker}",
    "\\copy (SELECT 1) TO PROGRAM 'touch {marker}'",
    "\\restrict abc123 \\! touch {marker}",
])
def test_signed_backup_whose_globals_hold_a_psql_meta_command_is_refused_and_runs_nothing(
        local_only, target_pg, marker, command):
    backup_id = run_backup_for(local_only).manifest.backup_id
    line = _with_globals_line(local_only, backup_id, command.format(marker=marker))
    before = pg_dumpall_normalized(target_pg)

    with pytest.raises(RestoreError) as err:
        restore_for(local_only, target_pg)

    assert "globals.sql line %d: psql meta-command" % line in str(err.value)
    assert not os.path.lexists(marker)
    assert pg_dumpall_normalized(target_pg) == before
    assert staging_files(local_only) == []


def test_signed_backup_whose_globals_run_a_server_side_program_is_refused_and_runs_nothing(
        local_only, target_pg, marker):
    backup_id = run_backup_for(local_only).manifest.backup_id
    line = _with_globals_line(local_only, backup_id, "COPY (SELECT 1) TO PROGRAM 'touch %s';" % marker)
    before = pg_dumpall_normalized(target_pg)

    with pytest.raises(RestoreError) as err:
        restore_for(local_only, target_pg)

    assert "globals.sql line %d" % line in str(err.value) and "pg_dumpall --globals-only" in str(err.value)
    assert not os.path.lexists(marker)
    assert pg_dumpall_normalized(target_pg) == before
