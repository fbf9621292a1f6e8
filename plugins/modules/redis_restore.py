#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: Lifeline contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
module: redis_restore
short_description: Restore a Redis backup into a running server or a server Lifeline manages, verified by key counts
version_added: 0.2.0
description:
  - Picks a backup of O(host) (the source) by O(point), stages its artifact in a 0700 directory
    and checks it whole (for an RDB its CRC-64 trailer, or C(redis-check-rdb) where crcmod's C
    extension is missing or the RDB has no checksum; framing, key count and sha256 for a
    portable stream) before the target changes. A corrupt or truncated artifact changes nothing.
  - A target that holds keys is replaced only with O(replace=true); otherwise the task fails and
    nothing is changed. With O(replace=true) the target is emptied (C(FLUSHALL)) once the artifact
    checked, then loaded.
  - Into a running server (the default), a portable stream is loaded with C(RESTORE) (with
    C(REPLACE) only when O(replace)); a target on this host loads an RDB by replication
    from the module itself as a one-shot master on loopback (C(REPLICAOF), then C(REPLICAOF NO
    ONE); its AOF is rewritten after the sync); for a remote target the RDB is loaded into a
    temporary C(redis-server) on a free loopback port inside the staging directory, checked there,
    and its keys copied with C(DUMP)/C(PTTL) -> C(RESTORE). The data
    survives the target's restart with C(appendonly yes).
  - Into a server Lifeline manages (O(managed=true), an RDB backup), AOF is turned off in its
    config, the O(service) is stopped, the RDB placed in the server's C(dir) owned as that
    directory and the old AOF directory set aside, the service started (it loads the RDB), AOF
    turned back on (Redis rewrites it from the loaded data) and the config rewritten. The data
    survives the next restart with C(appendonly yes). The old RDB, AOF directory and config are
    put back on any failure until the new data loaded with the manifest's key counts. Files in the
    data directory are created and renamed only through a descriptor of it (never following a
    symlink), and that directory must be owned by the account the server runs as.
  - A backup holding a database number the target's C(databases) setting lacks is refused before
    the target changes.
  - Keys keep their TTL; a key whose TTL ran out since the backup is not restored. The key counts
    of the restored server are compared with the manifest (RV(checks)).
author:
  - Lifeline contributors (@lifeline-dr)
requirements:
  - python >= 3.9
  - C(redis-check-rdb) (Debian redis-tools) and, for an RDB into a running server, C(redis-server)
  - crcmod with its C extension (Debian python3-crcmod), to check an RDB fast (optional)
  - cryptography (Debian python3-cryptography)
  - zstandard (Debian python3-zstandard), for zstd-compressed backups
  - boto3 (Debian python3-boto3), for S3 repositories
notes:
  - O(host) is the B(source) whose backup is restored, not the machine restored onto.
  - The target must run the source's Redis version or a newer one.
  - A managed restore runs C(CONFIG SET) and C(CONFIG REWRITE); the server needs a writable config file.
extends_documentation_fragment:
  - lifeline.dr.repository
  - lifeline.dr.repository.encryption
  - lifeline.dr.repository.redis
options:
  point:
    description: Which backup. C(latest), a backup id, or an ISO-8601 time (the newest backup consistent at or before it).
    type: str
    default: latest
  replace:
    description: Replace the keys of a target that holds any (C(lifeline_restore_replace)).
    type: bool
    default: false
  managed:
    description:
      - The target is a server Lifeline manages on this host, stopped and started through O(service)
        to load the RDB directly (the fastest way for a large dataset). Portable backups are always
        restored with C(RESTORE).
    type: bool
    default: false
  service:
    description: systemd unit of the managed server.
    type: str
    default: redis-server
  timeout:
    description: Seconds loading the data (and the AOF rewrite) may take.
    type: int
    default: 3600
  staging_dir:
    description: Directory in which the restore creates its own 0700 staging directory. Defaults to C(staging) under O(state_dir).
    type: path
attributes:
  check_mode:
    description: Resolves the backup, connects to the target and reports the plan (RV(plan)); changes nothing.
    support: full
  diff_mode:
    description: Not applicable.
    support: none
seealso:
  - module: lifeline.dr.redis_backup
  - module: lifeline.dr.backup_info
"""

EXAMPLES = r"""
- name: Restore cache1's newest Redis backup into the local server, replacing what it holds
  lifeline.dr.redis_restore:
    host: cache1
    repositories: "{{ lifeline_repositories }}"
    trusted_signers: "{{ lifeline_trusted_signers }}"
    identity: "{{ vault_lifeline_identity }}"
    login_password: "{{ lifeline_redis_password }}"
    replace: true
  become: true

