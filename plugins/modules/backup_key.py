#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: Lifeline contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
module: backup_key
short_description: Generate Lifeline encryption keys and tell which key a backup needs
version_added: 0.1.0
description:
  - With O(path), makes sure a key file exists there (mode 0600), holding an age identity
    (C(AGE-SECRET-KEY-1...)) or a 256-bit AES key (64 hex characters). An existing file is read,
    never overwritten, so the task is idempotent. Returns the public recipient and the key id.
  - Run it where the private key belongs (the controller, then move it into Ansible Vault or an
    AWX credential); hosts only ever get the public recipient.
  - With O(repositories), describes the backup chosen by O(point) instead, saying which key it needs
    and whether the O(identity) or O(aes_key) given can open it.
author:
  - Lifeline contributors (@lifeline-dr)
extends_documentation_fragment:
  - lifeline.dr.repository
  - lifeline.dr.repository.encryption
options:
  repositories:
    description: When given, describe a backup instead of generating a key.
    type: list
    elements: dict
    required: false
  type:
    description: Kind of key to generate.
    type: str
    default: age
    choices: [age, aes-256-gcm]
  path:
    description: Key file to create (0600) or read.
    type: path
  component:
    description: Component of the backup to describe.
    type: str
    default: postgres
  point:
    description: Backup to describe (C(latest), a backup id or an ISO-8601 time).
    type: str
    default: latest
attributes:
  check_mode:
    description: Reports whether the key file would be created; writes nothing.
    support: full
  diff_mode:
    description: Not applicable; nothing the module changes has a meaningful diff.
    support: none
seealso:
  - module: lifeline.dr.postgres_backup
"""

EXAMPLES = r"""
- name: Create the site's age identity on the controller (once)
  lifeline.dr.backup_key:
    path: "{{ playbook_dir }}/../secrets/lifeline-identity.txt"
  delegate_to: localhost
  register: lifeline_key

- name: Which key does db1's newest backup need, and does ours open it?
  lifeline.dr.backup_key:
    host: db1
    repositories: "{{ lifeline_repositories }}"
    identity: "{{ vault_lifeline_identity }}"
  register: needed
"""

RETURN = r"""
recipient:
  description: The age public key to give hosts (age keys only).
  returned: when O(path) is given and O(type=age)
  type: str
  sample: age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p
key_id:
  description: What manifests record for this key (age recipients, or C(aes:<16 hex>)).
  returned: always
  type: list
  elements: str
  sample: ["aes:9f86d081884c7d65"]
backup_id:
  description: The backup described.
  returned: when O(repositories) is given
  type: str
  sample: 20261123T020000Z-4f2a
encryption:
  description: Encryption of the backup described.
  returned: when O(repositories) is given
  type: str
  sample: age
can_decrypt:
  description: Whether the given identity or AES key matches what the backup was encrypted to.
  returned: when O(repositories) is given
  type: bool
  sample: true
"""

import os

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.lifeline.dr.plugins.module_utils import config, crypto
from ansible_collections.lifeline.dr.plugins.module_utils.errors import ConfigError
from ansible_collections.lifeline.dr.plugins.module_utils.module import (
    encryption_spec,
    merge,
    repository_spec,
    run,
)


def _key_file(module: AnsibleModule) -> dict:
    p = module.params
    path = p["path"]
    changed = False
    if os.path.exists(path):
        with open(path, encoding="utf-8") as fh:
            secret = "\n".join(l.strip() for l in fh if l.strip() and not l.startswith("#"))
    else:
        changed = True
        if module.check_mode:
            return {"changed": True, "key_id": [], "recipient": None}
        if p["type"] == "age":
            secret, _recipient = crypto.generate_age_identity()
        else:
            secret = crypto.generate_aes_key()
        os.makedirs(os.path.dirname(path) or ".", mode=0o700, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(secret + "\n")
    if p["type"] == "age":
        recipient = crypto.age_recipient(secret.splitlines()[0])
        return {"changed": changed, "recipient": recipient,
                "key_id": crypto.key_id(crypto.Encryption.AGE, recipients=[recipient])}
    return {"changed": changed, "key_id": crypto.key_id(crypto.Encryption.AES_GCM, aes_key=secret)}


def _describe(module: AnsibleModule) -> dict:
    p = module.params
    entry = config.catalog(p).select(site=p["site"], host=config.host_name(p),
                                     component=p["component"], point=p["point"])
    m = entry.manifest
    codec = config.codec(p)
    if m.encryption == "age":
        ours = set(crypto.age_recipient(i) for i in codec.identities)
        can = bool(ours & set(m.key_id))
    elif m.encryption == "aes-256-gcm":
        can = bool(codec.aes_key) and crypto.key_id(crypto.Encryption.AES_GCM, aes_key=codec.aes_key) == m.key_id
    else:
        can = True
    return {"changed": False, "backup_id": m.backup_id, "encryption": m.encryption,
            "key_id": m.key_id, "can_decrypt": can}


def main() -> None:
    spec = merge(repository_spec(), encryption_spec(), dict(
        type=dict(type="str", default="age", choices=["age", "aes-256-gcm"]),
        path=dict(type="path"),
        component=dict(type="str", default="postgres"),
        point=dict(type="str", default="latest"),
    ))
    spec["repositories"] = dict(spec["repositories"], required=False)
    module = AnsibleModule(argument_spec=spec, supports_check_mode=True,
                           required_one_of=[("path", "repositories")],
                           mutually_exclusive=[("path", "repositories")])

    def work() -> dict:
        if module.params["path"]:
            return _key_file(module)
        if not module.params["repositories"]:
            raise ConfigError("give path (to generate a key) or repositories (to describe a backup)")
        return _describe(module)
    run(module, work, changed=False)


if __name__ == "__main__":
    main()
