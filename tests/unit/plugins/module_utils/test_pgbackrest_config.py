# -*- coding: utf-8 -*-
# Copyright: Lifeline contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""pgbackrest.conf rendering: repositories per site/host, encryption, async archiving, and no way
to inject options through a value."""
from __future__ import annotations

import os
import stat

import pytest

from ansible_collections.lifeline.dr.plugins.module_utils.errors import ConfigError
from ansible_collections.lifeline.dr.plugins.module_utils.pgbackrest_config import PitrSettings, make_dirs, render, write_private

PASS = "p" * 24


def settings(repos, **kw) -> PitrSettings:
    return PitrSettings(repositories=repos, site="prod", host="db1", data_dir="/var/lib/postgresql/15/main",
                        cipher_pass=PASS, **kw)


def test_path_and_s3_repositories_each_get_the_site_and_host_prefix_and_encryption():
    text = render(settings([{"name": "local", "path": "/srv/backup"},
                            {"name": "s3", "s3": {"bucket": "acme-backups", "prefix": "lifeline/",
                                                  "endpoint_url": "https://127.0.0.1:9443", "access_key": "AK",
                                                  "secret_key": "SK", "verify_tls": False}}]))
    lines = text.splitlines()
    assert "repo1-path=/srv/backup/pitr/prod/db1" in lines
    assert "repo2-path=/lifeline/pitr/prod/db1" in lines
    assert {"repo2-type=s3", "repo2-s3-bucket=acme-backups", "repo2-s3-endpoint=127.0.0.1",
            "repo2-storage-port=9443", "repo2-storage-verify-tls=n", "repo2-s3-uri-style=path"} <= set(lines)
    for key in ("repo1", "repo2"):
        assert "%s-cipher-type=aes-256-cbc" % key in lines and "%s-cipher-pass=%s" % (key, PASS) in lines
    assert {"compress-type=zst", "archive-async=y", "archive-push-queue-max=4GiB", "process-max=2",
            "[lifeline]", "pg1-path=/var/lib/postgresql/15/main"} <= set(lines)


def test_rendering_is_deterministic_so_an_unchanged_setup_rewrites_nothing(tmp_path):
    s = settings([{"path": "/srv/backup"}])
    path = str(tmp_path / "lifeline.conf")
    assert write_private(path, render(s), owner=None) is True
    assert write_private(path, render(s), owner=None) is False
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


def test_s3_over_plain_http_is_refused_because_pgbackrest_needs_tls():
    with pytest.raises(ConfigError, match="only over TLS"):
        render(settings([{"s3": {"bucket": "acme-backups", "endpoint_url": "http://127.0.0.1:9000",
                                 "access_key": "a", "secret_key": "b"}}]))


@pytest.mark.parametrize("field", ["bucket", "access_key"])
def test_a_line_break_in_a_value_cannot_inject_an_option(field):
    s3 = {"bucket": "acme-backups", "endpoint_url": "https://s3.example.com", "access_key": "a", "secret_key": "b"}
    s3[field] = s3[field] + "\nrepo1-path=/"
    with pytest.raises(ConfigError, match="one line"):
        render(settings([{"s3": s3}]))


@pytest.mark.parametrize("field,value", [
    ("prefix", "lifeline\nrepo1-host=attacker.example"),
    ("endpoint_url", "https://s3.example.com\n"),
    ("endpoint_url", "https://s3.example.com\nrepo1-host-cmd=/bin/sh"),
    ("secret_key", "b\n"),  # a trailing line break alone used to pass the one-line check
])
def test_no_s3_field_can_add_a_line_to_the_config(field, value):
    s3 = {"bucket": "acme-backups", "endpoint_url": "https://s3.example.com", "access_key": "a", "secret_key": "b"}
    s3[field] = value
    with pytest.raises(ConfigError, match="one line|endpoint_url"):
        render(settings([{"s3": s3}]))


def test_a_short_or_missing_passphrase_is_refused_with_the_variable_to_set():
    with pytest.raises(ConfigError, match="lifeline_postgresql_pitr_cipher_pass"):
        PitrSettings(repositories=[{"path": "/srv"}], site="prod", host="db1", data_dir="/d", cipher_pass="short")


@pytest.mark.parametrize("host", ["../etc", "a/b", "", "x" * 70])
def test_a_host_name_that_would_leave_the_prefix_is_refused(host):
    with pytest.raises(ConfigError, match="not usable"):
        PitrSettings(repositories=[{"path": "/srv"}], site="prod", host=host, data_dir="/d", cipher_pass=PASS)


def _dirs_under(tmp_path) -> PitrSettings:
    return settings([{"path": str(tmp_path / "repo")}], spool_path=str(tmp_path / "spool"),
                    log_path=str(tmp_path / "log"), lock_path=str(tmp_path / "lock"))


def test_a_lock_directory_someone_else_made_is_refused_not_taken_over(tmp_path):
    """pgBackRest (as postgres) opens lock files in it: in a shared parent such as /tmp a user
    could pre-create it 0777 with planted symlinks."""
    (tmp_path / "lock").mkdir(mode=0o777)
    os.chown(tmp_path / "lock", 65534, 65534)
    with pytest.raises(ConfigError, match="belongs to uid 65534"):
        make_dirs(_dirs_under(tmp_path), owner=None)


def test_a_symlinked_spool_directory_is_refused(tmp_path):
    (tmp_path / "elsewhere").mkdir()
    os.symlink(tmp_path / "elsewhere", tmp_path / "spool")
    with pytest.raises(ConfigError, match="not a symlink"):
        make_dirs(_dirs_under(tmp_path), owner=None)


def test_directories_end_up_0750(tmp_path):
    (tmp_path / "log").mkdir(mode=0o777)
    os.chmod(tmp_path / "log", 0o777)
    make_dirs(_dirs_under(tmp_path), owner=None)
    assert stat.S_IMODE(os.stat(tmp_path / "log").st_mode) == 0o750
