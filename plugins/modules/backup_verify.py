#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: Lifeline contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
module: backup_verify
short_description: Re-read, hash, decrypt and check every copy of a Lifeline backup
version_added: 0.1.0
description:
  - Reads every artifact of the chosen backup from every repository that holds it, checks its
    size and sha256 against the manifest, decrypts it (which checks its authentication tags),
    decompresses it and checks its content (C(pg_restore --list) for database dumps).
  - Fails, naming each bad copy and the cause, if any copy does not verify.
  - Records the result next to the backup as C(verify/<time>.json); the manifest is never changed.
author:
  - Lifeline contributors (@lifeline-dr)
requirements:
  - python >= 3.9
  - cryptography (Debian python3-cryptography), to check manifest signatures and decrypt
  - zstandard (Debian python3-zstandard), for zstd-compressed backups
  - boto3 (Debian python3-boto3), for S3 repositories
  - C(pg_restore) of the backup's major version or newer, for the postgres content check
notes:
  - The backup is accepted only when its manifest's signature verifies with a key in
    O(trusted_signers) for the host it names (or, with O(allow_unsigned), when it is unsigned).
  - C(changed) is true exactly when a verification record was stored in at least one repository,
    also when the verification failed; never in check mode or with O(record=false).
  - Needs the private O(identity) (or O(aes_key)); run it where the identity may be, not on the
    backed-up host.
extends_documentation_fragment:
  - lifeline.dr.repository
  - lifeline.dr.repository.encryption
  - lifeline.dr.repository.postgres
options:
  component:
    description: Component of the backup.
    type: str
    default: postgres
  point:
    description: Which backup (C(latest), a backup id or an ISO-8601 time).
    type: str
    default: latest
  record:
    description: Store the verification result in each repository.
    type: bool
    default: true
attributes:
  check_mode:
    description: Verifies, but does not store the result (C(changed) stays false).
    support: full
  diff_mode:
    description: Not applicable; nothing the module changes has a meaningful diff.
    support: none
seealso:
  - module: lifeline.dr.backup_info
  - module: lifeline.dr.backup_key
"""

EXAMPLES = r"""
- name: Verify db1's newest backup in every repository
  lifeline.dr.backup_verify:
    host: db1
    repositories: "{{ lifeline_repositories }}"
    trusted_signers: "{{ lifeline_trusted_signers }}"
    identity: "{{ vault_lifeline_identity }}"

- name: Check a given backup without leaving a record
  lifeline.dr.backup_verify:
    host: db1
    repositories: "{{ lifeline_repositories }}"
    trusted_signers: "{{ lifeline_trusted_signers }}"
    identity: "{{ vault_lifeline_identity }}"
    point: 20261123T020000Z-4f2a
    record: false
"""

RETURN = r"""
backup_id:
  description: The backup verified.
  returned: always
  type: str
  sample: 20261123T020000Z-4f2a
ok:
  description: Whether every copy of every artifact verified.
  returned: always
  type: bool
  sample: true
verified_at:
  description: When the verification ran (UTC); also the name of the record.
  returned: always
  type: str
  sample: "2026-11-23T03:00:00Z"
repositories:
  description: Repositories that hold the backup and were read.
  returned: always
  type: list
  elements: str
  sample: [local, s3]
results:
  description: One entry per artifact and repository.
  returned: always
  type: list
  elements: dict
  contains:
    artifact:
      description: Artifact name, as in the manifest.
      type: str
      sample: db-shop.dump.zst.age
    repository:
      description: Repository the copy was read from.
      type: str
      sample: local
    ok:
      description: Whether this copy verified.
      type: bool
      sample: true
    detail:
      description: What the content check found (for example the number of archive entries).
      type: str
      returned: when RV(results[].ok) is true
      sample: 42 archive entries
    error:
      description: Why this copy did not verify (error class and message).
      type: str
      returned: when RV(results[].ok) is false
      sample: "IntegrityError: db-shop.dump.zst.age in s3 does not match its manifest's sha256"
  sample: [{artifact: db-shop.dump.zst.age, repository: local, ok: true, detail: "42 archive entries"}]
recorded_in:
  description: Repositories the result was stored in (empty in check mode and with O(record=false)).
  returned: always
  type: list
  elements: str
  sample: [local, s3]
error:
  description: The class of the engine error (for example C(RepositoryError), C(UntrustedError)); C(msg) names the cause and the fix.
  returned: failure
  type: str
  sample: RepositoryError
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.lifeline.dr.plugins.module_utils import components, config
from ansible_collections.lifeline.dr.plugins.module_utils.errors import IntegrityError
from ansible_collections.lifeline.dr.plugins.module_utils.module import (
    encryption_spec,
    merge,
    postgres_spec,
    repository_spec,
    run,
)
from ansible_collections.lifeline.dr.plugins.module_utils.verify import verify_backup


def verify(module: AnsibleModule) -> dict:
    p = module.params
    component = components.get(p["component"])
    entry = config.catalog(p).select(site=p["site"], host=config.host_name(p),
                                     component=component.name, point=p["point"])
    checks = component.checks(p, entry.manifest)
    report = verify_backup(entry, config.codec(p), check_for=checks, record=p["record"] and not module.check_mode)
    # changed: a record was stored, whether or not the backup verified.
    report["changed"] = bool(report["recorded_in"])
    if not report["ok"]:
        bad = ["%s in %s: %s" % (r["artifact"], r["repository"], r["error"]) for r in report["results"] if not r["ok"]]
        # The whole report goes with the failure: which copies are bad, and where it was recorded.
        module.fail_json(msg="backup %s did not verify: %s" % (report["backup_id"], "; ".join(bad)),
                         error=IntegrityError.__name__, **report)
    return report


def main() -> None:
    module = AnsibleModule(
        argument_spec=merge(repository_spec(), encryption_spec(), postgres_spec(), dict(
            component=dict(type="str", default="postgres"),
            point=dict(type="str", default="latest"),
            record=dict(type="bool", default=True),
        )),
        supports_check_mode=True,
    )
    run(module, lambda: verify(module), changed=False)


if __name__ == "__main__":
    main()
