# -*- coding: utf-8 -*-
# Copyright: Lifeline contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""WAL-G's configuration as Lifeline writes it (engine only in this increment: no module option
selects it yet).

WAL-G reads one JSON file (``wal-g --config <file>``), 0600 and owned by postgres, never argv or
the server's environment. It archives to ONE storage: the single ``lifeline_repositories`` entry
(a path -> ``WALG_FILE_PREFIX``, S3 -> ``WALG_S3_PREFIX``), under ``pitr/<site>/<host>`` like
pgBackRest. Compression is zstd; encryption libsodium with a 32-byte key given as 64 hex digits,
a symmetric secret on the host like pgBackRest's passphrase.
"""
from __future__ import annotations

import dataclasses
import json
import os
import re
import shlex

from ansible_collections.lifeline.dr.plugins.module_utils.errors import ConfigError
from ansible_collections.lifeline.dr.plugins.module_utils.pgbackrest_config import check_name

_HEX64 = re.compile(r"^[0-9a-fA-F]{64}$")


@dataclasses.dataclass
class WalgSettings:
    repositories: list
    site: str
    host: str
    data_dir: str
    libsodium_key: str = dataclasses.field(repr=False, default="")
    socket_dir: str | None = None
    port: int = 5432
    upload_concurrency: int = 2
    delta_max_steps: int = 6

    def __post_init__(self) -> None:
        check_name(self.site, "site")
        check_name(self.host, "host")
        if len(self.repositories or []) != 1:
            raise ConfigError("WAL-G archives to exactly one repository, lifeline_repositories has %d: "
                              "keep one (or use lifeline_postgresql_pitr: pgbackrest, which writes to several)"
                              % len(self.repositories or []))
        if not _HEX64.match(self.libsodium_key or ""):
            raise ConfigError("the WAL-G encryption key must be 64 hex digits (32 bytes): set it from "
                              "`openssl rand -hex 32`, in Vault")
        if not os.path.isabs(self.data_dir or ""):
            raise ConfigError("lifeline_postgresql_data_dir must be an absolute path, got %r" % (self.data_dir,))


def render(settings: WalgSettings) -> str:
    """The JSON config (sorted keys: an unchanged setup rewrites nothing)."""
    spec = {k: v for k, v in settings.repositories[0].items() if v is not None}
    tail = "pitr/%s/%s" % (settings.site, settings.host)
    conf = {"PGDATA": settings.data_dir, "PGPORT": str(int(settings.port)), "PGUSER": "postgres",
            "WALG_COMPRESSION_METHOD": "zstd", "WALG_LIBSODIUM_KEY": settings.libsodium_key.lower(),
            "WALG_LIBSODIUM_KEY_TRANSFORM": "hex", "WALG_UPLOAD_CONCURRENCY": str(int(settings.upload_concurrency)),
            "WALG_DELTA_MAX_STEPS": str(int(settings.delta_max_steps))}
    if settings.socket_dir:
        conf["PGHOST"] = settings.socket_dir
    if spec.get("path"):
        if not os.path.isabs(spec["path"]):
            raise ConfigError("repository path must be absolute, got %r" % spec["path"])
        conf["WALG_FILE_PREFIX"] = os.path.join(spec["path"], tail)
    elif spec.get("s3"):
        s3 = {k: v for k, v in spec["s3"].items() if v is not None}
        prefix = "/".join(p for p in ((s3.get("prefix") or "").strip("/"), tail) if p)
        conf.update(WALG_S3_PREFIX="s3://%s/%s" % (s3["bucket"], prefix),
                    AWS_REGION=s3.get("region") or "us-east-1",
                    AWS_ACCESS_KEY_ID=s3.get("access_key") or "", AWS_SECRET_ACCESS_KEY=s3.get("secret_key") or "",
                    AWS_S3_FORCE_PATH_STYLE="false" if s3.get("addressing_style") == "virtual" else "true")
        if s3.get("endpoint_url"):
            conf["AWS_ENDPOINT"] = s3["endpoint_url"]
        if s3.get("session_token"):
            conf["AWS_SESSION_TOKEN"] = s3["session_token"]
        if s3.get("ca_bundle"):
            conf["WALG_S3_CA_CERT_FILE"] = s3["ca_bundle"]
    else:
        raise ConfigError("the repository needs either path or s3")
    return json.dumps(conf, indent=2, sort_keys=True) + "\n"


def archive_command(config: str, exe: str = "wal-g") -> str:
    return "%s --config %s wal-push %%p" % (shlex.quote(exe), shlex.quote(config))


def restore_command(config: str, exe: str = "wal-g") -> str:
    return '%s --config %s wal-fetch "%%f" "%%p"' % (shlex.quote(exe), shlex.quote(config))
