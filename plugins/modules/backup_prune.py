#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: Lifeline contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
module: backup_prune
short_description: Apply GFS retention to one host's Lifeline backups and clear leftovers
version_added: 0.2.0
description:
  - Keeps, per site, host and component, the newest backup of each of the last O(keep_daily)
    days, O(keep_weekly) ISO weeks and O(keep_monthly) months that hold a backup, ordered by the
    manifest's own C(finished) time (never an object's modification time), and deletes the rest
    from every repository that holds them, the manifest first and then the artifacts.
  - Never deletes the newest trusted backup of a series (restorable, schema-only, data-only,
    safety), a pinned backup (a label in O(pin_labels) or an entry of O(pins)), any member of a
    chain a kept incremental needs, a backup whose manifest is unsigned or does not verify, a
    backup of another host, a directory a backup is still writing, or anything at all when a
    listing or a manifest read fails or when the component's last backup run failed.
  - Also removes leftovers older than O(orphan_age_hours) below the host's prefix (backup
    directories without a manifest, C(.lifeline-tmp-*) temp files and unfinished S3 multipart uploads).
  - Takes the same per-component lock the backup modules take, so it never races a running backup.
  - In check mode it is a dry run that returns the whole plan, with a reason for every backup and
    the bytes the run would free.
author:
  - Lifeline contributors (@lifeline-dr)
requirements:
  - python >= 3.9
  - cryptography (Debian python3-cryptography), to check manifest signatures
  - boto3 (Debian python3-boto3), for S3 repositories
