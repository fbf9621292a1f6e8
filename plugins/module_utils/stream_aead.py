# -*- coding: utf-8 -*-
# Copyright: Lifeline contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""STREAM chunked authenticated encryption: the chunking and its checks, shared by age and
AES-GCM (age.py, aesgcm.py), which supply the cipher and the record framing.

Plaintext is cut into chunks of ``Framing.chunk`` bytes; chunk i is sealed under a nonce made
from i and a final flag set on the last chunk only. So a reader detects reordering (the
counter), truncation at a chunk boundary (no final flag seen) and appended data (anything after
the final chunk). Every chunk but the last is full; the last holds 1..chunk bytes, and 0 only
when the whole plaintext is empty: a plaintext that is a multiple of the chunk size ends on a
full final chunk, never on an empty one after it (the age spec requires this, and AES-GCM
follows it).

Framing of the sealed records: age writes them back to back (each ``chunk + tag`` bytes, the
last shorter or equal); AES-GCM prefixes each with its length (``length_prefix`` bytes,
big-endian). The formats own their messages for key trouble; the structural messages (which
chunk, truncated where, trailing data) are made here and name the format.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, Optional

try:
    from cryptography.exceptions import InvalidTag
except ImportError:  # crypto.py raises DependencyError when a cipher is asked for
    InvalidTag = ValueError

from ansible_collections.lifeline.dr.plugins.module_utils.errors import (
    DecryptionError,
    IntegrityError,
)

#: seal(counter, plaintext chunk, last) -> ciphertext with its tag
Seal = Callable[[int, bytes, bool], bytes]
#: open(counter, ciphertext with tag, last) -> plaintext, or None when the tag does not verify
Open = Callable[[int, bytes, bool], Optional[bytes]]
#: nonce(counter, last) -> the chunk's nonce, for aead_cipher()
Nonce = Callable[[int, bool], bytes]

# On a failed short final record (back-to-back framing only), look this far back for a valid
# end, to name a little trailing junk as such instead of as a failed chunk.
_TRAILING_PROBE = 64


@dataclasses.dataclass(frozen=True)
class Framing:
    chunk: int  # plaintext bytes in every chunk but the last
    tag: int  # bytes the AEAD adds to each chunk
    length_prefix: int = 0  # bytes of record length before each record; 0: back to back

    @property
    def record(self) -> int:
        return self.chunk + self.tag


def aead_cipher(aead: Any, nonce: Nonce, ad: bytes | None) -> tuple[Seal, Open]:
    """seal and open over a ``cryptography`` AEAD object (ChaCha20Poly1305, AESGCM), with the
    format's nonce and the same associated data for every chunk."""

    def seal(counter: int, chunk: bytes, last: bool) -> bytes:
        return aead.encrypt(nonce(counter, last), chunk, ad)

    def open_(counter: int, record: bytes, last: bool) -> bytes | None:
        try:
            return aead.decrypt(nonce(counter, last), record, ad)
        except InvalidTag:
            return None

    return seal, open_


class StreamSealer:
    """update()/finalize() that turn plaintext into records; ``head`` leads the first output.

    A chunk is sealed only once more data follows it, so the final flag lands on the real last
    chunk. Holds at most one plaintext chunk.
    """

    def __init__(self, seal: Seal, framing: Framing, *, head: bytes = b"", name: str) -> None:
        self._seal_chunk = seal
        self._framing = framing
        self._name = name
        self._pending = head  # goes out with the first output
        self._buf = bytearray()
        self._counter = 0
        self._done = False

    def _records(self, chunk: bytes, last: bool) -> list[bytes]:
        """The sealed chunk and its length field, as parts: joined once, by the caller."""
        record = self._seal_chunk(self._counter, chunk, last)
        self._counter += 1
        prefix = self._framing.length_prefix
        return [len(record).to_bytes(prefix, "big"), record] if prefix else [record]

    def _seal(self, chunk: bytes, last: bool) -> bytes:
        return b"".join(self._records(chunk, last))

    def update(self, data: bytes) -> bytes:
        if self._done:
            raise RuntimeError("%s used after finalize()" % self._name)
        size = self._framing.chunk
        mv = memoryview(data).cast("B")
        n, pos = len(mv), 0
        out = [self._pending]
        self._pending = b""
        buf = self._buf
        # A chunk is sealed only when more data follows it (held back in buf until then).
        if buf:
            need = size - len(buf)
            if n <= need:
                buf += mv
                return b"".join(out)
            buf += mv[:need]
            pos = need
            out += self._records(bytes(buf), False)
            buf.clear()
        while n - pos > size:
            out += self._records(mv[pos:pos + size].tobytes(), False)
            pos += size
        buf += mv[pos:]
        return b"".join(out)

    def finalize(self) -> bytes:
        if self._done:
            raise RuntimeError("%s finalized twice" % self._name)
        self._done = True
        out = self._pending + self._seal(bytes(self._buf), True)
        self._buf = bytearray()
        return out


