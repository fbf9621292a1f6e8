#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: Lifeline contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
module: secrets_backup
short_description: Back up named secret files (env files, TLS keys, credentials), always encrypted
version_added: 0.2.0
description:
  - Backs up each file in O(paths) as its own encrypted artifact, with its owner and group (names
    and numeric ids) and its mode, into every repository. The plaintext never touches disk.
  - Always encrypted; O(encryption=none) is refused before anything runs.
  - The manifest records paths, owners, modes, sizes and the hashes of the encrypted artifacts
    only. The sha256 of each file's content, which the restore checks what it wrote against,
    is stored in an encrypted artifact of its own (C(digests.json)), never in the manifest, as a
    plain hash of a short password could be brute-forced from a readable manifest.
  - Each path must be absolute and name a regular file. A symlink at the path is refused (it is
    never followed), as are directories, devices, FIFOs and files with setuid, setgid or sticky
    bits. A file whose mode is not C(0600) or C(0400) is backed up with a task warning naming it.
  - File contents are never returned, logged or shown in check mode.
author:
  - Lifeline contributors (@lifeline-dr)
requirements:
  - python >= 3.9
  - cryptography (Debian python3-cryptography), to encrypt and to sign the manifest
  - zstandard (Debian python3-zstandard), for O(compression=zstd)
  - boto3 (Debian python3-boto3), for S3 repositories
notes:
  - Every manifest is signed with O(signing_key) (or O(signing_key_file)); restores accept it only
    where the key's public half is in O(trusted_signers) for this O(host).
  - Run it as a user that can read the files (usually C(become=true)).
  - The playbooks map C(lifeline_secrets_paths) to O(paths).
extends_documentation_fragment:
  - lifeline.dr.repository
  - lifeline.dr.repository.encryption
  - lifeline.dr.repository.backup
options:
  paths:
    description:
      - Absolute paths of the secret files to back up (not directories; back those up with the
        files component). Duplicates are backed up once.
    type: list
    elements: path
    required: true
attributes:
  check_mode:
    description: Opens every file and checks every repository; reports the paths that would be backed up; writes nothing.
    support: full
  diff_mode:
    description: Not supported; a diff would show secret contents.
    support: none
seealso:
  - module: lifeline.dr.secrets_restore
  - module: lifeline.dr.backup_info
  - module: lifeline.dr.backup_verify
"""

EXAMPLES = r"""
- name: Back up the application's environment file and TLS key
  lifeline.dr.secrets_backup:
    site: prod
    host: "{{ inventory_hostname }}"
    repositories: "{{ lifeline_repositories }}"
    recipients: "{{ lifeline_recipients }}"
    signing_key: "{{ lifeline_signing_key }}"
    paths:
      - /etc/myapp/env
      - /etc/ssl/private/myapp.key
  become: true

- name: Which secret files would tonight's backup take?
  lifeline.dr.secrets_backup:
    repositories: "{{ lifeline_repositories }}"
    recipients: "{{ lifeline_recipients }}"
    signing_key: "{{ lifeline_signing_key }}"
    paths: "{{ lifeline_secrets_paths }}"
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
  sample: ""
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
  description: What a run backs up (check mode), one C(secret <path>) per file.
  returned: always
  type: list
  elements: str
  sample: [secret /etc/myapp/env]
artifacts:
  description: Stored artifacts (one per file, and C(digests.json)) with sizes; never contents or digests.
  returned: success and not check mode
  type: list
  elements: dict
  contains:
    name:
      description: Artifact name in the backup directory.
      type: str
      sample: secret-0001.zst.age
    size:
      description: Bytes stored (compressed and encrypted).
      type: int
      sample: 226
    plain_size:
      description: Bytes of the file.
      type: int
      sample: 17
    path:
      description: The file the artifact holds; null for C(digests.json).
      type: str
      sample: /etc/myapp/env
  sample: [{name: secret-0001.zst.age, size: 226, plain_size: 17, path: /etc/myapp/env}]
paths:
  description: Files backed up.
  returned: success and not check mode
  type: list
  elements: str
  sample: [/etc/myapp/env]
consistent_at:
  description: When the last file was read (UTC).
  returned: success and not check mode
  type: str
  sample: "2026-11-23T02:00:04Z"
error:
  description: The class of the engine error (for example C(ConfigError) for O(encryption=none) or a symlink); C(msg) names the cause and the fix.
  returned: failure
  type: str
  sample: ConfigError
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
    component = components.get("secrets").backup(p)
    try:
        outcome = run_backup(component, config.repositories(p), config.codec(p), site=p["site"],
                             host=config.host_name(p), state_dir=config.state_dir(p), signer=config.signer(p),
                             lock_wait=p["lock_timeout"], check_mode=module.check_mode, labels=p["labels"],
                             min_interval=config.min_interval(p))
    finally:
        for warning in component.warnings:
            module.warn(warning)
    result = backup_result(module, outcome, require_all=p["require_all_repositories"], meta_key="path")
    if outcome.manifest:
        result["paths"] = outcome.manifest.facts.get("paths", [])
    return result


def main() -> None:
    module = AnsibleModule(
        argument_spec=merge(repository_spec(), encryption_spec(), backup_spec(), dict(
            paths=dict(type="list", elements="path", required=True),
        )),
        supports_check_mode=True,
    )
    run(module, lambda: backup(module), **BACKUP_FAILED)


if __name__ == "__main__":
    main()
