# -*- coding: utf-8 -*-
# Copyright: Lifeline contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""run_backup end to end over real repositories, the real pipeline and real age encryption.

The only stand-in is ``FakeComponent``: a test double for the *source* of a backup (what pg_dump
or a file walk would produce), built from bytes. It is not a mock of anything under test; the
orchestration, locking, pipeline, manifests and repositories all run for real.
"""
from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import stat

import pytest

from faults import FullDisk
from keys import SIGNER, trust
from ansible_collections.lifeline.dr.plugins.module_utils.backup import run_backup
from ansible_collections.lifeline.dr.plugins.module_utils.component import Component, Source
from ansible_collections.lifeline.dr.plugins.module_utils.catalog import Catalog
from ansible_collections.lifeline.dr.plugins.module_utils.crypto import generate_age_identity
from ansible_collections.lifeline.dr.plugins.module_utils.errors import (
    ConfigError,
    LockedError,
    RepositoryError,
    IntegrityError,
    SourceError,
)
from ansible_collections.lifeline.dr.plugins.module_utils.locking import Lock
from ansible_collections.lifeline.dr.plugins.module_utils.manifest import MANIFEST_NAME
from ansible_collections.lifeline.dr.plugins.module_utils.pipeline import Codec, Sink, fetch_artifact
from ansible_collections.lifeline.dr.plugins.module_utils.repository import LocalRepository
from ansible_collections.lifeline.dr.plugins.module_utils.s3 import S3Repository

MIB = 1024 * 1024
SCOPE = {"site": "fra", "host": "db1"}
IDENTITY, RECIPIENT = generate_age_identity()
CODEC = Codec(compression="zstd", encryption="age", recipients=[RECIPIENT], identities=[IDENTITY])
GLOBALS = b"CREATE ROLE app;\n" * 1000
DATABASE = os.urandom(3 * MIB) + b"COPY t FROM stdin;\n" * 10000


# --- the source test double ------------------------------------------------------------------


class _DyingReader:
    """Hands out ``good`` bytes, then fails like a dump tool that exits non-zero mid-stream."""

    def __init__(self, good: bytes, error: BaseException) -> None:
        self._stream = io.BytesIO(good)
        self._error = error

    def read(self, size: int = -1) -> bytes:
        data = self._stream.read(size)
        if not data:
            raise self._error
        return data


class BytesSource(Source):
    def __init__(self, name: str, kind: str, data: bytes, *, fail_with: BaseException | None = None,
                 on_open=None) -> None:
        self.name, self.kind, self.meta = name, kind, {"origin": "test"}
        self.data, self.fail_with, self.on_open = data, fail_with, on_open
        self.opened = False

    @contextlib.contextmanager
    def open(self):
        self.opened = True
        if self.on_open:
            self.on_open()
        yield _DyingReader(self.data, self.fail_with) if self.fail_with else io.BytesIO(self.data)


class FakeComponent(Component):
    name = "files"

    def __init__(self, sources) -> None:
        super().__init__()
        self.sources = list(sources)
        self.tools = {"fake-dump": "1.0"}
        self.prepared = self.closed = False

    def prepare(self) -> None:
        self.prepared = True

    def plan(self) -> list:
        return [{"artifact": s.name, "kind": s.kind} for s in self.sources]

    def artifacts(self):
        yield from self.sources

    def close(self) -> None:
        self.closed = True


def two_artifacts(**second) -> FakeComponent:
    return FakeComponent([BytesSource("globals.sql", "globals", GLOBALS),
                          BytesSource("db-app.dump", "database", DATABASE, **second)])


# --- helpers ---------------------------------------------------------------------------------


class BytesSink(Sink):
    def __init__(self) -> None:
        self.buf = bytearray()

    def write(self, data: bytes) -> None:
        self.buf += data

    def reset(self) -> None:
        self.buf = bytearray()


def files_in(root: str) -> list:
    return sorted(os.path.relpath(os.path.join(d, f), root)
                  for d, _dirs, names in os.walk(root) for f in names)


def status_record(state_dir) -> dict:
    with open(os.path.join(state_dir, "status", "fra-db1-files.json"), encoding="utf-8") as fh:
        return json.load(fh)


def offline_repo(endpoint: str, name: str = "offsite") -> S3Repository:
    return S3Repository(name, bucket="backups", endpoint_url=endpoint, access_key="a",
                        secret_key="b", connect_timeout=1, max_attempts=1)


@pytest.fixture
def repos(tmp_path):
    return [LocalRepository("first", str(tmp_path / "first")),
            LocalRepository("second", str(tmp_path / "second"))]


@pytest.fixture
def state_dir(tmp_path) -> str:
    return str(tmp_path / "state")


# --- a good run ------------------------------------------------------------------------------


def test_a_backup_stores_every_artifact_and_the_manifest_in_every_repository(repos, state_dir):
    component = two_artifacts()
    outcome = run_backup(component, repos, CODEC, state_dir=state_dir, signer=SIGNER, **SCOPE)
    assert outcome.status == "ok"
    assert outcome.stored_in == ["first", "second"]
    assert outcome.failed == {}
    manifest = outcome.manifest
    assert [a.name for a in manifest.artifacts] == ["globals.sql.zst.age", "db-app.dump.zst.age"]
    assert manifest.tools == {"fake-dump": "1.0"}
    assert manifest.key_id == [RECIPIENT]

    entry = Catalog(repos, trust=trust()).select(site="fra", host="db1", component="files")
    assert entry.manifest == manifest
    assert [r.name for r in entry.repositories] == ["first", "second"]
    for art, data in zip(manifest.artifacts, (GLOBALS, DATABASE)):
        assert art.plain_size == len(data)
        assert art.meta == {"origin": "test"}
        for repo in repos:
            stored = repo.get_bytes(manifest.prefix + art.name)
            assert len(stored) == art.size
            assert hashlib.sha256(stored).hexdigest() == art.sha256
            sink = BytesSink()
            assert fetch_artifact(manifest, art, [repo], CODEC, sink) == repo.name
            assert bytes(sink.buf) == data
    assert component.prepared and component.closed


def test_the_manifest_is_committed_last_and_only_after_every_artifact(tmp_path, state_dir):
    log = []

    class RecordingRepository(LocalRepository):
        """A real local repository that also notes, in order, every object it commits."""

        def open_writer(self, key, *, size_hint=None):
            writer = super().open_writer(key, size_hint=size_hint)
            commit = writer.commit

            def logged_commit():
                size = commit()
                log.append((self.name, key.rsplit("/", 1)[-1]))
                return size
            writer.commit = logged_commit
            return writer

    repos = [RecordingRepository("first", str(tmp_path / "first")),
             RecordingRepository("second", str(tmp_path / "second"))]
    seen_while_streaming = []

    def look_for_manifests():
        seen_while_streaming.extend(k for r in repos for k in r.list() if k.endswith(MANIFEST_NAME))

    component = FakeComponent([
        BytesSource("globals.sql", "globals", GLOBALS, on_open=look_for_manifests),
        BytesSource("db-app.dump", "database", DATABASE, on_open=look_for_manifests)])
    run_backup(component, repos, CODEC, state_dir=state_dir, signer=SIGNER, **SCOPE)

    assert seen_while_streaming == []
    names = [name for _repo, name in log]
    first_manifest = names.index(MANIFEST_NAME)
    assert sorted(names[:first_manifest]) == sorted(["globals.sql.zst.age", "db-app.dump.zst.age"] * 2)
    assert log[first_manifest:] == [("first", MANIFEST_NAME), ("second", MANIFEST_NAME)]


def test_the_status_record_is_0600_and_holds_the_outcome(repos, state_dir):
    outcome = run_backup(two_artifacts(), repos, CODEC, state_dir=state_dir, signer=SIGNER, **SCOPE)
    record = status_record(state_dir)
    assert record["status"] == "ok"
    assert record["backup_id"] == outcome.manifest.backup_id
    assert record["message"] == ""
    assert record["started"] <= record["finished"]
    path = os.path.join(state_dir, "status", "fra-db1-files.json")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert not os.path.exists(path + ".tmp")


# --- failing sources -------------------------------------------------------------------------


@pytest.mark.parametrize("error", [SourceError("pg_dump exited with 1: out of shared memory"),
                                   RuntimeError("a bug in the component")],
                         ids=["source-error", "unexpected-exception"])
def test_a_source_failing_mid_way_leaves_no_manifest_and_no_artifacts(repos, state_dir, error):
    component = two_artifacts(fail_with=error)
    with pytest.raises(type(error), match=str(error)):
        run_backup(component, repos, CODEC, state_dir=state_dir, signer=SIGNER, **SCOPE)
    for repo in repos:
        assert files_in(repo.root) == []  # no manifest, no artifact, no temporary file
    record = status_record(state_dir)
    assert record["status"] == "failed"
    assert record["backup_id"] is None
    assert component.closed


def test_a_failed_source_is_named_in_the_status_record(repos, state_dir):
    with pytest.raises(SourceError):
        run_backup(two_artifacts(fail_with=SourceError("pg_dump exited with 1")), repos, CODEC,
                   state_dir=state_dir, signer=SIGNER, **SCOPE)
    assert "pg_dump exited with 1" in status_record(state_dir)["message"]


# --- failing repositories --------------------------------------------------------------------


def test_one_unreachable_repository_gives_a_partial_backup_in_the_other(repos, state_dir,
                                                                        unreachable_endpoint):
    offline = offline_repo(unreachable_endpoint)
    outcome = run_backup(two_artifacts(), [offline, repos[0]], CODEC, state_dir=state_dir, signer=SIGNER, **SCOPE)
    assert outcome.status == "partial"
    assert outcome.stored_in == ["first"]
    assert list(outcome.failed) == ["offsite"]
    assert "cannot reach" in outcome.failed["offsite"]
    assert "stored in first only" in outcome.message
    prefix = outcome.manifest.prefix
    assert sorted(repos[0].list(prefix)) == sorted(
        prefix + n for n in (MANIFEST_NAME, "globals.sql.zst.age", "db-app.dump.zst.age"))
    record = status_record(state_dir)
    assert record["status"] == "partial"
    assert record["backup_id"] == outcome.manifest.backup_id
    assert "offsite" in record["message"]


def test_a_repository_failing_mid_run_is_dropped_and_its_incomplete_copy_removed(
        repos, state_dir, monkeypatch):
    real_fdopen = os.fdopen
    second_root = repos[1].root + os.sep

    def fdopen(fd, *args, **kwargs):
        fh = real_fdopen(fd, *args, **kwargs)
        if os.readlink("/proc/self/fd/%d" % fd).startswith(second_root):
            return FullDisk(fh, room=2 * MIB)  # the disk under 'second' fills up mid-artifact
        return fh
    monkeypatch.setattr(os, "fdopen", fdopen)

    outcome = run_backup(two_artifacts(), repos, CODEC, state_dir=state_dir, signer=SIGNER, **SCOPE)
    assert outcome.status == "partial"
    assert outcome.stored_in == ["first"]
    assert "no space left on device" in outcome.failed["second"]
    assert files_in(repos[1].root) == []  # the globals it did store were cleared out too
    assert len(list(repos[0].list(outcome.manifest.prefix))) == 3


def test_all_repositories_unreachable_is_a_repository_error_and_a_failed_status(
        state_dir, unreachable_endpoint):
    component = two_artifacts()
    repos = [offline_repo(unreachable_endpoint, "offsite-a"), offline_repo(unreachable_endpoint, "offsite-b")]
    with pytest.raises(RepositoryError) as info:
        run_backup(component, repos, CODEC, state_dir=state_dir, signer=SIGNER, **SCOPE)
    message = str(info.value)
    assert "no repository could store the backup" in message
    assert "offsite-a" in message and "offsite-b" in message
    assert not any(s.opened for s in component.sources)
    record = status_record(state_dir)
    assert record["status"] == "failed"
    assert "no repository could store the backup" in record["message"]


# --- check mode, locking, early refusals -----------------------------------------------------


def test_check_mode_reports_the_plan_and_writes_nothing(repos, state_dir, unreachable_endpoint):
    component = two_artifacts()
    outcome = run_backup(component, repos + [offline_repo(unreachable_endpoint)], CODEC,
                         state_dir=state_dir, check_mode=True, signer=SIGNER, **SCOPE)
    assert outcome.status == "planned"
    assert outcome.plan == [{"artifact": "globals.sql", "kind": "globals"},
                            {"artifact": "db-app.dump", "kind": "database"}]
    assert outcome.stored_in == ["first", "second"]
    assert "cannot reach" in outcome.failed["offsite"]
    assert outcome.manifest is None
    assert not any(s.opened for s in component.sources)
    for repo in repos:
        assert files_in(repo.root) == []
    assert not os.path.exists(os.path.join(state_dir, "status"))


def test_a_second_run_of_the_same_component_is_refused_while_one_holds_the_lock(repos, state_dir):
    component = two_artifacts()
    with Lock(os.path.join(state_dir, "locks"), "fra-db1-files"):
        with pytest.raises(LockedError, match="pid %d" % os.getpid()):
            run_backup(component, repos, CODEC, state_dir=state_dir, signer=SIGNER, **SCOPE)
    assert not component.prepared
    for repo in repos:
        assert not os.path.exists(repo.root) or files_in(repo.root) == []


@pytest.mark.parametrize("scope", [{"site": "fra", "host": "../db1"}, {"site": "", "host": "db1"}])
def test_an_unsafe_site_or_host_name_fails_before_anything_is_written(repos, state_dir, scope):
    with pytest.raises(ConfigError):
        run_backup(two_artifacts(), repos, CODEC, state_dir=state_dir, signer=SIGNER, **scope)
    assert not os.path.exists(state_dir)
    assert not any(os.path.exists(r.root) for r in repos)


def test_missing_encryption_recipients_fail_before_anything_is_written(repos, state_dir):
    no_keys = Codec(compression="zstd", encryption="age", recipients=[])
    with pytest.raises(ConfigError, match="recipient"):
        run_backup(two_artifacts(), repos, no_keys, state_dir=state_dir, signer=SIGNER, **SCOPE)
    assert not os.path.exists(state_dir)
    assert not any(os.path.exists(r.root) for r in repos)


@pytest.mark.parametrize("name", ["db-a..b.dump", "-leading-dash"])
def test_a_source_with_an_unsafe_artifact_name_fails_the_backup_and_writes_no_manifest(repos, state_dir, name):
    # What a reader would refuse is never written: the new manifest is validated before commit.
    component = FakeComponent([BytesSource(name, "database", DATABASE)])
    with pytest.raises(IntegrityError, match="unsafe artifact name"):
        run_backup(component, repos, CODEC, state_dir=state_dir, signer=SIGNER, **SCOPE)
    for repo in repos:
        assert not [f for f in files_in(repo.root) if f.endswith(MANIFEST_NAME)]


def test_the_stored_manifest_is_signed_by_the_hosts_key_and_records_parent_and_labels(repos, state_dir):
    component = two_artifacts()
    component.labels = ["weekly"]
    outcome = run_backup(component, repos, CODEC, state_dir=state_dir, signer=SIGNER, **SCOPE)
    raw = json.loads(repos[0].get_bytes(outcome.manifest.prefix + MANIFEST_NAME))
    assert raw["signature"]["key"] == SIGNER.key_id
    assert raw["labels"] == ["weekly"] and raw["parent_id"] is None
    assert trust("db1").verify(raw, host="db1", where="test") == SIGNER.key_id


def test_after_commit_runs_only_once_the_manifest_is_stored(repos, state_dir):
    seen = []

    class Advancing(FakeComponent):
        def after_commit(self, manifest):
            seen.append([f for r in repos for f in files_in(r.root) if f.endswith(MANIFEST_NAME)])

    ok = Advancing([BytesSource("a", "k", b"1")])
    run_backup(ok, repos, CODEC, state_dir=state_dir, signer=SIGNER, **SCOPE)
    assert len(seen) == 1 and len(seen[0]) == 2
    failing = Advancing([BytesSource("a", "k", b"1", fail_with=SourceError("boom"))])
    with pytest.raises(SourceError):
        run_backup(failing, repos, CODEC, state_dir=state_dir, signer=SIGNER, **SCOPE)
    assert len(seen) == 1  # a failed run never advances the component's state


def test_skipped_source_paths_make_a_stored_backup_partial_and_are_named(repos, state_dir):
    component = two_artifacts()
    component.sources[0].on_open = lambda: component.skipped.update({"/srv/a": "file changed as we read it"})
    outcome = run_backup(component, repos, CODEC, state_dir=state_dir, signer=SIGNER, **SCOPE)
    assert outcome.status.value == "partial" and outcome.stored_in == ["first", "second"]
    assert outcome.skipped == {"/srv/a": "file changed as we read it"}
    assert "/srv/a (file changed as we read it)" in outcome.message
    assert outcome.manifest.facts["skipped"] == {"/srv/a": "file changed as we read it"}
    record = status_record(state_dir)
    assert record["status"] == "partial" and record["skipped_paths"] == outcome.skipped
    assert outcome.to_dict()["skipped_paths"] == outcome.skipped and "skipped_paths" not in run_backup(
        two_artifacts(), repos, CODEC, state_dir=state_dir, signer=SIGNER, **SCOPE).to_dict()
