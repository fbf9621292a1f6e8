# -*- coding: utf-8 -*-
# Copyright: Lifeline contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The component registry: the one place a component's name meets its code.

The CLI, the modules, verify and the playbooks know components only through ``get(name)``; adding
Redis or files is adding their files and one line to ``_FACTORIES`` (restic's
location/registry.go, barman's get_cloud_interface). Each component's code is imported only
when asked for, so a host without psycopg2 can still back up files.
"""
from __future__ import annotations

import dataclasses
from typing import Callable

from ansible_collections.lifeline.dr.plugins.module_utils import config
from ansible_collections.lifeline.dr.plugins.module_utils.catalog import Entry
from ansible_collections.lifeline.dr.plugins.module_utils.component import Component
from ansible_collections.lifeline.dr.plugins.module_utils.errors import ConfigError
from ansible_collections.lifeline.dr.plugins.module_utils.manifest import Artifact, Manifest
from ansible_collections.lifeline.dr.plugins.module_utils.pipeline import Codec
from ansible_collections.lifeline.dr.plugins.module_utils.verify import Check

CheckFor = Callable[[Artifact], Check]


@dataclasses.dataclass(frozen=True)
class ComponentType:
    """What the front doors need of a component; ``params`` are the modules' option names."""

    name: str
    #: params -> the backup side (a Component yielding Sources)
    backup: Callable[[dict], Component]
    #: (params, manifest) -> a function giving each artifact's content check for verify
    checks: Callable[[dict, Manifest], CheckFor]
    #: (entry, codec, params) -> a restore job with plan() and run()
    restore: Callable[[Entry, Codec, dict], object]


def _postgres() -> ComponentType:
    # pylint: disable=import-outside-toplevel
    from ansible_collections.lifeline.dr.plugins.module_utils.postgres_checks import check_for
    from ansible_collections.lifeline.dr.plugins.module_utils.postgres_dump import PostgresComponent, Scope
    from ansible_collections.lifeline.dr.plugins.module_utils.postgres_restore import (
        PostgresRestore,
        RestoreOptions,
    )

    def backup(p: dict) -> Component:
        return PostgresComponent(config.pg_connection(p), databases=p.get("databases") or None,
                                 scope=Scope(p.get("scope") or "full"),
                                 include_globals=p.get("globals", True) is not False)

    def restore(entry: Entry, codec: Codec, p: dict):
        return PostgresRestore(entry, codec, config.pg_connection(p), RestoreOptions(
            databases=p.get("databases") or None, include_globals=p.get("globals", True) is not False,
            replace=bool(p.get("replace")), jobs=int(p.get("jobs") or 2),
            staging_dir=p.get("staging_dir") or config.state_dir(p) + "/staging",
            keep_replaced=bool(p.get("keep_replaced")), state_dir=config.state_dir(p)))

    return ComponentType("postgres", backup, lambda p, m: check_for(config.pg_connection(p), m), restore)


def _secrets() -> ComponentType:
    # pylint: disable=import-outside-toplevel
    from ansible_collections.lifeline.dr.plugins.module_utils.secrets_backup import SecretsComponent
    from ansible_collections.lifeline.dr.plugins.module_utils.secrets_format import check_for
    from ansible_collections.lifeline.dr.plugins.module_utils.secrets_restore import (
        SecretsRestore,
        SecretsRestoreOptions,
    )

    def backup(p: dict) -> Component:
        # module option "paths"; "secrets_paths" in the host CLI's config, beside other components' keys
        return SecretsComponent(p.get("secrets_paths") or p.get("paths") or [], encryption=p.get("encryption") or "age")

    def restore(entry: Entry, codec: Codec, p: dict):
        return SecretsRestore(entry, codec, SecretsRestoreOptions(
            root=p.get("root") or "/", replace=bool(p.get("replace")),
            staging_dir=p.get("staging_dir") or config.state_dir(p) + "/staging", state_dir=config.state_dir(p),
            allowed_paths=p.get("allowed_paths")))

    return ComponentType("secrets", backup, lambda p, m: check_for(m), restore)


def _files() -> ComponentType:
    # pylint: disable=import-outside-toplevel
    from ansible_collections.lifeline.dr.plugins.module_utils.files_backup import FilesComponent, Level
    from ansible_collections.lifeline.dr.plugins.module_utils.files_checks import check_for
    from ansible_collections.lifeline.dr.plugins.module_utils.files_restore import FilesRestore, FilesRestoreOptions

    from ansible_collections.lifeline.dr.plugins.module_utils.files_rsync import RsyncComponent

    def backup(p: dict) -> Component:
        common = dict(exclude=p.get("exclude") or [], site=p.get("site") or "default", host=config.host_name(p),
                      state_dir=config.state_dir(p))
        if (p.get("method") or "tar") == "rsync":
            return RsyncComponent(p.get("paths") or [], target=p.get("rsync_target") or "",
                                  ssh_config=p.get("rsync_ssh_config") or None, **common)
        return FilesComponent(p.get("paths") or [], level=Level(p.get("level") or "auto"), **common)

    def restore(entry: Entry, codec: Codec, p: dict):
        chain = config.catalog(p).chain(entry)
        return FilesRestore(entry, codec, chain, FilesRestoreOptions(
            paths=p.get("paths") or None, root=p.get("root") or "/", replace=bool(p.get("replace")),
            staging_dir=p.get("staging_dir") or config.state_dir(p) + "/staging", state_dir=config.state_dir(p),
            rsync_target=p.get("rsync_target") or None, allowed_paths=p.get("allowed_paths"),
            rsync_ssh_config=p.get("rsync_ssh_config") or None))

    return ComponentType("files", backup, lambda _p, _m: check_for, restore)


def _redis() -> ComponentType:
    # pylint: disable=import-outside-toplevel
    from ansible_collections.lifeline.dr.plugins.module_utils.redis_checks import check_for as redis_check_for
    from ansible_collections.lifeline.dr.plugins.module_utils.redis_component import Format, Method, RedisComponent
    from ansible_collections.lifeline.dr.plugins.module_utils.redis_conn import RedisConnection
    from ansible_collections.lifeline.dr.plugins.module_utils.redis_restore import RedisRestore, RedisRestoreOptions
    from ansible_collections.lifeline.dr.plugins.module_utils.redis_server import SystemdService

    def backup(p: dict) -> Component:
        return RedisComponent(RedisConnection.from_params(p), fmt=Format(p.get("format") or "rdb"),
                              method=Method(p.get("method") or "auto"), timeout=float(p.get("timeout") or 3600))

    def restore(entry: Entry, codec: Codec, p: dict):
        service = SystemdService(p.get("service") or "redis-server") if p.get("managed") else None
        return RedisRestore(entry, codec, RedisConnection.from_params(p), RedisRestoreOptions(
            replace=bool(p.get("replace")), service=service,
            staging_dir=p.get("staging_dir") or config.state_dir(p) + "/staging", state_dir=config.state_dir(p),
            timeout=float(p.get("timeout") or 3600)))

    return ComponentType("redis", backup, lambda p, m: redis_check_for(m), restore)


_FACTORIES: dict[str, Callable[[], ComponentType]] = {
    "postgres": _postgres,
    "secrets": _secrets,
    "files": _files,
    "redis": _redis,
}


def names() -> list[str]:
    return sorted(_FACTORIES)


def get(name: str) -> ComponentType:
    """The registered component ``name``; ConfigError listing the known ones otherwise."""
    factory = _FACTORIES.get(name)
    if factory is None:
        raise ConfigError("unknown component %r; Lifeline knows: %s" % (name, ", ".join(names())))
    return factory()
