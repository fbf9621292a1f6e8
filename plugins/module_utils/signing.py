# -*- coding: utf-8 -*-
# Copyright: Lifeline contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Manifest signatures: who may say what a backup holds.

Anyone who can write to a repository (an S3 key holder, another host) can write objects, and
age recipients are public, so an unsigned manifest proves nothing. Each host signs its own
manifests with an Ed25519 key that only it holds (not the decryption key: hosts still hold only
public encryption keys). Readers accept a manifest only when its signature verifies with a key
trusted for the host the manifest names. Since the manifest records every artifact's size and
sha256, the signature covers the artifacts too.

The signature is embedded in manifest.json (one object, written last, atomically)::

    {..., "signature": {"alg": "ed25519", "key": "<key id>", "value": "<base64>"}}

It signs the canonical JSON of the manifest without its ``signature`` member: keys sorted,
no white space, ASCII only. Readers verify the parsed object they go on to use, so nothing
outside the signed data can change what a restore does.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import json
from typing import Mapping, Sequence

try:
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
    from cryptography.hazmat.primitives.serialization import (
        Encoding,
        NoEncryption,
        PrivateFormat,
        PublicFormat,
        load_pem_private_key,
        load_pem_public_key,
    )
    HAS_CRYPTOGRAPHY = True
except ImportError:
    HAS_CRYPTOGRAPHY = False

from ansible_collections.lifeline.dr.plugins.module_utils.errors import (
    ConfigError,
    DependencyError,
    UntrustedError,
)

SIGNATURE_FIELD = "signature"
ALG = "ed25519"
MAKE_KEY_HINT = ("make one with `openssl genpkey -algorithm ed25519 -out signing.pem` or the "
                 "lifeline.dr.backup_key module (type: ed25519), keep it in Vault as "
                 "lifeline_signing_key, and add its public key to lifeline_trusted_signers "
                 "under this host's name where restores run")


def _require() -> None:
    if not HAS_CRYPTOGRAPHY:
        raise DependencyError("manifest signatures need the Python library 'cryptography' "
                              "(Debian: python3-cryptography)")


def canonical(body: Mapping) -> bytes:
    """The bytes a signature covers: the manifest without its signature, canonical JSON."""
    data = {k: v for k, v in body.items() if k != SIGNATURE_FIELD}
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=True,
                      allow_nan=False).encode("ascii")


def key_id(public: "Ed25519PublicKey") -> str:
    raw = public.public_bytes(Encoding.Raw, PublicFormat.Raw)
    return "ed25519:" + hashlib.sha256(raw).hexdigest()[:32]


def public_pem(public: "Ed25519PublicKey") -> str:
    return public.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo).decode("ascii")


def generate_signing_key() -> tuple[str, str]:
    """(private key PEM PKCS#8, public key PEM), as ``openssl genpkey -algorithm ed25519`` writes."""
    _require()
    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()).decode("ascii")
    return private, public_pem(key.public_key())


class Signer:
    """A host's signing key. Its repr and messages name only the public key id."""

    def __init__(self, private_pem: str) -> None:
        _require()
        if not isinstance(private_pem, str) or "PRIVATE KEY" not in private_pem:
            raise ConfigError("the signing key (lifeline_signing_key) is not a PEM private key; "
                              + MAKE_KEY_HINT)
        try:
            key = load_pem_private_key(private_pem.strip().encode("ascii"), password=None)
        except (ValueError, TypeError, UnicodeEncodeError):
            raise ConfigError("the signing key (lifeline_signing_key) cannot be read: it must be an "
                              "unencrypted Ed25519 private key in PEM (PKCS#8); " + MAKE_KEY_HINT) from None
        if not isinstance(key, Ed25519PrivateKey):
            raise ConfigError("the signing key (lifeline_signing_key) is not an Ed25519 key; "
                              + MAKE_KEY_HINT)
        self._key = key
        self.key_id = key_id(key.public_key())
        self.public_pem = public_pem(key.public_key())

    def sign(self, body: dict) -> dict:
        """``body`` with its signature member added."""
        value = self._key.sign(canonical(body))
        return {**body, SIGNATURE_FIELD: {"alg": ALG, "key": self.key_id,
                                          "value": base64.b64encode(value).decode("ascii")}}

    def __repr__(self) -> str:
        return "<Signer %s>" % self.key_id


def load_public_key(pem: str, *, host: str) -> "Ed25519PublicKey":
    _require()
    where = "lifeline_trusted_signers[%r]" % host
    if not isinstance(pem, str):
        raise ConfigError("%s: every entry must be a PEM public key string" % where)
    if "PRIVATE KEY" in pem:
        raise ConfigError("%s holds a PRIVATE key; give the public key instead "
                          "(`openssl pkey -in signing.pem -pubout`)" % where)
    try:
        key = load_pem_public_key(pem.strip().encode("ascii"))
    except (ValueError, TypeError, UnicodeEncodeError):
        raise ConfigError("%s: an entry is not a PEM public key (-----BEGIN PUBLIC KEY-----)" % where) from None
    if not isinstance(key, Ed25519PublicKey):
        raise ConfigError("%s: an entry is not an Ed25519 public key" % where)
    return key


class TrustStore:
    """Which keys may sign for which host. ``allow_unsigned`` reads unsigned (0.1.0) manifests,
    with a warning; a signature that is present but does not verify is refused regardless."""

    def __init__(self, signers: Mapping[str, Sequence[str]] | None, *, allow_unsigned: bool = False) -> None:
        if signers is not None and not isinstance(signers, Mapping):
            raise ConfigError("lifeline_trusted_signers must map host names to lists of PEM public keys")
        self._keys: dict[str, list] = {}
        for host, pems in (signers or {}).items():
            if isinstance(pems, str):
                pems = [pems]
            self._keys[str(host)] = [load_public_key(p, host=str(host)) for p in pems or []]
        self.allow_unsigned = bool(allow_unsigned)

    def hosts(self) -> list[str]:
        return sorted(self._keys)

    def verify(self, body: Mapping, *, host: str, where: str) -> str | None:
        """Return the key id that signed ``body`` for ``host`` (None: unsigned and allowed);
        raise UntrustedError naming the cause otherwise."""
        sig = body.get(SIGNATURE_FIELD)
        if sig is None:
            if self.allow_unsigned:
                return None
            raise UntrustedError("%s is not signed; a manifest anyone with write access to the "
                                 "repository could have written is not restored. Set "
                                 "lifeline_allow_unsigned: true for one run to read backups made "
                                 "before manifests were signed (0.1.0)" % where)
        if not isinstance(sig, Mapping) or sig.get("alg") != ALG or not isinstance(sig.get("value"), str):
            raise UntrustedError("%s has a malformed signature" % where)
        try:
            value = base64.b64decode(sig["value"], validate=True)
        except (binascii.Error, ValueError):
            raise UntrustedError("%s has a malformed signature (not base64)" % where) from None
        keys = self._keys.get(host)
        if not keys:
            raise UntrustedError("%s is signed by key %s, but no signing key is trusted for host %r; "
                                 "add the host's public key to lifeline_trusted_signers[%r]"
                                 % (where, str(sig.get("key"))[:48], host, host))
        data = canonical(body)
        for key in keys:
            try:
                key.verify(value, data)
            except InvalidSignature:
                continue
            return key_id(key)
        raise UntrustedError("%s: its signature does not verify with any key trusted for host %r "
                             "(it names key %s): it was altered, forged, or signed by another "
                             "host's key" % (where, host, str(sig.get("key"))[:48]))
