# -*- coding: utf-8 -*-
# Copyright: Lifeline contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The encryption front: scheme selection, key validation and ids, messages free of secrets,
and the emergency path with stock tools."""
from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from ansible_collections.lifeline.dr.plugins.module_utils import crypto
from ansible_collections.lifeline.dr.plugins.module_utils.crypto import Encryption
from ansible_collections.lifeline.dr.plugins.module_utils.errors import (
    ConfigError,
    DecryptionError,
    IntegrityError,
)

# Generated once with `age-keygen`; a test key only.
KAT_IDENTITY = "AGE-SECRET-KEY-13V86MUXLE4YSQFWF5ZPZ8CP3S45SJZLW58P20Y37WWMG9ZUSZSPQKL40FG"
KAT_RECIPIENT = "age1tftvp5r0dqu3dgxgrfxcw9mmxs8lglnn9zxtuug55k8t23pha5rq5wu9w9"
AES_KEY = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
AAD = b"lifeline/20260101T000000Z/db.dump.zst"


def run(transform, data: bytes, piece: int = 65537) -> bytes:
    out = [transform.update(data[i:i + piece]) for i in range(0, len(data), piece)]
    return b"".join(out) + transform.finalize()


def keys(scheme: Encryption) -> tuple[dict, dict]:
    if scheme is Encryption.AGE:
        return {"recipients": [KAT_RECIPIENT]}, {"identities": [KAT_IDENTITY]}
    if scheme is Encryption.AES_GCM:
        return {"aes_key": AES_KEY}, {"aes_key": AES_KEY}
    return {}, {}


def test_scheme_values_are_what_manifests_store():
    assert [e.value for e in Encryption] == ["age", "aes-256-gcm", "none"]
    assert Encryption("aes-256-gcm") is Encryption.AES_GCM


@pytest.mark.parametrize("scheme", list(Encryption))
@pytest.mark.parametrize("size", [0, 1, 65536, (1 << 20) + 7])
def test_round_trip_through_the_front(scheme, size):
    data = os.urandom(size)
    enc_keys, dec_keys = keys(scheme)
    ct = run(crypto.new_encryptor(scheme, aad=AAD, **enc_keys), data)
    if scheme is not Encryption.NONE and size >= 16:
        assert data[:16] not in ct
    assert run(crypto.new_decryptor(scheme, aad=AAD, **dec_keys), ct, piece=4099) == data


def test_scheme_given_as_a_string_works_and_a_bad_one_lists_choices():
    enc = crypto.new_encryptor("aes-256-gcm", aes_key=AES_KEY)  # type: ignore[arg-type]
    assert enc.update(b"") + enc.finalize() != b""
    with pytest.raises(ConfigError, match="unknown encryption 'rot13'.*age, aes-256-gcm, none"):
        crypto.new_encryptor("rot13")  # type: ignore[arg-type]


def test_none_passes_bytes_through_unchanged():
    enc = crypto.new_encryptor(Encryption.NONE)
    assert enc.update(memoryview(b"abc")) == b"abc" and enc.finalize() == b""


@pytest.mark.parametrize("call, message", [
    (lambda: crypto.new_encryptor(Encryption.AGE),
     r"at least one recipient \(lifeline_recipients\)"),
    (lambda: crypto.new_decryptor(Encryption.AGE), r"at least one identity \(lifeline_identity"),
    (lambda: crypto.new_encryptor(Encryption.AES_GCM), r"needs a key \(lifeline_aes_key"),
    (lambda: crypto.new_decryptor(Encryption.AES_GCM, aes_key=""),
     r"needs a key \(lifeline_aes_key"),
    (lambda: crypto.key_id(Encryption.AGE), r"lifeline_recipients"),
])
def test_missing_key_material_names_the_setting(call, message):
    with pytest.raises(ConfigError, match=message):
        call()


def test_age_ignores_aad_and_aes_enforces_it():
    ct = run(crypto.new_encryptor(Encryption.AGE, recipients=[KAT_RECIPIENT], aad=b"A"), b"x")
    dec = crypto.new_decryptor(Encryption.AGE, identities=[KAT_IDENTITY], aad=b"B")
    assert run(dec, ct) == b"x"
    ct = run(crypto.new_encryptor(Encryption.AES_GCM, aes_key=AES_KEY, aad=b"A"), b"x")
    with pytest.raises(DecryptionError, match="aad"):
        run(crypto.new_decryptor(Encryption.AES_GCM, aes_key=AES_KEY, aad=b"B"), ct)


def test_no_matching_identity_is_a_decryption_error_without_secrets():
    other_identity, other_recipient = crypto.generate_age_identity()
    ct = run(crypto.new_encryptor(Encryption.AGE, recipients=[KAT_RECIPIENT]), b"secret data")
    with pytest.raises(DecryptionError, match="no identity matches this artifact") as exc:
        run(crypto.new_decryptor(Encryption.AGE, identities=[other_identity]), ct)
    assert other_identity not in str(exc.value) and "AGE-SECRET-KEY" not in str(exc.value)
    assert other_recipient in str(exc.value)


def test_wrong_aes_key_message_holds_no_key():
    ct = run(crypto.new_encryptor(Encryption.AES_GCM, aes_key=AES_KEY, aad=AAD), b"data")
    wrong = crypto.generate_aes_key()
    with pytest.raises(DecryptionError, match="wrong key") as exc:
        run(crypto.new_decryptor(Encryption.AES_GCM, aes_key=wrong, aad=AAD), ct)
    assert wrong not in str(exc.value) and AES_KEY not in str(exc.value)


def test_decrypting_with_the_wrong_scheme_is_refused():
    ct = run(crypto.new_encryptor(Encryption.AES_GCM, aes_key=AES_KEY), b"data")
    with pytest.raises(IntegrityError, match="not an age file"):
        run(crypto.new_decryptor(Encryption.AGE, identities=[KAT_IDENTITY]), ct)
    ct = run(crypto.new_encryptor(Encryption.AGE, recipients=[KAT_RECIPIENT]), b"data")
    with pytest.raises(IntegrityError, match="bad magic"):
        run(crypto.new_decryptor(Encryption.AES_GCM, aes_key=AES_KEY), ct)


def test_a_malformed_identity_names_the_setting_but_not_the_value():
    bad = KAT_IDENTITY[:-3] + "AAA"
    with pytest.raises(ConfigError, match="lifeline_identity: age identity #2") as exc:
        crypto.new_decryptor(Encryption.AGE, identities=[KAT_IDENTITY, bad])
    assert bad not in str(exc.value) and KAT_IDENTITY not in str(exc.value)


def test_identity_file_content_and_a_lone_string_are_accepted():
    ct = run(crypto.new_encryptor(Encryption.AGE, recipients=KAT_RECIPIENT), b"x")  # type: ignore
    text = "# created: today\n# public key: %s\n%s\n" % (KAT_RECIPIENT, KAT_IDENTITY)
    assert run(crypto.new_decryptor(Encryption.AGE, identities=text), ct) == b"x"  # type: ignore


# --- key ids ----------------------------------------------------------------------------------

def test_key_id_for_age_is_the_sorted_public_recipients():
    _identity, other = crypto.generate_age_identity()
    ids = crypto.key_id(Encryption.AGE, recipients=[other, KAT_RECIPIENT, other])
    assert ids == sorted({other, KAT_RECIPIENT})


def test_key_id_for_aes_is_a_pinned_fingerprint_not_the_key():
    ids = crypto.key_id(Encryption.AES_GCM, aes_key=AES_KEY)
    assert ids == ["aes:980c1d51d56fadc2"]
    assert crypto.key_id(Encryption.AES_GCM, aes_key=AES_KEY.upper() + "\n") == ids
    assert crypto.key_id(Encryption.AES_GCM, aes_key=crypto.generate_aes_key()) != ids
    assert AES_KEY[:16] not in ids[0]


def test_key_id_for_none_is_empty():
    assert crypto.key_id(Encryption.NONE) == []


# --- keys -------------------------------------------------------------------------------------

def test_age_recipient_of_the_known_identity():
    assert crypto.age_recipient(KAT_IDENTITY) == KAT_RECIPIENT


def test_generated_identity_pairs_up():
    identity, recipient = crypto.generate_age_identity()
    assert crypto.age_recipient(identity) == recipient
    assert crypto.validate_recipient(recipient) == recipient


def test_age_recipient_refuses_garbage_without_echo():
    with pytest.raises(ConfigError, match="malformed") as exc:
        crypto.age_recipient("AGE-SECRET-KEY-1NOTAKEY")
    assert "NOTAKEY" not in str(exc.value)
    with pytest.raises(ConfigError, match="exactly one"):
        crypto.age_recipient("# nothing here")


def test_generate_aes_key_is_64_lowercase_hex_and_valid():
    key = crypto.generate_aes_key()
    assert len(key) == 64 and key == key.lower() and int(key, 16) >= 0
    assert crypto.validate_aes_key(key) == bytes.fromhex(key)
    assert crypto.generate_aes_key() != key


@pytest.mark.parametrize("value, message", [
    (AES_KEY[:-1], "has 63 characters"), (AES_KEY + "00", "has 66 characters"),
    ("g" + AES_KEY[1:], "non-hex"), ("", "has 0 characters")])
def test_validate_aes_key_refuses_without_echo(value, message):
    with pytest.raises(ConfigError, match="exactly 64 hex characters") as exc:
        crypto.validate_aes_key(value)
    assert message in str(exc.value)
    assert not value or value not in str(exc.value)


def test_validate_aes_key_ignores_a_trailing_newline():
    assert crypto.validate_aes_key(AES_KEY + "\n") == bytes.fromhex(AES_KEY)


@pytest.mark.parametrize("value, message", [
    (KAT_RECIPIENT[:-1], "malformed"), ("ssh-ed25519 AAAAC3Nz", "malformed"),
    ("age1yubikey1qwt50d05nh5vutpdzmlg5wn80xq5negm4uj9ghv0snvdd3yysf5yw3rhl3t",
     "not an X25519 recipient"), (KAT_IDENTITY, "identity")])
def test_validate_recipient_names_the_problem(value, message):
    with pytest.raises(ConfigError, match=message) as exc:
        crypto.validate_recipient(value)
    assert KAT_IDENTITY not in str(exc.value)


def test_validate_recipient_strips_whitespace():
    assert crypto.validate_recipient(" %s\n" % KAT_RECIPIENT) == KAT_RECIPIENT


# --- the emergency path from docs/formats-encryption.md ---------------------------------------

@pytest.mark.skipif(not (shutil.which("age") and shutil.which("zstd")),
                    reason="age/zstd CLI missing")
def test_stock_age_and_zstd_restore_an_artifact(tmp_path):
    data = os.urandom(1000) * 300
    compressed = subprocess.run(["zstd", "-q", "-c"], input=data, capture_output=True,
                                check=True).stdout
    artifact = tmp_path / "db.dump.zst.age"
    artifact.write_bytes(run(crypto.new_encryptor(Encryption.AGE, recipients=[KAT_RECIPIENT],
                                                  aad=AAD), compressed))
    key = tmp_path / "key.txt"
    key.touch(mode=0o600)
    key.write_text(KAT_IDENTITY + "\n")
    # age -d -i key.txt db.dump.zst.age | zstd -d > db.dump
    age_cli = subprocess.Popen(["age", "-d", "-i", str(key), str(artifact)], stdout=subprocess.PIPE)
    out = subprocess.run(["zstd", "-d", "-q", "-c"], stdin=age_cli.stdout, capture_output=True,
                         check=True).stdout
    age_cli.stdout.close()
    assert age_cli.wait() == 0
    assert out == data
