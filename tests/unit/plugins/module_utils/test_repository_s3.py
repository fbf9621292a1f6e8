# -*- coding: utf-8 -*-
# Copyright: Lifeline contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""S3Repository against a real S3 HTTP endpoint (moto_server on loopback, see conftest.py): the
shared conformance suite, plus the failures only S3 has (unreachable endpoint, missing bucket,
orphaned multipart uploads).

Wrong credentials are not tested here: moto_server accepts any access key and signature unless
IAM enforcement is switched on for the whole server (INITIAL_NO_AUTH_ACTION_COUNT), which would
change every other test sharing the session's server. The 403 InvalidAccessKeyId /
SignatureDoesNotMatch mapping is covered by the integration tests against MinIO.
"""
from __future__ import annotations

import time

import pytest

from repository_suite import MIB, RepositoryContract, payload

from ansible_collections.lifeline.dr.plugins.module_utils.errors import (
    ConfigError,
    NotFoundError,
    RepositoryError,
)
from ansible_collections.lifeline.dr.plugins.module_utils.config import open_repository
from ansible_collections.lifeline.dr.plugins.module_utils.s3 import S3Repository


def make_repo(moto_server, bucket: str, **overrides) -> S3Repository:
    settings = dict(moto_server.s3_settings(bucket), part_size_mb=5, max_attempts=2,
                    connect_timeout=2, read_timeout=30)
    settings.update(overrides)
    return S3Repository("s3", **settings)


def multipart_uploads(repo: S3Repository) -> list:
    return repo.client.list_multipart_uploads(Bucket=repo.bucket).get("Uploads", [])


def raw_keys(repo: S3Repository) -> list:
    return [o["Key"] for o in repo.client.list_objects_v2(Bucket=repo.bucket).get("Contents", [])]


class TestS3RepositoryContract(RepositoryContract):
    @pytest.fixture
    def repo(self, moto_server, s3_bucket):
        return make_repo(moto_server, s3_bucket)

    def leftovers(self, repo) -> list:
        return multipart_uploads(repo)


class TestS3RepositoryWithoutPrefixContract(RepositoryContract):
    """The same contract with objects at the bucket's top level (prefix '')."""

    @pytest.fixture
    def repo(self, moto_server, s3_bucket):
        return make_repo(moto_server, s3_bucket, prefix="")

    def leftovers(self, repo) -> list:
        return multipart_uploads(repo)

    # The large-object test costs seconds and proves nothing new without a prefix.
    test_large_object_written_in_odd_pieces_round_trips = None


@pytest.fixture
def repo(moto_server, s3_bucket):
    return make_repo(moto_server, s3_bucket)


# --- multipart -------------------------------------------------------------------------------

def test_an_object_larger_than_a_part_is_uploaded_in_parts_of_part_size(repo):
    data = payload(12 * MIB + 5, seed=7)
    writer = repo.open_writer("parts")
    for start in range(0, len(data), 3 * MIB + 1):
        writer.write(data[start:start + 3 * MIB + 1])
    assert writer.commit() == len(data)
    head = repo.client.head_object(Bucket=repo.bucket, Key="lifeline/parts", PartNumber=1)
    assert head["ContentLength"] == 5 * MIB
    assert head["PartsCount"] == 3
    assert repo.get_bytes("parts") == data


def test_abort_after_uploaded_parts_leaves_no_multipart_upload(repo):
    writer = repo.open_writer("orphan")
    writer.write(payload(16 * MIB, seed=8))  # three parts uploaded or in flight
    assert len(multipart_uploads(repo)) == 1
    writer.abort()
    assert multipart_uploads(repo) == []
    assert raw_keys(repo) == []


def test_objects_live_under_the_configured_prefix(moto_server, s3_bucket):
    repo_a = make_repo(moto_server, s3_bucket, prefix="/team-a/")
    repo_b = make_repo(moto_server, s3_bucket, prefix="team-b")
    repo_a.put_bytes("s/h/c/x", b"a")
    repo_b.put_bytes("s/h/c/y", b"b")
    assert sorted(raw_keys(repo_a)) == ["team-a/s/h/c/x", "team-b/s/h/c/y"]
    assert list(repo_a.list()) == ["s/h/c/x"]
    assert list(repo_b.list("s/")) == ["s/h/c/y"]
    with pytest.raises(NotFoundError):
        repo_a.stat("s/h/c/y")


# --- failures --------------------------------------------------------------------------------

@pytest.mark.parametrize("operation", [
    "check", "list", "stat", "get_bytes", "put_bytes", "delete"])
def test_an_unreachable_endpoint_fails_fast_naming_the_endpoint(unreachable_endpoint, operation):
    repo = S3Repository("offsite", bucket="backups", endpoint_url=unreachable_endpoint,
                        access_key="a", secret_key="b", connect_timeout=1, max_attempts=1)
    call = {"check": repo.check, "list": lambda: list(repo.list("s/")),
            "stat": lambda: repo.stat("k"), "get_bytes": lambda: repo.get_bytes("k"),
            "put_bytes": lambda: repo.put_bytes("k", b"data"), "delete": lambda: repo.delete("k")}
    started = time.monotonic()
    with pytest.raises(RepositoryError) as info:
        call[operation]()
    assert time.monotonic() - started < 10
    assert type(info.value) is RepositoryError  # pylint: disable=unidiomatic-typecheck
    message = str(info.value)
    assert "cannot reach" in message
    assert unreachable_endpoint in message
    assert "offsite" in message


