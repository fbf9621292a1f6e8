# -*- coding: utf-8 -*-
# Copyright: Lifeline contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Lifeline's chunked AES-256-GCM format: known answers that pin the byte layout, round trips,
and refusal of truncation, reordering, swapped AAD, wrong keys and flipped bytes."""
from __future__ import annotations

import hashlib
import os

import pytest
from transforms import feed

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from ansible_collections.lifeline.dr.plugins.module_utils import aesgcm
from ansible_collections.lifeline.dr.plugins.module_utils.errors import (
    ConfigError,
    DecryptionError,
    IntegrityError,
)

KEY = bytes.fromhex("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f")
SALT = bytes(range(0x40, 0x60))
AAD = b"lifeline/20260101T000000Z/db.dump"
KAT_PLAINTEXT = b"lifeline aes-gcm known answer"
# Generated once by this implementation and checked against the spec by
# test_known_answer_matches_the_documented_layout; a change here is a format change.
KAT_CIPHERTEXT = bytes.fromhex(
    "4c4c41455347434d0100404142434445464748494a4b4c4d4e4f505152535455565758595a5b5c5d5e5f"
    "0000002dd7e13287879996579899325d66f312c8b6e1fba701eed6e61667aed394edd6b657e01c38f0f6"
    "6967b08d3694d6")
# sha256 of the ciphertext of bytes(i % 251 for i in range(CHUNK + 5)): two chunks, second final.
KAT_TWO_CHUNKS_SHA256 = "703985e5b7b48454d8185255a329f6aeafd9a85f97aaa360c5f978f72342335c"

CHUNK = aesgcm.CHUNK
RECORD = 4 + aesgcm.MAX_RECORD
SIZES = [0, 1, 65535, 65536, 65537, 3 * 65536, CHUNK, (1 << 20) + 7, 3 * CHUNK]
PIECES = (1, 7, 4093, 65536, CHUNK + 21, 100003, 3)


def encrypt(data: bytes, key: bytes = KEY, aad: bytes = AAD, pieces=PIECES, salt=None) -> bytes:
    return feed(aesgcm.AesGcmEncryptor(key, aad=aad, _salt=salt), data, pieces)


def decrypt(data: bytes, key: bytes = KEY, aad: bytes = AAD, pieces=PIECES) -> bytes:
    return feed(aesgcm.AesGcmDecryptor(key, aad=aad), data, pieces)


# --- known answers ----------------------------------------------------------------------------

def test_known_answer_vector_is_stable():
    assert encrypt(KAT_PLAINTEXT, salt=SALT) == KAT_CIPHERTEXT
    assert decrypt(KAT_CIPHERTEXT) == KAT_PLAINTEXT


def test_known_answer_two_chunks_is_stable():
    data = bytes(i % 251 for i in range(CHUNK + 5))
    ct = encrypt(data, salt=SALT)
    assert len(ct) == aesgcm.HEADER_LEN + RECORD + 4 + 5 + aesgcm.TAG
    assert hashlib.sha256(ct).hexdigest() == KAT_TWO_CHUNKS_SHA256


def test_known_answer_matches_the_documented_layout():
    """Rebuilds the vector from docs/formats-encryption.md with bare primitives."""
    header = b"LLAESGCM" + b"\x01\x00" + SALT
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=SALT,
               info=b"lifeline-aesgcm-v1 data key").derive(KEY)
    nonce = (0).to_bytes(8, "big") + b"\x00\x00\x00" + b"\x01"
    sealed = AESGCM(key).encrypt(nonce, KAT_PLAINTEXT, AAD + header)
    assert KAT_CIPHERTEXT == header + len(sealed).to_bytes(4, "big") + sealed


# --- round trips ------------------------------------------------------------------------------

@pytest.mark.parametrize("size", SIZES)
def test_round_trip_in_odd_pieces(size):
    data = os.urandom(size)
    ct = encrypt(data)
    chunks = max(1, -(-size // CHUNK))
    # One record per chunk: a multiple of 1 MiB ends on a full final chunk, not an empty one.
    assert len(ct) == aesgcm.HEADER_LEN + size + chunks * (4 + aesgcm.TAG)
    assert decrypt(ct, pieces=[3, 1048599, 5, 65536]) == data


def test_update_takes_a_16_mib_piece_and_keeps_at_most_one_chunk_back():
    data = os.urandom(16 * CHUNK + 3)
    enc = aesgcm.AesGcmEncryptor(KEY, aad=AAD)
    head = enc.update(data)
    assert len(head) >= len(data) - CHUNK
    dec = aesgcm.AesGcmDecryptor(KEY, aad=AAD)
    first = dec.update(head + enc.finalize())
    assert first == data  # every chunk, the final one included, authenticates in update()
    assert dec.finalize() == b""


def test_each_artifact_gets_its_own_salt():
    a, b = encrypt(b"same"), encrypt(b"same")
    assert a[10:42] != b[10:42] and a != b


# --- damage -----------------------------------------------------------------------------------

def test_wrong_key_names_key_and_aad_as_causes():
    with pytest.raises(DecryptionError, match="chunk 0 failed authentication: wrong key") as exc:
        decrypt(encrypt(b"data"), key=os.urandom(32))
    assert "aad" in str(exc.value)


def test_swapped_aad_is_refused():
    ct = encrypt(b"data", aad=b"lifeline/backup-A/db.dump")
    with pytest.raises(DecryptionError, match="another backup or artifact name"):
        decrypt(ct, aad=b"lifeline/backup-B/db.dump")


def test_reordered_chunks_are_refused():
    ct = encrypt(os.urandom(3 * CHUNK + 10))
    head, r0, r1 = ct[:42], ct[42:42 + RECORD], ct[42 + RECORD:42 + 2 * RECORD]
    with pytest.raises(DecryptionError, match="reordered"):
        decrypt(head + r1 + r0 + ct[42 + 2 * RECORD:])
    # Later chunks swapped: chunk 0 proves key and AAD, so this is plain integrity trouble.
    r2 = ct[42 + 2 * RECORD:42 + 3 * RECORD]
    with pytest.raises(IntegrityError, match="chunk 1 failed authentication.*reordered") as exc:
        decrypt(head + r0 + r2 + r1 + ct[42 + 3 * RECORD:])
    assert not isinstance(exc.value, DecryptionError)


def test_truncation_at_a_chunk_boundary_is_refused():
    ct = encrypt(os.urandom(3 * CHUNK))
    with pytest.raises(IntegrityError, match="truncated.*after chunk 1, before its final chunk"):
        decrypt(ct[:42 + 2 * RECORD])


@pytest.mark.parametrize("cut, message", [
    (0, "is empty"), (20, "inside the header"), (42, "before its first chunk"),
    (44, "inside chunk 0"), (60, "inside chunk 0")])
def test_truncation_anywhere_names_where(cut, message):
    ct = encrypt(b"some plaintext here")
    with pytest.raises(IntegrityError, match="truncated" if cut else message) as exc:
        decrypt(ct[:cut])
    assert message in str(exc.value)


@pytest.mark.parametrize("size", [0, 5, CHUNK])
def test_trailing_data_is_refused(size):
    with pytest.raises(IntegrityError, match="trailing data after the final chunk"):
        decrypt(encrypt(os.urandom(size)) + b"\x00")


def test_every_flipped_byte_of_a_small_artifact_is_refused():
    ct = encrypt(b"0123456789")
    for pos in range(len(ct)):
        damaged = bytearray(ct)
        damaged[pos] ^= 0x04
        with pytest.raises(IntegrityError):
            decrypt(bytes(damaged))


@pytest.mark.parametrize("pos, message", [
    (0, "bad magic"), (8, "unsupported AES-GCM artifact version"), (9, "reserved byte"),
    (20, "chunk 0 failed authentication"), (43, "declares"), (60, "chunk 0 failed authentication")])
def test_flipped_byte_names_the_cause(pos, message):
    ct = bytearray(encrypt(b"0123456789abcdef"))
    ct[pos] ^= 0x40
    with pytest.raises(IntegrityError, match=message):
        decrypt(bytes(ct))


def test_empty_final_chunk_after_a_full_one_is_refused():
    enc = aesgcm.AesGcmEncryptor(KEY, aad=AAD)
    ct = enc._pending + enc._seal(bytes(CHUNK), False) + enc._seal(b"", True)
    with pytest.raises(IntegrityError, match="empty final chunk"):
        decrypt(ct)


def test_short_key_is_a_config_error():
    with pytest.raises(ConfigError, match="32-byte"):
        aesgcm.AesGcmEncryptor(b"\x00" * 16)
    with pytest.raises(ConfigError, match="32-byte"):
        aesgcm.AesGcmDecryptor(b"\x00" * 31)


def test_reprs_hold_no_key():
    for obj in (aesgcm.AesGcmDecryptor(KEY), aesgcm.AesGcmEncryptor(KEY)):
        text = repr(obj)
        assert KEY.hex() not in text and repr(KEY) not in text
