#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: Lifeline contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
module: files_restore
short_description: Restore directories or chosen paths from a Lifeline files backup, the whole incremental chain
version_added: 0.2.0
description:
  - Picks a backup of O(host) (the source) by O(point) and resolves its incremental chain (full
    first). A link of the chain that is missing or untrusted is named and nothing is written.
  - Each archive is fetched (first intact copy, size, sha256 and authentication checked), its
    listing is checked before extraction (absolute names, C(..), names outside the backed-up
    paths, hard links leading out, members below a symlink and device nodes are refused) and its
    member and byte counts are compared with its manifest. Archives are then extracted in order
    with C(--listed-incremental=/dev/null), so files deleted between backups are not restored.
  - A backup made with C(method=rsync) is copied out of its snapshot (C(rsync -aHAXS), device
    nodes refused) instead, and every copied entry is compared with the snapshot's signed file
    tree (type, mode, owner, sha256 of the content, link target, xattrs and ACLs); a snapshot that
    differs, or a backup without a tree, is refused before anything is moved into place.
  - Everything is extracted into a 0700 directory next to the destination (same filesystem) and
    compared with what the archives list; only then is it moved into place. A failure before
    that leaves the destination as it was.
  - Into an existing destination the default is a merge; files the backup has are put in place
    unless the existing file is newer (kept, see RV(kept_newer)); files it does not have are left.
    With O(replace=true) the destination becomes exactly the backup (the old copy is removed
    once the restored one is in place).
author:
  - Lifeline contributors (@lifeline-dr)
requirements:
  - python >= 3.9
  - GNU tar 1.30 or newer (Debian tar); Debian acl and attr for ACLs and xattrs
  - rsync (Debian rsync), for backups made with C(method=rsync)
  - cryptography (Debian python3-cryptography), to check manifest signatures and decrypt
  - zstandard (Debian python3-zstandard), for zstd-compressed backups
  - boto3 (Debian python3-boto3), for S3 repositories
notes:
  - O(host) is the B(source) whose backup is restored, not the machine restored onto.
  - Run as root (C(become)) to restore owners.
  - The archive being extracted is staged decrypted (0600, in a 0700 directory) in O(staging_dir),
    one at a time.
extends_documentation_fragment:
  - lifeline.dr.repository
  - lifeline.dr.repository.encryption
options:
  point:
    description: Which backup. C(latest), a backup id, or an ISO-8601 time (the newest backup started at or before it).
    type: str
    default: latest
  paths:
    description:
      - Absolute paths, as backed up, to restore (a directory or a single file below one of the
        backed-up directories). Empty means every backed-up directory.
    type: list
    elements: path
    default: []
  root:
    description: Where to restore (C(lifeline_files_restore_root)); a file backed up at C(/a/b) lands at C(<root>/a/b).
    type: path
    default: /
  replace:
    description: Make existing destinations exactly the backup (newer files and files the backup lacks are removed).
    type: bool
    default: false
  staging_dir:
    description: Directory for the one archive being extracted; defaults to C(staging) under O(state_dir).
    type: path
  rsync_target:
    description:
      - For backups made with C(method=rsync), the directory this side keeps snapshots under
        (C(lifeline_files_rsync_target)); required for them. The manifest's location must be exactly
        a snapshot of O(host) there (C(<rsync_target>/<site>/<host>/<time>-<hex>)), else it is refused.
      - A local directory or an SSH target C([user@]host:/dir); either way every copied entry is checked
        against the signed file tree before anything is moved into place.
    type: str
  rsync_ssh_config:
    description:
      - For a snapshot on an SSH target, the ssh_config file to copy it back with (C(ssh -F)), as
        for M(lifeline.dr.files_backup). Unset, this user's own ssh configuration applies.
    type: path
  allowed_paths:
    description:
      - The directories a restore may write, as configured for the source host on the restoring side
        (restore-site.yml passes its C(lifeline_files_paths)); a backed-up directory to restore that
        is not one of them (or below one) is refused before anything is read or written.
      - Unset, every directory the signed manifest names is restored; an empty list allows none.
    type: list
    elements: str
attributes:
  check_mode:
    description: Resolves the backup and its chain and lists each destination with its action (create, merge, replace); writes nothing.
    support: full
  diff_mode:
    description: Not applicable.
    support: none
seealso:
  - module: lifeline.dr.files_backup
  - module: lifeline.dr.backup_info
"""

EXAMPLES = r"""
- name: Restore web1's files as they were at 02:00 under /restore for inspection
  lifeline.dr.files_restore:
    host: web1
    repositories: "{{ lifeline_repositories }}"
    trusted_signers: "{{ lifeline_trusted_signers }}"
    identity: "{{ vault_lifeline_identity }}"
    point: "2026-11-23T02:00:00Z"
    root: /restore
  become: true

- name: Put one lost file back in place
  lifeline.dr.files_restore:
    host: web1
    repositories: "{{ lifeline_repositories }}"
    trusted_signers: "{{ lifeline_trusted_signers }}"
    identity: "{{ vault_lifeline_identity }}"
    paths: [/srv/app/uploads/2026/report.pdf]
  become: true

