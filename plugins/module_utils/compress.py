# -*- coding: utf-8 -*-
# Copyright: Lifeline contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Streaming compression: compressors with the ciphers' update()/finalize() shape, and
decompressors that hand their output on in bounded pieces, since what they read is hostile."""
from __future__ import annotations

import enum
import zlib
from typing import Iterator

from ansible_collections.lifeline.dr.plugins.module_utils.errors import (
    ConfigError,
    DependencyError,
    IntegrityError,
)


class Compression(str, enum.Enum):
    ZSTD = "zstd"
    GZIP = "gzip"
    NONE = "none"

    @property
    def suffix(self) -> str:
        return {"zstd": ".zst", "gzip": ".gz", "none": ""}[self.value]


def _zstandard():
    try:
        import zstandard  # pylint: disable=import-outside-toplevel
    except ImportError:
        raise DependencyError(
            "zstd compression needs the Python library 'zstandard' (Debian: python3-zstandard); "
            "install it or set compression to gzip") from None
    return zstandard


class _Identity:
    def update(self, data: bytes) -> bytes:
        return data

    def finalize(self) -> bytes:
        return b""


# With worker threads libzstd keeps a queue of jobs (input and output buffers) whose size
# defaults to 4x the window: at level 3 and 2 threads that held ~130-200 MiB. 1 MiB jobs keep
# it near 20 MiB at the same speed and ratio.
_ZSTD_JOB_SIZE = 1024 * 1024


class _ZstdCompressor:
    def __init__(self, level: int, threads: int) -> None:
        zstd = _zstandard()
        # threads > 0 makes libzstd compress on worker threads outside the GIL.
        params = zstd.ZstdCompressionParameters.from_level(
            level, threads=threads, job_size=_ZSTD_JOB_SIZE if threads > 0 else 0)
        self._obj = zstd.ZstdCompressor(compression_params=params).compressobj()

    def update(self, data: bytes) -> bytes:
        return self._obj.compress(data)

    def finalize(self) -> bytes:
        return self._obj.flush()


class _GzipCompressor:
    def __init__(self, level: int) -> None:
        self._obj = zlib.compressobj(level, zlib.DEFLATED, 31)

    def update(self, data: bytes) -> bytes:
        return self._obj.compress(data)

    def finalize(self) -> bytes:
        return self._obj.flush()


DEFAULT_LEVELS = {Compression.ZSTD: 3, Compression.GZIP: 6, Compression.NONE: 0}


def new_compressor(kind: Compression, *, level: int | None = None, threads: int = 0):
    """Return an object with update()/finalize() that compresses a stream."""
    kind = Compression(kind)
    level = DEFAULT_LEVELS[kind] if level is None else level
    if kind is Compression.ZSTD:
        if not 1 <= level <= 19:
            raise ConfigError("zstd level must be 1..19, got %s" % level)
        return _ZstdCompressor(level, threads)
    if kind is Compression.GZIP:
        if not 1 <= level <= 9:
            raise ConfigError("gzip level must be 1..9, got %s" % level)
        return _GzipCompressor(level)
    return _Identity()


# --- decompressors: output in bounded pieces ---------------------------------------------------
#
# A hostile artifact is small and expands without limit (zstd turns 4 bytes into a 128 KiB block,
# so 1 MiB into 32 GiB), so no decompressor returns all that one input piece expands to. update()
# returns an iterator of pieces of at most MAX_PIECE bytes, produced as it is consumed.

MAX_PIECE = 1024 * 1024


class _Decompressor:
    """update(data) -> iterator of output pieces of at most MAX_PIECE bytes; finalize() checks
    that the stream ended. Each iterator must be read to its end before the next call: the input
    it was given is not kept anywhere else."""

    _unread = False  # an iterator that update() returned was not read to its end

    def update(self, data: bytes) -> Iterator[bytes]:
        if self._unread:
            raise RuntimeError("decompressor: the output of the previous update() was not read "
                               "to its end")
        self._unread = True
        return self._drain(memoryview(data).cast("B"))

    def _drain(self, data: memoryview) -> Iterator[bytes]:
        yield from self._pieces(data)
        self._unread = False

    def _pieces(self, data: memoryview) -> Iterator[bytes]:
        raise NotImplementedError

    def finalize(self) -> None:
        if self._unread:
            raise RuntimeError("decompressor finalized before the output of update() was read")
        self._check_end()

    def _check_end(self) -> None:
        pass


class _Passthrough(_Decompressor):
    def _pieces(self, data: memoryview) -> Iterator[bytes]:
        for pos in range(0, len(data), MAX_PIECE):
            yield data[pos:pos + MAX_PIECE].tobytes()


_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
_ZSTD_BLOCK_MAX = 128 * 1024  # RFC 8878: no block decompresses to more
# Per piece handed to libzstd: a block begun in the previous piece may complete in it, and a raw
# block at its end is copied out as it arrives, hence the two extra blocks.
_ZSTD_BLOCKS_PER_PIECE = MAX_PIECE // _ZSTD_BLOCK_MAX - 2
# The largest window Lifeline's own levels (1..19) use is 8 MiB (level 17+); a frame asking for
# more was not written by Lifeline and would make libzstd allocate up to 128 MiB.
_ZSTD_MAX_WINDOW = 16 * 1024 * 1024


class _Part(enum.Enum):
    MAGIC = 1
    DESCRIPTOR = 2
    HEADER = 3  # the frame header's fields after the descriptor: skipped
    BLOCK_HEADER = 4
    BLOCK = 5  # skipped
    CHECKSUM = 6  # skipped
    END = 7


class _ZstdFrameCutter:
    """Walks the structure of one zstd frame (RFC 8878 3.1.1: magic, frame header, blocks each
    behind a 3-byte header, optional checksum) without decoding it, and cuts the input at block
    boundaries so that no piece holds more than _ZSTD_BLOCKS_PER_PIECE block headers. libzstd
    still decodes and checks everything; this only decides how much it is given at a time."""

    _INSPECTED = (_Part.MAGIC, _Part.DESCRIPTOR, _Part.BLOCK_HEADER)

    def __init__(self) -> None:
        self._part = _Part.MAGIC
        self._need = len(_ZSTD_MAGIC)  # bytes left in the current part
        self._field = bytearray()  # an inspected part read so far
        self._checksum = 0
        self._last = False

    def cut(self, data: memoryview) -> Iterator[memoryview]:
        start = pos = blocks = 0
        while pos < len(data):
            part = self._part
            if part is _Part.END:
                raise IntegrityError("trailing data after the end of the zstd stream")
            if part is _Part.BLOCK_HEADER and not self._field:
                if blocks == _ZSTD_BLOCKS_PER_PIECE:
                    yield data[start:pos]
                    start, blocks = pos, 0
                blocks += 1
            take = min(self._need, len(data) - pos)
            if part in self._INSPECTED:
                self._field += data[pos:pos + take]
            pos += take
            self._need -= take
            if not self._need:
                self._next()
        if pos > start:
            yield data[start:pos]

    def _next(self) -> None:
        part, field = self._part, bytes(self._field)
        self._field.clear()
        if part is _Part.MAGIC:
            if field != _ZSTD_MAGIC:
                raise IntegrityError("not a zstd stream: it does not start with the zstd magic "
                                     "number")
            self._go(_Part.DESCRIPTOR, 1)
        elif part is _Part.DESCRIPTOR:
            flags = field[0]
            single_segment = flags >> 5 & 1
            content_size = (single_segment, 2, 4, 8)[flags >> 6]
            self._checksum = 4 if flags & 4 else 0
            window = 1 - single_segment
            self._go(_Part.HEADER, window + (0, 1, 2, 4)[flags & 3] + content_size)
        elif part is _Part.HEADER or part is _Part.BLOCK and not self._last:
            self._go(_Part.BLOCK_HEADER, 3)
        elif part is _Part.BLOCK_HEADER:
            header = int.from_bytes(field, "little")
            self._last = bool(header & 1)
            rle = (header >> 1) & 3 == 1
            self._go(_Part.BLOCK, 1 if rle else header >> 3)
        elif part is _Part.BLOCK:
            self._go(_Part.CHECKSUM, self._checksum)
        else:
            self._part = _Part.END

    def _go(self, part: _Part, need: int) -> None:
        self._part, self._need = part, need
        if not need:
            self._next()


class _ZstdDecompressor(_Decompressor):
    def __init__(self) -> None:
        zstd = _zstandard()
        self._error = zstd.ZstdError
        self._obj = zstd.ZstdDecompressor(max_window_size=_ZSTD_MAX_WINDOW).decompressobj()
        self._cutter = _ZstdFrameCutter()

    def _pieces(self, data: memoryview) -> Iterator[bytes]:
        for piece in self._cutter.cut(data):
            if self._obj.eof:
                raise IntegrityError("trailing data after the end of the zstd stream")
            try:
                out = self._obj.decompress(piece)
            except self._error as exc:
                raise IntegrityError("zstd stream is corrupt: %s" % exc) from None
            if self._obj.eof and self._obj.unused_data:
                raise IntegrityError("trailing data after the end of the zstd stream")
            if out:
                yield out

    def _check_end(self) -> None:
        if not self._obj.eof:
            raise IntegrityError("zstd stream is truncated: it ends before its final frame")


class _GzipDecompressor(_Decompressor):
    def __init__(self) -> None:
        self._obj = zlib.decompressobj(31)

    def _pieces(self, data: memoryview) -> Iterator[bytes]:
        obj = self._obj
        while not obj.eof:
            try:
                out = obj.decompress(data, MAX_PIECE)
            except zlib.error as exc:
                raise IntegrityError("gzip stream is corrupt: %s" % exc) from None
            data = obj.unconsumed_tail  # the input that max_length left unread
            if out:
                yield out
            if not data and len(out) < MAX_PIECE and not obj.eof:
                return  # all input read, no output held back
        if data or obj.unused_data:
            raise IntegrityError("trailing data after the end of the gzip stream")

    def _check_end(self) -> None:
        if not self._obj.eof:
            raise IntegrityError("gzip stream is truncated: it ends before its trailer")


def new_decompressor(kind: Compression) -> _Decompressor:
    """Return an object whose update() yields a stream's decompressed output in pieces of at
    most MAX_PIECE bytes and whose finalize() raises if the stream did not end."""
    kind = Compression(kind)
    if kind is Compression.ZSTD:
        return _ZstdDecompressor()
    if kind is Compression.GZIP:
        return _GzipDecompressor()
    return _Passthrough()
