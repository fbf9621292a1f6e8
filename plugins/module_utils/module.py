# -*- coding: utf-8 -*-
# Copyright: Lifeline contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The common module base: shared option specs and the one error mapper.

Option docs live once in plugins/doc_fragments/; the specs here mirror them.
"""
from __future__ import annotations

import traceback

from ansible.module_utils.basic import AnsibleModule

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


# ---- pitr (issue 8): options of postgres_pitr ----
def pitr_spec() -> dict:
    return dict(
        action=dict(type="str", required=True, choices=["configure", "backup", "info", "restore"]),
        cipher_pass=dict(type="str", required=True, no_log=True),
        config_file=dict(type="path", default="/etc/pgbackrest/lifeline.conf"),
        stanza=dict(type="str", default="lifeline"),
        data_dir=dict(type="path"),
        socket_dir=dict(type="path"),
        archive_timeout=dict(type="int", default=60),
        process_max=dict(type="int", default=2),
        spool_path=dict(type="path", default="/var/spool/pgbackrest"),
        archive_push_queue_max=dict(type="str", default="4GiB"),
        log_path=dict(type="path", default="/var/log/pgbackrest"),
        lock_path=dict(type="path", default="/tmp/pgbackrest"),
        retention_full=dict(type="int", default=2),
        backup_type=dict(type="str", default="full", choices=["full", "diff", "incr"]),
        source_host=dict(type="str"),
        target=dict(type="str", default="latest"),
        target_type=dict(type="str", default="auto",
                         choices=["auto", "latest", "immediate", "time", "xid", "name", "backup"]),
        replace=dict(type="bool", default=False),
        keep_previous=dict(type="bool", default=False),
        service=dict(type="str", default=""),
        recovery_timeout=dict(type="int", default=3600),
    )
# ---- end pitr ----


def merge(*specs: dict) -> dict:
    out: dict = {}
    for spec in specs:
        out.update(spec)
    return out


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
