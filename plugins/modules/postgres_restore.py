#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: Lifeline contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
module: postgres_restore
short_description: Restore PostgreSQL databases and globals from a Lifeline backup, verified before swap
version_added: 0.1.0
description:
  - Picks a backup of O(host) (the source) by O(point), restores the roles (existing roles are
    updated, not an error) and every selected database.
  - Each database is restored into a temporary database with parallel C(pg_restore), checked
    against the manifest (see RV(databases[].checks)), and given its database-level comment,
    grants and settings; only when every selected database got that far are the copies swapped
    in under their real names. A failure at any step before the swap leaves every existing
    database untouched and drops the temporary copies.
  - An existing database that holds any user object (relation, function, type, schema,
    extension, foreign server, large object, publication, ...) is only replaced with
    O(replace=true). An existing empty database (such as the C(postgres) database of a fresh
    server) is replaced without it.
  - Each artifact is read from the first repository that holds an intact copy; a missing or
    corrupt copy falls back to the next repository, with a task warning naming the copy and the
    cause. Leftovers of a killed restore that were removed, and attributes of the connecting role
    that were not applied, are task warnings too.
  - Every selected artifact is read, checked and decrypted into a 0700 directory this restore
    creates inside O(staging_dir) before anything on the server changes (parallel C(pg_restore)
    needs seekable files, and a damaged later artifact must not leave a half-restored cluster);
    each staged file is removed once used, and all of them when the run fails or receives
    SIGTERM or SIGHUP. Staging directories and C(lifeline_restore_*) temporary databases left by
    a killed restore are removed at the start of the next one, under a per-server lock in
    O(state_dir).
  - Globals and database-level settings are replayed through the database driver, never through
    C(psql). A backup whose scripts hold a psql meta-command (such as C(\!)) or a statement
    C(pg_dumpall) or C(pg_restore) does not write is refused before anything changes.
  - The role the module connects as keeps its access. It keeps its password unless the backup's
    stored verifier accepts O(login_password), and the backup never makes it NOLOGIN, NOSUPERUSER
    (nor any other NO- attribute), connection-limited or expired.
author:
  - Lifeline contributors (@lifeline-dr)
requirements:
  - python >= 3.9
  - psycopg2 (Debian python3-psycopg2)
  - cryptography (Debian python3-cryptography), to check manifest signatures and decrypt
  - zstandard (Debian python3-zstandard), for zstd-compressed backups
  - boto3 (Debian python3-boto3), for S3 repositories
  - C(pg_restore) and C(psql) at least as new as the backup's C(pg_dump) (Debian postgresql-client-N)
notes:
  - The backup is accepted only when its manifest's signature verifies with a key in
    O(trusted_signers) for O(host) (or, with O(allow_unsigned), when it is unsigned); anything
    else is refused before the target changes.
  - O(host) is the B(source) whose backup is restored, not the machine restored onto.
  - C(restore-site.yml) runs this module after checking, in its pick phase, that the identity
    opens the chosen backup; C(lifeline_restore_databases) maps to O(databases).
extends_documentation_fragment:
  - lifeline.dr.repository
  - lifeline.dr.repository.encryption
  - lifeline.dr.repository.postgres
options:
  point:
    description:
      - Which backup. C(latest), a backup id, or an ISO-8601 time meaning the newest backup whose
        data is consistent at or before that time.
    type: str
    default: latest
  databases:
    description: Databases to restore. Empty means every database in the backup.
    type: list
    elements: str
    default: []
  globals:
    description: Restore roles and memberships first.
    type: bool
    default: true
  replace:
    description: Replace databases that already exist and hold data (after the restored copy verified).
    type: bool
    default: false
  keep_replaced:
    description: Keep a replaced database renamed as C(lifeline_replaced_<hex>) instead of dropping it.
    type: bool
    default: false
  safety_backup:
    description:
      - Before replacing a database that holds data, back it up into O(repositories) under
        O(safety_backup_host), labelled C(safety) so it is never the source's C(latest); its id
        is returned. Needs O(recipients) (or O(aes_key)) and this host's O(signing_key).
    type: bool
    default: false
  safety_backup_host:
    description: Host name the safety backup is stored under. Defaults to this machine's short host name.
    type: str
  jobs:
    description: Parallel C(pg_restore) jobs, and connections that count the restored rows.
    type: int
    default: 2
  staging_dir:
    description:
      - Directory in which the restore creates its own 0700 staging directory; needs free space for
        all selected databases' dumps. An existing directory keeps its mode (it may be C(/tmp)).
      - Defaults to C(staging) under O(state_dir).
    type: path
