# -*- coding: utf-8 -*-
# Copyright: Lifeline contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""WAL-G's JSON config: the S3 prefix per site/host, path-style addressing, the key checks."""
from __future__ import annotations

import json

import pytest

from ansible_collections.lifeline.dr.plugins.module_utils.errors import ConfigError
from ansible_collections.lifeline.dr.plugins.module_utils.walg_config import WalgSettings, archive_command, render

KEY = "AB" * 32


def test_an_s3_repository_becomes_a_prefix_under_the_site_and_host():
    conf = json.loads(render(WalgSettings(
        repositories=[{"name": "s3", "s3": {"bucket": "acme-backups", "prefix": "/lifeline/", "region": "eu-west-1",
                                            "endpoint_url": "https://minio.internal:9000", "access_key": "AK",
                                            "secret_key": "SK", "addressing_style": "path"}}],
        site="prod", host="db1", data_dir="/var/lib/postgresql/15/main", libsodium_key=KEY)))

    assert conf["WALG_S3_PREFIX"] == "s3://acme-backups/lifeline/pitr/prod/db1"
    assert conf["AWS_ENDPOINT"] == "https://minio.internal:9000" and conf["AWS_S3_FORCE_PATH_STYLE"] == "true"
    assert conf["WALG_LIBSODIUM_KEY"] == KEY.lower() and conf["WALG_COMPRESSION_METHOD"] == "zstd"


def test_the_archive_command_names_the_config_file_and_no_secret():
    command = archive_command("/etc/wal-g/lifeline.json", "/usr/local/bin/wal-g")
    assert command == "/usr/local/bin/wal-g --config /etc/wal-g/lifeline.json wal-push %p"


@pytest.mark.parametrize("key", ["", "ab" * 31, "zz" * 32])
def test_a_key_that_is_not_32_bytes_of_hex_is_refused(key):
    with pytest.raises(ConfigError, match="64 hex digits"):
        WalgSettings(repositories=[{"path": "/srv"}], site="prod", host="db1", data_dir="/d", libsodium_key=key)