notes:
  - Run it on the backed-up host (as playbooks/prune.yml does), with S3 credentials that may
    delete; the hosts' backup credentials need not.
  - PITR (pgBackRest or WAL-G) repositories keep their own retention (pgBackRest C(expire),
    O(lifeline.dr.postgres_pitr#module:retention_full)); this module never touches them.
  - With S3 versioning (and so with object lock) a delete leaves a delete marker; the locked or
    noncurrent versions stay until their retention or the bucket's noncurrent-version expiration
    ends. A delete the store refuses (for example AccessDenied) is reported in RV(errors), and the
    copy whose manifest could not be deleted is left whole.
  - See docs/retention.md for the rules and how they relate to lifecycle rules and object lock.
extends_documentation_fragment:
  - lifeline.dr.repository
options:
  components:
    description:
      - Components to prune. Defaults to every component Lifeline knows.
    type: list
    elements: str
  keep_daily:
    description: Days (that hold a backup) whose newest backup is kept.
    type: int
    default: 7
  keep_weekly:
    description: ISO weeks (that hold a backup) whose newest backup is kept.
    type: int
    default: 4
  keep_monthly:
    description: Months (that hold a backup) whose newest backup is kept.
    type: int
    default: 12
  pins:
    description:
      - Backups to keep whatever the policy says, as backup id -> C(YYYY-MM-DD) (kept through that
        UTC day) or C(forever). Pins live in your inventory, not in the bucket, so whoever can
        write to the bucket cannot remove them.
    type: dict
    default: {}
  pin_labels:
    description: Manifest labels that pin a backup for good.
    type: list
    elements: str
    default: [keep]
  remove_orphans:
    description: Remove leftovers (directories without a manifest, temp files, multipart uploads).
    type: bool
    default: true
  orphan_age_hours:
    description: How old a leftover must be before it is removed (at least 1).
    type: int
    default: 24
  lock_timeout:
    description: Seconds to wait for a running backup of the same component to finish.
    type: int
    default: 0
attributes:
  check_mode:
    description: A dry run; returns the plan and deletes nothing (no lock file either).
    support: full
  diff_mode:
    description: Not applicable; the plan in RV(plan) is the difference.
    support: none
seealso:
  - module: lifeline.dr.backup_info
  - module: lifeline.dr.backup_verify
  - module: lifeline.dr.postgres_pitr
"""

EXAMPLES = r"""
- name: Show what the default policy would delete on db1 (dry run)
  lifeline.dr.backup_prune:
    repositories: "{{ lifeline_repositories }}"
    trusted_signers: "{{ lifeline_trusted_signers }}"
    site: fra
  check_mode: true
  register: prune_plan

- name: Prune files and secrets backups to 14 dailies, keeping a pinned backup until the audit
  lifeline.dr.backup_prune:
    repositories: "{{ lifeline_repositories }}"
    trusted_signers: "{{ lifeline_trusted_signers }}"
    site: fra
    components: [files, secrets]
    keep_daily: 14
    keep_weekly: 0
    keep_monthly: 6
    pins:
      20261123T020000Z-4f2a: "2027-03-31"
    lock_timeout: 600
"""

RETURN = r"""
status:
  description: C(planned) in check mode, C(ok), or C(partial) when a component was skipped or a delete failed.
  returned: success
  type: str
  sample: ok
plan:
  description: Every backup found, newest first per component, with the decision and its reasons.
  returned: success
  type: list
  elements: dict
  contains:
    component:
      description: Component of the backup.
      type: str
      sample: postgres
    backup_id:
      description: The backup.
      type: str
      sample: 20261123T020000Z-4f2a
    kind:
      description: Kind from the manifest (null when the manifest is not trusted).
      type: str
      sample: full
    finished:
      description: When the backup finished, from its manifest (the order retention uses).
      type: str
      sample: "2026-11-23T02:04:11.201Z"
    parent_id:
      description: The parent an incremental backup needs.
      type: str
      sample: null
    action:
      description: C(keep) or C(delete).
      type: str
      sample: delete
    reasons:
      description: Why it is kept (each rule that keeps it) or why it goes.
      type: list
      elements: str
      sample: ["daily 2026-11-23", "weekly 2026-W48"]
    bytes:
      description: Stored bytes of its artifacts in all repositories holding it.
      type: int
      sample: 1048576
    repositories:
      description: Repositories holding a trusted copy.
      type: list
      elements: str
      sample: [local, s3]
  sample: [{component: postgres, backup_id: 20261123T020000Z-4f2a, action: keep, reasons: [newest restorable backup]}]
orphans:
  description: Leftovers found below the host's prefix, with what was done.
  returned: success
  type: list
  elements: dict
  contains:
    component:
      description: Component whose prefix holds it.
      type: str
      sample: files
    repository:
      description: Repository holding it.
      type: str
      sample: s3
    what:
      description: C(backup directory without a manifest), C(temp file), C(temp object) or C(multipart upload).
      type: str
      sample: multipart upload
    key:
      description: Its key (a directory's prefix ends with C(/)).
      type: str
      sample: fra/db1/files/20261122T020000Z-77aa/
    action:
      description: C(delete) or C(keep).
      type: str
      sample: delete
    bytes:
      description: Bytes it frees (0 for a multipart upload, whose parts are not listed).
      type: int
      sample: 52428800
    reason:
      description: Its age, and why it is kept if it is.
      type: str
      sample: written 3.0 days ago
  sample: []
freed_bytes:
  description: Bytes deleted (or, in check mode, that would be).
  returned: success
  type: int
  sample: 734003200
deleted:
  description: Backups whose manifest was deleted from every repository holding them (0 in check mode).
  returned: success
  type: int
  sample: 3
skipped:
  description: Components left alone, with the reason (for example a failed last backup run).
  returned: success
  type: dict
  sample: {postgres: "its last backup run failed (...): prune waits for a successful backup"}
errors:
  description: Deletes that failed (the backup's manifest is deleted first, so it is never half a backup).
  returned: success
  type: list
  elements: str
  sample: []
warnings:
  description: Copies and keys prune could not trust or place, left alone.
  returned: success
  type: list
  elements: str
  sample: []
error:
  description: The class of the engine error (for example C(RepositoryError), C(LockedError)); C(msg) names the cause.
  returned: failure
  type: str
  sample: RepositoryError
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.lifeline.dr.plugins.module_utils.module import merge, repository_spec, run
from ansible_collections.lifeline.dr.plugins.module_utils.prune import prune_with


def prune(module: AnsibleModule) -> dict:
    report = prune_with(module.params, check_mode=module.check_mode)
    for warning in report["warnings"]:
        module.warn(warning)
    for component, why in report["skipped"].items():
        module.warn("%s not pruned: %s" % (component, why))
    for error in report["errors"]:
        module.warn(error)
    return report


def main() -> None:
    module = AnsibleModule(
        argument_spec=merge(repository_spec(), dict(
            components=dict(type="list", elements="str"),
            keep_daily=dict(type="int", default=7),
            keep_weekly=dict(type="int", default=4),
            keep_monthly=dict(type="int", default=12),
            pins=dict(type="dict", default={}),
            pin_labels=dict(type="list", elements="str", default=["keep"]),
            remove_orphans=dict(type="bool", default=True),
            orphan_age_hours=dict(type="int", default=24),
            lock_timeout=dict(type="int", default=0),
        )),
        supports_check_mode=True,
    )
    run(module, lambda: prune(module), changed=False)


if __name__ == "__main__":
    main()
