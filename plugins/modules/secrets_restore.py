#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: Lifeline contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
module: secrets_restore
short_description: Restore secret files from a Lifeline backup with their owners and modes, atomically
version_added: 0.2.0
description:
  - Picks a secrets backup of O(host) (the source) by O(point) and writes every file it holds to
    its original path under O(root) (a file backed up at C(/a/b) lands at C(<root>/a/b)).
  - Each file is decrypted straight into an exclusive temporary file in its target directory,
    given its recorded owner and mode, fsynced and read back against the content digest the
    backup carries (encrypted); only when every file got that far are they renamed over their
    targets. A failure before that leaves every existing file as it was and removes the
    temporaries and the directories the restore created.
  - Missing parent directories are created with mode C(0700). Nothing is written through a
    symlink; a symlink anywhere below O(root) on a file's path is refused.
  - An existing file with the same content is left alone (C(unchanged); only its owner and mode
    are corrected, C(attributes)). An existing file with other content (or a symlink in its
    place) is replaced only with O(replace=true); without it the task fails and nothing changes.
  - Owners are restored by name where the name exists on this host (its id may differ from the
    source's); otherwise by the recorded numeric id, with a task warning. When that id belongs to
    another account here, the restore is refused (that account would read the secret).
  - A manifest is input from a stranger until checked. A relative or unnormalised path, C(..), a
    NUL byte, a mode with setuid, setgid or sticky bits, a backup stored without encryption or
    anything but secret files is refused before anything is written.
  - Contents and digests are never returned, logged or shown in check mode.
author:
  - Lifeline contributors (@lifeline-dr)
requirements:
  - python >= 3.9
  - cryptography (Debian python3-cryptography), to check manifest signatures and decrypt
  - zstandard (Debian python3-zstandard), for zstd-compressed backups
  - boto3 (Debian python3-boto3), for S3 repositories
notes:
  - The backup is accepted only when its manifest's signature verifies with a key in
    O(trusted_signers) for O(host) (or, with O(allow_unsigned), when it is unsigned).
  - O(host) is the B(source) whose backup is restored, not the machine restored onto.
  - Restoring other owners than the connecting user needs root (C(become=true)).
  - Check mode decrypts the small digests artifact to tell C(unchanged) from C(replace), so it
    needs O(identity) (or O(aes_key)) like a real run.
  - The playbooks map C(lifeline_files_restore_root) to O(root) and C(lifeline_restore_replace) to O(replace).
extends_documentation_fragment:
  - lifeline.dr.repository
  - lifeline.dr.repository.encryption
options:
  point:
    description:
      - Which backup. C(latest), a backup id, or an ISO-8601 time meaning the newest backup taken
        at or before that time.
    type: str
    default: latest
  root:
    description: Directory the files are restored under; C(/) puts them back at their original paths.
    type: path
    default: /
  replace:
    description: Replace existing files whose content differs from the backup's.
    type: bool
    default: false
  allowed_paths:
    description:
      - The paths secret files may be restored from, as configured for the source host on the
        restoring side (restore-site.yml passes its C(lifeline_secrets_paths)); a backed-up path that
        is not one of them (or below one) is refused before anything is read or written, so a stolen
        host signing key cannot make a restore write, say, C(/etc/cron.d/x).
      - Unset, every path the signed manifest names is restored; an empty list allows none.
    type: list
    elements: str
attributes:
  check_mode:
    description: Resolves the backup and lists each file with its path, mode, owner and action; writes nothing.
    support: full
  diff_mode:
    description: Not supported; a diff would show secret contents.
    support: none
seealso:
  - module: lifeline.dr.secrets_backup
  - module: lifeline.dr.backup_info
"""

EXAMPLES = r"""
- name: Put app1's secret files back where they were
  lifeline.dr.secrets_restore:
    host: app1
    repositories: "{{ lifeline_repositories }}"
    trusted_signers: "{{ lifeline_trusted_signers }}"
    identity: "{{ vault_lifeline_identity }}"
  become: true

- name: Restore them under /srv/restore to compare by hand, replacing an earlier attempt
  lifeline.dr.secrets_restore:
    host: app1
    repositories: "{{ lifeline_repositories }}"
    trusted_signers: "{{ lifeline_trusted_signers }}"
    identity: "{{ vault_lifeline_identity }}"
    root: /srv/restore
    replace: true
  become: true

- name: Which secret files would be created or replaced?
  lifeline.dr.secrets_restore:
    host: app1
    repositories: "{{ lifeline_repositories }}"
    trusted_signers: "{{ lifeline_trusted_signers }}"
    identity: "{{ vault_lifeline_identity }}"
  check_mode: true
  register: secrets_plan
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
  sample: app1
site:
  description: The site of the backup.
  returned: success and not check mode
  type: str
  sample: prod
plan:
  description: What the restore does (or would do, in check mode); never contents or digests.
  returned: success
  type: dict
  contains:
    root:
      description: The restore root.
      type: str
      sample: /
    files:
      description:
        - One entry per file. C(action) is C(create), C(replace), C(attributes) (same content,
          owner or mode corrected) or C(unchanged).
      type: list
      elements: dict
      contains:
        path:
          description: Where the file lands (under O(root)).
          type: str
          sample: /etc/myapp/env
        source_path:
          description: The path it was backed up from.
          type: str
          sample: /etc/myapp/env
        mode:
          description: The mode it gets, in octal.
          type: str
          sample: "0600"
        owner:
          description: The recorded owner name (null when the source had none for its id).
          type: str
          sample: myapp
        group:
          description: The recorded group name (null when the source had none for its id).
          type: str
          sample: myapp
        uid:
          description: The owner's id on this host (the name's id here, else the recorded id).
          type: int
          sample: 998
        gid:
          description: The group's id on this host.
          type: int
          sample: 998
        action:
          description: C(create), C(replace), C(attributes) or C(unchanged).
          type: str
          sample: create
  sample: {root: /, files: [{path: /etc/myapp/env, source_path: /etc/myapp/env, mode: "0600", owner: myapp,
                             group: myapp, uid: 998, gid: 998, action: create}]}
