# -*- coding: utf-8 -*-
# Copyright: Lifeline contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The encryption front the engine uses: pick a scheme, get a streaming transform.

Schemes: age (X25519 recipients; hosts hold only public keys), AES-256-GCM (a shared 256-bit
key), none. Formats are specified in docs/formats-encryption.md. No message or repr here ever
carries key material; recipients are public and may be named.
"""
from __future__ import annotations

import enum
import hashlib
import secrets
import string
from typing import Protocol, Sequence

from ansible_collections.lifeline.dr.plugins.module_utils import age, aesgcm
from ansible_collections.lifeline.dr.plugins.module_utils.errors import ConfigError, DependencyError


class Encryption(str, enum.Enum):
    AGE = "age"
    AES_GCM = "aes-256-gcm"
    NONE = "none"


class StreamTransform(Protocol):
    """update() takes any-size pieces and returns what is ready; finalize() returns the rest
    and raises if the stream is incomplete. Same shape as compress.py's objects."""

    def update(self, data: bytes) -> bytes: ...

    def finalize(self) -> bytes: ...


class _Passthrough:
    def update(self, data: bytes) -> bytes:
        return bytes(data)

    def finalize(self) -> bytes:
        return b""


def _scheme(scheme: Encryption | str) -> Encryption:
    try:
        return Encryption(scheme)
    except ValueError:
        raise ConfigError("unknown encryption %r; choose one of %s"
                          % (scheme, ", ".join(e.value for e in Encryption))) from None


def validate_recipient(recipient: str) -> str:
    """The recipient, stripped, if it is an ``age1...`` X25519 recipient; ConfigError if not."""
    age.decode_recipient(recipient)
    return recipient.strip()


def validate_aes_key(key: str) -> bytes:
    """The 32 key bytes of a 64-hex-character key (surrounding whitespace, as a key file's
    trailing newline, is ignored); ConfigError otherwise, without echoing the key."""
    if not isinstance(key, str):
        raise ConfigError("lifeline_aes_key must be a string of 64 hex characters")
    key = key.strip()
    if len(key) != 64:
        raise ConfigError("lifeline_aes_key must be exactly 64 hex characters (256 bits); it has %d"
                          " characters. Generate one with: openssl rand -hex 32" % len(key))
    if not all(c in string.hexdigits for c in key):
        raise ConfigError("lifeline_aes_key must be exactly 64 hex characters (256 bits); it "
                          "holds non-hex characters")
    return bytes.fromhex(key)


def _recipients(recipients: Sequence[str]) -> list[str]:
    if isinstance(recipients, str):
        recipients = [recipients]  # a lone string would otherwise iterate by character
    out = [validate_recipient(r) for r in recipients]
    if not out:
        raise ConfigError("age encryption needs at least one recipient (lifeline_recipients)")
    return out


def _aes_key(aes_key: str | None) -> bytes:
    if aes_key is None or aes_key == "":
        raise ConfigError("AES-256-GCM encryption needs a key "
                          "(lifeline_aes_key: 64 hex characters)")
    return validate_aes_key(aes_key)


def _require() -> None:
    if not (age.HAS_CRYPTOGRAPHY and aesgcm.HAS_CRYPTOGRAPHY):
        raise DependencyError("encryption needs the Python library 'cryptography' "
                              "(Debian: python3-cryptography)")


def new_encryptor(scheme: Encryption, *, recipients: Sequence[str] = (),
                  aes_key: str | None = None, aad: bytes = b"") -> StreamTransform:
    """A transform that encrypts for ``scheme``. ``aad`` binds AES-GCM artifacts to their backup
    and name; age has no associated data, so it is ignored there."""
    scheme = _scheme(scheme)
    if scheme is not Encryption.NONE:
        _require()
    if scheme is Encryption.AGE:
        return age.AgeEncryptor(_recipients(recipients))
    if scheme is Encryption.AES_GCM:
        return aesgcm.AesGcmEncryptor(_aes_key(aes_key), aad=aad)
    return _Passthrough()


def new_decryptor(scheme: Encryption, *, identities: Sequence[str] = (),
                  aes_key: str | None = None, aad: bytes = b"") -> StreamTransform:
    """A transform that decrypts ``scheme``; each identity may be one AGE-SECRET-KEY-1... or a
    whole identity file's content."""
    scheme = _scheme(scheme)
    if scheme is not Encryption.NONE:
        _require()
    if scheme is Encryption.AGE:
        if isinstance(identities, str):
            identities = [identities]
        try:
            found = age.parse_identities(identities)
        except ConfigError as exc:
            raise ConfigError("lifeline_identity: %s" % exc) from None
        if not found:
            raise ConfigError("age decryption needs at least one identity "
                              "(lifeline_identity: AGE-SECRET-KEY-1...)")
        return age.AgeDecryptor(identities)
    if scheme is Encryption.AES_GCM:
        return aesgcm.AesGcmDecryptor(_aes_key(aes_key), aad=aad)
    return _Passthrough()


def key_id(scheme: Encryption, *, recipients: Sequence[str] = (),
           aes_key: str | None = None) -> list[str]:
    """What a manifest records so the catalog can say which key a backup needs; never secret."""
    scheme = _scheme(scheme)
    if scheme is Encryption.AGE:
        return sorted(set(_recipients(recipients)))
    if scheme is Encryption.AES_GCM:
        digest = hashlib.sha256(b"lifeline-key-id" + _aes_key(aes_key)).hexdigest()
        return ["aes:" + digest[:16]]
    return []


def generate_age_identity() -> tuple[str, str]:
    """(identity ``AGE-SECRET-KEY-1...``, recipient ``age1...``)."""
    _require()
    return age.generate_identity()


def age_recipient(identity: str) -> str:
    """The ``age1...`` recipient of one identity (or an identity file holding exactly one)."""
    _require()
    found = age.parse_identities([identity])
    if len(found) != 1:
        raise ConfigError("expected exactly one age identity (AGE-SECRET-KEY-1...), found %d"
                          % len(found))
    return found[0].recipient


def generate_aes_key() -> str:
    """A new 256-bit key as 64 lowercase hex characters."""
    return secrets.token_hex(32)
