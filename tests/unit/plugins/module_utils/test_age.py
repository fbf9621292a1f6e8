# -*- coding: utf-8 -*-
# Copyright: Lifeline contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The native age implementation: round trips, interop with the age CLI and pyrage, known
answers, and refusal of every kind of damage."""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from transforms import feed

from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from ansible_collections.lifeline.dr.plugins.module_utils import age
from ansible_collections.lifeline.dr.plugins.module_utils.errors import (
    ConfigError,
    DecryptionError,
    IntegrityError,
)

# Generated once with `age-keygen` (age 1.1.1); a test key, not a secret of anything.
KAT_IDENTITY = "AGE-SECRET-KEY-13V86MUXLE4YSQFWF5ZPZ8CP3S45SJZLW58P20Y37WWMG9ZUSZSPQKL40FG"
KAT_RECIPIENT = "age1tftvp5r0dqu3dgxgrfxcw9mmxs8lglnn9zxtuug55k8t23pha5rq5wu9w9"
KAT_IDENTITY_FILE = ("# created: 2026-11-23T11:58:41Z\n# public key: %s\n%s\n"
                     % (KAT_RECIPIENT, KAT_IDENTITY))
# `printf 'lifeline known answer' | age -r KAT_RECIPIENT | xxd -p` (age 1.1.1)
KAT_PLAINTEXT = b"lifeline known answer"
KAT_CIPHERTEXT = bytes.fromhex(
    "6167652d656e6372797074696f6e2e6f72672f76310a2d3e2058323535313920567278473932433147624362"
    "666950384443394757586e7165567553584f69737563666e39467679577a630a6270574d7a4830554d544654"
    "36442b52336a52466e4e6d594e4a7267703073456c4d63557a4b6377686c490a2d2d2d2061343744532f5462"
    "6944597a62783142326f756c785a3248696f516c4f6d5a4a774c5534766f456a6e4a630a0a06ca775792eed8"
    "6f546c6d13af781dab52f3d87b3159b91c1ec385e23db2b870330ca7b3a50ba218760404dd79627dffcf0106"
    "29")

SIZES = [0, 1, 65535, 65536, 65537, 3 * 65536, (1 << 20) + 7]
PIECES = (1, 7, 4093, 65536, 65537, 100003, 3)
CHUNK = age.CHUNK

needs_age_cli = pytest.mark.skipif(shutil.which("age") is None, reason="age CLI not installed")


def encrypt(data: bytes, recipients=(KAT_RECIPIENT,), pieces=PIECES) -> bytes:
    return feed(age.AgeEncryptor(list(recipients)), data, pieces)


def decrypt(data: bytes, identities=(KAT_IDENTITY,), pieces=PIECES) -> bytes:
    return feed(age.AgeDecryptor(list(identities)), data, pieces)


def payload_offset(ct: bytes) -> int:
    """Where the payload's 16-byte nonce starts."""
    return ct.index(b"\n", ct.index(b"\n--- ") + 1) + 1


def plaintext(size: int) -> bytes:
    return os.urandom(size)


@pytest.fixture
def identity_file(tmp_path: Path):
    def write(identity: str = KAT_IDENTITY) -> Path:
        path = tmp_path / ("id-%s.txt" % hashlib.sha256(identity.encode()).hexdigest()[:8])
        path.touch(mode=0o600)
        path.write_text(identity + "\n")
        return path
    return write


# --- keys and bech32 --------------------------------------------------------------------------

def test_known_identity_gives_the_recipient_age_keygen_printed():
    assert age.parse_identities([KAT_IDENTITY])[0].recipient == KAT_RECIPIENT


def test_identity_file_content_with_comments_is_accepted():
    assert [i.recipient for i in age.parse_identities([KAT_IDENTITY_FILE])] == [KAT_RECIPIENT]


def test_bech32_matches_bip173_vectors():
    assert age.bech32_decode("A12UEL5L") == ("a", b"")
    assert age.bech32_decode("a12uel5l") == ("a", b"")
    with pytest.raises(ValueError, match="checksum"):
        age.bech32_decode("a12uel5m")
    with pytest.raises(ValueError, match="mixed case"):
        age.bech32_decode("A12uEL5L")


def test_bech32_round_trips_32_bytes():
    data = bytes(range(32))
    text = age.bech32_encode("age", data)
    assert text.startswith("age1") and len(text) == 62
    assert age.bech32_decode(text) == ("age", data)


