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
requirements:
  - python >= 3.9
  - cryptography (Debian python3-cryptography), to check manifest signatures
  - boto3 (Debian python3-boto3), for S3 repositories
notes:
  - Only manifests whose signature verifies with a key in O(trusted_signers) for the host they
    name are listed (or unsigned ones, with O(allow_unsigned)); every other manifest is left out
    and named in RV(catalog_warnings).
  - Read-only; needs no key that decrypts.
extends_documentation_fragment:
  - lifeline.dr.repository
options:
  component:
    description: Component whose backups to list.
    type: str
    default: postgres
  components:
    description:
      - Choose one backup of each of these components at O(point), for a whole-site restore,
        returned as RV(site). A time takes each component's newest backup consistent at or before
        it; a backup id pins that backup and takes the others at its consistent time.
      - A component without any backup of the host is left out (listed in RV(site.absent)), unless
        O(require_components) is set; one that has backups but none at the point fails, naming it.
      - O(component) is ignored when this is given.
    type: list
    elements: str
  require_components:
    description: With O(components), every listed component must have a backup at O(point).
    type: bool
    default: false
  point:
    description:
      - Select one backup as C(selected). C(latest), a backup id, or an ISO-8601 time (newest
        backup consistent at or before it). Fails, naming the oldest and newest, when none fits.
    type: str
  identity:
    description:
      - age identity (private key) to test against the selected backup; RV(selected.can_decrypt)
        then says whether it opens it, judged from the key ids the manifest records. Nothing is decrypted.
    type: str
  aes_key:
    description: AES key (64 hex characters) to test against the selected backup, as O(identity).
    type: str
  pitr_cipher_pass:
    description:
      - The host's pgBackRest passphrase (C(lifeline_postgresql_pitr_cipher_pass)). Given, RV(pitr) reports the
        host's point-in-time recovery archive as well (pgBackRest on this host reads it; a temporary 0600
        config file is written beside O(pitr_config_file) and removed).
    type: str
  pitr_config_file:
    description: The pgBackRest config file of the host; its directory holds the temporary one.
    type: path
    default: /etc/pgbackrest/lifeline.conf
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
    trusted_signers: "{{ lifeline_trusted_signers }}"
  register: catalog

- name: Which backup would a restore to 02:00 use?
  lifeline.dr.backup_info:
    host: db1
    repositories: "{{ lifeline_repositories }}"
    trusted_signers: "{{ lifeline_trusted_signers }}"
    point: "2026-11-23T02:00:00Z"
  register: chosen
"""

RETURN = r"""
backups:
  description: Every backup, oldest first.
  returned: always
  type: list
  elements: dict
  contains: &summary
    backup_id:
      description: Backup id (sorts by time).
      type: str
      sample: 20261123T020000Z-4f2a
    site:
      description: Site the backup belongs to.
      type: str
      sample: prod
    host:
      description: Host the backup was taken of.
      type: str
      sample: db1
    component:
      description: Component (C(postgres)).
      type: str
      sample: postgres
    kind:
      description: C(full), C(schema), C(data) or C(incremental).
      type: str
      sample: full
    parent_id:
      description: The backup an incremental builds on; null for the others.
      type: str
      sample: null
    started:
      description: When the run started (UTC).
      type: str
      sample: "2026-11-23T02:00:00Z"
    finished:
      description: When the manifest was written (UTC).
      type: str
      sample: "2026-11-23T02:00:09Z"
    consistent_at:
      description: The moment the backed-up data represents (UTC).
      type: str
      sample: "2026-11-23T02:00:04Z"
    encryption:
      description: C(age), C(aes-256-gcm) or C(none).
      type: str
      sample: age
    key_id:
      description: The keys the backup is encrypted to (age recipients or C(aes:<16 hex>)).
      type: list
      elements: str
      sample: [age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p]
    size:
      description: Bytes stored (one copy).
      type: int
      sample: 1234567
    artifacts:
      description: Number of artifacts.
      type: int
      sample: 3
    repositories:
      description: Repositories holding the backup, in the configured order.
      type: list
      elements: str
      sample: [local, s3]
    labels:
      description: Labels; C(safety) marks a backup a restore took before replacing data.
      type: list
      elements: str
      sample: []
    tools:
      description: Tool and server versions the backup was made with (C(server_major) for postgres).
      type: dict
      sample: {pg_dump: "15.8", server: "PostgreSQL 15.8", server_major: 15}
    signed_by:
      description: Id of the trusted key whose signature verified; null for an unsigned backup read with O(allow_unsigned).
      type: str
      sample: "ed25519:3f1c0d9e8b7a6f5e4d3c2b1a09f8e7d6"
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
  description: The newest backup (as in RV(backups)), or null when there is none.
  returned: always
  type: dict
  contains: *summary
  sample: {backup_id: 20261123T020000Z-4f2a}
selected:
  description: The backup O(point) selects, as in RV(backups), with the component's facts.
  returned: when O(point) is given
  type: dict
  contains:
    <<: *summary
    facts:
      description: What the component recorded (for postgres C(databases), C(scope), C(globals), C(system_identifier)).
      type: dict
      sample: {databases: [postgres, shop], scope: full, globals: true}
    can_decrypt:
      description: Whether O(identity) or O(aes_key) opens the selected backup; only when one is given.
      type: bool
      sample: true
  sample: {backup_id: 20261123T020000Z-4f2a, tools: {server_major: 15}, facts: {databases: [shop]}}
