# -*- coding: utf-8 -*-
# Copyright: Lifeline contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The catalog as the gate against a hostile repository, and what "latest" may pick: only
manifests signed by a key trusted for their host; only complete full backups (or resolvable
incremental chains), never a safety backup, unless asked by id."""
from __future__ import annotations

import json

import pytest
from keys import PUBLIC_PEM, SIGNER, trust
from test_catalog import SCOPE, ids, manifest, store

from ansible_collections.lifeline.dr.plugins.module_utils.catalog import SAFETY_LABEL, Catalog
from ansible_collections.lifeline.dr.plugins.module_utils.errors import (
    IntegrityError,
    NotFoundError,
    UntrustedError,
)
from ansible_collections.lifeline.dr.plugins.module_utils.manifest import MANIFEST_NAME
from ansible_collections.lifeline.dr.plugins.module_utils.repository import LocalRepository
from ansible_collections.lifeline.dr.plugins.module_utils.signing import Signer, TrustStore, generate_signing_key


@pytest.fixture
def repo(tmp_path):
    return LocalRepository("first", str(tmp_path / "first"))


def test_a_forged_newest_backup_is_refused_and_latest_is_the_newest_trusted_one(repo):
    good = manifest("20261122T020000Z-0001", finished="2026-11-22T02:10:00Z")
    store(repo, good)
    forged = manifest("20261123T020000Z-0002", finished="2026-11-23T02:10:00Z")
    attacker = Signer(generate_signing_key()[0])
    repo.put_bytes(forged.prefix + MANIFEST_NAME, forged.to_json(attacker))
    catalog = Catalog([repo], trust=trust())
    assert catalog.select(**SCOPE).manifest.backup_id == "20261122T020000Z-0001"
    assert "20261123T020000Z-0002" in catalog.rejected
    assert any("does not verify" in w for w in catalog.warnings)
    with pytest.raises(UntrustedError, match="20261123T020000Z-0002 is refused: .*does not verify"):
        catalog.select(**SCOPE, point="20261123T020000Z-0002")


def test_an_unsigned_manifest_is_refused_unless_allowed_and_then_warned_about(repo):
    m = manifest("20261123T020000Z-0001", finished="2026-11-23T02:10:00Z")
    repo.put_bytes(m.prefix + MANIFEST_NAME, m.to_json())  # as 0.1.0 wrote it
    with pytest.raises(UntrustedError, match="no trusted postgres backup.*not signed"):
        Catalog([repo], trust=trust()).select(**SCOPE)
    allowing = Catalog([repo], trust=trust(allow_unsigned=True))
    entry = allowing.select(**SCOPE)
    assert entry.signed_by is None
    assert any("unsigned" in w for w in allowing.warnings)


def test_a_signed_manifest_edited_afterwards_is_refused(repo):
    m = manifest("20261123T020000Z-0001", finished="2026-11-23T02:10:00Z")
    key = store(repo, m)
    data = json.loads(repo.get_bytes(key))
    data["artifacts"][0]["sha256"] = "f" * 64  # point it at other bytes
    repo.put_bytes(key, json.dumps(data).encode())
    catalog = Catalog([repo], trust=trust())
    assert catalog.entries(**SCOPE) == []
    assert "does not verify" in catalog.rejected["20261123T020000Z-0001"]


def test_another_hosts_key_cannot_sign_for_this_host(repo):
    # db2 holds its own signing key and S3 write access: it writes a manifest claiming to be db1's.
    db2_key = Signer(generate_signing_key()[0])
    m = manifest("20261123T020000Z-0001", finished="2026-11-23T02:10:00Z")
    repo.put_bytes(m.prefix + MANIFEST_NAME, m.to_json(db2_key))
    signers = {"db1": [PUBLIC_PEM], "db2": [db2_key.public_pem]}
    catalog = Catalog([repo], trust=TrustStore(signers))
    assert catalog.entries(**SCOPE) == []
    assert "host 'db1'" in catalog.rejected["20261123T020000Z-0001"]


@pytest.mark.parametrize("name", ["../../../../etc/shadow", "a/b", "..", "x\x00y", "", ".hidden", "a..b"])
def test_a_manifest_with_an_unsafe_artifact_name_is_refused_even_when_signed(repo, name):
    m = manifest("20261123T020000Z-0001", finished="2026-11-23T02:10:00Z")
    m.artifacts[0].name = name
    repo.put_bytes(m.prefix + MANIFEST_NAME, m.to_json(SIGNER))
    catalog = Catalog([repo], trust=trust())
    assert catalog.entries(**SCOPE) == []
    assert "unsafe artifact name" in catalog.rejected["20261123T020000Z-0001"]


@pytest.mark.parametrize("field, value", [("size", -1), ("size", "10"), ("sha256", "x"), ("kind", "../x"),
                                          ("meta", [])])
def test_a_manifest_with_malformed_artifact_fields_is_refused_even_when_signed(repo, field, value):
    m = manifest("20261123T020000Z-0001", finished="2026-11-23T02:10:00Z")
    setattr(m.artifacts[0], field, value)
    repo.put_bytes(m.prefix + MANIFEST_NAME, m.to_json(SIGNER))
    assert Catalog([repo], trust=trust()).entries(**SCOPE) == []


# --- what "latest" may pick -------------------------------------------------------------------

def test_latest_skips_schema_and_data_only_dumps_and_safety_backups(repo):
    store(repo, manifest("20261121T020000Z-0001", finished="2026-11-21T02:10:00Z"))
    schema = manifest("20261122T020000Z-0002", finished="2026-11-22T02:10:00Z")
    schema.kind = "schema"
    store(repo, schema)
    safety = manifest("20261123T020000Z-0003", finished="2026-11-23T02:10:00Z")
    safety.labels = [SAFETY_LABEL]
    store(repo, safety)
    catalog = Catalog([repo], trust=trust())
    assert catalog.select(**SCOPE).manifest.backup_id == "20261121T020000Z-0001"
    assert catalog.select(**SCOPE, point="2026-11-24T00:00:00Z").manifest.backup_id == "20261121T020000Z-0001"
    # asked for by id, or with the kind or safety flag, they are returned
    assert catalog.select(**SCOPE, point="20261122T020000Z-0002").manifest.kind == "schema"
    assert catalog.select(**SCOPE, kinds=["schema"]).manifest.backup_id == "20261122T020000Z-0002"
    assert catalog.select(**SCOPE, include_safety=True).manifest.backup_id == "20261123T020000Z-0003"


def test_only_schema_dumps_gives_an_error_that_says_so(repo):
    schema = manifest("20261122T020000Z-0002", finished="2026-11-22T02:10:00Z")
    schema.kind = "schema"
    store(repo, schema)
    with pytest.raises(NotFoundError, match="of kind full/incremental.*1 of other kinds"):
        Catalog([repo], trust=trust()).select(**SCOPE)


# --- incremental chains ----------------------------------------------------------------------

def _incremental(backup_id: str, parent: str, finished: str):
    m = manifest(backup_id, finished=finished)
    m.kind, m.parent_id = "incremental", parent
    return m


def test_chain_resolves_an_incremental_back_to_its_full_backup(repo):
    store(repo, manifest("20261121T020000Z-0001", finished="2026-11-21T02:10:00Z"))
    store(repo, _incremental("20261122T020000Z-0002", "20261121T020000Z-0001", "2026-11-22T02:10:00Z"))
    store(repo, _incremental("20261123T020000Z-0003", "20261122T020000Z-0002", "2026-11-23T02:10:00Z"))
    catalog = Catalog([repo], trust=trust())
    latest = catalog.select(**SCOPE)
    assert latest.manifest.backup_id == "20261123T020000Z-0003"
    assert ids(catalog.chain(latest)) == ["20261121T020000Z-0001", "20261122T020000Z-0002",
                                          "20261123T020000Z-0003"]


def test_chain_names_the_missing_link(repo):
    store(repo, manifest("20261121T020000Z-0001", finished="2026-11-21T02:10:00Z"))
    store(repo, _incremental("20261123T020000Z-0003", "20261122T020000Z-0002", "2026-11-23T02:10:00Z"))
    catalog = Catalog([repo], trust=trust())
    with pytest.raises(NotFoundError, match="20261123T020000Z-0003 needs its parent 20261122T020000Z-0002"):
        catalog.chain(catalog.select(**SCOPE))


def test_chain_names_an_untrusted_link_with_its_cause(repo):
    store(repo, manifest("20261121T020000Z-0001", finished="2026-11-21T02:10:00Z"))
    middle = _incremental("20261122T020000Z-0002", "20261121T020000Z-0001", "2026-11-22T02:10:00Z")
    repo.put_bytes(middle.prefix + MANIFEST_NAME, middle.to_json())  # unsigned
    store(repo, _incremental("20261123T020000Z-0003", "20261122T020000Z-0002", "2026-11-23T02:10:00Z"))
    catalog = Catalog([repo], trust=trust())
    with pytest.raises(NotFoundError, match="parent 20261122T020000Z-0002.*not signed"):
        catalog.chain(catalog.select(**SCOPE))


def test_chain_refuses_a_parent_that_does_not_precede_its_child(repo):
    store(repo, manifest("20261121T020000Z-0001", finished="2026-11-25T02:10:00Z"))
    store(repo, _incremental("20261123T020000Z-0003", "20261121T020000Z-0001", "2026-11-23T02:10:00Z"))
    catalog = Catalog([repo], trust=trust())
    with pytest.raises(IntegrityError, match="does not precede"):
        catalog.chain(catalog.select(**SCOPE, point="20261123T020000Z-0003"))


# --- nothing read twice ----------------------------------------------------------------------

class CountingRepository(LocalRepository):
    """A real local repository that counts the objects read and the listings made."""

    def __init__(self, *args) -> None:
        super().__init__(*args)
        self.reads, self.listings = [], 0

    def get_bytes(self, key: str) -> bytes:
        self.reads.append(key)
        return super().get_bytes(key)

    def list(self, prefix: str = ""):
        self.listings += 1
        return super().list(prefix)


def test_selecting_by_id_reads_that_manifest_only(tmp_path):
    repo = CountingRepository("first", str(tmp_path / "r"))
    for day in range(1, 8):
        store(repo, manifest("202611%02dT020000Z-000%d" % (day, day), finished="2026-11-%02dT02:10:00Z" % day))
    entry = Catalog([repo], trust=trust()).select(**SCOPE, point="20261103T020000Z-0003")
    assert entry.manifest.backup_id == "20261103T020000Z-0003"
    assert repo.reads == ["fra/db1/postgres/20261103T020000Z-0003/manifest.json"] and repo.listings == 0


def test_an_untrusted_backup_asked_for_by_id_is_still_refused_with_its_cause(tmp_path):
    repo = CountingRepository("first", str(tmp_path / "r"))
    m = manifest("20261123T020000Z-0001", finished="2026-11-23T02:10:00Z")
    repo.put_bytes(m.prefix + MANIFEST_NAME, m.to_json())  # unsigned
    with pytest.raises(UntrustedError, match="not signed"):
        Catalog([repo], trust=trust()).select(**SCOPE, point="20261123T020000Z-0001")


def test_one_catalog_lists_each_scope_once_however_often_it_is_asked(tmp_path):
    repo = CountingRepository("first", str(tmp_path / "r"))
    store(repo, manifest("20261121T020000Z-0001", finished="2026-11-21T02:10:00Z"))
    catalog = Catalog([repo], trust=trust())
    catalog.entries(**SCOPE)
    latest = catalog.select(**SCOPE)
    catalog.chain(latest)
    assert repo.listings == 1 and len(repo.reads) == 1


def test_codec_opens_says_whether_the_identity_matches_the_recorded_key_ids():
    from ansible_collections.lifeline.dr.plugins.module_utils.crypto import generate_age_identity
    from ansible_collections.lifeline.dr.plugins.module_utils.pipeline import Codec
    identity, recipient = generate_age_identity()
    other = generate_age_identity()[0]
    m = manifest("20261121T020000Z-0001", finished="2026-11-21T02:10:00Z")
    m.encryption, m.key_id = "age", [recipient]
    assert Codec(identities=[identity]).opens(m)
    assert not Codec(identities=[other]).opens(m)
    assert Codec(identities=[other, identity]).opens(m)
    m.encryption, m.key_id = "aes-256-gcm", ["aes:0000"]
    assert not Codec(encryption="aes-256-gcm", aes_key="ab" * 32).opens(m)
