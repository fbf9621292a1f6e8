# -*- coding: utf-8 -*-
# Copyright: Lifeline contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Lifeline's chunked AES-256-GCM format for a symmetric 256-bit master key.

Layout (all integers big-endian; spec in docs/formats-encryption.md)::

    header   "LLAESGCM" | version 0x01 | reserved 0x00 | salt (32 random bytes)     42 bytes
    chunk*   ciphertext length (4 bytes) | AES-GCM ciphertext || 16-byte tag

    data key = HKDF-SHA256(ikm=master key, salt=salt, info="lifeline-aesgcm-v1 data key")
    nonce_i  = i (8 bytes) | 00 00 00 | 0x01 on the final chunk, else 0x00
    AAD      = caller's aad (backup id + artifact name) || header

Every chunk but the last holds exactly 1 MiB of plaintext; the last holds 0..1 MiB and is empty
only when the whole plaintext is. The design brief asked for a per-artifact data key "wrapped by
the master key": HKDF with a random per-artifact salt gives every artifact its own key without
storing a wrapped key, and a nonce never repeats under a key because each key seals one stream.
The final flag detects truncation at a chunk boundary, the counter reordering, and the AAD an
artifact moved into another backup or renamed.
"""
from __future__ import annotations

import os

# Imported for its names only if present: a host without python3-cryptography can still
# use encryption none, and Ansible can read the modules' argument specs; crypto.py raises
# DependencyError when a cipher is actually asked for.
try:
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF
    HAS_CRYPTOGRAPHY = True
except ImportError:
    HAS_CRYPTOGRAPHY = False

from ansible_collections.lifeline.dr.plugins.module_utils.errors import (
    ConfigError,
    DecryptionError,
    IntegrityError,
)

MAGIC = b"LLAESGCM"
VERSION = 1
SALT_LEN = 32
HEADER_LEN = len(MAGIC) + 2 + SALT_LEN
CHUNK = 1024 * 1024
TAG = 16
MAX_RECORD = CHUNK + TAG
INFO = b"lifeline-aesgcm-v1 data key"
_LEN = 4


def _data_key(master_key: bytes, salt: bytes) -> AESGCM:
    if len(master_key) != 32:
        raise ConfigError("AES-256-GCM needs a 32-byte (64 hex character) master key")
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=INFO).derive(master_key)
    return AESGCM(key)


def _nonce(counter: int, last: bool) -> bytes:
    return counter.to_bytes(8, "big") + (b"\x00\x00\x00\x01" if last else b"\x00\x00\x00\x00")


class AesGcmEncryptor:
    """Streams plaintext into the format above; ``_salt`` is a hook for known-answer tests."""

    def __init__(self, master_key: bytes, *, aad: bytes = b"", _salt: bytes | None = None) -> None:
        salt = os.urandom(SALT_LEN) if _salt is None else bytes(_salt)
        if len(salt) != SALT_LEN:
            raise ValueError("salt must be %d bytes" % SALT_LEN)
        header = MAGIC + bytes((VERSION, 0)) + salt
        self._aead = _data_key(master_key, salt)
        self._ad = bytes(aad) + header  # the header is fixed-size, so the split is unambiguous
        self._pending = header
        self._buf = bytearray()
        self._counter = 0
        self._done = False

    def _seal(self, chunk: bytes, last: bool) -> bytes:
        sealed = self._aead.encrypt(_nonce(self._counter, last), chunk, self._ad)
        self._counter += 1
        return len(sealed).to_bytes(_LEN, "big") + sealed

    def update(self, data: bytes) -> bytes:
        if self._done:
            raise RuntimeError("AES-GCM encryptor used after finalize()")
        mv = memoryview(data).cast("B")
        n, pos = len(mv), 0
        out = [self._pending]
        self._pending = b""
        buf = self._buf
        # Seal a chunk only when more data follows, so the final flag lands on the real last one.
        if buf:
            need = CHUNK - len(buf)
            if n <= need:
                buf += mv
                return b"".join(out)
            buf += mv[:need]
            pos = need
            out.append(self._seal(bytes(buf), False))
            buf.clear()
        while n - pos > CHUNK:
            out.append(self._seal(mv[pos:pos + CHUNK].tobytes(), False))
            pos += CHUNK
        buf += mv[pos:]
        return b"".join(out)

    def finalize(self) -> bytes:
        if self._done:
            raise RuntimeError("AES-GCM encryptor finalized twice")
        self._done = True
        out = self._pending + self._seal(bytes(self._buf), True)
        self._buf = bytearray()
        return out


class AesGcmDecryptor:
    """Streams the format back to plaintext, releasing each chunk once it authenticates.

    Output is provisional until finalize() returns: only then is the final chunk known to exist.
    """

    def __init__(self, master_key: bytes, *, aad: bytes = b"") -> None:
        if len(master_key) != 32:
            raise ConfigError("AES-256-GCM needs a 32-byte (64 hex character) master key")
        self._master = master_key
        self._aad = bytes(aad)
        self._ad = b""
        self._aead: AESGCM | None = None
        self._buf = bytearray()
        self._record = 0  # length of the record being read; 0 while reading a length field
        self._counter = 0
        self._ended = False  # the final chunk was seen
        self._finalized = False

    def __repr__(self) -> str:
        return "<AesGcmDecryptor chunk=%d>" % self._counter

    def update(self, data: bytes) -> bytes:
        if self._finalized:
            raise RuntimeError("AES-GCM decryptor used after finalize()")
        mv = memoryview(data).cast("B")
        n, pos = len(mv), 0
        out = []
        buf = self._buf
        if self._aead is None and n:
            pos = min(HEADER_LEN - len(buf), n)
            buf += mv[:pos]
            if len(buf) < HEADER_LEN:
                self._check_magic(bytes(buf))
                return b""
            self._open_header(bytes(buf))
            buf.clear()
        while pos < n:
            if self._ended:
                raise IntegrityError("trailing data after the final chunk (%d) of the AES-GCM "
                                     "artifact" % (self._counter - 1))
            want = self._record or _LEN
            if not buf and n - pos >= want:  # fast path: the whole field is in this piece
                field = mv[pos:pos + want].tobytes()
                pos += want
            else:
                take = min(want - len(buf), n - pos)
                buf += mv[pos:pos + take]
                pos += take
                if len(buf) < want:
                    break
                field = bytes(buf)
                buf.clear()
            if self._record:
                self._record = 0
                out.append(self._open(field))
            else:
                self._record = int.from_bytes(field, "big")
                if not TAG <= self._record <= MAX_RECORD:
                    raise IntegrityError("AES-GCM chunk %d declares %d bytes, outside %d..%d: the "
                                         "artifact is corrupt" % (self._counter, self._record,
                                                                  TAG, MAX_RECORD))
        return b"".join(out)

    @staticmethod
    def _check_magic(head: bytes) -> None:
        if not MAGIC.startswith(head[:len(MAGIC)]):
            raise IntegrityError("not a lifeline AES-GCM artifact (bad magic); is it age-encrypted "
                                 "or unencrypted?")

    def _open_header(self, header: bytes) -> None:
        self._check_magic(header)
        if header[len(MAGIC)] != VERSION:
            raise IntegrityError("unsupported AES-GCM artifact version %d (this code reads %d)"
                                 % (header[len(MAGIC)], VERSION))
        if header[len(MAGIC) + 1] != 0:
            raise IntegrityError("AES-GCM artifact header has a non-zero reserved byte; corrupt")
        self._aead = _data_key(self._master, header[len(MAGIC) + 2:])
        self._ad = self._aad + header

    def _try(self, record: bytes, last: bool) -> bytes | None:
        try:
            return self._aead.decrypt(_nonce(self._counter, last), record, self._ad)
        except InvalidTag:
            return None

    def _open(self, record: bytes) -> bytes:
        full = len(record) == MAX_RECORD
        # Only a full chunk can be non-final; try that first since most chunks are.
        out = self._try(record, False) if full else None
        if out is None:
            out = self._try(record, True)
            if out is None:
                raise self._auth_error()
            if not out and self._counter:
                raise IntegrityError("AES-GCM artifact ends with an empty final chunk after a "
                                     "full one, which the format forbids; corrupt")
            self._ended = True
        self._counter += 1
        return out

    def _auth_error(self) -> IntegrityError:
        if self._counter == 0:
            # Nothing has authenticated yet, so the key or the AAD may be what is wrong.
            return DecryptionError(
                "AES-GCM chunk 0 failed authentication: wrong key (check lifeline_aes_key against "
                "the backup's key id), the artifact belongs to another backup or artifact name "
                "(aad mismatch), or its header/data was altered or reordered")
        return IntegrityError("AES-GCM chunk %d failed authentication after earlier chunks "
                              "verified: the artifact was altered, reordered or corrupted"
                              % self._counter)

    def finalize(self) -> bytes:
        if self._finalized:
            raise RuntimeError("AES-GCM decryptor finalized twice")
        self._finalized = True
        if self._aead is None:
            raise IntegrityError("AES-GCM artifact is truncated: it ends inside the header"
                                 if self._buf else "AES-GCM artifact is empty")
        if not self._ended:
            where = ("inside chunk %d" % self._counter if self._buf or self._record
                     else "after chunk %d, before its final chunk" % (self._counter - 1)
                     if self._counter else "before its first chunk")
            raise IntegrityError("AES-GCM artifact is truncated: it ends %s" % where)
        return b""
