# -*- coding: utf-8 -*-
# Copyright: Lifeline contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Backups at chosen times for the prune tests, written through the Repository interface into a
real local directory and a real moto S3 bucket, each signed by the host's trusted key.

Prune never reads artifact content, so the artifacts are random bytes of a known size; what
matters is that their manifests are signed and name the times retention orders by.
"""
from __future__ import annotations

import datetime
import os

from keys import SIGNER, trusted_signers

from ansible_collections.lifeline.dr.plugins.module_utils.manifest import MANIFEST_NAME, Artifact, Manifest
from ansible_collections.lifeline.dr.plugins.module_utils.repository import LocalRepository
from ansible_collections.lifeline.dr.plugins.module_utils.s3 import S3Repository

SITE, HOST, COMPONENT = "it", "h1", "files"
UTC = datetime.timezone.utc
#: the prune tests' "now": every backup is placed relative to it
NOW = datetime.datetime(2026, 12, 6, 5, 0, tzinfo=UTC)


def at(days_ago: float, hour: int = 2) -> datetime.datetime:
    return (NOW - datetime.timedelta(days=days_ago)).replace(hour=hour, minute=0, second=0, microsecond=0)


def stamp(when: datetime.datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%S.000Z")


class World:
    """A local and an S3 repository and the backups written into them."""

    def __init__(self, tmp_path, moto, bucket: str) -> None:
        self.local_path = str(tmp_path / "repo")
        self.state_dir = str(tmp_path / "state")
        self.s3_settings = moto.s3_settings(bucket)
        self.repos = [LocalRepository("local", self.local_path), S3Repository("s3", **self.s3_settings)]

    def params(self, **extra) -> dict:
        return dict({"repositories": [{"name": "local", "path": self.local_path}, {"name": "s3", "s3": self.s3_settings}],
                     "site": SITE, "host": HOST, "state_dir": self.state_dir,
                     "trusted_signers": trusted_signers(HOST, "h2")}, **extra)

    def backup(self, when: datetime.datetime, *, n: int = 0, kind: str = "full", parent: str | None = None,
               labels=(), host: str = HOST, component: str = COMPONENT, signer=SIGNER, size: int = 1000,
               repos=None) -> Manifest:
        backup_id = when.strftime("%Y%m%dT%H%M%SZ") + "-%04x" % n
        data = os.urandom(size)
        manifest = Manifest(backup_id=backup_id, site=SITE, host=host, component=component, kind=kind,
                            started=stamp(when), finished=stamp(when + datetime.timedelta(minutes=5)),
                            consistent_at=stamp(when), compression="zstd", encryption="none", key_id=[],
                            artifacts=[Artifact(name="files.tar.zst", kind="tar", size=size, sha256="0" * 64,
                                                plain_size=size)], labels=list(labels), parent_id=parent)
        for repo in repos or self.repos:
            repo.put_bytes(manifest.prefix + "files.tar.zst", data)
            repo.put_bytes(manifest.prefix + MANIFEST_NAME, manifest.to_json(signer) if signer else manifest.to_json())
        return manifest

    def keys(self, repo_index: int, manifest_or_prefix) -> list:
        prefix = getattr(manifest_or_prefix, "prefix", manifest_or_prefix)
        return sorted(self.repos[repo_index].list(prefix))

    def ids(self, repo_index: int = 0, host: str = HOST) -> list:
        prefix = "%s/%s/%s/" % (SITE, host, COMPONENT)
        return sorted({k[len(prefix):].split("/")[0] for k in self.repos[repo_index].list(prefix)})

    def close(self) -> None:
        for repo in self.repos:
            repo.close()
