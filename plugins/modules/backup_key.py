#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: Lifeline contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
module: backup_key
short_description: Generate Lifeline keys and tell which key a backup needs
version_added: 0.1.0
description:
  - With O(path), makes sure a key file exists there (mode 0600), holding an age identity
    (C(AGE-SECRET-KEY-1...)), a 256-bit AES key (64 hex characters) or a host's Ed25519 manifest
    signing key (PEM, PKCS#8). An existing file is read, never overwritten, so the task is
    idempotent. Returns the public half (age recipient or signing public key) and the key id.
  - Run it where the private key belongs (the controller, then move it into Ansible Vault or an
    AWX credential); hosts only ever get the public recipient, and each host only its own
    signing key.
  - Without O(path), describes the backup of O(host) chosen by O(point) in O(repositories),
    saying which key it needs and whether the O(identity) or O(aes_key) given can open it.
    C(restore-site.yml) runs this before it installs anything.
author:
  - Lifeline contributors (@lifeline-dr)
requirements:
  - python >= 3.9
  - cryptography (Debian python3-cryptography), for age and Ed25519 keys and to read signed manifests
  - boto3 (Debian python3-boto3), only to describe a backup in an S3 repository
notes:
  - O(path) decides the mode. With O(path) the repository options are ignored, so a play's
    C(module_defaults) for the C(group/lifeline.dr.lifeline) action group may set
    O(repositories) for every module, this one included.
  - The secret is never returned; only public keys and key ids are.
extends_documentation_fragment:
  - lifeline.dr.repository
  - lifeline.dr.repository.encryption
options:
  repositories:
    description:
      - Where the backup to describe is stored (see the other modules). Only used without O(path).
    type: list
    elements: dict
    required: false
  type:
    description:
      - Kind of key to generate or read at O(path). C(age) and C(aes-256-gcm) encrypt backups;
        C(ed25519) signs a host's manifests (its public key goes into C(lifeline_trusted_signers)).
    type: str
    default: age
    choices: [age, aes-256-gcm, ed25519]
  path:
    description: Key file to create (0600, its directory 0700) or read.
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
  - module: lifeline.dr.postgres_restore
  - module: lifeline.dr.backup_info
"""

EXAMPLES = r"""
- name: Create the site's age identity on the controller (once)
  lifeline.dr.backup_key:
    path: "{{ playbook_dir }}/../secrets/lifeline-identity.txt"
  delegate_to: localhost
  register: lifeline_key

- name: Create db1's manifest signing key on the controller (once; then into the vault)
  lifeline.dr.backup_key:
    path: "{{ playbook_dir }}/../secrets/db1-signing.pem"
    type: ed25519
  delegate_to: localhost
  register: db1_signing

- name: Which key does db1's newest backup need, and does ours open it?
  lifeline.dr.backup_key:
    host: db1
    repositories: "{{ lifeline_repositories }}"
    trusted_signers: "{{ lifeline_trusted_signers }}"
    identity: "{{ vault_lifeline_identity }}"
  register: needed

- name: Stop before anything changes when the identity cannot open that backup
  ansible.builtin.assert:
    that: needed.can_decrypt
    fail_msg: "backup {{ needed.backup_id }} needs one of {{ needed.key_id }}"
"""

RETURN = r"""
recipient:
  description: The age public key to give hosts. Null in check mode when the file does not exist yet.
  returned: when O(path) is given and O(type=age)
  type: str
  sample: age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p
public_key:
  description: The signing key's public half (PEM), for C(lifeline_trusted_signers). Null in check mode when the file does not exist yet.
  returned: when O(path) is given and O(type=ed25519)
  type: str
  sample: "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEA...\n-----END PUBLIC KEY-----\n"
key_id:
  description:
    - What manifests record for the key (age recipients, C(aes:<16 hex>) or C(ed25519:<32 hex>)).
    - With O(path), the key in the file (empty in check mode when the file does not exist yet);
      without, the keys the described backup was encrypted to.
  returned: always
  type: list
  elements: str
  sample: ["aes:9f86d081884c7d65"]
backup_id:
  description: The backup described.
  returned: when O(path) is not given
  type: str
  sample: 20261123T020000Z-4f2a
encryption:
  description: Encryption of the backup described (C(age), C(aes-256-gcm) or C(none)).
  returned: when O(path) is not given
  type: str
  sample: age
can_decrypt:
  description: Whether the given O(identity) or O(aes_key) matches what the backup was encrypted to.
  returned: when O(path) is not given
  type: bool
  sample: true
error:
  description: The class of the engine error (for example C(RepositoryError), C(UntrustedError)); C(msg) names the cause and the fix.
  returned: failure
  type: str
  sample: RepositoryError
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
from ansible_collections.lifeline.dr.plugins.module_utils.signing import Signer, generate_signing_key


def _read_secret(path: str, key_type: str) -> str:
    with open(path, encoding="utf-8") as fh:
        text = fh.read()
    if key_type == "ed25519":
        return text  # PEM: kept whole
    return "\n".join(line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#"))


def _new_secret(key_type: str) -> str:
    if key_type == "age":
        return crypto.generate_age_identity()[0]
    if key_type == "ed25519":
        return generate_signing_key()[0]
    return crypto.generate_aes_key()


def _public(key_type: str, secret: str | None) -> dict:
    if key_type == "age":
        if secret is None:
            return {"recipient": None, "key_id": []}
        recipient = crypto.age_recipient(secret.splitlines()[0])
        return {"recipient": recipient, "key_id": crypto.key_id(crypto.Encryption.AGE, recipients=[recipient])}
    if key_type == "ed25519":
        if secret is None:
            return {"public_key": None, "key_id": []}
        signer = Signer(secret)
        return {"public_key": signer.public_pem, "key_id": [signer.key_id]}
    if secret is None:
        return {"key_id": []}
    return {"key_id": crypto.key_id(crypto.Encryption.AES_GCM, aes_key=secret)}


def _key_file(module: AnsibleModule) -> dict:
    p = module.params
    path, key_type = p["path"], p["type"]
    if os.path.exists(path):
        try:
            secret = _read_secret(path, key_type)
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError("cannot read the key file %s: %s" % (path, getattr(exc, "strerror", None) or exc)) from None
        return dict(_public(key_type, secret), changed=False)
    if module.check_mode:
        return dict(_public(key_type, None), changed=True)
    secret = _new_secret(key_type)
    os.makedirs(os.path.dirname(path) or ".", mode=0o700, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(secret if secret.endswith("\n") else secret + "\n")
    return dict(_public(key_type, secret), changed=True)


def _describe(module: AnsibleModule) -> dict:
    p = module.params
    entry = config.catalog(p).select(site=p["site"], host=config.host_name(p),
                                     component=p["component"], point=p["point"])
    m = entry.manifest
    return {"changed": False, "backup_id": m.backup_id, "encryption": m.encryption,
            "key_id": m.key_id, "can_decrypt": config.codec(p).opens(m)}


def main() -> None:
    spec = merge(repository_spec(), encryption_spec(), dict(
        type=dict(type="str", default="age", choices=["age", "aes-256-gcm", "ed25519"]),
        path=dict(type="path"),
        component=dict(type="str", default="postgres"),
        point=dict(type="str", default="latest"),
    ))
    spec["repositories"] = dict(spec["repositories"], required=False)
    # No mutually_exclusive path/repositories: path decides the mode, so module_defaults may set
    # repositories for the whole lifeline action group.
    module = AnsibleModule(argument_spec=spec, supports_check_mode=True,
                           required_one_of=[("path", "repositories")])

    def work() -> dict:
        if module.params["path"]:
            return _key_file(module)
        if not module.params["repositories"]:
            raise ConfigError("give path (to generate a key) or repositories (to describe a backup)")
        return _describe(module)
    run(module, work, changed=False)


if __name__ == "__main__":
    main()
