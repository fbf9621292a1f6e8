# -*- coding: utf-8 -*-
# Copyright: Lifeline contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""S3 repository through boto3: any endpoint (AWS, MinIO, Ceph, Garage, moto) via endpoint_url.

Multipart uploads with fixed-size parts (R2 wants equal parts), a Content-MD5 on every part,
bounded retries and timeouts on every call (an unreachable endpoint fails, it does not hang),
at most ``_IN_FLIGHT`` parts buffered (bounded memory), a HEAD after commit to confirm the size,
and an abort of the multipart upload on any failure so no orphaned parts are left behind.
"""
from __future__ import annotations

import base64
import hashlib
from concurrent.futures import ThreadPoolExecutor
from typing import BinaryIO, Iterator

from ansible_collections.lifeline.dr.plugins.module_utils.errors import (
    ConfigError,
    DependencyError,
    NotFoundError,
    RepositoryError,
)
from ansible_collections.lifeline.dr.plugins.module_utils.repository import (
    Leftover,
    ObjectInfo,
    ObjectWriter,
    Repository,
    check_key,
)

_MIB = 1024 * 1024
_IN_FLIGHT = 2
_MAX_PARTS = 10000  # S3's limit per multipart upload
# Server-side encryption with KMS makes the ETag something other than the MD5 of the data.
_ETAG_NOT_MD5 = ("aws:kms", "aws:kms:dsse")
_NOT_FOUND = ("NoSuchKey", "404", "NotFound")


def _boto():
    try:
        import boto3  # pylint: disable=import-outside-toplevel
        import botocore.config  # pylint: disable=import-outside-toplevel
        import botocore.exceptions  # pylint: disable=import-outside-toplevel
    except ImportError:
        raise DependencyError("S3 repositories need the Python library 'boto3' "
                              "(Debian: python3-boto3)") from None
    return boto3, botocore


def _md5(body: bytes) -> tuple[bytes, str]:
    digest = hashlib.md5(body).digest()  # nosec - S3 integrity check, not security
    return digest, base64.b64encode(digest).decode()


def part_size_for(configured: int, size_hint: int | None) -> int:
    """Equal parts of at least ``configured`` bytes (R2 wants equal parts), large enough that
    the expected size fits well within S3's 10,000 parts."""
    if not size_hint:
        return configured
    needed = -(-size_hint * 5 // 4 // (_MAX_PARTS * 9 // 10))  # 25 % headroom, 9,000 parts
    return max(configured, -(-needed // _MIB) * _MIB)


class _S3Writer(ObjectWriter):
    def __init__(self, repo: "S3Repository", key: str, size_hint: int | None) -> None:
        self._repo = repo
        self._key = key
        self._part_size = part_size_for(repo.part_size, size_hint)
        self._md5s: list = []
        self._buf = bytearray()
        self._size = 0
        self._upload_id: str | None = None
        self._parts: list = []
        self._pool: ThreadPoolExecutor | None = None

    def _flush_part(self) -> None:
        repo = self._repo
        if self._upload_id is None:
            resp = repo.call("starting upload of", self._key, repo.client.create_multipart_upload,
                             Bucket=repo.bucket, Key=repo.full_key(self._key), **repo.put_args)
            self._upload_id = resp["UploadId"]
            self._pool = ThreadPoolExecutor(max_workers=_IN_FLIGHT)
        # Wait for the oldest part once _IN_FLIGHT are queued: memory stays bounded.
        pending = [p for p in self._parts if not p[1].done()]
        if len(pending) >= _IN_FLIGHT:
            pending[0][1].result()
        number = len(self._parts) + 1
        if number > _MAX_PARTS:
            raise RepositoryError("%s: %s needs more than %d parts of %d MiB; raise s3.part_size_mb"
                                  % (repo.describe(), self._key, _MAX_PARTS, self._part_size // _MIB))
        body = bytes(self._buf)
        self._buf = bytearray()
        self._parts.append((number, self._pool.submit(self._upload_part, number, body)))

    def _upload_part(self, number: int, body: bytes) -> str:
        repo = self._repo
        digest, md5 = _md5(body)
        self._md5s.append((number, digest))
        resp = repo.call("uploading part %d of" % number, self._key, repo.client.upload_part,
                         Bucket=repo.bucket, Key=repo.full_key(self._key), UploadId=self._upload_id,
                         PartNumber=number, Body=body, ContentMD5=md5)
        return resp["ETag"]

    def write(self, data: bytes) -> None:
        self._buf += data
        self._size += len(data)
        while len(self._buf) >= self._part_size:
            rest = self._buf[self._part_size:]
            del self._buf[self._part_size:]
            self._flush_part()
            self._buf = rest

    def commit(self) -> int:
        repo = self._repo
        try:
            if self._upload_id is None:
                body = bytes(self._buf)
                digest, md5 = _md5(body)
                repo.call("uploading", self._key, repo.client.put_object, Bucket=repo.bucket,
                          Key=repo.full_key(self._key), Body=body, ContentMD5=md5, **repo.put_args)
                expected = digest.hex()
            else:
                if self._buf:
                    self._flush_part()
                parts = [{"PartNumber": n, "ETag": f.result()} for n, f in self._parts]
                repo.call("completing upload of", self._key, repo.client.complete_multipart_upload,
                          Bucket=repo.bucket, Key=repo.full_key(self._key), UploadId=self._upload_id,
                          MultipartUpload={"Parts": parts})
                self._upload_id = None
                joined = b"".join(d for _n, d in sorted(self._md5s))
                expected = "%s-%d" % (hashlib.md5(joined).hexdigest(), len(parts))  # nosec
            size, etag = repo.head(self._key)
        except BaseException:
            self.abort()
            raise
        finally:
            if self._pool:
                self._pool.shutdown(wait=True)
        if size != self._size:
            raise RepositoryError("%s: %s is %d bytes after upload, expected %d"
                                  % (repo.describe(), self._key, size, self._size))
        if repo.etag_is_md5 and etag != expected:
            raise RepositoryError("%s: %s has ETag %s after upload, expected %s: the stored bytes "
                                  "differ from what was sent" % (repo.describe(), self._key, etag, expected))
        return size

    def abort(self) -> None:
        self._buf = bytearray()
        if self._pool:
            self._pool.shutdown(wait=True, cancel_futures=True)
        if self._upload_id is not None:
            upload_id, self._upload_id = self._upload_id, None
            try:
                self._repo.client.abort_multipart_upload(
                    Bucket=self._repo.bucket, Key=self._repo.full_key(self._key), UploadId=upload_id)
            except Exception:  # pylint: disable=broad-except
                pass  # best effort; a lifecycle rule aborts incomplete uploads too


class _S3Reader:
    """A read(n)-able, closable view of a GetObject body that translates errors."""

    def __init__(self, repo: "S3Repository", key: str, body) -> None:
        self._repo, self._key, self._body = repo, key, body

    def read(self, size: int = -1) -> bytes:
        return self._repo.call("reading", self._key, self._body.read, None if size < 0 else size)

    def close(self) -> None:
        self._body.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class S3Repository(Repository):
    def __init__(self, name: str, *, bucket: str, prefix: str = "", endpoint_url: str | None = None,
                 region: str | None = None, access_key: str | None = None,
                 secret_key: str | None = None, session_token: str | None = None,
                 addressing_style: str = "auto", verify_tls: bool = True,
                 ca_bundle: str | None = None, storage_class: str | None = None,
                 server_side_encryption: str | None = None, part_size_mb: int = 16,
                 connect_timeout: int = 10, read_timeout: int = 60, max_attempts: int = 5) -> None:
        super().__init__(name)
        if not bucket:
            raise ConfigError("repository %r: s3.bucket is required" % name)
        if part_size_mb < 5:
            raise ConfigError("repository %r: s3.part_size_mb must be at least 5 (S3's minimum)" % name)
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.endpoint_url = endpoint_url
        self.part_size = part_size_mb * _MIB
        self.put_args: dict = {}
        self.etag_is_md5 = server_side_encryption not in _ETAG_NOT_MD5
        if storage_class:
            self.put_args["StorageClass"] = storage_class
        if server_side_encryption:
            self.put_args["ServerSideEncryption"] = server_side_encryption
        boto3, botocore = _boto()
        self._exc = botocore.exceptions
        cfg = {"connect_timeout": connect_timeout, "read_timeout": read_timeout,
               "retries": {"max_attempts": max_attempts, "mode": "standard"},
               "s3": {"addressing_style": addressing_style}}
        try:
            # botocore >= 1.36 adds CRC checksums many S3-compatible stores reject.
            config = botocore.config.Config(request_checksum_calculation="when_required",
                                            response_checksum_validation="when_required", **cfg)
        except TypeError:
            config = botocore.config.Config(**cfg)
        session = boto3.session.Session(
            aws_access_key_id=access_key, aws_secret_access_key=secret_key,
            aws_session_token=session_token, region_name=region or "us-east-1")
        self.client = session.client("s3", endpoint_url=endpoint_url, config=config,
                                     verify=(ca_bundle or True) if verify_tls else False)

    def describe(self) -> str:
        where = " at %s" % self.endpoint_url if self.endpoint_url else ""
        return "S3 repository '%s' (s3://%s/%s%s)" % (self.name, self.bucket, self.prefix, where)

    def full_key(self, key: str) -> str:
        key = check_key(key)
        return "%s/%s" % (self.prefix, key) if self.prefix else key

    def call(self, doing: str, key: str, func, *args, **kwargs):
        """Run one boto3 call and translate its failures into our error tree."""
        exc = self._exc
        try:
            return func(*args, **kwargs)
        except exc.ClientError as err:
            code = str(err.response.get("Error", {}).get("Code", "?"))
            status = err.response.get("ResponseMetadata", {}).get("HTTPStatusCode", "?")
            if code in _NOT_FOUND:
                raise NotFoundError("%s has no %s" % (self.describe(), key)) from None
            hint = {
                "NoSuchBucket": "create the bucket or fix s3.bucket",
                "AccessDenied": "check the repository's S3 credentials and bucket policy",
                "InvalidAccessKeyId": "check s3.access_key",
                "SignatureDoesNotMatch": "check s3.secret_key",
            }.get(code, "")
            raise RepositoryError("%s: %s %s failed: %s %s%s" % (
                self.describe(), doing, key, status, code, (". " + hint.capitalize()) if hint else "")) from None
        except exc.NoCredentialsError:
            raise ConfigError("%s: no S3 credentials; set s3.access_key and s3.secret_key "
                              "or give the host an instance role" % self.describe()) from None
        except (exc.EndpointConnectionError, exc.ConnectTimeoutError, exc.ReadTimeoutError,
                exc.ConnectionClosedError) as err:
            raise RepositoryError("%s: cannot reach the S3 endpoint while %s %s: %s"
                                  % (self.describe(), doing, key, err)) from None
        except exc.BotoCoreError as err:
            raise RepositoryError("%s: %s %s failed: %s" % (self.describe(), doing, key, err)) from None

    def open_writer(self, key: str, *, size_hint: int | None = None) -> ObjectWriter:
        check_key(key)
        return _S3Writer(self, key, size_hint)

    def open_reader(self, key: str) -> BinaryIO:
        resp = self.call("opening", key, self.client.get_object, Bucket=self.bucket, Key=self.full_key(key))
        return _S3Reader(self, key, resp["Body"])  # type: ignore[return-value]

    def head(self, key: str) -> tuple[int, str]:
        """(stored size, ETag without quotes) of ``key``."""
        resp = self.call("checking", key, self.client.head_object, Bucket=self.bucket, Key=self.full_key(key))
        return int(resp["ContentLength"]), str(resp.get("ETag", "")).strip('"')

    def stat(self, key: str) -> int:
        return self.head(key)[0]

    def close(self) -> None:
        close = getattr(self.client, "close", None)  # botocore >= 1.28
        if close:
            close()

    def list(self, prefix: str = "") -> Iterator[str]:
        root = self.prefix + "/" if self.prefix else ""
        paginator = self.client.get_paginator("list_objects_v2")
        pages = paginator.paginate(Bucket=self.bucket, Prefix=root + prefix)
        for page in self.call("listing", prefix or "/", list, pages):
            for obj in page.get("Contents", []):
                yield obj["Key"][len(root):]

    def info(self, key: str) -> ObjectInfo:
        resp = self.call("checking", key, self.client.head_object, Bucket=self.bucket, Key=self.full_key(key))
        return ObjectInfo(int(resp["ContentLength"]), resp["LastModified"])

    def leftovers(self, prefix: str) -> Iterator[Leftover]:
        """Multipart uploads never completed or aborted (a killed writer leaves them, and they
        are billed); the whole listing is read before anything is yielded, so it fails whole."""
        root = self.prefix + "/" if self.prefix else ""
        pages = self.client.get_paginator("list_multipart_uploads").paginate(
            Bucket=self.bucket, Prefix=root + check_key(prefix.rstrip("/")) + "/")
        for page in self.call("listing multipart uploads under", prefix, list, pages):
            for upload in page.get("Uploads", []):
                yield Leftover(upload["Key"][len(root):], upload["Initiated"], "multipart upload",
                               handle=upload["UploadId"])

    def remove_leftover(self, leftover: Leftover) -> None:
        if not leftover.handle:
            self.delete(leftover.key)
            return
        self.call("aborting the multipart upload of", leftover.key, self.client.abort_multipart_upload,
                  Bucket=self.bucket, Key=self.full_key(leftover.key), UploadId=leftover.handle)

    def delete(self, key: str) -> None:
        self.call("deleting", key, self.client.delete_object, Bucket=self.bucket, Key=self.full_key(key))

    def check(self, *, create: bool = True) -> None:
        del create  # a bucket check writes nothing anyway
        try:
            self.call("checking bucket", self.bucket, self.client.head_bucket, Bucket=self.bucket)
        except NotFoundError:
            # HEAD has no body, so a missing bucket comes back as a bare 404, not NoSuchBucket.
            raise RepositoryError("%s: bucket '%s' does not exist (404 NoSuchBucket). Create the "
                                  "bucket or fix s3.bucket" % (self.describe(), self.bucket)) from None
