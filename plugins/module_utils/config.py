# -*- coding: utf-8 -*-
# Copyright: Lifeline contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Turn the shared parameters (module options or the host CLI's config file) into engine objects.

Plain Python, no Ansible: the modules and the host-side CLI build their repositories, codec and
connections here, so both read settings the same way.
"""
from __future__ import annotations

import socket

from ansible_collections.lifeline.dr.plugins.module_utils.catalog import Catalog
from ansible_collections.lifeline.dr.plugins.module_utils.compress import Compression
from ansible_collections.lifeline.dr.plugins.module_utils.crypto import Encryption
from ansible_collections.lifeline.dr.plugins.module_utils.errors import ConfigError
from ansible_collections.lifeline.dr.plugins.module_utils.pipeline import Codec
from ansible_collections.lifeline.dr.plugins.module_utils.postgres import PgConnection
from ansible_collections.lifeline.dr.plugins.module_utils.repository import LocalRepository, Repository
from ansible_collections.lifeline.dr.plugins.module_utils.signing import Signer, TrustStore, MAKE_KEY_HINT

DEFAULT_STATE_DIR = "/var/lib/lifeline"


def open_repository(spec: dict) -> Repository:
    """Build a repository from one entry of ``lifeline_repositories``."""
    name = spec.get("name") or ("s3" if spec.get("s3") else "local")
    if spec.get("path") and spec.get("s3"):
        raise ConfigError("repository %r: give either path or s3, not both" % name)
    if spec.get("path"):
        return LocalRepository(name, spec["path"])
    if spec.get("s3"):
        # Imported here so hosts without boto3 can still use local repositories.
        from ansible_collections.lifeline.dr.plugins.module_utils.s3 import S3Repository  # pylint: disable=import-outside-toplevel
        return S3Repository(name, **spec["s3"])
    raise ConfigError("repository %r: needs either path (a local directory) or s3 (bucket settings)" % name)


def repositories(params: dict) -> list[Repository]:
    specs = params.get("repositories") or []
    if not specs:
        raise ConfigError("no repositories configured (lifeline_repositories is empty)")
    repos, names = [], set()
    for index, spec in enumerate(specs):
        spec = {k: v for k, v in spec.items() if v is not None}
        if isinstance(spec.get("s3"), dict):
            spec["s3"] = {k: v for k, v in spec["s3"].items() if v is not None}
        spec.setdefault("name", "repo%d" % index)
        if spec["name"] in names:
            raise ConfigError("two repositories are named %r; names must be unique" % spec["name"])
        names.add(spec["name"])
        repos.append(open_repository(spec))
    return repos


def codec(params: dict) -> Codec:
    identity = params.get("identity") or ""
    for key, enum_type in (("compression", Compression), ("encryption", Encryption)):
        value = params.get(key)
        if value and value not in {e.value for e in enum_type}:
            raise ConfigError("%s must be one of %s, got %r" % (key, ", ".join(e.value for e in enum_type), value))
    return Codec(
        compression=Compression(params.get("compression") or "zstd"),
        level=params.get("compression_level"),
        threads=int(params.get("compression_threads") if params.get("compression_threads") is not None else 2),
        encryption=Encryption(params.get("encryption") or "age"),
        recipients=list(params.get("recipients") or []),
        identities=[line.strip() for line in identity.splitlines()
                    if line.strip() and not line.strip().startswith("#")],
        aes_key=params.get("aes_key") or None,
    )


def read_secret_file(path: str, what: str) -> str:
    """A secret's text from a file; ConfigError naming the file and the cause (never the content)."""
    try:
        with open(path, encoding="utf-8") as fh:
            return fh.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError("cannot read the %s file %s: %s"
                          % (what, path, getattr(exc, "strerror", None) or type(exc).__name__)) from None


def signer(params: dict) -> Signer:
    """The host's manifest signing key: ``signing_key`` (PEM) or ``signing_key_file``."""
    pem = params.get("signing_key")
    if not pem and params.get("signing_key_file"):
        pem = read_secret_file(params["signing_key_file"], "signing key")
    if not pem:
        raise ConfigError("no manifest signing key: set lifeline_signing_key (module option "
                          "signing_key) to this host's Ed25519 private key; " + MAKE_KEY_HINT)
    return Signer(pem)


def trust(params: dict) -> TrustStore:
    """Who may sign for which host (``trusted_signers``), and ``allow_unsigned``."""
    return TrustStore(params.get("trusted_signers") or {}, allow_unsigned=bool(params.get("allow_unsigned")))


def catalog(params: dict) -> Catalog:
    """The catalog over the configured repositories, trusting ``trusted_signers``."""
    return Catalog(repositories(params), trust=trust(params))


def pg_connection(params: dict) -> PgConnection:
    return PgConnection(
        host=params.get("login_host") or "localhost",
        port=int(params.get("port") or 5432),
        user=params.get("login_user") or "postgres",
        password=params.get("login_password") or None,
        maintenance_db=params.get("maintenance_db") or "postgres",
        sslmode=params.get("ssl_mode") or None,
        bin_dir=params.get("bin_dir") or None,
    )


def host_name(params: dict) -> str:
    return params.get("host") or socket.gethostname().split(".")[0]


def min_interval(params: dict):
    """``min_interval`` as a timedelta, or None when unset: a backup then always runs."""
    from ansible_collections.lifeline.dr.plugins.module_utils.recent import parse_interval  # pylint: disable=import-outside-toplevel
    value = params.get("min_interval")
    return None if value in (None, "") else parse_interval(value)


def state_dir(params: dict) -> str:
    return params.get("state_dir") or DEFAULT_STATE_DIR
