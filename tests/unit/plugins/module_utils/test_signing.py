# -*- coding: utf-8 -*-
# Copyright: Lifeline contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Manifest signatures: only the host's own trusted key makes a manifest acceptable."""
from __future__ import annotations

import json
import subprocess

import pytest

from ansible_collections.lifeline.dr.plugins.module_utils.errors import ConfigError, UntrustedError
from ansible_collections.lifeline.dr.plugins.module_utils.signing import (
    Signer,
    TrustStore,
    canonical,
    generate_signing_key,
)

BODY = {"format": "lifeline-manifest", "version": 1, "host": "db1", "artifacts": [{"name": "a", "size": 1}]}


@pytest.fixture(scope="module")
def keypair():
    return generate_signing_key()


@pytest.fixture(scope="module")
def other():
    return generate_signing_key()


def test_a_signed_body_verifies_with_the_hosts_key_and_names_it(keypair):
    private, public = keypair
    signer = Signer(private)
    signed = signer.sign(BODY)
    assert TrustStore({"db1": [public]}).verify(signed, host="db1", where="m") == signer.key_id


def test_any_changed_field_breaks_the_signature(keypair):
    private, public = keypair
    signed = Signer(private).sign(BODY)
    tampered = json.loads(json.dumps(signed))
    tampered["artifacts"][0]["size"] = 2
    with pytest.raises(UntrustedError, match="does not verify"):
        TrustStore({"db1": [public]}).verify(tampered, host="db1", where="m")


def test_a_key_trusted_for_another_host_is_refused(keypair, other):
    # host A's key on host B's backup: B trusts only its own key.
    signed_by_a = Signer(keypair[0]).sign(dict(BODY, host="db2"))
    with pytest.raises(UntrustedError, match="host 'db2'"):
        TrustStore({"db1": [keypair[1]], "db2": [other[1]]}).verify(signed_by_a, host="db2", where="m")


def test_a_host_without_trusted_keys_is_refused_with_the_variable_to_set(keypair):
    signed = Signer(keypair[0]).sign(BODY)
    with pytest.raises(UntrustedError, match=r"lifeline_trusted_signers\['db1'\]"):
        TrustStore({}).verify(signed, host="db1", where="m")


def test_unsigned_is_refused_unless_allowed_for_the_run(keypair):
    with pytest.raises(UntrustedError, match="not signed.*lifeline_allow_unsigned"):
        TrustStore({"db1": [keypair[1]]}).verify(BODY, host="db1", where="m")
    assert TrustStore({}, allow_unsigned=True).verify(BODY, host="db1", where="m") is None


def test_allow_unsigned_does_not_accept_a_bad_signature(keypair, other):
    signed = Signer(other[0]).sign(BODY)
    with pytest.raises(UntrustedError):
        TrustStore({"db1": [keypair[1]]}, allow_unsigned=True).verify(signed, host="db1", where="m")


@pytest.mark.parametrize("sig", [None, "x", {"alg": "rsa", "value": "AA=="}, {"alg": "ed25519", "value": "!!"},
                                 {"alg": "ed25519", "value": 5}])
def test_a_malformed_signature_member_is_refused(keypair, sig):
    body = dict(BODY, signature=sig) if sig is not None else dict(BODY, signature={})
    with pytest.raises(UntrustedError):
        TrustStore({"db1": [keypair[1]]}, allow_unsigned=True).verify(body, host="db1", where="m")


def test_rotation_any_listed_key_verifies(keypair, other):
    signed = Signer(other[0]).sign(BODY)
    assert TrustStore({"db1": [keypair[1], other[1]]}).verify(signed, host="db1", where="m")


def test_canonical_form_ignores_key_order_and_the_signature_member():
    assert canonical({"b": 1, "a": [1, "é"]}) == canonical({"a": [1, "é"], "b": 1, "signature": {}})
    assert canonical({"a": "é"}) == b'{"a":"\\u00e9"}'


def test_a_key_made_by_openssl_signs(tmp_path, keypair):
    pem = tmp_path / "k.pem"
    subprocess.run(["openssl", "genpkey", "-algorithm", "ed25519", "-out", str(pem)], check=True)
    pub = subprocess.run(["openssl", "pkey", "-in", str(pem), "-pubout"], check=True,
                         capture_output=True, text=True).stdout
    signed = Signer(pem.read_text()).sign(BODY)
    assert TrustStore({"db1": [pub]}).verify(signed, host="db1", where="m")


@pytest.mark.parametrize("bad", ["", "hello", "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----"])
def test_a_bad_signing_key_says_how_to_make_one_and_never_echoes_it(bad):
    with pytest.raises(ConfigError, match="openssl genpkey -algorithm ed25519") as err:
        Signer(bad)
    assert "AAAA" not in str(err.value)


def test_an_rsa_key_is_not_a_signing_key(tmp_path):
    pem = tmp_path / "rsa.pem"
    subprocess.run(["openssl", "genpkey", "-algorithm", "rsa", "-pkeyopt", "rsa_keygen_bits:1024",
                    "-out", str(pem)], check=True, capture_output=True)
    with pytest.raises(ConfigError, match="not an Ed25519"):
        Signer(pem.read_text())


def test_a_private_key_given_as_trusted_signer_is_refused_without_echoing_it(keypair):
    with pytest.raises(ConfigError, match="PRIVATE key") as err:
        TrustStore({"db1": [keypair[0]]})
    assert keypair[0].splitlines()[1] not in str(err.value)


def test_trusted_signers_must_be_a_mapping():
    with pytest.raises(ConfigError, match="map host names"):
        TrustStore(["pem"])  # type: ignore[arg-type]


def test_signer_repr_names_only_the_key_id(keypair):
    signer = Signer(keypair[0])
    assert repr(signer) == "<Signer %s>" % signer.key_id
    assert "PRIVATE" not in repr(signer)
