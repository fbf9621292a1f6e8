#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: Lifeline contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
module: backup_info
short_description: List Lifeline backups (the catalog) as facts
version_added: 0.1.0
description:
  - Reads the manifests of one host's component in every repository and returns them ordered by
    the manifest's own finish time (never by object modification time).
  - A backup held by several repositories is listed once with every repository that holds it.
  - With O(point), also selects one backup the way a restore would.
author:
  - Lifeline contributors (@lifeline-dr)
extends_documentation_fragment:
  - lifeline.dr.repository
options:
  component:
    description: Component whose backups to list.
    type: str
    default: postgres
  point:
    description:
      - Select one backup as C(selected). C(latest), a backup id, or an ISO-8601 time (newest
        backup consistent at or before it). Fails, naming the oldest and newest, when none fits.
    type: str
attributes:
  check_mode:
    description: Read-only; runs the same in check mode.
    support: full
  diff_mode:
    description: Not applicable; nothing the module changes has a meaningful diff.
    support: none
seealso:
  - module: lifeline.dr.postgres_backup
  - module: lifeline.dr.postgres_restore
"""

EXAMPLES = r"""
- name: List db1's postgres backups
  lifeline.dr.backup_info:
    host: db1
    repositories: "{{ lifeline_repositories }}"
  register: catalog

- name: Which backup would a restore to 02:00 use?
  lifeline.dr.backup_info:
    host: db1
    repositories: "{{ lifeline_repositories }}"
    point: "2026-11-23T02:00:00Z"
  register: chosen
"""

RETURN = r"""
backups:
  description: Every backup, oldest first.
  returned: always
  type: list
  elements: dict
  sample:
    - backup_id: 20261123T020000Z-4f2a
      kind: full
      started: "2026-11-23T02:00:00Z"
      finished: "2026-11-23T02:00:09Z"
      consistent_at: "2026-11-23T02:00:04Z"
      size: 1234567
      repositories: [local, s3]
      encryption: age
      key_id: [age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p]
latest:
  description: The newest backup, or null when there is none.
  returned: always
  type: dict
  sample: {backup_id: 20261123T020000Z-4f2a}
selected:
  description: The backup O(point) selects.
  returned: when O(point) is given
  type: dict
  sample: {backup_id: 20261123T020000Z-4f2a, tools: {server_major: 15}}
catalog_warnings:
  description: Manifests that could not be read, and repositories that could not be listed.
  returned: always
  type: list
  elements: str
  sample: []
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.lifeline.dr.plugins.module_utils import config
from ansible_collections.lifeline.dr.plugins.module_utils.module import merge, repository_spec, run


def info(module: AnsibleModule) -> dict:
    p = module.params
    catalog = config.catalog(p)
    where = dict(site=p["site"], host=config.host_name(p), component=p["component"])
    entries = catalog.entries(**where)
    result = {"backups": [e.summary() for e in entries],
              "latest": entries[-1].summary() if entries else None}
    if p["point"]:
        selected = catalog.select(point=p["point"], **where)
        result["selected"] = dict(selected.summary(), facts=selected.manifest.facts)
    result["catalog_warnings"] = catalog.warnings
    return result


def main() -> None:
    module = AnsibleModule(
        argument_spec=merge(repository_spec(), dict(
            component=dict(type="str", default="postgres"),
            point=dict(type="str"),
        )),
        supports_check_mode=True,
    )
    run(module, lambda: info(module), changed=False)


if __name__ == "__main__":
    main()