- name: Load the snapshot into the redis-server this host runs under systemd
  lifeline.dr.redis_restore:
    host: cache1
    repositories: "{{ lifeline_repositories }}"
    trusted_signers: "{{ lifeline_trusted_signers }}"
    identity: "{{ vault_lifeline_identity }}"
    login_password: "{{ lifeline_redis_password }}"
    managed: true
    replace: true
  become: true
"""

RETURN = r"""
backup_id:
  description: The backup restored (or that would be, in check mode).
  returned: success
  type: str
  sample: 20261123T020000Z-4f2a
consistent_at:
  description: The moment the restored data represents.
  returned: success
  type: str
  sample: "2026-11-23T02:00:04Z"
plan:
  description: What the restore does (or would do, in check mode).
  returned: success
  type: dict
  contains:
    format:
      description: C(rdb) or C(portable).
      type: str
    mode:
      description: C(running) (keys restored into the running server) or C(managed) (RDB placed, server restarted).
      type: str
    action:
      description: C(create) (the target holds no keys) or C(replace) (it does; only with O(replace=true)).
      type: str
    target_keys:
      description: Keys the target holds now.
      type: int
    backup_keys:
      description: Keys in the backup.
      type: int
  sample: {format: rdb, mode: running, action: create, target_keys: 0, backup_keys: 1200}
verified:
  description: True when the restored key counts match the manifest (a mismatch fails the task).
  returned: success and not check mode
  type: bool
  sample: true
checks:
  description: What was compared with the manifest, in words.
  returned: success and not check mode
  type: list
  elements: str
  sample: ["1200 keys in total, manifest: 1190 to 1200 (keys with a TTL may have expired)"]
keys:
  description: Keys the restored server holds.
  returned: success and not check mode
  type: int
  sample: 1200
replicated:
  description: True when an RDB reached a running server on this host by replication from the temporary server.
  returned: success, RDB into a running server on this host
  type: bool
  sample: true
restored:
  description: Keys written with RESTORE (portable backups, and RDB backups restored into a remote server).
  returned: success, when keys were copied with RESTORE
  type: int
  sample: 1200
expired:
  description: Keys not restored because their TTL ran out since the backup.
  returned: success, when keys were copied with RESTORE
  type: int
  sample: 0
phases:
  description: Seconds per phase (plan, fetch, check, load, replicate, copy, restore, stop, place, start, aof_rewrite).
  returned: success and not check mode
  type: dict
  sample: {fetch: 0.4, check: 0.1, load: 0.3, copy: 1.2}
total_seconds:
  description: Duration of the restore (the RTO of this step).
  returned: success and not check mode
  type: float
  sample: 2.1
restore_point_age_seconds:
  description: Seconds between the moment the restored data represents and now.
  returned: success and not check mode
  type: int
  sample: 3600
served_by:
  description: Repositories the artifact was read from.
  returned: success and not check mode
  type: list
  elements: str
  sample: [local]
error:
  description: The class of the engine error (for example C(RestoreError)); C(msg) names the cause and the fix.
  returned: failure
  type: str
  sample: RestoreError
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.lifeline.dr.plugins.module_utils import config
from ansible_collections.lifeline.dr.plugins.module_utils.module import (
    encryption_spec,
    merge,
    redis_spec,
    repository_spec,
    run,
    select_backup,
)


def restore(module: AnsibleModule) -> dict:
    p = module.params
    redis, _catalog, entry = select_backup(module, "redis")
    job = redis.restore(entry, config.codec(p), p)
    if module.check_mode:
        return {"changed": True, "plan": job.plan(), "backup_id": entry.manifest.backup_id,
                "consistent_at": entry.manifest.consistent_at}
    report = job.run()
    for warning in report.pop("warnings"):
        module.warn(warning)
    report["changed"] = True
    return report


def main() -> None:
    module = AnsibleModule(
        argument_spec=merge(repository_spec(), encryption_spec(), redis_spec(), dict(
            point=dict(type="str", default="latest"),
            replace=dict(type="bool", default=False),
            managed=dict(type="bool", default=False),
            service=dict(type="str", default="redis-server"),
            timeout=dict(type="int", default=3600),
            staging_dir=dict(type="path"),
        )),
        supports_check_mode=True,
    )
    run(module, lambda: restore(module), changed=False)


if __name__ == "__main__":
    main()
