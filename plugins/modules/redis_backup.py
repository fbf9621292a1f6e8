#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: Lifeline contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
module: redis_backup
short_description: Back up a Redis server into Lifeline repositories (RDB snapshot or portable key stream)
version_added: 0.2.0
description:
  - With O(format=rdb) (the default) takes a consistent point-in-time RDB snapshot. On a server
    whose files are on this host it checks that the fork has memory headroom, runs C(BGSAVE),
    waits until C(rdb_bgsave_in_progress:0) with C(rdb_last_bgsave_status:ok) and a save counter
    C(rdb_saves) (or, before Redis 7, LASTSAVE) that moved, and streams the C(dump.rdb) it wrote. Otherwise (or with O(method=replication)) it
    fetches the RDB over the replication protocol as C(redis-cli --rdb) does. The live
    C(appendonlydir) is never read.
  - The RDB is checked while it streams through compression and encryption into every
    repository; one that fails is never stored. From the file, its CRC-64 trailer is checked in
    process and the key counts are the server's at the fork (C(BGSAVE) and C(INFO keyspace) with
    nothing run between); over replication, or without crcmod's C extension, or for an RDB saved
    without a checksum, C(redis-check-rdb) parses every record and counts the keys.
  - With O(format=portable) every key of every database is read by C(SCAN) + C(PTTL) + C(DUMP),
    pipelined, into a framed stream (docs/formats.md) that C(redis_restore) loads with C(RESTORE)
    into the same or a newer Redis. Keys already expired are skipped. Each key is as it was when
    read; the stream is not one instant of the whole server.
  - The manifest records the server version, the keys per database and the artifact's own key
    counts; C(redis_restore) and C(backup_verify) compare against them. It is written last, so a
    failed run leaves no manifest.
  - A failed C(BGSAVE) is an error that names MISCONF (the server may refuse writes until a save
    succeeds), never a silent success.
author:
  - Lifeline contributors (@lifeline-dr)
requirements:
  - python >= 3.9
  - C(redis-check-rdb) (Debian redis-tools) for O(format=rdb)
  - crcmod with its C extension (Debian python3-crcmod), to check an RDB fast (optional)
  - cryptography (Debian python3-cryptography), to encrypt and to sign the manifest
  - zstandard (Debian python3-zstandard), for O(compression=zstd)
  - boto3 (Debian python3-boto3), for S3 repositories
notes:
  - The module speaks the Redis protocol itself; it needs no redis-py and no C(redis-cli).
  - O(method=replication) needs the C(SYNC) permission (an ACL user needs C(+sync)).
  - Every manifest is signed with O(signing_key) (or O(signing_key_file)); restores accept it only
    where the key is trusted for O(host).
extends_documentation_fragment:
  - lifeline.dr.repository
  - lifeline.dr.repository.encryption
  - lifeline.dr.repository.redis
  - lifeline.dr.repository.backup
options:
  format:
    description:
      - C(rdb) a point-in-time snapshot, restorable into the same Redis version or newer, by
        loading it or by copying its keys. C(portable) every key's C(DUMP) with its TTL.
    type: str
    default: rdb
    choices: [rdb, portable]
  method:
    description:
      - How an RDB is taken. C(auto) reads the file when the server is on this host and its data
        directory is readable, else uses C(replication). C(file) insists on the file.
    type: str
    default: auto
    choices: [auto, file, replication]
  timeout:
    description: Seconds a C(BGSAVE) may take.
    type: int
    default: 3600
attributes:
  check_mode:
    description: Connects to the server and to every repository and reports what would be backed up; writes nothing, runs no BGSAVE.
    support: full
  diff_mode:
    description: Not applicable.
    support: none
seealso:
  - module: lifeline.dr.redis_restore
  - module: lifeline.dr.backup_info
  - module: lifeline.dr.backup_verify
"""

EXAMPLES = r"""
- name: Snapshot the local Redis into the repositories
  lifeline.dr.redis_backup:
    site: prod
    host: "{{ inventory_hostname }}"
    repositories: "{{ lifeline_repositories }}"
    recipients: "{{ lifeline_recipients }}"
    signing_key: "{{ lifeline_signing_key }}"
    login_password: "{{ lifeline_redis_password }}"
  become: true

