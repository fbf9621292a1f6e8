# -*- coding: utf-8 -*-
# Copyright: Lifeline contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Orchestration of one backup run: lock, stream each artifact to every repository, commit.

A backup exists only once its manifest is stored; the manifest is written after every artifact
was committed and its size confirmed, and it is read back. A failed run deletes what it wrote
(best effort; without a manifest leftovers are never mistaken for a backup) and always leaves
an outcome record that monitoring reads.
"""
from __future__ import annotations

import dataclasses
import datetime
import enum
import json
import os
from typing import Sequence

from ansible_collections.lifeline.dr.plugins.module_utils.errors import (
    ConfigError,
    IntegrityError,
    LifelineError,
    RepositoryError,
)
from ansible_collections.lifeline.dr.plugins.module_utils.component import Component, Source
from ansible_collections.lifeline.dr.plugins.module_utils.locking import Lock
from ansible_collections.lifeline.dr.plugins.module_utils.manifest import (
    MANIFEST_NAME,
    Artifact,
    Manifest,
    backup_prefix,
    check_name,
    new_backup_id,
)
from ansible_collections.lifeline.dr.plugins.module_utils.recent import recent_backup, skip_message
from ansible_collections.lifeline.dr.plugins.module_utils.signing import Signer
from ansible_collections.lifeline.dr.plugins.module_utils.timeutil import isotime, utcnow
from ansible_collections.lifeline.dr.plugins.module_utils.crypto import new_encryptor
from ansible_collections.lifeline.dr.plugins.module_utils.pipeline import Codec, aad_for, store_stream
from ansible_collections.lifeline.dr.plugins.module_utils.repository import Repository


class Status(str, enum.Enum):
    """A run's outcome, as modules, the CLI's exit code and monitoring see it."""

    OK = "ok"
    PARTIAL = "partial"      # stored in some repositories only, or some source paths were skipped
    FAILED = "failed"
    PLANNED = "planned"      # check mode: what a run would do
    SKIPPED = "skipped"      # a backup within min_interval exists (recent.py); nothing written


@dataclasses.dataclass
class Outcome:
    status: Status
    manifest: Manifest | None = None
    stored_in: list = dataclasses.field(default_factory=list)
    failed: dict = dataclasses.field(default_factory=dict)   # repository name -> cause
    plan: list = dataclasses.field(default_factory=list)
    message: str = ""
    skipped: dict = dataclasses.field(default_factory=dict)  # source path -> why it is not in the backup

    def to_dict(self) -> dict:
        out = {"status": self.status.value, "backup_id": self.manifest.backup_id if self.manifest else None,
               "stored_in": self.stored_in, "failed_repositories": self.failed,
               "plan": self.plan, "message": self.message}
        if self.skipped:  # only components that read paths (files) skip any
            out["skipped_paths"] = self.skipped
        return out


def write_status(state_dir: str, name: str, record: dict) -> None:
    """Atomically record a run's outcome (0600) for monitoring and the next run."""
    path = os.path.join(state_dir, "status", name + ".json")
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    tmp = path + ".tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(record, fh, indent=2, sort_keys=True)
    os.replace(tmp, path)


class _Run:
    """The state of one run across repositories."""

    def __init__(self, repositories: Sequence[Repository]) -> None:
        self.live = list(repositories)
        self.failed: dict = {}

    @classmethod
    def checked(cls, repositories: Sequence[Repository], *, create: bool) -> "_Run":
        """A run over the repositories that pass their reachability check (one may fail)."""
        run = cls(repositories)
        for repo in list(run.live):
            try:
                repo.check(create=create)
            except LifelineError as exc:
                run.drop(repo, exc)
        return run

    def drop(self, repo: Repository, exc: LifelineError) -> None:
        self.failed[repo.name] = str(exc)
        self.live = [r for r in self.live if r is not repo]
        if not self.live:
            raise RepositoryError("no repository could store the backup: " +
                                  "; ".join("%s: %s" % kv for kv in self.failed.items()))


def _store_artifact(run: _Run, prefix: str, backup_id: str, src: Source, codec: Codec) -> Artifact:
    name = src.name + codec.suffix
    repos, writers = [], []
    for repo in list(run.live):
        try:
            writers.append(repo.open_writer(prefix + name, size_hint=src.size_hint))
            repos.append(repo)
        except LifelineError as exc:
            run.drop(repo, exc)
    try:
        with src.open() as stream:
            result = store_stream(stream, writers, codec, aad=aad_for(backup_id, name))
    except BaseException:
        for writer in writers:
            writer.abort()
        raise
    for index, exc in result.failed.items():
        run.drop(repos[index], exc)
    for index, (repo, writer) in enumerate(zip(repos, writers)):
        if index in result.failed:
            continue
        try:
            size = writer.commit()
            if size != result.size:
                raise IntegrityError("%s: stored %s is %d bytes, expected %d"
                                     % (repo.describe(), name, size, result.size))
        except LifelineError as exc:
            run.drop(repo, exc)
    return Artifact(name=name, kind=src.kind, size=result.size, sha256=result.sha256,
                    plain_size=result.plain_size, meta=dict(src.meta))


def _commit_manifest(run: _Run, manifest: Manifest, signer: Signer) -> None:
    raw = manifest.to_json(signer)
    for repo in list(run.live):
        key = manifest.prefix + MANIFEST_NAME
        try:
            repo.put_bytes(key, raw)
            if repo.get_bytes(key) != raw:
                raise IntegrityError("%s: manifest read back differs from what was written" % repo.describe())
        except LifelineError as exc:
            run.drop(repo, exc)