attributes:
  check_mode:
    description: Resolves the backup and reports which databases would be created or replaced; changes nothing.
    support: full
  diff_mode:
    description: Not applicable; nothing the module changes has a meaningful diff.
    support: none
seealso:
  - module: lifeline.dr.postgres_backup
  - module: lifeline.dr.backup_info
"""

EXAMPLES = r"""
- name: Restore everything from db1's newest backup onto this host
  lifeline.dr.postgres_restore:
    site: prod
    host: db1
    repositories: "{{ lifeline_repositories }}"
    trusted_signers: "{{ lifeline_trusted_signers }}"
    identity: "{{ vault_lifeline_identity }}"
    login_password: "{{ vault_postgres_password }}"
  become: true

- name: Restore shop as it was at 02:00, replacing the current copy after it verified
  lifeline.dr.postgres_restore:
    host: db1
    repositories: "{{ lifeline_repositories }}"
    trusted_signers: "{{ lifeline_trusted_signers }}"
    identity: "{{ vault_lifeline_identity }}"
    point: "2026-11-23T02:00:00Z"
    databases: [shop]
    globals: false
    replace: true
    safety_backup: true
    recipients: "{{ lifeline_recipients }}"
    signing_key: "{{ lifeline_signing_key }}"
  become: true

- name: What would a restore of db1's newest backup create or replace here?
  lifeline.dr.postgres_restore:
    host: db1
    repositories: "{{ lifeline_repositories }}"
    trusted_signers: "{{ lifeline_trusted_signers }}"
    identity: "{{ vault_lifeline_identity }}"
  check_mode: true
  register: restore_plan
"""

RETURN = r"""
backup_id:
  description: The backup restored (or that would be, in check mode).
  returned: success
  type: str
  sample: 20261123T020000Z-4f2a
host:
  description: The source host whose backup was restored.
  returned: success and not check mode
  type: str
  sample: db1
site:
  description: The site of the backup.
  returned: success and not check mode
  type: str
  sample: prod
plan:
  description: What the restore does (or would do, in check mode).
  returned: success
  type: dict
  contains:
    globals:
      description: Whether roles and memberships are applied.
      type: bool
      sample: true
    databases:
      description:
        - Each selected database mapped to its action. C(create) (absent on the target),
          C(replace-empty) (exists but holds nothing) or C(replace) (holds data; only with O(replace=true)).
      type: dict
      sample: {shop: create, postgres: replace-empty}
  sample: {globals: true, databases: {shop: create}}
globals:
  description: C(applied) or C(skipped).
  returned: success and not check mode
  type: str
  sample: applied
databases:
  description: Restored databases, each with the action taken and what was verified.
  returned: success and not check mode
  type: list
  elements: dict
  contains:
    name:
      description: The database.
      type: str
      sample: shop
    action:
      description: C(create) (it did not exist), C(replace) (it held data), C(replace-empty) (it existed, empty).
      type: str
      sample: create
    verified:
      description: True when at least one check ran on the restored copy and every check passed (a mismatch fails the task).
      type: bool
      sample: true
    checks:
      description:
        - What was compared with the manifest before the swap, in words. Empty for a backup whose
          manifest records nothing to compare (a schema-only backup made by 0.1.0).
      type: list
      elements: str
      sample: ["3 relations present, as in the manifest", "row counts of 3 tables (22000 rows), as in the manifest"]
    tables:
      description: User tables in the restored copy.
      type: int
      sample: 2
    rows:
      description: Rows counted in them (0 when the backup holds no row counts).
      type: int
      sample: 22000
    large_objects:
      description: Large objects counted (0 when not compared).
      type: int
      sample: 1
  sample: [{name: shop, action: create, verified: true, tables: 2, rows: 22000, large_objects: 1,
            checks: ["2 relations present, as in the manifest", "row counts of 2 tables (22000 rows), as in the manifest",
                     "1 large objects, as in the manifest"]}]