- name: Portable export of a remote Redis as an ACL user
  lifeline.dr.redis_backup:
    repositories: "{{ lifeline_repositories }}"
    recipients: "{{ lifeline_recipients }}"
    signing_key: "{{ lifeline_signing_key }}"
    login_host: cache.internal
    login_user: backup
    login_password: "{{ vault_redis_backup_password }}"
    format: portable
"""

RETURN = r"""
backup_id:
  description: Id of the new backup. Null in check mode.
  returned: always
  type: str
  sample: 20261123T020000Z-4f2a
status:
  description: C(ok), C(partial) (stored in some repositories only), C(failed), C(planned) (check mode) or C(skipped) (O(min_interval)).
  returned: always
  type: str
  sample: ok
message:
  description: What went wrong, or which repositories were left out; empty when all went well.
  returned: always
  type: str
  sample: ""
stored_in:
  description: Repositories that hold the complete backup (or would, in check mode).
  returned: always
  type: list
  elements: str
  sample: [local, s3]
failed_repositories:
  description: Repositories that could not store it, mapped to the cause.
  returned: always
  type: dict
  sample: {}
plan:
  description: What a run backs up (check mode).
  returned: always
  type: list
  elements: str
  sample: ["rdb snapshot of Redis at 127.0.0.1:6379 (1200 keys in 2 databases)"]
consistent_at:
  description: The moment the data represents (UTC); for C(rdb) the LASTSAVE of the snapshot.
  returned: success and not check mode
  type: str
  sample: "2026-11-23T02:00:04Z"
format:
  description: C(rdb) or C(portable).
  returned: success and not check mode
  type: str
  sample: rdb
redis_version:
  description: The server's version.
  returned: success and not check mode
  type: str
  sample: 7.0.15
keys:
  description: Keys in the artifact (for C(rdb) the server's count at the fork, or as counted by redis-check-rdb).
  returned: success and not check mode
  type: int
  sample: 1200
keyspace:
  description: Keys and keys with a TTL per database, as the server reported them at the start.
  returned: success and not check mode
  type: dict
  sample: {"0": {keys: 1000, expires: 10}, "3": {keys: 200, expires: 0}}
artifacts:
  description: Stored artifacts with their stored and source sizes.
  returned: success and not check mode
  type: list
  elements: dict
  sample: [{name: dump.rdb.zst.age, size: 41234, plain_size: 345678}]
error:
  description: The class of the engine error (for example C(SourceError)); C(msg) names the cause and the fix.
  returned: failure
  type: str
  sample: SourceError
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.lifeline.dr.plugins.module_utils import components, config
from ansible_collections.lifeline.dr.plugins.module_utils.backup import run_backup
from ansible_collections.lifeline.dr.plugins.module_utils.module import (
    BACKUP_FAILED,
    backup_result,
    backup_spec,
    encryption_spec,
    merge,
    redis_spec,
    repository_spec,
    run,
)


def _details(manifest) -> dict:
    art = manifest.artifacts[0] if manifest.artifacts else None
    return dict(format=manifest.facts.get("format"), redis_version=manifest.facts.get("redis_version"),
                keyspace=manifest.facts.get("keyspace", {}), keys=art.meta.get("keys") if art else 0)


def backup(module: AnsibleModule) -> dict:
    p = module.params
    component = components.get("redis").backup(p)
    outcome = run_backup(component, config.repositories(p), config.codec(p), site=p["site"],
                         host=config.host_name(p), state_dir=config.state_dir(p), signer=config.signer(p),
                         lock_wait=p["lock_timeout"], check_mode=module.check_mode, labels=p["labels"],
                         min_interval=config.min_interval(p))
    return backup_result(module, outcome, require_all=p["require_all_repositories"], details=_details)


def main() -> None:
    module = AnsibleModule(
        argument_spec=merge(repository_spec(), encryption_spec(), backup_spec(), redis_spec(), dict(
            format=dict(type="str", default="rdb", choices=["rdb", "portable"]),
            method=dict(type="str", default="auto", choices=["auto", "file", "replication"]),
            timeout=dict(type="int", default=3600),
        )),
        supports_check_mode=True,
    )
    run(module, lambda: backup(module), **BACKUP_FAILED)


if __name__ == "__main__":
    main()
