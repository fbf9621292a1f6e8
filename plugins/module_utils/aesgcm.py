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
artifact moved into another backup or renamed. The chunking (STREAM) is stream_aead.py's,
shared with age.py.
"""
from __future__ import annotations

import os

# Imported for its names only if present: a host without python3-cryptography can still
# use encryption none, and Ansible can read the modules' argument specs; crypto.py raises
# DependencyError when a cipher is actually asked for.
try:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF
    HAS_CRYPTOGRAPHY = True
except ImportError:
    HAS_CRYPTOGRAPHY = False

from ansible_collections.lifeline.dr.plugins.module_utils.errors import ConfigError, IntegrityError
from ansible_collections.lifeline.dr.plugins.module_utils.stream_aead import (
    Framing,
    StreamOpener,
    StreamSealer,
    aead_cipher,
)

MAGIC = b"LLAESGCM"
VERSION = 1
SALT_LEN = 32
HEADER_LEN = len(MAGIC) + 2 + SALT_LEN
CHUNK = 1024 * 1024
TAG = 16
MAX_RECORD = CHUNK + TAG
INFO = b"lifeline-aesgcm-v1 data key"
FRAMING = Framing(chunk=CHUNK, tag=TAG, length_prefix=4)


def _data_key(master_key: bytes, salt: bytes) -> AESGCM:
    if len(master_key) != 32:
        raise ConfigError("AES-256-GCM needs a 32-byte (64 hex character) master key")
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=INFO).derive(master_key)
    return AESGCM(key)


def _nonce(counter: int, last: bool) -> bytes:
    return counter.to_bytes(8, "big") + (b"\x00\x00\x00\x01" if last else b"\x00\x00\x00\x00")


# Nothing authenticates the key before chunk 0 (there is no header MAC), so its failure has
# several possible causes.
_KEY_ERROR = ("AES-GCM chunk 0 failed authentication: wrong key (check lifeline_aes_key against "
              "the backup's key id), the artifact belongs to another backup or artifact name "
              "(aad mismatch), or its header/data was altered or reordered")


class AesGcmEncryptor(StreamSealer):
    """Streams plaintext into the format above; ``_salt`` is a hook for known-answer tests."""

    def __init__(self, master_key: bytes, *, aad: bytes = b"", _salt: bytes | None = None) -> None:
        salt = os.urandom(SALT_LEN) if _salt is None else bytes(_salt)
        if len(salt) != SALT_LEN:
            raise ValueError("salt must be %d bytes" % SALT_LEN)
        header = MAGIC + bytes((VERSION, 0)) + salt
        # The header is fixed-size, so aad || header is unambiguous.
        seal, _open = aead_cipher(_data_key(master_key, salt), _nonce, bytes(aad) + header)
        super().__init__(seal, FRAMING, head=header, name="AES-GCM encryptor")


class AesGcmDecryptor:
    """Streams the format back to plaintext: the 42-byte header, then a STREAM reader that
    releases each chunk once it authenticates.

    Output is provisional until finalize() returns: only then is the final chunk known to exist.
    """

    def __init__(self, master_key: bytes, *, aad: bytes = b"") -> None:
        if len(master_key) != 32:
            raise ConfigError("AES-256-GCM needs a 32-byte (64 hex character) master key")
        self._master = master_key
        self._aad = bytes(aad)
        self._header = bytearray()
        self._payload: StreamOpener | None = None
        self._finalized = False

    def __repr__(self) -> str:
        return "<AesGcmDecryptor chunk=%d>" % (self._payload.counter if self._payload else 0)

    def update(self, data: bytes) -> bytes:
        if self._finalized:
            raise RuntimeError("AES-GCM decryptor used after finalize()")
        mv = memoryview(data).cast("B")
        if self._payload is None:
            take = HEADER_LEN - len(self._header)
            self._header += mv[:take]
            mv = mv[take:]
            if len(self._header) < HEADER_LEN:
                self._check_magic(bytes(self._header))
                return b""
            self._payload = self._open_header(bytes(self._header))
        return self._payload.update(mv)

    @staticmethod
    def _check_magic(head: bytes) -> None:
        if not MAGIC.startswith(head[:len(MAGIC)]):
            raise IntegrityError("not a lifeline AES-GCM artifact (bad magic); is it age-encrypted "
                                 "or unencrypted?")

    def _open_header(self, header: bytes) -> StreamOpener:
        self._check_magic(header)
        if header[len(MAGIC)] != VERSION:
            raise IntegrityError("unsupported AES-GCM artifact version %d (this code reads %d)"
                                 % (header[len(MAGIC)], VERSION))
        if header[len(MAGIC) + 1] != 0:
            raise IntegrityError("AES-GCM artifact header has a non-zero reserved byte; corrupt")
        _seal, open_ = aead_cipher(_data_key(self._master, header[len(MAGIC) + 2:]), _nonce,
                                   self._aad + header)
        return StreamOpener(open_, FRAMING, name="AES-GCM artifact", key_error=_KEY_ERROR)

    def finalize(self) -> bytes:
        if self._finalized:
            raise RuntimeError("AES-GCM decryptor finalized twice")
        self._finalized = True
        if self._payload is None:
            raise IntegrityError("AES-GCM artifact is truncated: it ends inside the header"
                                 if self._header else "AES-GCM artifact is empty")
        return self._payload.finalize()