phases:
  description: Seconds spent per phase (plan, safety_backup, fetch, globals, pg_restore, verify, database_settings, swap).
  returned: success and not check mode
  type: dict
  sample: {fetch: 1.2, pg_restore: 3.4, verify: 0.3, swap: 0.1}
total_seconds:
  description: Duration of the restore (the RTO of this step).
  returned: success and not check mode
  type: float
  sample: 5.3
restore_point_age_seconds:
  description: Seconds between the moment the restored data represents and now (the RPO if the source was lost now).
  returned: success and not check mode
  type: int
  sample: 3600
consistent_at:
  description: The moment the restored data represents.
  returned: success
  type: str
  sample: "2026-11-23T02:00:04Z"
safety_backup:
  description: The safety backup taken before replacing data (labelled C(safety), never picked as C(latest)), or null.
  returned: success and not check mode
  type: dict
  contains:
    backup_id:
      description: Id of the safety backup; restore it with O(point) set to it.
      type: str
      sample: 20261123T090000Z-77aa
    host:
      description: Host name it is stored under (O(safety_backup_host)).
      type: str
      sample: db2
    databases:
      description: The databases it holds (those about to be replaced).
      type: list
      elements: str
      sample: [shop]
    stored_in:
      description: Repositories holding it.
      type: list
      elements: str
      sample: [local]
  sample: {backup_id: 20261123T090000Z-77aa, host: db2, databases: [shop], stored_in: [local]}
served_by:
  description: Repositories the artifacts were read from.
  returned: success and not check mode
  type: list
  elements: str
  sample: [local]
error:
  description: The class of the engine error (for example C(RepositoryError), C(UntrustedError)); C(msg) names the cause and the fix.
  returned: failure
  type: str
  sample: RepositoryError
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.lifeline.dr.plugins.module_utils import config
from ansible_collections.lifeline.dr.plugins.module_utils.backup import run_backup
from ansible_collections.lifeline.dr.plugins.module_utils.catalog import SAFETY_LABEL
from ansible_collections.lifeline.dr.plugins.module_utils.module import (
    encryption_spec,
    merge,
    postgres_spec,
    repository_spec,
    run,
    select_backup,
)


def restore(module: AnsibleModule) -> dict:
    p = module.params
    postgres, catalog, entry = select_backup(module, "postgres")
    codec = config.codec(p)
    job = postgres.restore(entry, codec, p)
    signer = config.signer(p) if p["safety_backup"] else None  # fail before anything changes
    if module.check_mode:
        plan = job.plan()
        return {"changed": bool(plan["databases"]) or plan["globals"], "plan": plan,
                "backup_id": entry.manifest.backup_id, "consistent_at": entry.manifest.consistent_at}

    safety: dict = {}

    def safety_backup(names: list) -> None:
        # Labelled "safety": never the source's "latest", found by the id returned here.
        component = postgres.backup(dict(p, databases=names, globals=False, scope="full"))
        component.labels = [SAFETY_LABEL]
        outcome = run_backup(component, catalog.repositories, codec, site=p["site"],
                             host=p["safety_backup_host"] or config.host_name({}),
                             state_dir=config.state_dir(p), signer=signer)
        safety.update(backup_id=outcome.manifest.backup_id, host=outcome.manifest.host,
                      databases=names, stored_in=outcome.stored_in)

    report = job.run(before_replace=safety_backup if p["safety_backup"] else None)
    for warning in report.pop("warnings"):  # Ansible shows them, and returns them as warnings
        module.warn(warning)
    report["changed"] = True
    report["safety_backup"] = safety or None
    return report


def main() -> None:
    module = AnsibleModule(
        argument_spec=merge(repository_spec(), encryption_spec(), postgres_spec(), dict(
            point=dict(type="str", default="latest"),
            databases=dict(type="list", elements="str", default=[]),
            globals=dict(type="bool", default=True),
            replace=dict(type="bool", default=False),
            keep_replaced=dict(type="bool", default=False),
            safety_backup=dict(type="bool", default=False),
            safety_backup_host=dict(type="str"),
            jobs=dict(type="int", default=2),
            staging_dir=dict(type="path"),  # default: <state_dir>/staging
        )),
        supports_check_mode=True,
    )
    run(module, lambda: restore(module), changed=False)


if __name__ == "__main__":
    main()
