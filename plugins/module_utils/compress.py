# -*- coding: utf-8 -*-
# Copyright: Lifeline contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Streaming compressors with the same update()/finalize() shape as the ciphers."""
from __future__ import annotations

import enum
import zlib

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


class _ZstdDecompressor:
    def __init__(self) -> None:
        zstd = _zstandard()
        self._error = zstd.ZstdError
        self._obj = zstd.ZstdDecompressor().decompressobj()
        self._done = False

    def update(self, data: bytes) -> bytes:
        if self._done and data:
            raise IntegrityError("trailing data after the end of the zstd stream")
        if not data:
            return b""  # the decompressobj refuses any call, even an empty one, after its frame
        try:
            out = self._obj.decompress(data)
        except self._error as exc:
            raise IntegrityError("zstd stream is corrupt: %s" % exc) from None
        self._done = self._obj.eof
        if self._done and self._obj.unused_data:
            raise IntegrityError("trailing data after the end of the zstd stream")
        return out

    def finalize(self) -> bytes:
        if not self._obj.eof:
            raise IntegrityError("zstd stream is truncated: it ends before its final frame")
        return b""


class _GzipCompressor:
    def __init__(self, level: int) -> None:
        self._obj = zlib.compressobj(level, zlib.DEFLATED, 31)

    def update(self, data: bytes) -> bytes:
        return self._obj.compress(data)

    def finalize(self) -> bytes:
        return self._obj.flush()


class _GzipDecompressor:
    def __init__(self) -> None:
        self._obj = zlib.decompressobj(31)

    def update(self, data: bytes) -> bytes:
        if self._obj.eof and data:
            raise IntegrityError("trailing data after the end of the gzip stream")
        try:
            out = self._obj.decompress(data)
        except zlib.error as exc:
            raise IntegrityError("gzip stream is corrupt: %s" % exc) from None
        if self._obj.eof and self._obj.unused_data:
            raise IntegrityError("trailing data after the end of the gzip stream")
        return out

    def finalize(self) -> bytes:
        if not self._obj.eof:
            raise IntegrityError("gzip stream is truncated: it ends before its trailer")
        return b""


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


def new_decompressor(kind: Compression):
    kind = Compression(kind)
    if kind is Compression.ZSTD:
        return _ZstdDecompressor()
    if kind is Compression.GZIP:
        return _GzipDecompressor()
    return _Identity()
