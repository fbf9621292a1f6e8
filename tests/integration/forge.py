# -*- coding: utf-8 -*-
# Copyright: Lifeline contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What an attacker can put into a repository: anyone with write access (every host holds the
bucket key; age recipients are public) can store artifacts encrypted to the real recipient with
correct sizes and sha256s, and manifests that are unsigned or signed by any key they hold; a
compromised host can also sign with its own, trusted key.

The tests use these helpers to forge backups and to edit manifests of real ones; everything is
written through the real pipeline into a real local repository.
"""
from __future__ import annotations

import io
import json
import os

from lifeline_it import COMPONENT, backup_dir

from ansible_collections.lifeline.dr.plugins.module_utils.manifest import MANIFEST_NAME
from ansible_collections.lifeline.dr.plugins.module_utils.pipeline import (
    Codec,
    Sink,
    aad_for,
    fetch_artifact,
    store_stream,
)
from ansible_collections.lifeline.dr.plugins.module_utils.repository import LocalRepository


def manifest_path(repo_root: str, body: dict) -> str:
    return os.path.join(repo_root, body["site"], body["host"], body.get("component", COMPONENT), body["backup_id"],
                        MANIFEST_NAME)


def read_manifest(repo_root: str, backup_id: str) -> dict:
    """The stored manifest of a backup in a local repository, signature dropped."""
    with open(os.path.join(backup_dir(repo_root, backup_id), MANIFEST_NAME), encoding="utf-8") as fh:
        body = json.load(fh)
    body.pop("signature", None)
    return body


def write_manifest(repo_root: str, body: dict, signer=None) -> None:
    """Store ``body`` as the manifest it names, signed by ``signer`` (a signing.Signer) or unsigned."""
    path = manifest_path(repo_root, body)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(signer.sign(body) if signer else body, fh, indent=2, sort_keys=True)


def put_artifact(repo_root: str, body: dict, name: str, plaintext: bytes, recipients, *, kind: str,
                 meta: dict) -> None:
    """Encrypt ``plaintext`` to the public ``recipients`` into the backup ``body`` describes and
    record it in ``body`` with its true size and sha256 (replacing an artifact of that name)."""
    repo = LocalRepository("forge", repo_root)
    writer = repo.open_writer("/".join([body["site"], body["host"], body.get("component", COMPONENT),
                                        body["backup_id"], name]))
    result = store_stream(io.BytesIO(plaintext), [writer], Codec(recipients=list(recipients)),
                          aad=aad_for(body["backup_id"], name))
    writer.commit()
    body["artifacts"] = [a for a in body["artifacts"] if a["name"] != name] + [
        {"name": name, "kind": kind, "size": result.size, "sha256": result.sha256,
         "plain_size": result.plain_size, "meta": meta}]


class _Bytes(Sink):
    def __init__(self) -> None:
        self.data = bytearray()

    def write(self, data: bytes) -> None:
        self.data += data

    def reset(self) -> None:
        self.data = bytearray()


def plaintext_of(entry, codec: Codec, name: str) -> bytes:
    """The decrypted content of one artifact of a real backup (the catalog ``entry``)."""
    sink = _Bytes()
    fetch_artifact(entry.manifest, entry.manifest.artifact(name), entry.repositories, codec, sink)
    return bytes(sink.data)
