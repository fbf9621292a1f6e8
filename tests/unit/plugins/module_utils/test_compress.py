# -*- coding: utf-8 -*-
# Copyright: Lifeline contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Streaming compressors: round trips in odd pieces, output stock tools read, every kind of
damage (truncation, corruption, trailing data) reported as IntegrityError, and decompression
output in bounded pieces however far the input expands."""
from __future__ import annotations

import gzip
import random
import shutil
import subprocess

import pytest
import zstandard
from transforms import pieces

from ansible_collections.lifeline.dr.plugins.module_utils.compress import (
    MAX_PIECE,
    Compression,
    new_compressor,
    new_decompressor,
)
from ansible_collections.lifeline.dr.plugins.module_utils.errors import ConfigError, IntegrityError

PIECES = (1, 7, 4093, 65536, 100_003)
# Half random, half text: compressible, and long enough for several zstd blocks.
DATA = random.Random(1).randbytes(300_000) + b"INSERT INTO t VALUES (42, 'lifeline');\n" * 8000


def compress(kind, data: bytes, **kwargs) -> bytes:
    comp = new_compressor(kind, **kwargs)
    return b"".join([comp.update(piece) for piece in pieces(data, PIECES)] + [comp.finalize()])


def decompress(kind, data: bytes) -> bytes:
    dec = new_decompressor(kind)
    out = [b"".join(dec.update(piece)) for piece in pieces(data, PIECES)]
    assert dec.finalize() is None
    return b"".join(out)


@pytest.mark.parametrize("kind", list(Compression))
@pytest.mark.parametrize("data", [b"", b"x", DATA], ids=["empty", "one-byte", "mixed-640k"])
def test_round_trip_in_odd_pieces_gives_back_the_input(kind, data):
    assert decompress(kind, compress(kind, data)) == data


def test_zstd_with_worker_threads_round_trips():
    packed = compress(Compression.ZSTD, DATA, threads=2)
    assert decompress(Compression.ZSTD, packed) == DATA


@pytest.mark.parametrize("threads", [0, 2])
def test_zstd_hands_output_on_while_streaming_instead_of_holding_it(threads):
    # What is held back is memory: with libzstd's default job size for worker threads, ~57 of
    # 64 MiB came out only at finalize(). Bounded 1 MiB jobs hold back ~5-10 MiB (it depends on
    # how far the worker threads got, hence the margin).
    comp = new_compressor(Compression.ZSTD, threads=threads)
    rng = random.Random(5)
    handed_on = sum(len(comp.update(rng.randbytes(1024 * 1024))) for _chunk in range(64))
    held_back = len(comp.finalize())
    assert held_back < 24 * 1024 * 1024
    assert handed_on + held_back > 64 * 1024 * 1024


@pytest.mark.parametrize("kind", [Compression.ZSTD, Compression.GZIP])
def test_compressible_data_gets_smaller(kind):
    assert len(compress(kind, DATA)) < len(DATA) * 0.7


def test_zstd_output_is_a_standard_frame_stock_zstd_reads():
    packed = compress(Compression.ZSTD, DATA)
    assert zstandard.ZstdDecompressor().decompressobj().decompress(packed) == DATA


@pytest.mark.skipif(not shutil.which("zstd"), reason="the zstd command is not installed")
def test_zstd_output_with_worker_threads_is_read_by_the_zstd_command():
    packed = compress(Compression.ZSTD, DATA, threads=2)
    out = subprocess.run(["zstd", "-d", "-c"], input=packed, capture_output=True, check=True)
    assert out.stdout == DATA


def test_gzip_output_is_a_standard_member_stock_gzip_reads():
    assert gzip.decompress(compress(Compression.GZIP, DATA)) == DATA


def test_suffixes_name_the_format():
    assert [c.suffix for c in Compression] == [".zst", ".gz", ""]


# --- damage ----------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", [Compression.ZSTD, Compression.GZIP])
@pytest.mark.parametrize("keep", [0.0, 0.5, 0.99, -1], ids=["nothing", "half", "most", "all-but-one-byte"])
def test_a_truncated_stream_is_an_integrity_error(kind, keep):
    packed = compress(kind, DATA)
    cut = len(packed) - 1 if keep == -1 else int(len(packed) * keep)
    with pytest.raises(IntegrityError, match="truncated"):
        decompress(kind, packed[:cut])


@pytest.mark.parametrize("kind, where", [
    (Compression.ZSTD, 0), (Compression.ZSTD, 4), (Compression.ZSTD, -6),
    (Compression.GZIP, 0), (Compression.GZIP, 2), (Compression.GZIP, -6),
], ids=["zstd-magic", "zstd-frame-header", "zstd-last-block",
        "gzip-magic", "gzip-method", "gzip-crc32"])
def test_a_corrupted_stream_is_an_integrity_error_not_a_library_exception(kind, where):
    packed = bytearray(compress(kind, DATA))
    packed[where] ^= 0xFF
    with pytest.raises(IntegrityError):
        decompress(kind, bytes(packed))


@pytest.mark.parametrize("kind", [Compression.ZSTD, Compression.GZIP])
def test_trailing_data_in_a_later_piece_is_an_integrity_error(kind):
    dec = new_decompressor(kind)
    assert b"".join(dec.update(compress(kind, b"payload"))) == b"payload"
    with pytest.raises(IntegrityError, match="trailing data"):
        list(dec.update(b"junk"))


@pytest.mark.parametrize("kind", [Compression.ZSTD, Compression.GZIP])
def test_trailing_data_in_the_same_piece_as_the_end_is_an_integrity_error(kind):
    dec = new_decompressor(kind)
    with pytest.raises(IntegrityError, match="trailing data"):
        list(dec.update(compress(kind, b"payload") + b"junk"))
        dec.finalize()


@pytest.mark.parametrize("kind", list(Compression))
def test_an_empty_piece_after_the_end_is_harmless(kind):
    # The pipeline hands the decompressor whatever the decryptor's finalize() returns, often b"".
    dec = new_decompressor(kind)
    assert b"".join(dec.update(compress(kind, b"payload"))) == b"payload"
    assert list(dec.update(b"")) == []
    assert dec.finalize() is None


def test_none_passes_bytes_through_unchanged():
    assert compress(Compression.NONE, DATA) == DATA
    assert decompress(Compression.NONE, DATA) == DATA


# --- bounded output --------------------------------------------------------------------------

MIB = 1024 * 1024


def compressed_zeros(kind, total: int, **kwargs) -> bytes:
    """``total`` zero bytes compressed, made one MiB at a time (never held whole)."""
    comp = new_compressor(kind, **kwargs)
    zeros = bytes(MIB)
    return b"".join([comp.update(zeros) for _mib in range(total // MIB)] + [comp.finalize()])


def piece_sizes(kind, packed: bytes) -> list:
    dec = new_decompressor(kind)
    sizes = [len(piece) for piece in dec.update(packed)]
    dec.finalize()
    return sizes


@pytest.mark.parametrize("kind, kwargs", [
    (Compression.ZSTD, {}), (Compression.ZSTD, {"threads": 2}), (Compression.GZIP, {"level": 9})],
    ids=["zstd", "zstd-threads", "gzip"])
def test_a_bomb_given_as_one_piece_comes_out_in_pieces_of_at_most_max_piece(kind, kwargs):
    packed = compressed_zeros(kind, 256 * MIB, **kwargs)
    assert len(packed) < 256 * 1024  # a ratio of over 1000: what makes it a bomb
    sizes = piece_sizes(kind, packed)
    assert sum(sizes) == 256 * MIB
    assert max(sizes) <= MAX_PIECE


@pytest.mark.parametrize("kind", list(Compression))
def test_ordinary_data_comes_out_identical_in_bounded_pieces(kind):
    data = DATA * 8  # 5 MiB
    packed = compress(kind, data)
    dec = new_decompressor(kind)
    out = list(dec.update(packed))
    dec.finalize()
    assert b"".join(out) == data
    assert max(len(p) for p in out) <= MAX_PIECE


@pytest.mark.parametrize("level", [1, 3, 12, 17, 19])
def test_every_zstd_level_lifeline_writes_fits_the_window_it_reads(level):
    packed = compress(Compression.ZSTD, DATA, level=level, threads=2)
    assert zstandard.get_frame_parameters(packed).window_size <= 8 * MIB
    assert decompress(Compression.ZSTD, packed) == DATA


def test_a_zstd_frame_asking_for_a_huge_window_is_refused():
    # libzstd would allocate the window (here 128 MiB) before the first byte comes out.
    params = zstandard.ZstdCompressionParameters(window_log=27, compression_level=3)
    obj = zstandard.ZstdCompressor(compression_params=params).compressobj()
    packed = obj.compress(b"x" * 1000) + obj.flush()
    with pytest.raises(IntegrityError, match="zstd stream is corrupt.*memory"):
        decompress(Compression.ZSTD, packed)


@pytest.mark.parametrize("options", [
    {"write_checksum": True}, {"write_checksum": False}, {"write_content_size": True},
    {"write_dict_id": True, "dict_data": zstandard.ZstdCompressionDict(b"INSERT INTO t" * 100)},
], ids=["checksum", "no-checksum", "content-size", "dict-id"])
def test_zstd_frames_of_every_header_layout_are_cut_where_libzstd_reads_them(options):
    # One-shot compression writes the content size (single-segment frames); the dictionary
    # frame is refused by libzstd (no dictionary here), after the cutter passed its header.
    packed = zstandard.ZstdCompressor(level=3, **options).compress(DATA)
    if "dict_data" in options:
        with pytest.raises(IntegrityError, match="corrupt"):
            decompress(Compression.ZSTD, packed)
    else:
        assert decompress(Compression.ZSTD, packed) == DATA


def test_a_zstd_stream_with_another_magic_is_refused_before_libzstd_sees_it():
    # Legacy (v0.x) and skippable frames start with other magic numbers; Lifeline writes neither.
    with pytest.raises(IntegrityError, match="not a zstd stream"):
        decompress(Compression.ZSTD, b"\x50\x2a\x4d\x18" + bytes(4) + compress(Compression.ZSTD, DATA))


@pytest.mark.parametrize("kind", list(Compression))
def test_an_update_whose_output_was_not_read_is_a_programming_error(kind):
    dec = new_decompressor(kind)
    packed = compress(kind, DATA)
    dec.update(packed[:1000])  # never read: its input would be lost
    with pytest.raises(RuntimeError, match="not read"):
        dec.update(packed[1000:])
    with pytest.raises(RuntimeError, match="not read|before the output"):
        dec.finalize()


# --- settings --------------------------------------------------------------------------------

@pytest.mark.parametrize("kind, level", [("zstd", 0), ("zstd", 20), ("gzip", 0), ("gzip", 10)])
def test_a_level_out_of_range_is_a_config_error_naming_the_range(kind, level):
    with pytest.raises(ConfigError, match="level must be 1..(19|9), got %d" % level):
        new_compressor(kind, level=level)


def test_kinds_may_be_given_as_their_string_values():
    assert decompress("gzip", compress("gzip", b"abc")) == b"abc"
