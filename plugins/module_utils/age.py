# -*- coding: utf-8 -*-
# Copyright: Lifeline contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A native, streaming implementation of the age v1 file format for X25519 recipients.

Spec: https://age-encryption.org/v1 (C2SP age.md). Files written here decrypt with the stock
``age`` CLI and vice versa, which is the emergency path in docs/formats-encryption.md.

Layout::

    age-encryption.org/v1\\n
    -> X25519 <base64 ephemeral share>\\n          one stanza per recipient
    <base64 body, 64-column lines, last line shorter>\\n
    --- <base64 HMAC-SHA256 of the header up to and including "---">\\n
    <16-byte nonce> <STREAM: 64 KiB plaintext chunks, ChaCha20-Poly1305, 16-byte tags>

The chunking of the payload (STREAM) is stream_aead.py's, shared with aesgcm.py; this file holds
keys, the header, and the payload cipher. Only what cryptography 38 (Debian 12) offers is used.
Memory stays bounded: the encryptor holds at most one plaintext chunk, the decryptor the header
(capped) plus one ciphertext chunk.

Errors: DecryptionError when no identity can open the file; IntegrityError when the file is
malformed, altered, truncated or followed by trailing data (the key was right, the data is not).
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
from typing import Sequence

# Imported for its names only if present: a host without python3-cryptography can still
# use encryption none, and Ansible can read the modules' argument specs; crypto.py raises
# DependencyError when a cipher is actually asked for.
try:
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
    from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF
    from cryptography.hazmat.primitives.serialization import (
        Encoding,
        NoEncryption,
        PrivateFormat,
        PublicFormat,
    )
    HAS_CRYPTOGRAPHY = True
except ImportError:
    HAS_CRYPTOGRAPHY = False

from ansible_collections.lifeline.dr.plugins.module_utils.errors import (
    ConfigError,
    DecryptionError,
    IntegrityError,
)
from ansible_collections.lifeline.dr.plugins.module_utils.stream_aead import (
    Framing,
    Open,
    Seal,
    StreamOpener,
    StreamSealer,
    aead_cipher,
)

VERSION_LINE = b"age-encryption.org/v1"
X25519_LABEL = b"age-encryption.org/v1/X25519"
RECIPIENT_HRP = "age"
IDENTITY_HRP = "age-secret-key-"
CHUNK = 64 * 1024
TAG = 16
CHUNK_CT = CHUNK + TAG
FILE_KEY_LEN = 16
NONCE_LEN = 16
# A header is ~100 bytes per recipient; the cap keeps a hostile file from eating memory.
MAX_HEADER = 1024 * 1024
_ZERO_NONCE = bytes(12)
_ARMOR = b"-----BEGIN AGE ENCRYPTED FILE-----"


# --- bech32 (BIP 173 checksum, without its 90-character limit, as age uses it) -----------------

_CHARSET = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
_CHARSET_REV = {c: i for i, c in enumerate(_CHARSET)}
_GEN = (0x3B6A57B2, 0x26508E6D, 0x1EA119FA, 0x3D4233DD, 0x2A1462B3)


def _polymod(values: Sequence[int]) -> int:
    chk = 1
    for value in values:
        top = chk >> 25
        chk = (chk & 0x1FFFFFF) << 5 ^ value
        for i in range(5):
            if (top >> i) & 1:
                chk ^= _GEN[i]
    return chk


def _hrp_expand(hrp: str) -> list[int]:
    return [ord(c) >> 5 for c in hrp] + [0] + [ord(c) & 31 for c in hrp]


def _convert_bits(data: Sequence[int], frm: int, to: int, *, pad: bool) -> bytes:
    acc = bits = 0
    out = []
    maxv = (1 << to) - 1
    for value in data:
        acc = (acc << frm) | value
        bits += frm
        while bits >= to:
            bits -= to
            out.append((acc >> bits) & maxv)
    if pad:
        if bits:
            out.append((acc << (to - bits)) & maxv)
    elif bits >= frm or (acc << (to - bits)) & maxv:
        raise ValueError("invalid bech32 padding")
    return bytes(out)


