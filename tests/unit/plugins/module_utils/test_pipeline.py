# -*- coding: utf-8 -*-
# Copyright: Lifeline contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The streaming pipeline over real repositories and real ciphers: one encode to several
writers, fetch with size/hash/AEAD checks and fallback to the next copy, and bounded memory."""
from __future__ import annotations

import hashlib
import io
import json
import random
import subprocess
import sys
import textwrap

import pytest

from ansible_collections.lifeline.dr.plugins.module_utils.crypto import (
    Encryption,
    generate_aes_key,
    generate_age_identity,
)
from ansible_collections.lifeline.dr.plugins.module_utils.errors import (
    DecryptionError,
    IntegrityError,
    RepositoryError,
)
from ansible_collections.lifeline.dr.plugins.module_utils.manifest import Artifact, Manifest
from ansible_collections.lifeline.dr.plugins.module_utils.pipeline import (
    Codec,
    Sink,
    aad_for,
    fetch_artifact,
    store_stream,
)
from ansible_collections.lifeline.dr.plugins.module_utils.repository import LocalRepository
from ansible_collections.lifeline.dr.plugins.module_utils.s3 import S3Repository

MIB = 1024 * 1024
BACKUP_ID = "20261123T020000Z-1a2b"
# Crosses the pipeline's 1 MiB read size, age's 64 KiB and AES-GCM's 1 MiB chunks; half of it
# compresses, half does not.
DATA = random.Random(2).randbytes(3 * MIB + 17) + b"COPY public.t FROM stdin;\n" * 40_000

AGE_IDENTITY, AGE_RECIPIENT = generate_age_identity()
AES_KEY = generate_aes_key()

CODECS = {
    "age-zstd": Codec(compression="zstd", encryption="age", recipients=[AGE_RECIPIENT],
                      identities=[AGE_IDENTITY]),
    "aes-zstd": Codec(compression="zstd", encryption="aes-256-gcm", aes_key=AES_KEY),
    "none-zstd": Codec(compression="zstd", encryption="none"),
    "age-gzip": Codec(compression="gzip", encryption="age", recipients=[AGE_RECIPIENT],
                      identities=[AGE_IDENTITY]),
    "none-none": Codec(compression="none", encryption="none"),
}


class BytesSink(Sink):
    def __init__(self) -> None:
        self.buf = bytearray()
        self.resets = 0

    def write(self, data: bytes) -> None:
        self.buf += data

    def reset(self) -> None:
        self.buf = bytearray()
        self.resets += 1


@pytest.fixture
def repos(tmp_path):
    return [LocalRepository("first", str(tmp_path / "first")),
            LocalRepository("second", str(tmp_path / "second"))]


@pytest.fixture(params=sorted(CODECS))
def codec(request):
    return CODECS[request.param]


def store(repos, codec, data=DATA, *, backup_id=BACKUP_ID, name="db-app.dump"):
    """Store ``data`` as one artifact in every repository; return its manifest and artifact."""
    name += codec.suffix
    prefix = "fra/db1/postgres/%s/" % backup_id
    writers = [repo.open_writer(prefix + name) for repo in repos]
    result = store_stream(io.BytesIO(data), writers, codec, aad=aad_for(backup_id, name))
    assert result.failed == {}
    for writer in writers:
        assert writer.commit() == result.size
    art = Artifact(name=name, kind="database", size=result.size, sha256=result.sha256,
                   plain_size=result.plain_size)
    manifest = Manifest(backup_id=backup_id, site="fra", host="db1", component="postgres",
                        kind="full", started="2026-11-23T02:00:00Z", finished="2026-11-23T02:05:00Z",
                        consistent_at="2026-11-23T02:00:00Z", compression=codec.compression.value,
                        encryption=codec.encryption.value, key_id=codec.key_id(), artifacts=[art])
    return manifest, art


def path_of(repo, manifest, art) -> str:
    return repo.path_of(manifest.prefix + art.name)


def flip(path: str, position: int) -> None:
    with open(path, "r+b") as fh:
        fh.seek(position if position >= 0 else fh.seek(0, 2) + position)
        byte = fh.read(1)
        fh.seek(-1, 1)
        fh.write(bytes([byte[0] ^ 0x01]))


def truncate(path: str, drop: int) -> None:
    with open(path, "r+b") as fh:
        fh.truncate(fh.seek(0, 2) - drop)


# --- store -----------------------------------------------------------------------------------

def test_store_stream_writes_identical_bytes_to_every_writer_and_reports_their_hash(repos, codec):
    manifest, art = store(repos, codec)
    first = repos[0].get_bytes(manifest.prefix + art.name)
    second = repos[1].get_bytes(manifest.prefix + art.name)
    assert first == second
    assert len(first) == art.size
    assert hashlib.sha256(first).hexdigest() == art.sha256
    assert art.plain_size == len(DATA)


@pytest.mark.parametrize("name", ["age-zstd", "aes-zstd"])
def test_encrypted_artifacts_do_not_contain_the_plaintext(repos, name):
    manifest, art = store(repos, CODECS[name])
    stored = repos[0].get_bytes(manifest.prefix + art.name)
    assert b"COPY public.t FROM stdin;" not in stored
    assert DATA[:64] not in stored


def test_an_empty_source_round_trips(repos, codec):
    manifest, art = store(repos, codec, b"")
    sink = BytesSink()
    fetch_artifact(manifest, art, repos, codec, sink)
    assert bytes(sink.buf) == b""
    assert art.plain_size == 0


# --- fetch -----------------------------------------------------------------------------------

def test_fetch_returns_the_plaintext_from_the_first_repository(repos, codec):
    manifest, art = store(repos, codec)
    sink = BytesSink()
    assert fetch_artifact(manifest, art, repos, codec, sink) == "first"
    assert bytes(sink.buf) == DATA
    assert sink.resets == 0


def test_fetch_decodes_with_the_manifests_codec_not_the_callers(repos):
    manifest, art = store(repos, CODECS["age-gzip"])
    # The restoring host is configured for zstd + AES but holds the age identity too.
    caller = Codec(compression="zstd", encryption="aes-256-gcm", aes_key=AES_KEY,
                   identities=[AGE_IDENTITY])
    sink = BytesSink()
    fetch_artifact(manifest, art, repos, caller, sink)
    assert bytes(sink.buf) == DATA


@pytest.mark.parametrize("position", [0, 40, 2 * MIB + 5, -1], ids=["first", "header", "middle", "last"])
def test_a_flipped_byte_in_the_first_copy_falls_back_to_the_second(repos, codec, position):
    manifest, art = store(repos, codec)
    flip(path_of(repos[0], manifest, art), position)
    sink = BytesSink()
    assert fetch_artifact(manifest, art, repos, codec, sink) == "second"
    assert bytes(sink.buf) == DATA  # nothing of the damaged attempt is left in the sink
    assert sink.resets == 1


def test_a_flipped_byte_in_every_copy_is_an_integrity_error_naming_both(repos, codec):
    manifest, art = store(repos, codec)
    for repo in repos:
        flip(path_of(repo, manifest, art), 2 * MIB + 5)
    with pytest.raises(IntegrityError) as info:
        fetch_artifact(manifest, art, repos, codec, BytesSink())
    message = str(info.value)
    assert repos[0].root in message and repos[1].root in message


@pytest.mark.parametrize("drop", [1, 16, 65_536 + 16, MIB])
def test_a_truncated_copy_falls_back_and_all_truncated_is_an_integrity_error(repos, codec, drop):
    manifest, art = store(repos, codec)
    truncate(path_of(repos[0], manifest, art), drop)
    sink = BytesSink()
    assert fetch_artifact(manifest, art, repos, codec, sink) == "second"
    assert bytes(sink.buf) == DATA
    truncate(path_of(repos[1], manifest, art), drop)
    with pytest.raises(IntegrityError, match="truncated"):
        fetch_artifact(manifest, art, repos, codec, BytesSink())


def test_a_copy_longer_than_its_manifest_is_an_integrity_error(repos, codec):
    manifest, art = store(repos[:1], codec)
    with open(path_of(repos[0], manifest, art), "ab") as fh:
        fh.write(b"appended")
    with pytest.raises(IntegrityError, match="larger than the %d bytes" % art.size):
        fetch_artifact(manifest, art, repos[:1], codec, BytesSink())


def test_a_missing_copy_falls_back_and_missing_everywhere_is_a_repository_error(repos, codec):
    manifest, art = store(repos, codec)
    repos[0].delete(manifest.prefix + art.name)
    sink = BytesSink()
    assert fetch_artifact(manifest, art, repos, codec, sink) == "second"
    assert bytes(sink.buf) == DATA
    repos[1].delete(manifest.prefix + art.name)
    with pytest.raises(RepositoryError, match="no intact copy of %s" % art.name):
        fetch_artifact(manifest, art, repos, codec, BytesSink())


@pytest.mark.parametrize("name", ["age-zstd", "aes-zstd"])
def test_a_wrong_key_is_a_decryption_error_that_does_not_leak_keys(repos, name):
    right = CODECS[name]
    manifest, art = store(repos, right)
    other_identity, _recipient = generate_age_identity()
    other_key = generate_aes_key()
    wrong = Codec(compression=right.compression, encryption=right.encryption,
                  identities=[other_identity], aes_key=other_key)
    with pytest.raises(DecryptionError) as info:
        fetch_artifact(manifest, art, repos, wrong, BytesSink())
    message = str(info.value)
    for secret in (AGE_IDENTITY, AES_KEY, other_identity, other_key):
        assert secret not in message
        assert secret.lower() not in message.lower()


def test_an_aes_artifact_moved_into_another_backup_is_refused(repos):
    # The AAD names backup and artifact: a copy under another backup id (with a manifest entry
    # claiming it, so size and sha256 agree) must not decrypt.
    codec = CODECS["aes-zstd"]
    manifest, art = store(repos[:1], codec)
    moved = Manifest(**{**manifest.__dict__, "backup_id": "20261124T020000Z-9999"})
    repos[0].put_bytes(moved.prefix + art.name, repos[0].get_bytes(manifest.prefix + art.name))
    with pytest.raises(IntegrityError):
        fetch_artifact(moved, art, repos[:1], codec, BytesSink())


# --- failing writers -------------------------------------------------------------------------

def test_a_writer_that_fails_mid_stream_is_dropped_and_the_other_gets_the_whole_object(
        repos, unreachable_endpoint):
    # A real S3 writer to an endpoint that refuses connections: it buffers the first 5 MiB part,
    # then fails when it tries to start the upload, in the middle of the stream.
    offline = S3Repository("offsite", bucket="backups", endpoint_url=unreachable_endpoint,
                           access_key="a", secret_key="b", connect_timeout=1, max_attempts=1,
                           part_size_mb=5)
    codec = CODECS["aes-zstd"]
    data = random.Random(3).randbytes(12 * MIB)
    name = "db-app.dump" + codec.suffix
    key = "fra/db1/postgres/%s/%s" % (BACKUP_ID, name)
    writers = [offline.open_writer(key), repos[0].open_writer(key)]
    result = store_stream(io.BytesIO(data), writers, codec, aad=aad_for(BACKUP_ID, name))
    assert list(result.failed) == [0]
    assert "cannot reach" in str(result.failed[0])
    assert writers[1].commit() == result.size
    assert result.plain_size == len(data)

    art = Artifact(name=name, kind="database", size=result.size, sha256=result.sha256,
                   plain_size=result.plain_size)
    manifest, _result = store(repos[1:], codec, b"")  # any manifest of this backup; artifacts replaced
    manifest.artifacts = [art]
    sink = BytesSink()
    assert fetch_artifact(manifest, art, [offline, repos[0]], codec, sink) == "first"
    assert bytes(sink.buf) == data


def test_when_every_writer_fails_store_stream_raises_the_first_failure(unreachable_endpoint):
    offline = [S3Repository("offsite%d" % i, bucket="backups", endpoint_url=unreachable_endpoint,
                            access_key="a", secret_key="b", connect_timeout=1, max_attempts=1,
                            part_size_mb=5) for i in range(2)]
    writers = [repo.open_writer("k") for repo in offline]
    data = random.Random(4).randbytes(6 * MIB)
    with pytest.raises(RepositoryError, match="offsite0.*cannot reach"):
        store_stream(io.BytesIO(data), writers, CODECS["none-none"], aad=b"")


# --- memory ----------------------------------------------------------------------------------

MEASURE = textwrap.dedent("""
    import json, os, resource, sys
    from ansible_collections.lifeline.dr.plugins.module_utils.crypto import generate_age_identity
    from ansible_collections.lifeline.dr.plugins.module_utils.pipeline import Codec, store_stream
    from ansible_collections.lifeline.dr.plugins.module_utils.repository import LocalRepository

    class Source:
        '''Produces incompressible bytes on demand: the source itself holds one chunk at most.'''
        def __init__(self, total):
            self.left = total
        def read(self, size):
            size = min(size, self.left)
            self.left -= size
            return os.urandom(size)

    def run(total, codec, root):
        repos = [LocalRepository("a", root + "/a"), LocalRepository("b", root + "/b")]
        writers = [repo.open_writer("obj-%d" % total) for repo in repos]
        result = store_stream(Source(total), writers, codec, aad=b"lifeline/x/y")
        sizes = [writer.commit() for writer in writers]
        assert sizes == [result.size] * 2 and result.plain_size == total, (sizes, result)
        return result

    root = sys.argv[1]
    _, recipient = generate_age_identity()
    codec = Codec(compression="zstd", encryption="age", recipients=[recipient])
    run(4 << 20, codec, root)  # warm-up: imports, zstd contexts and worker threads
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    result = run(64 << 20, codec, root)
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"growth_kib": after - before, "stored": result.size}))
""")


def test_streaming_64_mib_grows_peak_memory_by_far_less_than_64_mib(tmp_path, child_env):
    # Measured in a fresh process: this one's peak RSS already holds other tests' data.
    out = subprocess.run([sys.executable, "-c", MEASURE, str(tmp_path)], env=child_env,
                         capture_output=True, text=True, timeout=300, check=True)
    report = json.loads(out.stdout)
    assert report["stored"] > 64 * MIB  # really went through, incompressible
    # Measured: ~22 MiB, nearly all of it libzstd's worker-thread job buffers, and the same for
    # 256 MiB. Before compress.py bounded the zstd job size it was ~120 MiB.
    assert report["growth_kib"] < 32 * 1024, report


def test_codec_suffix_names_compression_then_encryption():
    assert [CODECS[n].suffix for n in ("age-zstd", "aes-zstd", "none-zstd", "age-gzip", "none-none")] == \
        [".zst.age", ".zst.aes", ".zst", ".gz.age", ""]
    assert Codec(encryption="none").encryption is Encryption.NONE


def test_a_fallback_to_the_next_repository_is_reported_naming_repository_artifact_and_cause(tmp_path):
    # The operator must learn that one copy rotted even though the restore succeeded.
    from ansible_collections.lifeline.dr.plugins.module_utils.repository import LocalRepository
    first, second = LocalRepository("first", str(tmp_path / "a")), LocalRepository("second", str(tmp_path / "b"))
    codec = Codec(compression="zstd", encryption="none")
    writers = [first.open_writer("x/a.zst"), second.open_writer("x/a.zst")]
    result = store_stream(io.BytesIO(b"payload" * 1000), writers, codec, aad=b"")
    for w in writers:
        w.commit()
    art = Artifact(name="a.zst", kind="k", size=result.size, sha256=result.sha256, plain_size=result.plain_size)
    manifest = Manifest(backup_id="20261123T020000Z-1a2b", site="s", host="h", component="c", kind="full",
                        started="2026-11-23T02:00:00.000Z", finished="2026-11-23T02:00:00.000Z",
                        consistent_at="2026-11-23T02:00:00.000Z", compression="zstd", encryption="none",
                        key_id=[], artifacts=[art])
    with open(first.path_of("x/a.zst"), "r+b") as fh:
        fh.seek(5)
        fh.write(b"\xff")
    got, warnings = [], []

    class Collect(Sink):
        def write(self, data):
            got.append(data)

        def reset(self):
            got.clear()

    first_key = "s/h/c/20261123T020000Z-1a2b/a.zst"
    for repo in (first, second):
        repo.put_bytes(first_key, repo.get_bytes("x/a.zst"))
    served = fetch_artifact(manifest, art, [first, second], codec, Collect(), warnings=warnings)
    assert served == "second"
    assert b"".join(got) == b"payload" * 1000
    assert len(warnings) == 1
    assert "a.zst" in warnings[0] and "'first'" in warnings[0] and "corrupt" in warnings[0]
