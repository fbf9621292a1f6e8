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
requirements:
  - python >= 3.9
  - psycopg2 (Debian python3-psycopg2)
  - cryptography (Debian python3-cryptography), to encrypt and to sign the manifest
  - zstandard (Debian python3-zstandard), for O(compression=zstd)
  - boto3 (Debian python3-boto3), for S3 repositories
  - C(pg_dump) and C(pg_dumpall) of the server's major version or newer (Debian postgresql-client-N)
notes:
  - Every manifest is signed with O(signing_key) (or O(signing_key_file)); a backup without one
    fails before anything runs. Restores accept it only where the key's public half is in
    O(trusted_signers) for this O(host).
  - Check mode connects to the server and to every repository as a real run would and reports
    the plan; an unreachable repository fails the check (or warns, with
    O(require_all_repositories=false)), as it would fail the run.
  - O(host) is the name backups are stored under; the playbooks set it to C(inventory_hostname).
extends_documentation_fragment:
  - lifeline.dr.repository
  - lifeline.dr.repository.encryption
  - lifeline.dr.repository.postgres
  - lifeline.dr.repository.backup
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
attributes:
  check_mode:
    description:
      - Connects, checks every repository and reports what would be backed up; writes nothing.
      - A repository that cannot be reached fails the task (or warns, with O(require_all_repositories=false)).
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
- name: Back up every database to a local repository and S3, signed with this host's key
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
    signing_key: "{{ lifeline_signing_key }}"
    login_password: "{{ vault_postgres_password }}"
  become: true

- name: Schema-only backup of one database, AES-256-GCM, signing key on disk
  lifeline.dr.postgres_backup:
    repositories: [{name: local, path: /var/backups/lifeline}]
    databases: [shop]
    scope: schema
    encryption: aes-256-gcm
    aes_key: "{{ vault_lifeline_aes_key }}"
    signing_key_file: /etc/lifeline/signing_key.pem
  become: true

- name: Would tonight's backup reach every repository? (fails if one is unreachable)
  lifeline.dr.postgres_backup:
    repositories: "{{ lifeline_repositories }}"
    recipients: "{{ lifeline_recipients }}"
    signing_key: "{{ lifeline_signing_key }}"
  check_mode: true
  become: true
"""

RETURN = r"""
backup_id:
  description: Id of the new backup (sorts by time). Null in check mode.
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
  sample: "backup 20261123T020000Z-4f2a stored in local only; failed: s3: ..."
stored_in:
  description: Repositories that hold the complete backup (or would, in check mode).
  returned: always
  type: list
  elements: str
  sample: [local, s3]
failed_repositories:
  description: Repositories that could not store it (or could not be reached, in check mode), mapped to the cause.
  returned: always
  type: dict
  sample: {s3: "S3 endpoint http://minio:9000 not reachable ..."}
plan:
  description: What a run backs up (check mode).
  returned: always
  type: list
  elements: str
  sample: [globals, database shop]
artifacts:
  description: Stored artifacts with their stored and source sizes.
  returned: success and not check mode
  type: list
  elements: dict
  contains:
    name:
      description: Artifact name in the backup directory.
      type: str
      sample: db-shop.dump.zst.age
    size:
      description: Bytes stored (compressed and encrypted).
      type: int
      sample: 412345
    plain_size:
      description: Bytes before compression and encryption.
      type: int
      sample: 3456789
    database:
      description: The database the artifact holds; null for the globals.
      type: str
      sample: shop
  sample: [{name: db-shop.dump.zst.age, size: 412345, plain_size: 3456789, database: shop}]
databases:
  description: Databases backed up.
  returned: success and not check mode
  type: list
  elements: str
  sample: [postgres, shop]
consistent_at:
  description: The moment the backed-up data represents (UTC).
  returned: success and not check mode
  type: str
  sample: "2026-11-23T02:00:04Z"
error:
  description: The class of the engine error (for example C(RepositoryError), C(UntrustedError)); C(msg) names the cause and the fix.
  returned: failure
  type: str
  sample: RepositoryError
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
    postgres_spec,
    repository_spec,
    run,
)


def backup(module: AnsibleModule) -> dict:
    p = module.params
    component = components.get("postgres").backup(p)
    outcome = run_backup(component, config.repositories(p), config.codec(p), site=p["site"],
                         host=config.host_name(p), state_dir=config.state_dir(p), signer=config.signer(p),
                         lock_wait=p["lock_timeout"], check_mode=module.check_mode, labels=p["labels"],
                         min_interval=config.min_interval(p))
    result = backup_result(module, outcome, require_all=p["require_all_repositories"], meta_key="database")
    if outcome.manifest:
        result["databases"] = outcome.manifest.facts.get("databases", [])
    return result


def main() -> None:
    module = AnsibleModule(
        argument_spec=merge(repository_spec(), encryption_spec(), postgres_spec(), backup_spec(), dict(
            databases=dict(type="list", elements="str", default=[]),
            scope=dict(type="str", default="full", choices=["full", "schema", "data"]),
            globals=dict(type="bool", default=True),
        )),
        supports_check_mode=True,
    )
    run(module, lambda: backup(module), **BACKUP_FAILED)


if __name__ == "__main__":
    main()