def bech32_encode(hrp: str, data: bytes) -> str:
    """Lowercase bech32 of ``data`` under ``hrp`` (callers upper-case identities afterwards)."""
    values = list(_convert_bits(data, 8, 5, pad=True))
    polymod = _polymod(_hrp_expand(hrp) + values + [0] * 6) ^ 1
    checksum = [(polymod >> 5 * (5 - i)) & 31 for i in range(6)]
    return hrp + "1" + "".join(_CHARSET[v] for v in values + checksum)


def bech32_decode(text: str) -> tuple[str, bytes]:
    """(hrp, data) of a bech32 string; ValueError if it is not valid bech32."""
    if text.lower() != text and text.upper() != text:
        raise ValueError("mixed case")
    text = text.lower()
    sep = text.rfind("1")
    if sep < 1 or sep + 7 > len(text):
        raise ValueError("missing separator or checksum")
    hrp, rest = text[:sep], text[sep + 1:]
    if any(ord(c) < 33 or ord(c) > 126 for c in hrp):
        raise ValueError("invalid prefix characters")
    try:
        values = [_CHARSET_REV[c] for c in rest]
    except KeyError:
        raise ValueError("invalid data characters") from None
    if _polymod(_hrp_expand(hrp) + values) != 1:
        raise ValueError("bad checksum")
    return hrp, _convert_bits(values[:-6], 5, 8, pad=False)


# --- keys -------------------------------------------------------------------------------------

def _raw_public(key: X25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def encode_recipient(public: bytes) -> str:
    return bech32_encode(RECIPIENT_HRP, public)


def decode_recipient(recipient: str) -> bytes:
    """The 32-byte X25519 public key of an ``age1...`` recipient; ConfigError if malformed."""
    text = recipient.strip() if isinstance(recipient, str) else ""
    if text.upper().startswith("AGE-SECRET-KEY-"):
        # Never echo it: this is a private key given where a public one belongs.
        raise ConfigError("an age identity (secret key AGE-SECRET-KEY-1...) was given as a "
                          "recipient; give its public recipient (age-keygen -y) instead")
    shown = ("'%s...'" % text[:12]) if text.startswith("age1") else "(value not shown)"
    try:
        hrp, data = bech32_decode(text)
    except ValueError as exc:
        raise ConfigError("age recipient %s is malformed (%s); expected 'age1' followed by 58 "
                          "bech32 characters, as printed by age-keygen" % (shown, exc)) from None
    if hrp != RECIPIENT_HRP:
        raise ConfigError("age recipient %s is not an X25519 recipient; only age1... keys are "
                          "supported (no plugin or SSH recipients)" % shown)
    if len(data) != 32:
        raise ConfigError("age recipient %s has %d key bytes, expected 32" % (shown, len(data)))
    return data


class Identity:
    """An X25519 identity (private key). Its repr names only the public recipient."""

    __slots__ = ("_key", "public")

    def __init__(self, secret: bytes) -> None:
        self._key = X25519PrivateKey.from_private_bytes(secret)
        self.public = _raw_public(self._key)

    @property
    def recipient(self) -> str:
        return encode_recipient(self.public)

    def shared_secret(self, peer: bytes) -> bytes:
        return self._key.exchange(X25519PublicKey.from_public_bytes(peer))

    def __repr__(self) -> str:
        return "<age identity for %s>" % self.recipient


def encode_identity(secret: bytes) -> str:
    return bech32_encode(IDENTITY_HRP, secret).upper()


def parse_identities(texts: Sequence[str]) -> list[Identity]:
    """Identities from strings that are either one ``AGE-SECRET-KEY-1...`` or the content of an
    identity file (``age-keygen`` output: comment lines, one key per line).

    ConfigError names the entry by position only, so no secret is ever echoed.
    """
    out: list[Identity] = []
    for index, text in enumerate(texts, 1):
        if not isinstance(text, str):
            raise ConfigError("age identity #%d is not a string" % index)
        for line in text.splitlines():
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            if line.startswith("age1"):
                raise ConfigError("age identity #%d is a recipient (public key 'age1...'), not an "
                                  "identity; restore needs the AGE-SECRET-KEY-1... line" % index)
            try:
                hrp, data = bech32_decode(line)
            except ValueError as exc:
                raise ConfigError("age identity #%d is malformed (%s); expected "
                                  "AGE-SECRET-KEY-1... as written by age-keygen"
                                  % (index, exc)) from None
            if hrp != IDENTITY_HRP or line.upper() != line or len(data) != 32:
                raise ConfigError("age identity #%d is not an X25519 identity; expected "
                                  "AGE-SECRET-KEY-1... as written by age-keygen" % index)
            out.append(Identity(data))
    return out


def generate_identity() -> tuple[str, str]:
    """(identity ``AGE-SECRET-KEY-1...``, recipient ``age1...``), like ``age-keygen``."""
    key = X25519PrivateKey.generate()
    secret = key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
    return encode_identity(secret), encode_recipient(_raw_public(key))


# --- header: writing and parsing --------------------------------------------------------------

def _hkdf(ikm: bytes, salt: bytes, info: bytes, length: int = 32) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=salt, info=info).derive(ikm)