class StreamOpener:
    """update()/finalize() that turn records back into plaintext, released as each authenticates.

    ``name`` is how messages call the stream ("age payload"). ``key_error``, when given, is the
    message of the DecryptionError for a failure of chunk 0: without a header MAC (AES-GCM), chunk
    0 is the first proof of the key. Output is provisional until finalize() returns, since only
    then is the final chunk known to have been seen.
    """

    def __init__(self, open_: Open, framing: Framing, *, name: str,
                 key_error: str | None = None) -> None:
        self._open_chunk = open_
        self._framing = framing
        self._name = name
        self._key_error = key_error
        self._field = bytearray()  # the part of a length field or record read so far
        self._length_next = bool(framing.length_prefix)  # the next field is a record's length
        self._want = framing.length_prefix or framing.record
        self.counter = 0  # chunks opened
        self._ended = False  # the final chunk was opened
        self._finalized = False

    def update(self, data: bytes) -> bytes:
        if self._finalized:
            raise RuntimeError("%s reader used after finalize()" % self._name)
        mv = memoryview(data).cast("B")
        n, pos = len(mv), 0
        out = []
        while pos < n:
            if self._ended:
                raise IntegrityError("trailing data after the final chunk (%d) of the %s"
                                     % (self.counter - 1, self._name))
            record, pos = self._next_record(mv, pos)
            if record is None:
                break
            out.append(self._open(record))
        return b"".join(out)

    def _next_record(self, mv: memoryview, pos: int) -> tuple[bytes | None, int]:
        """(the next complete record or None, position after what was consumed)."""
        n = len(mv)
        while pos < n:
            want, field = self._want, self._field
            if not field and n - pos >= want:  # fast path: all of it is in this piece
                whole = mv[pos:pos + want].tobytes()
                pos += want
            else:
                take = min(want - len(field), n - pos)
                field += mv[pos:pos + take]
                pos += take
                if len(field) < want:
                    return None, pos
                whole = bytes(field)
                field.clear()
            if self._length_next:
                self._want, self._length_next = self._declared(whole), False
                continue
            if self._framing.length_prefix:
                self._want, self._length_next = self._framing.length_prefix, True
            return whole, pos
        return None, pos

    def _declared(self, field: bytes) -> int:
        size = int.from_bytes(field, "big")
        if not self._framing.tag <= size <= self._framing.record:
            raise IntegrityError("%s chunk %d declares %d bytes, outside %d..%d: it is corrupt"
                                 % (self._name, self.counter, size, self._framing.tag,
                                    self._framing.record))
        return size

    def _open(self, record: bytes) -> bytes:
        # Only a full record can be non-final; try that first since most are.
        full = len(record) == self._framing.record
        plain = self._open_chunk(self.counter, record, False) if full else None
        if plain is None:
            plain = self._open_chunk(self.counter, record, True)
            if plain is None:
                raise self._auth_error()
            if not plain and self.counter:
                raise IntegrityError("%s ends with an empty final chunk after a full one, which "
                                     "the format forbids; it is corrupt" % self._name)
            self._ended = True
        self.counter += 1
        return plain

    def _auth_error(self) -> IntegrityError:
        if self.counter == 0 and self._key_error:
            return DecryptionError(self._key_error)
        return IntegrityError("%s chunk %d failed authentication: it was altered, reordered or "
                              "corrupted" % (self._name, self.counter))

    def finalize(self) -> bytes:
        if self._finalized:
            raise RuntimeError("%s reader finalized twice" % self._name)
        self._finalized = True
        rest = bytes(self._field)
        self._field = bytearray()
        out = b""
        if self._framing.length_prefix:
            if rest or not self._length_next:
                raise self._truncated("it ends inside chunk %d" % self.counter)
        elif rest:
            out = self._open_last(rest)
        if not self._ended:
            raise self._truncated(
                "it ends after chunk %d, before its final chunk" % (self.counter - 1)
                if self.counter else
                "it ends before its first chunk (no payload chunk follows the header)")
        return out

    def _truncated(self, where: str) -> IntegrityError:
        return IntegrityError("%s is truncated: %s" % (self._name, where))

    def _open_last(self, record: bytes) -> bytes:
        """The short record that back-to-back framing leaves at the end: the final chunk."""
        if len(record) < self._framing.tag:
            raise self._truncated("the final chunk is shorter than its tag")
        try:
            return self._open(record)
        except IntegrityError:
            for extra in range(1, min(_TRAILING_PROBE, len(record) - self._framing.tag) + 1):
                if self._open_chunk(self.counter, record[:-extra], True) is not None:
                    raise IntegrityError("trailing data: %d byte(s) after the final chunk (%d) of "
                                         "the %s" % (extra, self.counter, self._name)) from None
            raise
