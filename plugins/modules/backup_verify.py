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
    description: Verifies, but does not store the result.
    support: full
  diff_mode:
    description: Not applicable; nothing the module changes has a meaningful diff.
    support: none
seealso:
  - module: lifeline.dr.backup_info
"""

EXAMPLES = r"""
- name: Verify db1's newest backup in every repository
  lifeline.dr.backup_verify:
    host: db1
    repositories: "{{ lifeline_repositories }}"
    identity: "{{ vault_lifeline_identity }}"
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
results:
  description: One entry per artifact and repository.
  returned: always
  type: list
  elements: dict
  sample: [{artifact: db-shop.dump.zst.age, repository: local, ok: true, detail: "42 archive entries"}]
recorded_in:
  description: Repositories the result was stored in.
  returned: always
  type: list
  elements: str
  sample: [local, s3]
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
    report["changed"] = bool(report["recorded_in"])
    if not report["ok"]:
        bad = ["%s in %s: %s" % (r["artifact"], r["repository"], r["error"]) for r in report["results"] if not r["ok"]]
        raise IntegrityError("backup %s did not verify: %s" % (report["backup_id"], "; ".join(bad)))
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