def _b64(data: bytes) -> bytes:
    return base64.b64encode(data).rstrip(b"=")


def _b64decode(text: bytes) -> bytes:
    """Strict unpadded standard base64: rejects padding, foreign characters, non-canonical bits."""
    try:
        if b"=" in text:
            raise ValueError("padding")
        data = base64.b64decode(text + b"=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise IntegrityError("age header holds invalid base64; the file is corrupt") from None
    if _b64(data) != text:
        raise IntegrityError("age header holds non-canonical base64; the file is corrupt")
    return data


def _stanza(kind: bytes, args: Sequence[bytes], body: bytes) -> bytes:
    encoded = _b64(body)
    lines = [encoded[i:i + 64] for i in range(0, len(encoded), 64)]
    if len(encoded) % 64 == 0:
        lines.append(b"")  # the last body line must be shorter than 64 columns
    return b"-> " + b" ".join([kind, *args]) + b"\n" + b"\n".join(lines) + b"\n"


def _wrap_x25519(file_key: bytes, public: bytes) -> bytes:
    ephemeral = X25519PrivateKey.generate()
    share = _raw_public(ephemeral)
    try:
        shared = ephemeral.exchange(X25519PublicKey.from_public_bytes(public))
    except ValueError:
        raise ConfigError("age recipient %s is not a usable X25519 public key (low-order point)"
                          % encode_recipient(public)) from None
    wrap_key = _hkdf(shared, share + public, X25519_LABEL)
    body = ChaCha20Poly1305(wrap_key).encrypt(_ZERO_NONCE, file_key, None)
    return _stanza(b"X25519", [_b64(share)], body)


def _header_mac(file_key: bytes, header: bytes) -> bytes:
    return hmac.new(_hkdf(file_key, b"", b"header"), header, hashlib.sha256).digest()


class _Stanza:
    __slots__ = ("kind", "args", "body")

    def __init__(self, kind: bytes, args: list[bytes], body: bytes) -> None:
        self.kind, self.args, self.body = kind, args, body


def _is_vchars(arg: bytes) -> bool:
    return bool(arg) and all(0x21 <= c <= 0x7E for c in arg)


def _parse_header(header: bytes) -> tuple[list[_Stanza], bytes, bytes]:
    """(stanzas, bytes the MAC covers, MAC) of a complete header ending in the MAC line."""
    lines = header.split(b"\n")[:-1]  # the header ends with "\n"
    if lines[0] != VERSION_LINE:
        raise IntegrityError("unsupported age header version line %r" % lines[0][:40])
    stanzas: list[_Stanza] = []
    i = 1
    while i < len(lines):
        line = lines[i]
        if line.startswith(b"--- "):
            if i != len(lines) - 1 or not stanzas:
                raise IntegrityError("malformed age header: misplaced MAC line or no recipients")
            mac = _b64decode(line[4:])
            if len(mac) != 32:
                raise IntegrityError("malformed age header: the MAC is not 32 bytes")
            return stanzas, header[:len(header) - len(line) - 1 + 3], mac
        if not line.startswith(b"-> "):
            raise IntegrityError("malformed age header: unexpected line %d" % (i + 1))
        words = line[3:].split(b" ")
        if not all(_is_vchars(w) for w in words):
            raise IntegrityError("malformed age header: bad stanza line %d" % (i + 1))
        body = []
        while True:
            i += 1
            if i >= len(lines) - 1:
                raise IntegrityError("malformed age header: stanza body runs into the MAC line")
            body.append(lines[i])
            if len(lines[i]) < 64:
                break
            if len(lines[i]) > 64:
                raise IntegrityError("malformed age header: body line %d is too long" % (i + 1))
        stanzas.append(_Stanza(words[0], words[1:], _b64decode(b"".join(body))))
        i += 1
    raise IntegrityError("malformed age header: no MAC line")  # unreachable: caller found it


# --- reading a file's header and payload nonce ------------------------------------------------

class _HeaderReader:
    """Reads an age header and the payload nonce that follows it, and opens the header with
    the identities: the part of a file before its first STREAM chunk."""

    def __init__(self, identities: Sequence[Identity]) -> None:
        self._identities = identities
        self._hbuf = bytearray()
        self._scan = 0  # where the search for the MAC line resumes
        self._mac_at = -1
        self._file_key = b""  # set once the header's MAC verified
        self._nonce = bytearray()

    def feed(self, mv: memoryview) -> memoryview | None:
        """The bytes after the nonce once header and nonce are complete; None until then."""
        if not self._file_key:
            mv = self._feed_header(mv)
            if not self._file_key:
                return None
        take = NONCE_LEN - len(self._nonce)
        self._nonce += mv[:take]
        return mv[take:] if len(self._nonce) == NONCE_LEN else None

    def payload_key(self) -> bytes:
        return _hkdf(self._file_key, bytes(self._nonce), b"payload")

    def truncated(self) -> IntegrityError:
        if self._file_key:
            return IntegrityError("age file is truncated: it ends inside the payload nonce")
        return IntegrityError("age file is truncated: it ends inside the header"
                              if self._hbuf else "age file is empty")

    def _feed_header(self, mv: memoryview) -> memoryview:
        hbuf = self._hbuf
        take = min(len(mv), MAX_HEADER + 1 - len(hbuf))
        hbuf += mv[:take]
        rest = mv[take:]
        prefix = VERSION_LINE + b"\n"
        if not hbuf.startswith(prefix[:len(hbuf)]):
            if not _ARMOR.startswith(bytes(hbuf[:len(_ARMOR)])):
                raise IntegrityError("not an age file: it does not start with "
                                     "'age-encryption.org/v1'")
            if len(hbuf) >= len(_ARMOR):
                raise IntegrityError("ASCII-armored age files are not supported here; "
                                     "decrypt it with the stock age CLI (age -d)")
            return rest
        if self._mac_at < 0:
            found = hbuf.find(b"\n--- ", max(0, self._scan - 4))
            self._scan = len(hbuf)
            if found >= 0:
                self._mac_at = found + 1
        end = hbuf.find(b"\n", self._mac_at) + 1 if self._mac_at >= 0 else 0
        if end <= 0:
            if len(hbuf) > MAX_HEADER:
                raise IntegrityError("age header is larger than %d bytes; the file is corrupt"
                                     % MAX_HEADER)
            return rest
        self._file_key = self._open_header(bytes(hbuf[:end]))
        tail = bytes(hbuf[end:])
        self._hbuf = bytearray()
        return memoryview(tail + rest.tobytes()) if tail else rest

    def _open_header(self, header: bytes) -> bytes:
        stanzas, covered, mac = _parse_header(header)
        x25519 = []
        for stanza in stanzas:
            if stanza.kind != b"X25519":
                continue  # other recipient types (and grease) are not ours to open
            if len(stanza.args) != 1 or len(stanza.body) != 32:
                raise IntegrityError("malformed X25519 stanza in the age header")
            share = _b64decode(stanza.args[0])
            if len(share) != 32:
                raise IntegrityError("malformed X25519 stanza in the age header")
            x25519.append((share, stanza.body))
        file_key = self._unwrap(x25519, [s.kind.decode("ascii", "replace") for s in stanzas])
        if not hmac.compare_digest(_header_mac(file_key, covered), mac):
            raise IntegrityError("age header MAC mismatch: the header was altered or corrupted "
                                 "after encryption")
        return file_key

    def _unwrap(self, x25519: list[tuple[bytes, bytes]], kinds: list[str]) -> bytes:
        for identity in self._identities:
            for share, body in x25519:
                try:
                    shared = identity.shared_secret(share)
                except ValueError:
                    raise IntegrityError("X25519 stanza has a low-order ephemeral share; the file "
                                         "is malicious or corrupt") from None
                if shared == bytes(32):
                    raise IntegrityError("X25519 stanza yields an all-zero shared secret; the "
                                         "file is malicious or corrupt")
                wrap_key = _hkdf(shared, share + identity.public, X25519_LABEL)
                try:
                    file_key = ChaCha20Poly1305(wrap_key).decrypt(_ZERO_NONCE, body, None)
                except InvalidTag:
                    continue
                if len(file_key) == FILE_KEY_LEN:
                    return file_key
        tried = ", ".join(sorted(i.recipient for i in self._identities))
        if not x25519:
            raise DecryptionError("no identity matches this artifact: it has no X25519 recipient "
                                  "(its stanzas: %s)" % ", ".join(kinds))
        raise DecryptionError(
            "no identity matches this artifact; it was encrypted to %d X25519 recipient(s), none "
            "of them the identities given (whose recipients are %s). The backup's manifest lists "
            "the recipients it needs; supply an identity for one of them" % (len(x25519), tried))


# --- payload (STREAM, stream_aead.py) ---------------------------------------------------------

FRAMING = Framing(chunk=CHUNK, tag=TAG)


def _nonce(counter: int, last: bool) -> bytes:
    return counter.to_bytes(11, "big") + (b"\x01" if last else b"\x00")


def _payload_cipher(key: bytes) -> tuple[Seal, Open]:
    return aead_cipher(ChaCha20Poly1305(key), _nonce, None)


class AgeEncryptor(StreamSealer):
    """Streams plaintext into an age file for ``recipients`` (``age1...`` strings)."""

    def __init__(self, recipients: Sequence[str]) -> None:
        publics = [decode_recipient(r) for r in recipients]
        if not publics:
            raise ConfigError("age encryption needs at least one recipient")
        file_key = os.urandom(FILE_KEY_LEN)
        header = VERSION_LINE + b"\n"
        header += b"".join(_wrap_x25519(file_key, p) for p in dict.fromkeys(publics))
        header += b"---"
        header += b" " + _b64(_header_mac(file_key, header)) + b"\n"
        nonce = os.urandom(NONCE_LEN)
        seal, _open = _payload_cipher(_hkdf(file_key, nonce, b"payload"))
        super().__init__(seal, FRAMING, head=header + nonce, name="age encryptor")


class AgeDecryptor:
    """Streams an age file back to plaintext with any of ``identities``: the header reader until
    the payload key is known, then a STREAM reader for the payload.

    Plaintext is released chunk by chunk as it authenticates; it is only known to be complete
    when finalize() returns, so callers treat earlier output as provisional.
    """

    def __init__(self, identities: Sequence[str]) -> None:
        found = parse_identities(identities)
        if not found:
            raise ConfigError("age decryption needs at least one identity")
        self._header = _HeaderReader(found)
        self._payload: StreamOpener | None = None
        self._done = False

    def update(self, data: bytes) -> bytes:
        if self._done:
            raise RuntimeError("age decryptor used after finalize()")
        if self._payload is None:
            rest = self._header.feed(memoryview(data).cast("B"))
            if rest is None:
                return b""
            _seal, open_ = _payload_cipher(self._header.payload_key())
            self._payload = StreamOpener(open_, FRAMING, name="age payload")
            data = rest
        return self._payload.update(data)

    def finalize(self) -> bytes:
        if self._done:
            raise RuntimeError("age decryptor finalized twice")
        self._done = True
        if self._payload is None:
            raise self._header.truncated()
        return self._payload.finalize()