files:
  description: The plan's entries after the run, each with what was verified.
  returned: success and not check mode
  type: list
  elements: dict
  contains:
    path:
      description: Where the file lands (under O(root)).
      type: str
      sample: /etc/myapp/env
    source_path:
      description: The path it was backed up from.
      type: str
      sample: /etc/myapp/env
    mode:
      description: The mode it gets, in octal.
      type: str
      sample: "0600"
    owner:
      description: The recorded owner name (null when the source had none for its id).
      type: str
      sample: myapp
    group:
      description: The recorded group name (null when the source had none for its id).
      type: str
      sample: myapp
    uid:
      description: The owner's id on this host (the name's id here, else the recorded id).
      type: int
      sample: 998
    gid:
      description: The group's id on this host.
      type: int
      sample: 998
    action:
      description: C(create), C(replace), C(attributes) or C(unchanged).
      type: str
      sample: create
    verified:
      description: True when the file on disk was checked against the backup (a mismatch fails the task).
      type: bool
      sample: true
    checks:
      description: What was compared, in words; never contents or digests.
      type: list
      elements: str
      sample: ["written and read back: content matches the digest the backup carries"]
  sample: [{path: /etc/myapp/env, source_path: /etc/myapp/env, mode: "0600", owner: myapp, group: myapp,
            uid: 998, gid: 998, action: create, verified: true,
            checks: ["written and read back: content matches the digest the backup carries",
                     "17 bytes, as in the manifest", "mode 0600, owner 998:998"]}]
verified:
  description: True when every file was checked on disk against the backup (a mismatch fails the task).
  returned: success and not check mode
  type: bool
  sample: true
checks:
  description: One line per file saying what was compared; never contents or digests.
  returned: success and not check mode
  type: list
  elements: str
  sample: ["/etc/myapp/env (create): written and read back: content matches the digest the backup carries;
            17 bytes, as in the manifest; mode 0600, owner 998:998"]
root:
  description: The restore root.
  returned: success and not check mode
  type: str
  sample: /
phases:
  description: Seconds spent per phase (plan, fetch, verify, swap).
  returned: success and not check mode
  type: dict
  sample: {plan: 0.1, fetch: 0.2, verify: 0.01, swap: 0.01}
total_seconds:
  description: Duration of the restore (the RTO of this step).
  returned: success and not check mode
  type: float
  sample: 0.4
restore_point_age_seconds:
  description: Seconds between the moment the backup was taken and now.
  returned: success and not check mode
  type: int
  sample: 3600
consistent_at:
  description: When the backup read its last file.
  returned: success
  type: str
  sample: "2026-11-23T02:00:04Z"
served_by:
  description: Repositories the artifacts were read from.
  returned: success and not check mode
  type: list
  elements: str
  sample: [local]
error:
  description: The class of the engine error (for example C(RestoreError), C(UntrustedError)); C(msg) names the cause and the fix.
  returned: failure
  type: str
  sample: RestoreError
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.lifeline.dr.plugins.module_utils import components, config
from ansible_collections.lifeline.dr.plugins.module_utils.module import (
    encryption_spec,
    merge,
    repository_spec,
    run,
)


def restore(module: AnsibleModule) -> dict:
    p = module.params
    secrets = components.get("secrets")
    catalog = config.catalog(p)
    entry = catalog.select(site=p["site"], host=config.host_name(p), component=secrets.name, point=p["point"])
    for warning in catalog.warnings:
        module.warn(warning)
    job = secrets.restore(entry, config.codec(p), p)
    if module.check_mode:
        plan = job.plan()
        for warning in job.warnings:
            module.warn(warning)
        return {"changed": any(f["action"] != "unchanged" for f in plan["files"]), "plan": plan,
                "backup_id": entry.manifest.backup_id, "consistent_at": entry.manifest.consistent_at}
    report = job.run()
    for warning in report.pop("warnings"):
        module.warn(warning)
    return report


def main() -> None:
    module = AnsibleModule(
        argument_spec=merge(repository_spec(), encryption_spec(), dict(
            point=dict(type="str", default="latest"),
            root=dict(type="path", default="/"),
            replace=dict(type="bool", default=False),
            allowed_paths=dict(type="list", elements="str"),
        )),
        supports_check_mode=True,
    )
    run(module, lambda: restore(module), changed=False)


if __name__ == "__main__":
    main()