def test_generated_identity_encodes_like_age_keygen():
    identity, recipient = age.generate_identity()
    assert identity.startswith("AGE-SECRET-KEY-1") and identity.upper() == identity
    assert len(identity) == 74 and len(recipient) == 62
    assert age.parse_identities([identity])[0].recipient == recipient


def test_decode_recipient_rejects_bad_checksum_and_names_the_format():
    bad = KAT_RECIPIENT[:-1] + ("q" if KAT_RECIPIENT[-1] != "q" else "p")
    with pytest.raises(ConfigError, match="malformed.*age1"):
        age.decode_recipient(bad)


def test_decode_recipient_refuses_a_secret_key_without_echoing_it():
    with pytest.raises(ConfigError, match="identity.*given as a recipient") as exc:
        age.decode_recipient(KAT_IDENTITY)
    assert KAT_IDENTITY not in str(exc.value) and "13V86" not in str(exc.value)


def test_parse_identities_refuses_a_recipient_and_a_typo_without_echo():
    with pytest.raises(ConfigError, match="recipient"):
        age.parse_identities([KAT_RECIPIENT])
    typo = KAT_IDENTITY[:-2] + "QQ"
    with pytest.raises(ConfigError, match="#1 is malformed") as exc:
        age.parse_identities([typo])
    assert typo not in str(exc.value)


def test_identity_repr_shows_only_the_public_key():
    text = repr(age.parse_identities([KAT_IDENTITY])[0])
    assert KAT_RECIPIENT in text and "SECRET" not in text


# --- round trips ------------------------------------------------------------------------------

