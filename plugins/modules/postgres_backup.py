#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: Lifeline contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
module: postgres_backup
short_description: Back up PostgreSQL databases and globals into Lifeline repositories
version_added: 0.1.0
description:
  - Dumps every database (or the ones listed) with C(pg_dump -Fc) from an exported snapshot and
    the roles with C(pg_dumpall --globals-only), and streams each dump through compression and
    encryption into every repository. No plaintext is written to disk.
  - Row counts of every table are taken in the dump's own snapshot and recorded in the manifest,
    so a restore can prove it restored what was backed up.
  - The manifest is written last, after every artifact is stored and its size confirmed; a run
    that fails leaves no manifest, so it is never mistaken for a backup.
  - A per host and component lock stops two runs at once; it is released by the kernel when a run
    dies, so a crashed run never blocks the next.
author:
  - Lifeline contributors (@lifeline-dr)
extends_documentation_fragment:
  - lifeline.dr.repository
  - lifeline.dr.repository.encryption
  - lifeline.dr.repository.postgres
options:
  databases:
    description: Databases to back up. Empty means every connectable, non-template database.
    type: list
    elements: str
    default: []
  scope:
    description: C(full) (schema and data), C(schema) (schema only) or C(data) (data only).
    type: str
    default: full
    choices: [full, schema, data]
  globals:
    description: Also back up roles and their memberships (C(pg_dumpall --globals-only)).
    type: bool
    default: true
  lock_timeout:
    description: Seconds to wait for a concurrent run of the same host and component to finish.
    type: int
    default: 0
  require_all_repositories:
    description:
      - When true, a backup that could be stored in only some repositories fails the task (the
        copies that were stored are kept and listed). When false it succeeds with a warning.
    type: bool
    default: true
attributes:
  check_mode:
    description: Connects, checks the repositories and reports what would be backed up; writes nothing.
    support: full
  diff_mode:
    description: Not applicable; nothing the module changes has a meaningful diff.
    support: none
seealso:
  - module: lifeline.dr.postgres_restore
  - module: lifeline.dr.backup_info
  - module: lifeline.dr.backup_verify
  - module: lifeline.dr.backup_key
"""

EXAMPLES = r"""
- name: Back up every database to a local repository and S3
  lifeline.dr.postgres_backup:
    site: prod
    host: "{{ inventory_hostname }}"
    repositories:
      - name: local
        path: /var/backups/lifeline
      - name: s3
        s3:
          bucket: acme-backups
          prefix: lifeline
          access_key: "{{ vault_s3_access_key }}"
          secret_key: "{{ vault_s3_secret_key }}"
    recipients:
      - age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p
    login_password: "{{ vault_postgres_password }}"

- name: Schema-only backup of one database, AES-256-GCM
  lifeline.dr.postgres_backup:
    repositories: [{name: local, path: /var/backups/lifeline}]
    databases: [shop]
    scope: schema
    encryption: aes-256-gcm
    aes_key: "{{ vault_lifeline_aes_key }}"
"""

RETURN = r"""
backup_id:
  description: Id of the new backup (sorts by time). Null in check mode.
  returned: always
  type: str
  sample: 20261123T020000Z-4f2a
status:
  description: C(ok), C(partial) (stored in some repositories only), C(failed) or C(planned) (check mode).
  returned: always
  type: str
  sample: ok
stored_in:
  description: Repositories that hold the complete backup (or would, in check mode).
  returned: always
  type: list
  elements: str
  sample: [local, s3]
failed_repositories:
  description: Repositories that could not store it, with the cause.
  returned: always
  type: dict
  sample: {}
plan:
  description: What a run backs up (check mode).
  returned: always
  type: list
  elements: str
  sample: [globals, database shop]
artifacts:
  description: Stored artifacts with their stored and source sizes.
  returned: success
  type: list
  elements: dict
  sample: [{name: db-shop.dump.zst.age, size: 412345, plain_size: 3456789, database: shop}]
databases:
  description: Databases backed up.
  returned: success
  type: list
  elements: str
  sample: [postgres, shop]
consistent_at:
  description: The moment the backed-up data represents (UTC).
  returned: success
  type: str
  sample: "2026-11-23T02:00:04Z"
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.lifeline.dr.plugins.module_utils import components, config
from ansible_collections.lifeline.dr.plugins.module_utils.backup import Status, run_backup
from ansible_collections.lifeline.dr.plugins.module_utils.errors import RepositoryError
from ansible_collections.lifeline.dr.plugins.module_utils.module import (
    encryption_spec,
    merge,
    postgres_spec,
    repository_spec,
    run,
)


def backup(module: AnsibleModule) -> dict:
    p = module.params
    component = components.get("postgres").backup(p)
    outcome = run_backup(component, config.repositories(p), config.codec(p), site=p["site"],
                         host=config.host_name(p), state_dir=config.state_dir(p), signer=config.signer(p),
                         lock_wait=p["lock_timeout"], check_mode=module.check_mode)
    result = outcome.to_dict()
    result["changed"] = True
    if outcome.manifest:
        m = outcome.manifest
        result.update(consistent_at=m.consistent_at, databases=m.facts.get("databases", []),
                      artifacts=[{"name": a.name, "size": a.size, "plain_size": a.plain_size,
                                  "database": a.meta.get("database")} for a in m.artifacts])
    if outcome.status is Status.PARTIAL:
        if p["require_all_repositories"]:
            # Fail, but report what was stored: the complete copies are kept.
            module.fail_json(msg=outcome.message, error=RepositoryError.__name__, **result)
        module.warn(outcome.message)
    return result


def main() -> None:
    module = AnsibleModule(
        argument_spec=merge(repository_spec(), encryption_spec(), postgres_spec(), dict(
            databases=dict(type="list", elements="str", default=[]),
            scope=dict(type="str", default="full", choices=["full", "schema", "data"]),
            globals=dict(type="bool", default=True),
            lock_timeout=dict(type="int", default=0),
            require_all_repositories=dict(type="bool", default=True),
        )),
        supports_check_mode=True,
    )
    run(module, lambda: backup(module), changed=False, backup_id=None, status="failed",
        stored_in=[], failed_repositories={}, plan=[])


if __name__ == "__main__":
    main()
