# -*- coding: utf-8 -*-
# Copyright: Lifeline contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one streaming pipeline: source -> compress -> encrypt -> sha256/size -> every repository,
and back: repository -> sha256/size check -> decrypt -> decompress -> sink.

Memory is bounded by the chunk size plus what the writers buffer; nothing is staged in plaintext.
"""
from __future__ import annotations

import dataclasses
import hashlib
from typing import BinaryIO, Callable, Sequence

from ansible_collections.lifeline.dr.plugins.module_utils.compress import (
    Compression,
    new_compressor,
    new_decompressor,
)
from ansible_collections.lifeline.dr.plugins.module_utils.crypto import (
    Encryption,
    age_recipient,
    key_id,
    new_decryptor,
    new_encryptor,
)
from ansible_collections.lifeline.dr.plugins.module_utils.errors import (
    DecryptionError,
    IntegrityError,
    LifelineError,
    RepositoryError,
)
from ansible_collections.lifeline.dr.plugins.module_utils.manifest import Artifact, Manifest
from ansible_collections.lifeline.dr.plugins.module_utils.repository import ObjectWriter

CHUNK = 1024 * 1024


@dataclasses.dataclass
class Codec:
    """How a backup's artifacts are encoded, and the keys to do it (never logged)."""

    compression: Compression = Compression.ZSTD
    level: int | None = None
    threads: int = 2
    encryption: Encryption = Encryption.AGE
    recipients: Sequence[str] = ()
    identities: Sequence[str] = dataclasses.field(default=(), repr=False)
    aes_key: str | None = dataclasses.field(default=None, repr=False)

    def __post_init__(self) -> None:
        self.compression = Compression(self.compression)
        self.encryption = Encryption(self.encryption)

    @property
    def suffix(self) -> str:
        enc = {Encryption.AGE: ".age", Encryption.AES_GCM: ".aes", Encryption.NONE: ""}[self.encryption]
        return self.compression.suffix + enc

    def key_id(self) -> list:
        return key_id(self.encryption, recipients=self.recipients, aes_key=self.aes_key)

    def opens(self, manifest: Manifest) -> bool:
        """Whether this codec's identities (or AES key) can decrypt ``manifest``'s artifacts,
        judged from the key ids the manifest records (nothing is fetched)."""
        if manifest.encryption == Encryption.AGE.value:
            return bool({age_recipient(i) for i in self.identities} & set(manifest.key_id))
        if manifest.encryption == Encryption.AES_GCM.value:
            return bool(self.aes_key) and key_id(Encryption.AES_GCM, aes_key=self.aes_key) == manifest.key_id
        return True

    def for_manifest(self, manifest: Manifest) -> "Codec":
        """The codec that decodes ``manifest``'s artifacts with this codec's keys."""
        return dataclasses.replace(self, compression=Compression(manifest.compression),
                                   encryption=Encryption(manifest.encryption))


def aad_for(backup_id: str, artifact_name: str) -> bytes:
    """Binds ciphertext to its place, so an artifact cannot be swapped into another backup."""
    return ("lifeline/%s/%s" % (backup_id, artifact_name)).encode()


@dataclasses.dataclass
class StreamResult:
    plain_size: int
    size: int
    sha256: str
    failed: dict  # index of writer -> LifelineError that stopped it


def store_stream(source: BinaryIO, writers: Sequence[ObjectWriter], codec: Codec, *, aad: bytes,
                 chunk: int = CHUNK) -> StreamResult:
    """Encode ``source`` once and write the result to every writer.

    A writer that fails is aborted and dropped; the others go on (one unreachable repository
    does not cost the copy in the other). The caller decides what a partial result means.
    """
    comp = new_compressor(codec.compression, level=codec.level, threads=codec.threads)
    enc = new_encryptor(codec.encryption, recipients=codec.recipients, aes_key=codec.aes_key, aad=aad)
    digest = hashlib.sha256()
    live = dict(enumerate(writers))
    failed: dict = {}
    plain = size = 0

    def emit(data: bytes) -> None:
        nonlocal size
        if not data:
            return
        digest.update(data)
        size += len(data)
        for index, writer in list(live.items()):
            try:
                writer.write(data)
            except LifelineError as exc:
                failed[index] = exc
                del live[index]
                writer.abort()
        if not live:
            raise failed[min(failed)]

    while True:
        data = source.read(chunk)
        if not data:
            break
        plain += len(data)
        emit(enc.update(comp.update(data)))
    emit(enc.update(comp.finalize()))
    emit(enc.finalize())
    return StreamResult(plain, size, digest.hexdigest(), failed)


class Sink:
    """Where a fetched artifact's plaintext goes; reset() lets a fetch retry from another repository."""

    def write(self, data: bytes) -> None:
        raise NotImplementedError

    def reset(self) -> None:
        raise NotImplementedError


def _fetch_one(repo, key: str, art: Artifact, codec: Codec, aad: bytes, write: Callable) -> None:
    dec = new_decryptor(codec.encryption, identities=codec.identities, aes_key=codec.aes_key, aad=aad)
    dcomp = new_decompressor(codec.compression)
    digest = hashlib.sha256()
    size = 0

    def decode(plain: bytes) -> None:
        # A hostile artifact can expand without limit: take its output in bounded pieces.
        for piece in dcomp.update(plain):
            write(piece)

    with repo.open_reader(key) as reader:
        while True:
            data = reader.read(CHUNK)
            if not data:
                break
            size += len(data)
            if size > art.size:
                raise IntegrityError("%s: %s is larger than the %d bytes its manifest records"
                                     % (repo.describe(), key, art.size))
            digest.update(data)
            decode(dec.update(data))
    if size != art.size:
        raise IntegrityError("%s: %s is truncated: %d of %d bytes" % (repo.describe(), key, size, art.size))
    if digest.hexdigest() != art.sha256:
        raise IntegrityError("%s: %s does not match its manifest's sha256" % (repo.describe(), key))
    decode(dec.finalize())
    dcomp.finalize()


def fetch_artifact(manifest: Manifest, art: Artifact, repositories: Sequence, codec: Codec,
                   sink: Sink, *, warnings: list | None = None) -> str:
    """Stream one artifact's plaintext into ``sink``, checking size, hash and AEAD on the way.

    Tries each repository in turn; a missing or corrupt copy falls back to the next one, and
    each copy that failed is added to ``warnings`` (the operator must learn of the rot).
    Returns the name of the repository that served it.
    """
    codec = codec.for_manifest(manifest)
    errors, causes = [], []
    for repo in repositories:
        try:
            _fetch_one(repo, manifest.prefix + art.name, art, codec,
                       aad_for(manifest.backup_id, art.name), sink.write)
            if causes and warnings is not None:
                warnings.extend("backup %s: the copy of %s could not be used, read from %s instead: %s"
                                % (manifest.backup_id, art.name, repo.describe(), cause) for cause in causes)
            return repo.name
        except (IntegrityError, RepositoryError) as exc:
            errors.append(exc)
            # Cipher errors do not know where the bytes came from: say which copy failed.
            causes.append(str(exc) if repo.describe() in str(exc) else "%s: %s" % (repo.describe(), exc))
            sink.reset()
    if errors and all(isinstance(e, DecryptionError) for e in errors):
        raise DecryptionError("; ".join(causes))
    kind = IntegrityError if any(isinstance(e, IntegrityError) for e in errors) else RepositoryError
    raise kind("no intact copy of %s in backup %s: %s"
               % (art.name, manifest.backup_id, "; ".join(causes) or "no repository"))