@pytest.mark.parametrize("size", SIZES)
def test_round_trip_in_odd_pieces(size):
    data = plaintext(size)
    ct = encrypt(data, pieces=[3, 65535, 5, 131071])
    chunks = max(1, -(-size // CHUNK))
    # Exactly one tag per chunk: a multiple of 64 KiB ends on a full chunk, not an extra empty one.
    assert len(ct) == payload_offset(ct) + age.NONCE_LEN + size + chunks * age.TAG
    assert decrypt(ct, pieces=[1, 99, 65552, 65553, 7]) == data


def test_round_trip_with_several_recipients_and_identities():
    identity2, recipient2 = age.generate_identity()
    data = plaintext(70000)
    ct = encrypt(data, recipients=[KAT_RECIPIENT, recipient2])
    assert ct.count(b"\n-> X25519 ") == 2
    assert decrypt(ct, identities=[identity2]) == data
    assert decrypt(ct, identities=[KAT_IDENTITY]) == data


def test_decrypt_tries_every_identity():
    other, _recipient = age.generate_identity()
    data = plaintext(10)
    assert decrypt(encrypt(data), identities=[other, KAT_IDENTITY]) == data


def test_update_takes_a_16_mib_piece_and_keeps_at_most_one_chunk_back():
    data = plaintext(16 * 1024 * 1024 + 3)
    enc = age.AgeEncryptor([KAT_RECIPIENT])
    head = enc.update(data)
    assert len(head) >= len(data) - CHUNK  # everything but the last chunk is already out
    ct = head + enc.finalize()
    dec = age.AgeDecryptor([KAT_IDENTITY])
    first = dec.update(ct)
    assert len(first) >= len(data) - CHUNK
    assert first + dec.finalize() == data


def test_identical_plaintexts_encrypt_differently():
    assert encrypt(b"same") != encrypt(b"same")


# --- known answer and interop -----------------------------------------------------------------

def test_known_ciphertext_from_the_age_cli_decrypts():
    assert decrypt(KAT_CIPHERTEXT) == KAT_PLAINTEXT


@needs_age_cli
@pytest.mark.parametrize("size", SIZES)
def test_age_cli_decrypts_what_we_write(size, identity_file):
    data = plaintext(size)
    result = subprocess.run(["age", "-d", "-i", str(identity_file())], input=encrypt(data),
                            capture_output=True, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout == data


@needs_age_cli
@pytest.mark.parametrize("size", SIZES)
def test_we_decrypt_what_the_age_cli_writes(size):
    data = plaintext(size)
    ct = subprocess.run(["age", "-r", KAT_RECIPIENT], input=data, capture_output=True,
                        check=True).stdout
    assert decrypt(ct) == data


@needs_age_cli
def test_age_cli_and_we_agree_on_several_recipients(identity_file):
    identity2, recipient2 = age.generate_identity()
    data = plaintext(65536 * 2)
    ours = encrypt(data, recipients=[KAT_RECIPIENT, recipient2])
    for identity in (KAT_IDENTITY, identity2):
        out = subprocess.run(["age", "-d", "-i", str(identity_file(identity))], input=ours,
                             capture_output=True, check=True).stdout
        assert out == data
    theirs = subprocess.run(["age", "-r", KAT_RECIPIENT, "-r", recipient2], input=data,
                            capture_output=True, check=True).stdout
    assert decrypt(theirs, identities=[identity2]) == data


@needs_age_cli
def test_age_cli_refuses_our_empty_final_chunk_too(identity_file):
    """Guards the reading of the spec that a full last chunk must carry the final flag."""
    ct = _handmade(bytes(CHUNK), chunks=[(bytes(CHUNK), False), (b"", True)])
    result = subprocess.run(["age", "-d", "-i", str(identity_file())], input=ct,
                            capture_output=True, check=False)
    assert result.returncode != 0
    with pytest.raises(IntegrityError, match="empty final chunk"):
        decrypt(ct)


@pytest.mark.parametrize("size", [0, 65536, 65537, (1 << 20) + 7])
def test_pyrage_interop_both_ways(size):
    pyrage = pytest.importorskip("pyrage")
    data = plaintext(size)
    identity = pyrage.x25519.Identity.from_str(KAT_IDENTITY)
    assert pyrage.decrypt(encrypt(data), [identity]) == data
    # pyrage adds a grease stanza of an unknown type, which must be skipped.
    theirs = pyrage.encrypt(data, [identity.to_public()])
    assert decrypt(theirs) == data


def test_unknown_stanzas_with_multi_line_bodies_are_ignored():
    data = b"grease"
    for body_len in (0, 47, 48, 49, 200):  # 48 bytes = exactly one 64-column line + empty line
        ct = _handmade(data, extra_stanzas=[(b"x-grease", [b"a", b"b!"], os.urandom(body_len))])
        assert decrypt(ct) == data


@needs_age_cli
def test_handmade_files_are_valid_for_the_age_cli(identity_file):
    """Proves the helper below writes real age files, so the tests built on it mean something."""
    ct = _handmade(b"x" * 70000, extra_stanzas=[(b"x-grease", [], os.urandom(48))])
    out = subprocess.run(["age", "-d", "-i", str(identity_file())], input=ct,
                         capture_output=True, check=True).stdout
    assert out == b"x" * 70000


def test_a_passphrase_file_names_its_stanza_type():
    pyrage = pytest.importorskip("pyrage")
    ct = pyrage.passphrase.encrypt(b"data", "correct horse")
    with pytest.raises(DecryptionError, match="no X25519 recipient.*scrypt"):
        decrypt(ct)


@needs_age_cli
def test_armored_files_are_refused_with_the_cli_hint():
    ct = subprocess.run(["age", "-a", "-r", KAT_RECIPIENT], input=b"data", capture_output=True,
                        check=True).stdout
    with pytest.raises(IntegrityError, match="armored.*age -d"):
        decrypt(ct)


# --- damage -----------------------------------------------------------------------------------

def test_wrong_identity_is_a_decryption_error_that_names_no_secret():
    other, other_recipient = age.generate_identity()
    with pytest.raises(DecryptionError, match="no identity matches this artifact") as exc:
        decrypt(encrypt(b"data"), identities=[other])
    message = str(exc.value)
    assert other_recipient in message  # the public half helps pick the right key
    assert other not in message and "AGE-SECRET-KEY" not in message


def test_every_flipped_header_byte_is_refused():
    ct = encrypt(b"payload")
    for pos in range(payload_offset(ct)):
        damaged = bytearray(ct)
        damaged[pos] ^= 0x01
        with pytest.raises(IntegrityError):
            decrypt(bytes(damaged))


def test_flipped_mac_is_named():
    ct = bytearray(encrypt(b"payload"))
    pos = ct.index(b"\n--- ") + 10  # a middle base64 character: stays canonical
    ct[pos] = ord("A") if ct[pos] != ord("A") else ord("B")
    with pytest.raises(IntegrityError, match="MAC mismatch"):
        decrypt(bytes(ct))


def test_flipped_ephemeral_share_means_no_identity_matches():
    ct = bytearray(encrypt(b"payload"))
    pos = ct.index(b"-> X25519 ") + 15
    ct[pos] = ord("A") if ct[pos] != ord("A") else ord("B")
    with pytest.raises(DecryptionError, match="no identity matches"):
        decrypt(bytes(ct))


def test_every_flipped_payload_byte_is_refused():
    ct = encrypt(b"0123456789")
    for pos in range(payload_offset(ct), len(ct)):
        damaged = bytearray(ct)
        damaged[pos] ^= 0x80
        with pytest.raises(IntegrityError, match="failed authentication"):
            decrypt(bytes(damaged))


def test_flipped_byte_in_a_later_chunk_is_integrity_not_key_trouble():
    ct = bytearray(encrypt(plaintext(3 * CHUNK)))
    ct[payload_offset(ct) + age.NONCE_LEN + age.CHUNK_CT + 100] ^= 0x01
    with pytest.raises(IntegrityError, match="chunk 1 failed authentication") as exc:
        decrypt(bytes(ct))
    assert not isinstance(exc.value, DecryptionError)


def test_truncation_at_a_chunk_boundary_is_refused():
    ct = encrypt(plaintext(3 * CHUNK))
    cut = payload_offset(ct) + age.NONCE_LEN + 2 * age.CHUNK_CT
    with pytest.raises(IntegrityError, match="truncated.*before its final chunk"):
        decrypt(ct[:cut])


def test_truncation_inside_a_chunk_is_refused():
    ct = encrypt(plaintext(CHUNK + 100))
    with pytest.raises(IntegrityError, match="failed authentication"):
        decrypt(ct[:-1])


@pytest.mark.parametrize("where, message", [
    ("nothing", "empty"), ("header", "inside the header"), ("nonce", "inside the payload nonce"),
    ("payload", "no payload chunk"), ("tag", "shorter than its tag")])
def test_truncation_anywhere_names_where(where, message):
    ct = encrypt(b"")
    start = payload_offset(ct)
    cut = {"nothing": 0, "header": start - 5, "nonce": start + 3,
           "payload": start + age.NONCE_LEN, "tag": len(ct) - 1}[where]
    with pytest.raises(IntegrityError, match=message):
        decrypt(ct[:cut])


@pytest.mark.parametrize("size, junk", [(0, 1), (5, 40), (CHUNK, 1), (CHUNK, age.CHUNK_CT + 9),
                                        (3 * CHUNK, 64)])
def test_trailing_data_is_refused_and_named(size, junk):
    ct = encrypt(plaintext(size)) + os.urandom(junk)
    with pytest.raises(IntegrityError, match="trailing data"):
        decrypt(ct)


def test_much_junk_after_a_short_final_chunk_is_refused():
    # The chunk boundary is unknowable here, so the message is the generic one.
    ct = encrypt(b"short") + os.urandom(age.CHUNK_CT + 9)
    with pytest.raises(IntegrityError, match="chunk 0 failed authentication"):
        decrypt(ct)


def test_not_an_age_file_is_named():
    with pytest.raises(IntegrityError, match="not an age file"):
        decrypt(b"LLAESGCM" + bytes(100))


def test_oversized_header_is_refused_before_memory_grows():
    dec = age.AgeDecryptor([KAT_IDENTITY])
    with pytest.raises(IntegrityError, match="header is larger"):
        dec.update(b"age-encryption.org/v1\n" + b"A" * (age.MAX_HEADER + 10))


def test_no_recipient_or_identity_is_a_config_error():
    with pytest.raises(ConfigError, match="at least one recipient"):
        age.AgeEncryptor([])
    with pytest.raises(ConfigError, match="at least one identity"):
        age.AgeDecryptor(["# only a comment\n"])


# --- a hand-made age writer, for files our encryptor must never produce -----------------------

def _handmade(data: bytes, *, extra_stanzas=(), chunks=None) -> bytes:
    """An age file for KAT_RECIPIENT built from the spec's parts, with optional extra stanzas
    and explicit (plaintext, final-flag) chunks."""
    file_key = os.urandom(age.FILE_KEY_LEN)
    header = age.VERSION_LINE + b"\n"
    header += b"".join(age._stanza(kind, args, body) for kind, args, body in extra_stanzas)
    header += age._wrap_x25519(file_key, age.decode_recipient(KAT_RECIPIENT))
    header += b"---"
    header += b" " + age._b64(age._header_mac(file_key, header)) + b"\n"
    nonce = os.urandom(age.NONCE_LEN)
    aead = ChaCha20Poly1305(age._hkdf(file_key, nonce, b"payload"))
    if chunks is None:
        pieces = [data[i:i + CHUNK] for i in range(0, len(data), CHUNK)] or [b""]
        chunks = [(p, i == len(pieces) - 1) for i, p in enumerate(pieces)]
    body = b"".join(aead.encrypt(age._nonce(i, last), p, None)
                    for i, (p, last) in enumerate(chunks))
    return header + nonce + body