@pytest.mark.parametrize("operation", ["check", "list", "get_bytes", "put_bytes", "put_large"])
def test_a_missing_bucket_is_named_with_the_no_such_bucket_hint(moto_server, operation):
    repo = make_repo(moto_server, "no-such-bucket-here")
    call = {"check": repo.check, "list": lambda: list(repo.list("s/")),
            "get_bytes": lambda: repo.get_bytes("k"),
            "put_bytes": lambda: repo.put_bytes("k", b"data"),
            "put_large": lambda: repo.put_bytes("k", payload(6 * MIB))}
    with pytest.raises(RepositoryError) as info:
        call[operation]()
    assert type(info.value) is RepositoryError  # pylint: disable=unidiomatic-typecheck
    message = str(info.value)
    assert "no-such-bucket-here" in message
    assert "NoSuchBucket" in message
    assert "create the bucket or fix s3.bucket" in message.lower()


def test_messages_never_carry_the_secret_key(moto_server):
    repo = make_repo(moto_server, "no-such-bucket-here", secret_key="very-secret-value")
    with pytest.raises(RepositoryError) as info:
        repo.put_bytes("k", b"x")
    assert "very-secret-value" not in str(info.value)
    assert "very-secret-value" not in repr(repo)


# --- settings --------------------------------------------------------------------------------

def test_a_part_size_below_the_s3_minimum_is_a_config_error():
    with pytest.raises(ConfigError, match="at least 5"):
        S3Repository("s3", bucket="b", part_size_mb=4)


def test_a_missing_bucket_setting_is_a_config_error():
    with pytest.raises(ConfigError, match="s3.bucket is required"):
        S3Repository("s3", bucket="")


def test_open_repository_builds_an_s3_repository_from_s3_settings(moto_server, s3_bucket):
    repo = open_repository({"name": "offsite", "s3": moto_server.s3_settings(s3_bucket)})
    assert isinstance(repo, S3Repository)
    repo.put_bytes("k", b"v")
    assert repo.get_bytes("k") == b"v"


# --- integrity of what S3 stored, part sizing -----------------------------------------------

@pytest.mark.parametrize("size", [100, 12 * MIB], ids=["single-put", "multipart"])
def test_the_etag_s3_reports_matches_the_md5_of_what_was_sent(moto_server, s3_bucket, size):
    repo = make_repo(moto_server, s3_bucket)
    data = payload(size)
    assert repo.put_bytes("a/obj", data) == size
    assert repo.head("a/obj")[1]  # the ETag the commit compared
    assert repo.get_bytes("a/obj") == data


@pytest.mark.parametrize("size", [100, 12 * MIB], ids=["single-put", "multipart"])
def test_a_stored_object_whose_etag_differs_is_a_repository_error(moto_server, s3_bucket, size):
    # Fault injection: the store reports an ETag that is not what was sent (bytes changed on the way).
    repo = make_repo(moto_server, s3_bucket)
    real_head = repo.client.head_object

    def lying_head(**kwargs):
        resp = real_head(**kwargs)
        return dict(resp, ETag='"%s"' % ("0" * 32))
    repo.client.head_object = lying_head
    with pytest.raises(RepositoryError, match="ETag .* expected"):
        repo.put_bytes("a/obj", payload(size))


def test_kms_encrypted_uploads_are_not_compared_with_an_md5_etag(moto_server, s3_bucket):
    assert not make_repo(moto_server, s3_bucket, server_side_encryption="aws:kms").etag_is_md5
    assert make_repo(moto_server, s3_bucket, server_side_encryption="AES256").etag_is_md5


@pytest.mark.parametrize("hint, expected_mib", [
    (None, 16), (0, 16), (10 * MIB, 16), (100 * 1024 * MIB, 16),
    (1024 * 1024 * MIB, 146),           # 1 TiB: 1.25 TiB / 9000 parts, rounded up to whole MiB
])
def test_part_size_grows_with_the_expected_size_so_10000_parts_suffice(hint, expected_mib):
    from ansible_collections.lifeline.dr.plugins.module_utils.s3 import part_size_for
    size = part_size_for(16 * MIB, hint)
    assert size == expected_mib * MIB
    if hint:
        assert hint * 1.25 / size <= 9000


def test_an_upload_that_would_exceed_the_part_limit_fails_naming_the_setting(moto_server, s3_bucket, monkeypatch):
    from ansible_collections.lifeline.dr.plugins.module_utils import s3
    monkeypatch.setattr(s3, "_MAX_PARTS", 2)  # 2 parts stand in for S3's 10,000
    repo = make_repo(moto_server, s3_bucket)
    with pytest.raises(RepositoryError, match="more than 2 parts of 5 MiB; raise s3.part_size_mb"):
        repo.put_bytes("a/big", payload(16 * MIB))
    assert multipart_uploads(repo) == []


def test_a_repository_is_a_context_manager_that_closes_its_client(moto_server, s3_bucket):
    closed = []
    with make_repo(moto_server, s3_bucket) as repo:
        real_close = repo.client.close
        repo.client.close = lambda: (closed.append(True), real_close())
        repo.put_bytes("a/x", b"1")
        assert closed == []
    assert closed == [True]  # botocore's close() releases the connection pool