- name: What would a full restore write here?
  lifeline.dr.files_restore:
    host: web1
    repositories: "{{ lifeline_repositories }}"
    trusted_signers: "{{ lifeline_trusted_signers }}"
    identity: "{{ vault_lifeline_identity }}"
  check_mode: true
  register: files_plan
"""

RETURN = r"""
backup_id:
  description: The backup restored (the last of its chain).
  returned: success
  type: str
  sample: 20261123T020000Z-4f2a
consistent_at:
  description: The moment the restored data represents (the backup's start).
  returned: success
  type: str
  sample: "2026-11-23T02:00:00Z"
plan:
  description: What the restore does (or would do, in check mode).
  returned: success
  type: dict
  contains:
    root:
      description: The restore root.
      type: str
    replace:
      description: Whether existing destinations are replaced.
      type: bool
    backups:
      description: The chain, full first.
      type: list
      elements: str
    paths:
      description: Each path mapped to its destination and action (C(create), C(merge) or C(replace)).
      type: dict
  sample: {root: /, replace: false, backups: [20261122T020000Z-1a2b, 20261123T020000Z-4f2a],
           paths: {/srv/app/uploads: {dest: /srv/app/uploads, action: merge}}}
host:
  description: The source host whose backup was restored.
  returned: success and not check mode
  type: str
  sample: web1
site:
  description: The site of the backup.
  returned: success and not check mode
  type: str
  sample: prod
root:
  description: The restore root.
  returned: success and not check mode
  type: str
  sample: /
backups:
  description: The chain restored, full first.
  returned: success and not check mode
  type: list
  elements: str
  sample: [20261122T020000Z-1a2b, 20261123T020000Z-4f2a]
paths:
  description: Each restored path with its destination and action.
  returned: success and not check mode
  type: list
  elements: dict
  contains:
    path:
      description: The path as backed up.
      type: str
    dest:
      description: Where it was restored.
      type: str
    action:
      description: C(create), C(merge) or C(replace).
      type: str
  sample: [{path: /srv/app/uploads, dest: /srv/app/uploads, action: merge}]
verified:
  description: True when the archives matched their manifests and the staged tree matched the archives (a mismatch fails the task).
  returned: success and not check mode
  type: bool
  sample: true
checks:
  description: What was compared, in words.
  returned: success and not check mode
  type: list
  elements: str
  sample: ["backup 20261122T020000Z-1a2b (full): 20412 members, 1073741824 bytes of file data, as its manifest records",
           "20412 entries under /srv/app/uploads, as the archives of the chain list"]
written:
  description: Destinations put in place (first 200; see RV(written_count)).
  returned: success and not check mode
  type: list
  elements: str
  sample: [/srv/app/uploads]
written_count:
  description: How many entries were put in place (a directory moved in whole counts once).
  returned: success and not check mode
  type: int
  sample: 1
kept_newer:
  description: Existing files kept because they are newer than the backup's (merge only; first 200).
  returned: success and not check mode
  type: list
  elements: str
  sample: []
kept_newer_count:
  description: How many existing entries were kept.
  returned: success and not check mode
  type: int
  sample: 0
phases:
  description: Seconds spent per phase (plan, fetch, check, extract or copy, swap).
  returned: success and not check mode
  type: dict
  sample: {fetch: 1.2, check: 0.1, extract: 2.3, swap: 0.01}
total_seconds:
  description: Duration of the restore (the RTO of this step).
  returned: success and not check mode
  type: float
  sample: 3.9
restore_point_age_seconds:
  description: Seconds between the moment the restored data represents and now.
  returned: success and not check mode
  type: int
  sample: 3600
served_by:
  description: Repositories the archives were read from.
  returned: success and not check mode
  type: list
  elements: str
  sample: [local]
error:
  description: The class of the engine error; C(msg) names the cause and the fix.
  returned: failure
  type: str
  sample: NotFoundError
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.lifeline.dr.plugins.module_utils import components, config
from ansible_collections.lifeline.dr.plugins.module_utils.module import encryption_spec, merge, repository_spec, run


def restore(module: AnsibleModule) -> dict:
    p = module.params
    files = components.get("files")
    catalog = config.catalog(p)
    entry = catalog.select(site=p["site"], host=config.host_name(p), component=files.name, point=p["point"])
    for warning in catalog.warnings:
        module.warn(warning)
    job = files.restore(entry, config.codec(p), p)
    if module.check_mode:
        plan = job.plan()
        return {"changed": bool(plan["paths"]), "plan": plan, "backup_id": entry.manifest.backup_id,
                "consistent_at": entry.manifest.consistent_at}
    report = job.run()
    for warning in report.pop("warnings"):
        module.warn(warning)
    report["changed"] = bool(report["written_count"])
    return report


def main() -> None:
    module = AnsibleModule(
        argument_spec=merge(repository_spec(), encryption_spec(), dict(
            point=dict(type="str", default="latest"),
            paths=dict(type="list", elements="path", default=[]),
            root=dict(type="path", default="/"),
            replace=dict(type="bool", default=False),
            staging_dir=dict(type="path"),
            rsync_target=dict(type="str"),
            rsync_ssh_config=dict(type="path"),
            allowed_paths=dict(type="list", elements="str"),
        )),
        supports_check_mode=True,
    )
    run(module, lambda: restore(module), changed=False)


if __name__ == "__main__":
    main()
