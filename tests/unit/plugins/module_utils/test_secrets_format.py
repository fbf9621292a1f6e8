# -*- coding: utf-8 -*-
# Copyright: Lifeline contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What a secrets backup's manifest and digests may hold: the checks both sides run."""
from __future__ import annotations

import pytest

from ansible_collections.lifeline.dr.plugins.module_utils.errors import ConfigError, IntegrityError
from ansible_collections.lifeline.dr.plugins.module_utils.manifest import Artifact, Manifest
from ansible_collections.lifeline.dr.plugins.module_utils.secrets_format import (
    SecretMeta,
    check_path,
    digests_json,
    parse_digests,
    require_encryption,
)

GOOD = {"path": "/etc/app/env", "mode": "0600", "uid": 1, "gid": 1, "owner": "daemon", "group": "daemon"}


def _manifest(meta=None, plain_size=5) -> Manifest:
    art = Artifact(name="secret-0001.zst.age", kind="secret", size=100, sha256="a" * 64,
                   plain_size=plain_size, meta=dict(meta or GOOD))
    return Manifest(backup_id="20261123T020000Z-abcd", site="s", host="h", component="secrets", kind="full",
                    started="2026-11-23T02:00:00Z", finished="2026-11-23T02:00:01Z",
                    consistent_at="2026-11-23T02:00:01Z", compression="zstd", encryption="age",
                    key_id=[], artifacts=[art])


@pytest.mark.parametrize("path", ["/etc/app/env", "/x", "/etc/ssl/private/a.key"])
def test_check_path_accepts_absolute_normal_paths(path):
    assert check_path(path) == path


@pytest.mark.parametrize("path", ["", "etc/env", "../etc/env", "/etc/../env", "/etc/./env", "//etc/env",
                                  "/etc/env/", "/", "/etc/e\0nv", None, 5])
def test_check_path_refuses_relative_unnormal_nul_and_non_strings(path):
    with pytest.raises(ConfigError):
        check_path(path)


def test_require_encryption_refuses_none_and_names_the_fix():
    with pytest.raises(ConfigError, match="age .* or aes-256-gcm"):
        require_encryption("none")
    assert require_encryption("age").value == "age"


def test_secret_meta_round_trips_through_the_artifact_meta():
    meta = SecretMeta.from_artifact(_manifest().artifacts[0], "b")
    assert meta.to_meta() == GOOD and meta.mode == 0o600


@pytest.mark.parametrize("field,value", [("mode", "4755"), ("mode", "2600"), ("mode", "1777"), ("mode", 384),
                                         ("uid", True), ("gid", 2 ** 40), ("owner", "a/b"), ("group", "x y"),
                                         ("path", "rel/path")])
def test_secret_meta_refuses_special_bits_bad_ids_names_and_paths(field, value):
    with pytest.raises(IntegrityError):
        SecretMeta.from_artifact(_manifest(dict(GOOD, **{field: value})).artifacts[0], "b")


def test_parse_digests_maps_each_artifact_to_its_digest_and_size():
    raw = digests_json({"secret-0001": {"sha256": "b" * 64, "size": 5}})
    assert parse_digests(raw, _manifest()) == {"secret-0001.zst.age": ("b" * 64, 5)}


@pytest.mark.parametrize("raw", [
    b"not json", b"[]", b'{"format": "other", "version": 1, "files": {}}',
    digests_json({}),                                                  # the file is missing
    digests_json({"secret-0001": {"sha256": "B" * 64, "size": 5}}),    # not lower-case hex
    digests_json({"secret-0001": {"sha256": "b" * 64, "size": 6}}),    # size disagrees with the manifest
])
def test_parse_digests_refuses_malformed_or_disagreeing_documents(raw):
    with pytest.raises(IntegrityError):
        parse_digests(raw, _manifest())
