# -*- coding: utf-8 -*-
# Copyright: Lifeline contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The common module base: shared option specs and the one error mapper.

Option docs live once in plugins/doc_fragments/; the specs here mirror them.
"""
from __future__ import annotations

import traceback

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.lifeline.dr.plugins.module_utils import components, config
from ansible_collections.lifeline.dr.plugins.module_utils.errors import LifelineError

_S3_OPTIONS = dict(
    bucket=dict(type="str", required=True),
    prefix=dict(type="str", default=""),
    endpoint_url=dict(type="str"),
    region=dict(type="str"),
    access_key=dict(type="str", no_log=True),
    secret_key=dict(type="str", no_log=True),
    session_token=dict(type="str", no_log=True),
    addressing_style=dict(type="str", default="auto", choices=["auto", "path", "virtual"]),
    verify_tls=dict(type="bool", default=True),
    ca_bundle=dict(type="path"),
    storage_class=dict(type="str"),
    server_side_encryption=dict(type="str"),
    part_size_mb=dict(type="int", default=16),
    connect_timeout=dict(type="int", default=10),
    read_timeout=dict(type="int", default=60),
    max_attempts=dict(type="int", default=5),
)


def repository_spec() -> dict:
    return dict(
        repositories=dict(type="list", elements="dict", required=True, options=dict(
            name=dict(type="str"),
            path=dict(type="path"),
            s3=dict(type="dict", options=_S3_OPTIONS),
        )),
        site=dict(type="str", default="default"),
        host=dict(type="str"),
        state_dir=dict(type="path", default="/var/lib/lifeline"),
        signing_key=dict(type="str", no_log=True),
        signing_key_file=dict(type="path"),
        trusted_signers=dict(type="dict", default={}),
        allow_unsigned=dict(type="bool", default=False),
    )


def encryption_spec() -> dict:
    return dict(
        encryption=dict(type="str", default="age", choices=["age", "aes-256-gcm", "none"]),
        recipients=dict(type="list", elements="str", default=[]),
        identity=dict(type="str", no_log=True),
        aes_key=dict(type="str", no_log=True),
        compression=dict(type="str", default="zstd", choices=["zstd", "gzip", "none"]),
        compression_level=dict(type="int"),
        compression_threads=dict(type="int", default=2),
    )


def postgres_spec() -> dict:
    return dict(
        login_host=dict(type="str", default="localhost"),
        port=dict(type="int", default=5432, aliases=["login_port"]),
        login_user=dict(type="str", default="postgres"),
        login_password=dict(type="str", no_log=True),
        maintenance_db=dict(type="str", default="postgres"),
        ssl_mode=dict(type="str", choices=["disable", "allow", "prefer", "require", "verify-ca", "verify-full"]),
        bin_dir=dict(type="path"),
    )


def redis_spec() -> dict:
    return dict(
        login_host=dict(type="str", default="127.0.0.1"),
        port=dict(type="int", default=6379, aliases=["login_port"]),
        login_user=dict(type="str"),
        login_password=dict(type="str", no_log=True),
        connect_timeout=dict(type="int", default=30),
    )


def merge(*specs: dict) -> dict:
    out: dict = {}
    for spec in specs:
        out.update(spec)
    return out


def select_backup(module: AnsibleModule, component: str) -> tuple:
    """(component type, catalog, entry): the backup of ``host`` that ``point`` selects, for a
    restore module; the catalog's warnings (copies it could not read) become task warnings."""
    p = module.params
    ctype = components.get(component)
    catalog = config.catalog(p)
    entry = catalog.select(site=p["site"], host=config.host_name(p), component=ctype.name, point=p["point"])
    for warning in catalog.warnings:
        module.warn(warning)
    return ctype, catalog, entry


def fail(module: AnsibleModule, exc: LifelineError, **result) -> None:
    """The one place an engine error becomes a failed task."""
    module.fail_json(msg=str(exc), error=type(exc).__name__, **result)


def run(module: AnsibleModule, func, **result) -> None:
    """Call ``func()`` -> dict; exit with its result or fail with the engine's message."""
    try:
        result.update(func())
    except LifelineError as exc:
        fail(module, exc, **result)
    except Exception as exc:  # a bug: keep the traceback, never a secret-bearing repr of params
        module.fail_json(msg="unexpected error: %s: %s" % (type(exc).__name__, exc),
                         exception=traceback.format_exc(), **result)
    module.exit_json(**result)


def backup_spec() -> dict:
    """Options every *_backup module shares (doc fragment lifeline.dr.repository.backup)."""
    return dict(lock_timeout=dict(type="int", default=0), require_all_repositories=dict(type="bool", default=True),
                labels=dict(type="list", elements="str", default=[]),
                min_interval=dict(type="str"))


#: a *_backup module's result before (or without) an outcome: run(module, func, **BACKUP_FAILED)
BACKUP_FAILED = dict(changed=False, backup_id=None, status="failed", stored_in=[], failed_repositories={},
                     plan=[], message="")


def backup_result(module: AnsibleModule, outcome, *, require_all: bool, meta_key: str | None = None,
                  details=None) -> dict:
    """``outcome`` (backup.Outcome) as a module result, each artifact with its ``meta_key``
    (e.g. ``path``) and ``details(manifest)`` for the component's own keys; fails the task
    (keeping what was stored) when a repository was left out and ``require_all``, else warns."""
    result = outcome.to_dict()
    result["changed"] = outcome.status.value != "skipped"  # a skipped run wrote nothing
    if outcome.manifest:
        m = outcome.manifest
        result.update(consistent_at=m.consistent_at, artifacts=[
            dict({"name": a.name, "size": a.size, "plain_size": a.plain_size},
                 **({meta_key: a.meta.get(meta_key)} if meta_key else {}))
            for a in m.artifacts])
        if details is not None:
            result.update(details(m))
    if outcome.failed:  # partial, or a repository check mode could not reach
        message = outcome.message or ("check mode: the backup would be stored in %s only; unreachable: %s" % (
            ", ".join(outcome.stored_in), "; ".join("%s: %s" % kv for kv in outcome.failed.items())))
        result["message"] = message
        if require_all:  # fail, but report what was stored: the complete copies are kept
            module.fail_json(msg=message, error="RepositoryError", **result)
        module.warn(message)
    return result
