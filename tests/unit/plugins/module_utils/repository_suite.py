# -*- coding: utf-8 -*-
# Copyright: Lifeline contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one conformance suite every Repository implementation runs (restic's idea: one written
contract, one test suite, every backend).

Use it by subclassing in a test module::

    class TestLocalRepositoryContract(RepositoryContract):
        @pytest.fixture
        def repo(self, tmp_path):
            return LocalRepository("local", str(tmp_path / "repo"))

        def leftovers(self, repo):
            return [...]   # whatever the backend stores that is not a committed object

``repo`` must be an empty repository. Backends that upload in parts should be configured with
their smallest part size (S3: part_size_mb=5) so that the large-object and abort tests cross
several part boundaries.

The contract itself is written in plugins/module_utils/repository.py.
"""
from __future__ import annotations

import hashlib
import random

import pytest
import transforms

from ansible_collections.lifeline.dr.plugins.module_utils.errors import ConfigError, NotFoundError

MIB = 1024 * 1024
LARGE = 40 * MIB
# Several S3 parts (5 MiB) plus a partial one, so an abort has uploaded parts to throw away.
ABORT_SIZES = (10, 11 * MIB + 3)
# Odd sizes that never line up with a part or a chunk boundary; 0 is a legal write too.
PIECES = (1, 4093, MIB + 7, 0, 65537, 3 * MIB + 13, 17)
INVALID_KEYS = ("../x", "/abs", "a//b", "", "a/./b", "a/..", "a/", "..")


def payload(size: int, seed: int = 0) -> bytes:
    """Deterministic bytes without repeats, so a lost, doubled or reordered part shows."""
    return random.Random(seed).randbytes(size)


def pieces(data: bytes):
    """``data`` in the uneven pieces a real stream delivers (empty ones included)."""
    return transforms.pieces(data, PIECES)


class RepositoryContract:
    """Mixin: subclasses provide the ``repo`` fixture and ``leftovers``."""

    def leftovers(self, repo) -> list:
        """Anything the backend stores that is not a committed object (temp files, in-progress
        uploads). The contract says abort and failed commits leave none of it."""
        raise NotImplementedError

    # --- round trips -------------------------------------------------------------------------

    def test_put_bytes_then_get_bytes_returns_the_same_bytes(self, repo):
        data = bytes(range(256)) * 41 + b"\x00end"
        repo.put_bytes("site/host/comp/obj.bin", data)
        assert repo.get_bytes("site/host/comp/obj.bin") == data
        assert repo.stat("site/host/comp/obj.bin") == len(data)

    def test_empty_object_round_trips_with_size_zero(self, repo):
        assert repo.put_bytes("empty", b"") == 0
        assert repo.get_bytes("empty") == b""
        assert repo.stat("empty") == 0
        assert list(repo.list()) == ["empty"]

    def test_open_reader_returns_the_object_in_pieces_then_empty(self, repo):
        data = payload(100_003, seed=1)
        repo.put_bytes("obj", data)
        got = []
        with repo.open_reader("obj") as reader:
            while True:
                piece = reader.read(7919)
                if not piece:
                    break
                assert len(piece) <= 7919
                got.append(piece)
        assert b"".join(got) == data

    def test_commit_returns_the_stored_size(self, repo):
        writer = repo.open_writer("a/b/c")
        for piece in pieces(payload(300_001, seed=2)):
            writer.write(piece)
        assert writer.commit() == 300_001
        assert repo.stat("a/b/c") == 300_001

    def test_large_object_written_in_odd_pieces_round_trips(self, repo):
        data = payload(LARGE, seed=3)
        writer = repo.open_writer("big/object")
        for piece in pieces(data):
            writer.write(piece)
        assert writer.commit() == LARGE
        assert repo.stat("big/object") == LARGE
        digest = hashlib.sha256()
        with repo.open_reader("big/object") as reader:
            while True:
                piece = reader.read(MIB)
                if not piece:
                    break
                digest.update(piece)
        assert digest.hexdigest() == hashlib.sha256(data).hexdigest()
        assert self.leftovers(repo) == []

    # --- missing keys ------------------------------------------------------------------------

    @pytest.mark.parametrize("key", ["never-written", "no/such/dir/key"])
    @pytest.mark.parametrize("operation", ["get_bytes", "open_reader", "stat"])
    def test_missing_key_raises_not_found_and_nothing_else(self, repo, operation, key):
        repo.put_bytes("present", b"x")
        with pytest.raises(NotFoundError) as info:
            getattr(repo, operation)(key)
        assert type(info.value) is NotFoundError  # pylint: disable=unidiomatic-typecheck
        assert key in str(info.value)

    @pytest.mark.parametrize("operation", ["get_bytes", "open_reader", "stat"])
    def test_key_below_an_existing_object_is_not_found(self, repo, operation):
        # 'f' is an object, so 'f/x' cannot exist: that is "missing", not a storage failure.
        repo.put_bytes("f", b"file")
        with pytest.raises(NotFoundError):
            getattr(repo, operation)("f/x")

    @pytest.mark.parametrize("operation", ["get_bytes", "open_reader", "stat"])
    def test_a_prefix_of_other_keys_is_not_an_object(self, repo, operation):
        # 'd' only prefixes 'd/x': a directory on disk, nothing at all in S3. Either way, no object.
        repo.put_bytes("d/x", b"file")
        with pytest.raises(NotFoundError):
            getattr(repo, operation)("d")

    def test_delete_of_a_prefix_of_other_keys_is_harmless(self, repo):
        repo.put_bytes("d/x", b"file")
        repo.delete("d")
        assert list(repo.list()) == ["d/x"]

    # --- visibility and abort ----------------------------------------------------------------

    def test_uncommitted_writer_is_invisible_to_list_and_stat(self, repo):
        writer = repo.open_writer("dir/pending")
        writer.write(payload(7 * MIB, seed=4))
        try:
            assert list(repo.list()) == []
            assert list(repo.list("dir/")) == []
            with pytest.raises(NotFoundError):
                repo.stat("dir/pending")
            with pytest.raises(NotFoundError):
                repo.get_bytes("dir/pending")
        finally:
            size = writer.commit()
        assert size == 7 * MIB
        assert list(repo.list("dir/")) == ["dir/pending"]

    @pytest.mark.parametrize("size", ABORT_SIZES, ids=["small", "several-parts"])
    def test_abort_leaves_no_object_and_no_temporary_data(self, repo, size):
        writer = repo.open_writer("dir/aborted")
        for piece in pieces(payload(size, seed=5)):
            writer.write(piece)
        writer.abort()
        assert list(repo.list()) == []
        with pytest.raises(NotFoundError):
            repo.stat("dir/aborted")
        assert self.leftovers(repo) == []

    def test_abort_twice_is_harmless(self, repo):
        writer = repo.open_writer("twice")
        writer.write(b"data")
        writer.abort()
        writer.abort()
        assert list(repo.list()) == []
        assert self.leftovers(repo) == []

    def test_abort_does_not_touch_an_existing_object_of_the_same_key(self, repo):
        repo.put_bytes("keep", b"committed")
        writer = repo.open_writer("keep")
        writer.write(b"replacement that is never committed")
        writer.abort()
        assert repo.get_bytes("keep") == b"committed"
        assert self.leftovers(repo) == []

    # --- list and delete ---------------------------------------------------------------------

    def test_list_returns_exactly_the_committed_keys_under_the_prefix(self, repo):
        keys = ["s/h/c/1/manifest.json", "s/h/c/1/db.dump", "s/h/c/2/manifest.json",
                "s/h/cx/9/manifest.json", "s/h2/c/3/manifest.json", "top"]
        for key in keys:
            repo.put_bytes(key, key.encode())
        pending = repo.open_writer("s/h/c/1/pending")
        pending.write(b"not yet")
        try:
            assert sorted(repo.list("s/h/c/")) == sorted(keys[:3])
            assert sorted(repo.list("s/h/c/1/")) == sorted(keys[:2])
            assert sorted(repo.list("s/")) == sorted(keys[:5])
            assert sorted(repo.list()) == sorted(keys)
        finally:
            pending.abort()

    def test_list_of_a_prefix_with_nothing_below_is_empty(self, repo):
        repo.put_bytes("a/b", b"1")
        assert list(repo.list("nothing/here/")) == []

    def test_delete_removes_the_object(self, repo):
        repo.put_bytes("d/x", b"1")
        repo.put_bytes("d/y", b"2")
        repo.delete("d/x")
        assert list(repo.list("d/")) == ["d/y"]
        with pytest.raises(NotFoundError):
            repo.stat("d/x")

    @pytest.mark.parametrize("key", ["never-written", "no/such/dir/key", "f/x"])
    def test_delete_of_a_missing_key_is_not_an_error(self, repo, key):
        repo.put_bytes("f", b"file")
        repo.delete(key)
        assert list(repo.list()) == ["f"]

    # --- keys --------------------------------------------------------------------------------

    @pytest.mark.parametrize("key", INVALID_KEYS)
    @pytest.mark.parametrize("operation", ["put_bytes", "open_writer", "open_reader", "get_bytes",
                                           "stat", "delete"])
    def test_invalid_key_is_a_config_error(self, repo, operation, key):
        args = (key, b"data") if operation == "put_bytes" else (key,)
        with pytest.raises(ConfigError) as info:
            getattr(repo, operation)(*args)
        assert repr(key) in str(info.value)
        assert list(repo.list()) == []
        assert self.leftovers(repo) == []

    def test_check_accepts_a_usable_repository(self, repo):
        repo.check()
        repo.put_bytes("after-check", b"1")
        assert repo.get_bytes("after-check") == b"1"