site:
  description: The backup of each component chosen at O(point), when O(components) is given.
  returned: when O(components) and O(point) are given
  type: dict
  contains:
    selected:
      description: Component name to its chosen backup, as RV(selected) (with C(can_decrypt) when a key is given).
      type: dict
    absent:
      description: Components that have no backup of the host at all.
      type: list
      elements: str
    point:
      description: The time the components were chosen at (C(latest), or the pinned backup's consistent time).
      type: str
  sample: {selected: {postgres: {backup_id: 20261123T020000Z-4f2a}}, absent: [redis], point: latest}
pitr:
  description:
    - The host's point-in-time recovery archive, with O(pitr_cipher_pass); null when the host has no stanza
      (named in RV(catalog_warnings)).
  returned: when O(pitr_cipher_pass) is given
  type: dict
  contains:
    backups:
      description: Base backups, oldest first (label, type, start, stop, wal_start, wal_stop, size, repo_size).
      type: list
      elements: dict
    oldest:
      description: The oldest restorable time (the end of the oldest base backup), UTC.
      type: str
    newest:
      description: The newest restorable time (when the newest WAL segment was archived), UTC.
      type: str
    last_segment:
      description: The newest archived WAL segment.
      type: str
    archive_lag:
      description: Seconds since the newest segment was archived.
      type: float
  sample: {oldest: "2026-11-23T02:00:09.000Z", newest: "2026-11-23T14:05:00.000Z", last_segment: "000000010000000000000042",
           archive_lag: 12.5, backups: [{label: 20261123-020000F, type: full}]}
catalog_warnings:
  description: Manifests that could not be read or were not trusted, and repositories that could not be listed.
  returned: always
  type: list
  elements: str
  sample: []
error:
  description: The class of the engine error (for example C(RepositoryError), C(UntrustedError)); C(msg) names the cause and the fix.
  returned: failure
  type: str
  sample: RepositoryError
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.lifeline.dr.plugins.module_utils import config, pitr
from ansible_collections.lifeline.dr.plugins.module_utils.errors import NotFoundError
from ansible_collections.lifeline.dr.plugins.module_utils.module import merge, repository_spec, run
from ansible_collections.lifeline.dr.plugins.module_utils.pgbackrest_config import PitrSettings
from ansible_collections.lifeline.dr.plugins.module_utils.site_point import select_site


def _described(entry, p: dict) -> dict:
    out = dict(entry.summary(), facts=entry.manifest.facts)
    if p["identity"] or p["aes_key"]:
        out["can_decrypt"] = config.codec(p).opens(entry.manifest)
    return out


def site_info(p: dict) -> dict:
    catalog = config.catalog(p)
    names = list(dict.fromkeys(p["components"]))
    chosen = select_site(catalog, site=p["site"], host=config.host_name(p), components=names,
                         point=p["point"] or "latest", required=names if p["require_components"] else ())
    return {"site": {"selected": {name: _described(entry, p) for name, entry in chosen.selected.items()},
                     "absent": chosen.absent, "point": chosen.point},
            "catalog_warnings": catalog.warnings}


def info(module: AnsibleModule) -> dict:
    p = module.params
    if p["components"]:
        return site_info(p)
    catalog = config.catalog(p)
    where = dict(site=p["site"], host=config.host_name(p), component=p["component"])
    entries = catalog.entries(**where)
    result = {"backups": [e.summary() for e in entries],
              "latest": entries[-1].summary() if entries else None}
    if p["point"]:
        result["selected"] = _described(catalog.select(point=p["point"], **where), p)
    result["catalog_warnings"] = catalog.warnings
    if p["pitr_cipher_pass"]:
        result["pitr"] = pitr_window(p, result["catalog_warnings"])
    return result


def pitr_window(p: dict, warnings: list) -> dict | None:
    """The host's PITR window (pitr.info, read-only: a temporary config file)."""
    settings = PitrSettings(repositories=[dict(r) for r in p["repositories"]], site=p["site"],
                            host=config.host_name(p), data_dir="/var/lib/postgresql", cipher_pass=p["pitr_cipher_pass"])
    try:
        return pitr.info(settings, config_path=p["pitr_config_file"], check_mode=True)["window"]
    except NotFoundError as exc:
        warnings.append("no point-in-time recovery archive: %s" % exc)
        return None


def main() -> None:
    module = AnsibleModule(
        argument_spec=merge(repository_spec(), dict(
            component=dict(type="str", default="postgres"),
            components=dict(type="list", elements="str"),
            require_components=dict(type="bool", default=False),
            point=dict(type="str"),
            identity=dict(type="str", no_log=True),
            aes_key=dict(type="str", no_log=True),
            pitr_cipher_pass=dict(type="str", no_log=True),
            pitr_config_file=dict(type="path", default="/etc/pgbackrest/lifeline.conf"),
        )),
        supports_check_mode=True,
    )
    run(module, lambda: info(module), changed=False)


if __name__ == "__main__":
    main()
