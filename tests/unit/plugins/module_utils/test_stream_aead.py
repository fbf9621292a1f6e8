# -*- coding: utf-8 -*-
# Copyright: Lifeline contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The STREAM core that age and AES-GCM share, with a real AEAD and tiny chunks so that every
length, every split, every cut and every kind of junk can be tried in both framings."""
from __future__ import annotations

import os

import pytest
from transforms import feed

from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from ansible_collections.lifeline.dr.plugins.module_utils.errors import (
    DecryptionError,
    IntegrityError,
)
from ansible_collections.lifeline.dr.plugins.module_utils.stream_aead import (
    Framing,
    StreamOpener,
    StreamSealer,
    aead_cipher,
)

CHUNK = 8
TAG = 16
FRAMINGS = {"back-to-back": Framing(chunk=CHUNK, tag=TAG),
            "length-prefixed": Framing(chunk=CHUNK, tag=TAG, length_prefix=4)}
KEY = bytes(range(32))
DATA = bytes(range(200, 256)) * 2  # 112 bytes: 14 chunks


def nonce(counter: int, last: bool) -> bytes:
    return counter.to_bytes(11, "big") + bytes([last])


SEAL, OPEN = aead_cipher(ChaCha20Poly1305(KEY), nonce, None)
_SEAL, OPEN_WITH_WRONG_KEY = aead_cipher(ChaCha20Poly1305(bytes(32)), nonce, None)


@pytest.fixture(params=sorted(FRAMINGS))
def framing(request) -> Framing:
    return FRAMINGS[request.param]


def seal(framing: Framing, data: bytes, pieces=(3, 8, 17)) -> bytes:
    return feed(StreamSealer(SEAL, framing, name="test encryptor"), data, pieces)


def opener(framing: Framing, **kwargs) -> StreamOpener:
    return StreamOpener(OPEN, framing, name="test stream", **kwargs)


def open_all(framing: Framing, data: bytes, pieces=(5, 1, 24), **kwargs) -> bytes:
    return feed(opener(framing, **kwargs), data, pieces)


def records(framing: Framing, chunks) -> bytes:
    """Hand-made records from (plaintext, final flag) pairs, for streams a sealer never writes."""
    sealed = [SEAL(i, p, last) for i, (p, last) in enumerate(chunks)]
    prefix = framing.length_prefix
    return b"".join((len(s).to_bytes(prefix, "big") if prefix else b"") + s for s in sealed)


def record_size(framing: Framing) -> int:
    return framing.length_prefix + framing.record


# --- round trips and layout -------------------------------------------------------------------

@pytest.mark.parametrize("pieces", [(1,), (7,), (8,), (9,), (3, 16, 1), (1000,)])
def test_every_length_round_trips_in_any_pieces(framing, pieces):
    for size in range(0, 4 * CHUNK + 2):
        sealed = seal(framing, DATA[:size], pieces)
        assert open_all(framing, sealed, pieces) == DATA[:size], size


def test_one_record_per_chunk_and_a_full_last_chunk_is_final_not_followed_by_an_empty_one(framing):
    for size in (0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK):
        chunks = max(1, -(-size // CHUNK))
        sealed = seal(framing, DATA[:size])
        assert len(sealed) == size + chunks * (TAG + framing.length_prefix)
        last_record = sealed[-TAG - min(size - (chunks - 1) * CHUNK, CHUNK):]
        assert OPEN(chunks - 1, last_record, True) == DATA[(chunks - 1) * CHUNK:size]


def test_the_sealer_holds_back_at_most_one_chunk_and_the_head_leads(framing):
    sealer = StreamSealer(SEAL, framing, head=b"HEAD", name="test encryptor")
    first = sealer.update(DATA[:5 * CHUNK])
    assert first.startswith(b"HEAD")
    assert len(first) == 4 + 4 * record_size(framing)  # the fifth (full) chunk may be the last
    assert len(sealer.finalize()) == record_size(framing)


def test_length_prefixed_records_are_released_as_they_arrive_back_to_back_hold_the_short_last():
    for name, framing in FRAMINGS.items():
        sealed = seal(framing, DATA[:2 * CHUNK + 3])
        reader = opener(framing)
        got = reader.update(sealed)
        if framing.length_prefix:
            assert got == DATA[:2 * CHUNK + 3], name  # the final record authenticates on arrival
        else:
            assert got == DATA[:2 * CHUNK], name  # a short record is final only at the end
        assert got + reader.finalize() == DATA[:2 * CHUNK + 3], name


# --- damage -----------------------------------------------------------------------------------

def test_every_truncation_is_refused(framing):
    for size in (0, 5, CHUNK, 2 * CHUNK + 3):
        sealed = seal(framing, DATA[:size])
        for cut in range(len(sealed)):
            with pytest.raises(IntegrityError):
                open_all(framing, sealed[:cut])


def test_truncation_at_a_record_boundary_names_the_last_chunk(framing):
    sealed = seal(framing, DATA[:3 * CHUNK])
    with pytest.raises(IntegrityError, match="test stream is truncated: it ends after chunk 1, "
                                             "before its final chunk"):
        open_all(framing, sealed[:2 * record_size(framing)])
    with pytest.raises(IntegrityError, match="before its first chunk"):
        open_all(framing, b"")


def test_truncation_inside_a_length_prefixed_record_names_the_chunk():
    framing = FRAMINGS["length-prefixed"]
    sealed = seal(framing, DATA[:3 * CHUNK])
    for cut in (record_size(framing) + 2, record_size(framing) + 4 + 3):
        with pytest.raises(IntegrityError, match="truncated: it ends inside chunk 1"):
            open_all(framing, sealed[:cut])


def test_a_back_to_back_final_chunk_shorter_than_its_tag_is_named():
    framing = FRAMINGS["back-to-back"]
    sealed = seal(framing, DATA[:CHUNK])
    with pytest.raises(IntegrityError, match="final chunk is shorter than its tag"):
        open_all(framing, sealed[:TAG - 1])


@pytest.mark.parametrize("size", [0, 3, CHUNK, 2 * CHUNK + 5])
def test_every_amount_of_trailing_data_is_refused_as_trailing_or_failed(framing, size):
    sealed = seal(framing, DATA[:size])
    for junk in range(1, 3 * record_size(framing)):
        with pytest.raises(IntegrityError, match="trailing data|failed authentication|declares"):
            open_all(framing, sealed + os.urandom(junk))


def test_trailing_data_after_a_full_final_chunk_is_named_in_both_framings(framing):
    sealed = seal(framing, DATA[:2 * CHUNK])
    with pytest.raises(IntegrityError, match="trailing data after the final chunk \\(1\\) of the "
                                             "test stream"):
        open_all(framing, sealed + b"\x00")


def test_a_little_junk_after_a_short_back_to_back_final_chunk_is_named_trailing_data():
    framing = FRAMINGS["back-to-back"]
    sealed = seal(framing, DATA[:CHUNK + 3])
    for junk in (1, 4):  # still shorter than a record: the boundary is found by probing
        with pytest.raises(IntegrityError, match="trailing data: %d byte\\(s\\) after the final "
                                                 "chunk \\(1\\)" % junk):
            open_all(framing, sealed + b"j" * junk)


def test_an_empty_final_chunk_after_a_full_one_is_refused(framing):
    stream = records(framing, [(DATA[:CHUNK], False), (b"", True)])
    with pytest.raises(IntegrityError, match="empty final chunk after a full one"):
        open_all(framing, stream)


def test_a_short_chunk_that_is_not_final_is_refused(framing):
    stream = records(framing, [(DATA[:3], False), (DATA[3:5], True)])
    with pytest.raises(IntegrityError, match="chunk 0 failed authentication"):
        open_all(framing, stream)


def test_reordered_or_dropped_records_are_refused(framing):
    size = record_size(framing)
    sealed = seal(framing, DATA[:3 * CHUNK + 1])
    r = [sealed[i:i + size] for i in range(0, len(sealed), size)]
    with pytest.raises(IntegrityError, match="chunk 1 failed authentication"):
        open_all(framing, r[0] + r[2] + r[1] + r[3])
    with pytest.raises(IntegrityError, match="chunk 1 failed authentication"):
        open_all(framing, r[0] + r[2] + r[3])


def test_a_declared_length_out_of_range_is_refused_before_reading_the_record():
    framing = FRAMINGS["length-prefixed"]
    for declared in (0, TAG - 1, framing.record + 1, 2 ** 32 - 1):
        reader = opener(framing)
        with pytest.raises(IntegrityError, match="chunk 0 declares %d bytes, outside 16..24"
                                                 % declared):
            reader.update(declared.to_bytes(4, "big"))


def test_with_a_key_error_a_failed_first_chunk_is_a_decryption_error_and_later_ones_are_not(
        framing):
    sealed = seal(framing, DATA[:3 * CHUNK])
    wrong = StreamOpener(OPEN_WITH_WRONG_KEY, framing, name="test stream", key_error="wrong key")
    with pytest.raises(DecryptionError, match="^wrong key$"):
        feed(wrong, sealed, (5,))
    damaged = bytearray(sealed)
    damaged[record_size(framing) + framing.length_prefix + 2] ^= 1
    with pytest.raises(IntegrityError, match="test stream chunk 1 failed authentication") as exc:
        open_all(framing, bytes(damaged), key_error="wrong key")
    assert not isinstance(exc.value, DecryptionError)


def test_without_a_key_error_a_failed_first_chunk_is_an_integrity_error(framing):
    sealed = seal(framing, DATA[:3])
    with pytest.raises(IntegrityError, match="chunk 0 failed authentication") as exc:
        feed(StreamOpener(OPEN_WITH_WRONG_KEY, framing, name="test stream"), sealed, (5,))
    assert not isinstance(exc.value, DecryptionError)


# --- misuse -----------------------------------------------------------------------------------

def test_use_after_finalize_is_a_programming_error(framing):
    sealer = StreamSealer(SEAL, framing, name="test encryptor")
    sealed = sealer.update(b"x") + sealer.finalize()
    with pytest.raises(RuntimeError, match="used after finalize"):
        sealer.update(b"y")
    with pytest.raises(RuntimeError, match="finalized twice"):
        sealer.finalize()
    reader = opener(framing)
    assert reader.update(sealed) + reader.finalize() == b"x"
    with pytest.raises(RuntimeError, match="used after finalize"):
        reader.update(b"y")
    with pytest.raises(RuntimeError, match="finalized twice"):
        reader.finalize()
