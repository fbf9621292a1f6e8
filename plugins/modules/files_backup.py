#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: Lifeline contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
module: files_backup
short_description: Back up directories as GNU tar streams (full, then incremental) into Lifeline repositories
version_added: 0.2.0
description:
  - Writes the directories in O(paths) as one GNU tar stream (POSIX format) and streams it through
    compression and encryption into every repository; no plaintext copy is written to disk.
  - Owners, modes, mtimes, symlinks, hard links, ACLs, extended attributes (all namespaces),
    sparse files, names that are not UTF-8 and empty directories are kept. A full archive
    restores with stock tools (C(age -d | zstd -d | tar -x)), see docs/runbook.md.
  - Incremental backups use GNU tar's C(--listed-incremental) snapshot file, kept per site, host,
    paths and excludes under O(state_dir)C(/files/); each incremental names its parent backup
    (C(parent_id)). The snapshot advances only after the manifest is stored, so it never runs
    ahead of a backup that exists.
  - A file that vanishes, changes or cannot be read while tar reads it does not fail the run;
    the backup is stored, its status is C(partial), RV(skipped_paths) names every such path and the
    manifest records them. Such a run does not advance the snapshot, so the next incremental
    builds on the last complete backup and picks those files up again.
author:
  - Lifeline contributors (@lifeline-dr)
requirements:
  - python >= 3.9
  - GNU tar 1.30 or newer (Debian tar); Debian acl and attr to set ACLs and xattrs on restore
  - rsync 3.1 or newer (Debian rsync), for O(method=rsync); for an SSH O(rsync_target) rsync 3.2.3 or newer at both ends and SSH access to the target
  - cryptography (Debian python3-cryptography), to encrypt and to sign the manifest
  - zstandard (Debian python3-zstandard), for O(compression=zstd)
  - boto3 (Debian python3-boto3), for S3 repositories
notes:
  - Run as root (C(become)) to read every file and to keep owners.
  - Every manifest is signed with O(signing_key) (or O(signing_key_file)).
  - Check mode checks the paths and every repository and reports the plan (full or incremental on top of which backup).
  - Paths that could not be read never fail the task, whatever O(require_all_repositories) says; they are a
    warning and RV(skipped_paths).
extends_documentation_fragment:
  - lifeline.dr.repository
  - lifeline.dr.repository.encryption
  - lifeline.dr.repository.backup
options:
  paths:
    description: Absolute directories to back up (C(lifeline_files_paths)). Each must exist; none may contain another.
    type: list
    elements: path
    required: true
  exclude:
    description:
      - GNU tar C(--exclude) patterns (C(lifeline_files_exclude)), for example C(*.tmp) or
        C(/srv/app/cache). Changing them starts a new series (the next backup is full).
    type: list
    elements: str
    default: []
  level:
    description:
      - C(full) always writes a full archive; C(incremental) builds on the last committed backup of
        the same paths and fails when there is none; C(auto) is incremental when it can be, full otherwise.
    type: str
    default: auto
    choices: [auto, full, incremental]
  method:
    description:
      - C(tar) streams a GNU tar archive into the repositories (encrypted, full then incremental).
      - C(rsync) writes a browsable hard-link snapshot (C(rsync -aHAXS --link-dest) to the previous
        one) under O(rsync_target), I(not encrypted); the signed manifest (C(facts.location)), an
        encrypted change list and the encrypted file tree of the snapshot (each entry's type, mode,
        owner, content sha256 and xattrs, which a restore checks every file against) go to the
        repositories. Every rsync backup is C(full); O(level) is ignored.
    type: str
    default: tar
    choices: [tar, rsync]
  rsync_target:
    description:
      - For O(method=rsync), a local directory (letters, digits and C(._/+-) only; a mounted share for
        another machine). Snapshots land at C(<rsync_target>/<site>/<host>/<time>-<hex>/<path>).
      - Or an SSH target C([user@]host:/dir). Its file tree is hashed from the local sources after
        the copy, and a dry-run checksum compare of the sources with the remote snapshot
        (C(rsync -n -c)) must find no difference, else the backup fails naming the files that changed
        during it and commits nothing.
    type: str
  rsync_ssh_config:
    description:
      - For an SSH O(rsync_target), an ssh_config file rsync's ssh reads (C(ssh -F)) with C(Port),
        C(IdentityFile), C(UserKnownHostsFile) with C(StrictHostKeyChecking yes). Unset, the ssh
        configuration of the user the module runs as applies.
    type: path
attributes:
  check_mode:
    description: Checks the paths and every repository and reports what would be backed up; writes nothing.
    support: full
  diff_mode:
    description: Not applicable.
    support: none
seealso:
  - module: lifeline.dr.files_restore
  - module: lifeline.dr.backup_info
  - module: lifeline.dr.backup_verify
"""

EXAMPLES = r"""
- name: Back up uploads and configuration, incremental when possible
  lifeline.dr.files_backup:
    site: prod
    host: "{{ inventory_hostname }}"
    repositories: "{{ lifeline_repositories }}"
    recipients: "{{ lifeline_recipients }}"
    signing_key: "{{ lifeline_signing_key }}"
    paths: [/srv/app/uploads, /etc/app]
    exclude: ["*.tmp", /srv/app/uploads/cache]
  become: true
  register: files_backup

- name: Say which files could not be read
  ansible.builtin.debug:
    msg: "{{ files_backup.skipped_paths }}"
  when: files_backup.status == 'partial'