def _discard(repositories: Sequence[Repository], prefix: str) -> None:
    for repo in repositories:
        try:
            for key in list(repo.list(prefix)):
                repo.delete(key)
        except LifelineError:
            pass  # no manifest was written, so leftovers are never taken for a backup


def _facts(component: Component) -> dict:
    """The component's facts; paths it skipped are recorded under ``skipped`` (path -> cause)."""
    facts = dict(component.facts)
    if component.skipped:
        facts["skipped"] = dict(component.skipped)
    return facts


def _partial_message(outcome: Outcome) -> str:
    """What a partial outcome lacks: repositories that failed, source paths that were skipped."""
    parts = []
    if outcome.failed:
        parts.append("stored in %s only; failed: %s" % (", ".join(outcome.stored_in), "; ".join(
            "%s: %s" % kv for kv in outcome.failed.items())))
    if outcome.skipped:
        parts.append("%d path(s) could not be read and are not in it: %s" % (len(outcome.skipped), "; ".join(
            "%s (%s)" % kv for kv in sorted(outcome.skipped.items())[:20])))
    return ("backup %s " % outcome.manifest.backup_id + "; ".join(parts)) if parts else ""


def run_backup(component: Component, repositories: Sequence[Repository], codec: Codec, *,
               site: str, host: str, state_dir: str, signer: Signer, lock_wait: float = 0.0,
               check_mode: bool = False, labels: Sequence[str] = (),
               min_interval: datetime.timedelta | None = None) -> Outcome:
    """Back up ``component`` into every repository; return the outcome (raises on failure).

    The manifest is signed with ``signer``, the host's own key: restores accept only manifests
    signed by a key trusted for the host they name. ``labels`` join the component's own in the
    manifest (``keep`` pins the backup against prune; ``daily``/``weekly``/``monthly`` name the
    schedule tier). With ``min_interval`` the run is SKIPPED when a backup that stands in for this
    one finished within it (recent.py); the check runs under the lock, so a timer and an AWX job
    started together take one backup, not two.
    """
    backup_prefix(site, host, component.name)  # validates names before anything runs
    for label in labels:
        check_name("label", label)
        if label == "safety":
            raise ConfigError("the label 'safety' is reserved for the backup a restore takes before it replaces data")
    labels = list(component.labels) + [x for x in labels if x not in component.labels]
    if not isinstance(signer, Signer):
        raise TypeError("run_backup needs the host's Signer")
    new_encryptor(codec.encryption, recipients=codec.recipients, aes_key=codec.aes_key)  # keys present?
    status_name = "%s-%s-%s" % (site, host, component.name)
    outcome = Outcome(status=Status.FAILED)
    started = utcnow()
    locked = False

    def recent() -> bool:
        now = utcnow()
        entry = recent_backup(repositories, site=site, host=host, component=component.name,
                              kind=component.kind, labels=labels, signer=signer,
                              min_interval=min_interval, now=now) if min_interval else None
        if entry is not None:
            outcome.status = Status.SKIPPED
            outcome.message = skip_message(entry, component=component.name, min_interval=min_interval, now=now)
        return entry is not None

    try:
        if check_mode:
            if recent():
                return outcome
            # Nothing is written in check mode: no lock file, no repository directories.
            run = _Run.checked(repositories, create=False)
            component.prepare()
            outcome.status, outcome.plan = Status.PLANNED, component.plan()
            outcome.stored_in = [r.name for r in run.live]
            outcome.failed = dict(run.failed)
            return outcome
        with Lock(os.path.join(state_dir, "locks"), status_name, wait=lock_wait):
            locked = True
            if recent():
                return outcome
            run = _Run.checked(repositories, create=True)
            component.prepare()
            backup_id = new_backup_id(started)
            prefix = backup_prefix(site, host, component.name, backup_id)
            try:
                artifacts = [_store_artifact(run, prefix, backup_id, src, codec)
                             for src in component.artifacts()]
                manifest = Manifest(
                    backup_id=backup_id, site=site, host=host, component=component.name,
                    kind=component.kind, started=isotime(started), finished=isotime(utcnow()),
                    consistent_at=component.consistent_at or isotime(started),
                    compression=codec.compression.value, encryption=codec.encryption.value,
                    key_id=codec.key_id(), artifacts=artifacts, tools=component.tools,
                    facts=_facts(component), labels=labels,
                    parent_id=component.parent_id)
                manifest.validate("the new manifest")
                _commit_manifest(run, manifest, signer)
            except BaseException:
                _discard(repositories, prefix)
                raise
            # A repository that failed mid-run holds an incomplete copy: clear it out.
            _discard([r for r in repositories if r.name in run.failed], prefix)
            outcome.manifest = manifest
            outcome.stored_in = [r.name for r in run.live]
            outcome.failed = dict(run.failed)
            outcome.skipped = dict(component.skipped)
            outcome.status = Status.PARTIAL if run.failed or outcome.skipped else Status.OK
            component.after_commit(manifest)
            outcome.message = _partial_message(outcome)
            return outcome
    except LifelineError as exc:
        outcome.message = str(exc)
        raise
    except BaseException as exc:
        outcome.message = "%s: %s" % (type(exc).__name__, exc)
        raise
    finally:
        component.close()
        # A run the lock refused did not run: it must not overwrite the running one's record; a
        # skipped run keeps the record of the backup that made it unnecessary.
        if locked and outcome.status is not Status.SKIPPED:
            write_status(state_dir, status_name, {
                "status": outcome.status.value, "message": outcome.message, "started": isotime(started),
                "finished": isotime(utcnow()),
                "backup_id": outcome.manifest.backup_id if outcome.manifest else None,
                "skipped_paths": outcome.skipped})