- name: Browsable hard-link snapshots on the backup server's share, mounted at /mnt/snapshots
  lifeline.dr.files_backup:
    repositories: "{{ lifeline_repositories }}"
    recipients: "{{ lifeline_recipients }}"
    signing_key: "{{ lifeline_signing_key }}"
    paths: "{{ lifeline_files_paths }}"
    method: rsync
    rsync_target: /mnt/snapshots
  become: true

- name: A full backup every Sunday
  lifeline.dr.files_backup:
    repositories: "{{ lifeline_repositories }}"
    recipients: "{{ lifeline_recipients }}"
    signing_key: "{{ lifeline_signing_key }}"
    paths: "{{ lifeline_files_paths }}"
    level: full
  become: true
"""

RETURN = r"""
backup_id:
  description: Id of the new backup. Null in check mode.
  returned: always
  type: str
  sample: 20261123T020000Z-4f2a
status:
  description:
    - C(ok); C(partial) (stored, but in some repositories only, or some paths could not be read, see
      RV(skipped_paths)); C(failed); C(planned) (check mode); C(skipped) (O(min_interval)).
  returned: always
  type: str
  sample: partial
message:
  description: What is missing from a partial backup or what went wrong; empty when all went well.
  returned: always
  type: str
  sample: "backup 20261123T020000Z-4f2a 1 path(s) could not be read and are not in it: /srv/app/uploads/x.log (file changed as we read it)"
skipped_paths:
  description: Paths tar could not read whole (vanished, changed while read, unreadable), mapped to the cause.
  returned: always
  type: dict
  sample: {/srv/app/uploads/x.log: file changed as we read it}
stored_in:
  description: Repositories that hold the complete backup (or would, in check mode).
  returned: always
  type: list
  elements: str
  sample: [local, s3]
failed_repositories:
  description: Repositories that could not store it, mapped to the cause.
  returned: always
  type: dict
  sample: {}
plan:
  description: What a run backs up (check mode), one line per path.
  returned: always
  type: list
  elements: str
  sample: ["path /srv/app/uploads (incremental on top of 20261122T020000Z-1a2b)"]
kind:
  description: C(full) or C(incremental).
  returned: success and not check mode
  type: str
  sample: incremental
parent_id:
  description: The backup an incremental builds on; null for a full one.
  returned: success and not check mode
  type: str
  sample: 20261122T020000Z-1a2b
paths:
  description: The directories backed up.
  returned: success and not check mode
  type: list
  elements: str
  sample: [/etc/app, /srv/app/uploads]
members:
  description: Entries (files, directories, links) in this archive; an incremental holds the changed ones and every directory.
  returned: success and not check mode
  type: int
  sample: 20412
bytes:
  description: Bytes of regular-file data in this archive.
  returned: success and not check mode
  type: int
  sample: 1073741824
consistent_at:
  description: The moment the backed-up data represents (UTC); the run's start, as files may change during it.
  returned: success and not check mode
  type: str
  sample: "2026-11-23T02:00:00Z"
artifacts:
  description: Stored artifacts with their stored and source sizes.
  returned: success and not check mode
  type: list
  elements: dict
  contains:
    name:
      description: Artifact name in the backup directory.
      type: str
    size:
      description: Bytes stored (compressed and encrypted).
      type: int
    plain_size:
      description: Bytes of the tar stream (or rsync change list).
      type: int
    members:
      description: Entries in the archive (tar) or below the paths (rsync snapshot).
      type: int
  sample: [{name: files.tar.zst.age, size: 412345, plain_size: 3456789, members: 20412}]
error:
  description: The class of the engine error; C(msg) names the cause and the fix.
  returned: failure
  type: str
  sample: SourceError
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
    repository_spec,
    run,
)


def backup(module: AnsibleModule) -> dict:
    p = module.params
    outcome = run_backup(components.get("files").backup(p), config.repositories(p), config.codec(p), site=p["site"],
                         host=config.host_name(p), state_dir=config.state_dir(p), signer=config.signer(p),
                         lock_wait=p["lock_timeout"], check_mode=module.check_mode, labels=p["labels"],
                         min_interval=config.min_interval(p))
    result = backup_result(module, outcome, require_all=p["require_all_repositories"], meta_key="members")
    result["skipped_paths"] = outcome.skipped
    if outcome.skipped and not outcome.failed:  # backup_result warned about repositories already
        module.warn(outcome.message)
    if outcome.manifest:
        m = outcome.manifest
        result.update(kind=m.kind, parent_id=m.parent_id, paths=m.facts.get("paths", []),
                      members=m.facts.get("members"), bytes=m.facts.get("bytes"))
    return result


def main() -> None:
    module = AnsibleModule(
        argument_spec=merge(repository_spec(), encryption_spec(), backup_spec(), dict(
            paths=dict(type="list", elements="path", required=True),
            exclude=dict(type="list", elements="str", default=[]),
            level=dict(type="str", default="auto", choices=["auto", "full", "incremental"]),
            method=dict(type="str", default="tar", choices=["tar", "rsync"]),
            rsync_target=dict(type="str"),
            rsync_ssh_config=dict(type="path"),
        )),
        required_if=[("method", "rsync", ["rsync_target"])],
        supports_check_mode=True,
    )
    run(module, lambda: backup(module), **BACKUP_FAILED, skipped_paths={})


if __name__ == "__main__":
    main()
