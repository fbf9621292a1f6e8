# -*- coding: utf-8 -*-
# Copyright: Lifeline contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  repositories:
    description:
      - Where backups are stored, in order of preference. A backup is written to every entry
        (local and S3 give the 3-2-1 rule without running the backup twice); a restore reads from
        the first entry that holds an intact copy and falls back to the next.
      - Each entry is either O(repositories[].path) (a local directory) or O(repositories[].s3).
    type: list
    elements: dict
    required: true
    suboptions:
      name:
        description: A short name used in messages and results. Defaults to C(repoN).
        type: str
      path:
        description: Absolute path of a local repository directory (created 0700).
        type: path
      s3:
        description: An S3 bucket and prefix, on AWS or any S3-compatible endpoint.
        type: dict
        suboptions:
          bucket:
            description: Bucket name.
            type: str
            required: true
          prefix:
            description: Key prefix inside the bucket.
            type: str
            default: ''
          endpoint_url:
            description: Endpoint for S3-compatible stores (MinIO, Ceph, Garage). Leave unset for AWS.
            type: str
          region:
            description: Region of the bucket. Defaults to C(us-east-1).
            type: str
          access_key:
            description: Access key id. Unset means the host's default credential chain.
            type: str
          secret_key:
            description: Secret access key.
            type: str
          session_token:
            description: Session token for temporary credentials.
            type: str
          addressing_style:
            description: C(path) for stores that need path-style URLs.
            type: str
            default: auto
            choices: [auto, path, virtual]
          verify_tls:
            description: Verify the endpoint's TLS certificate. Only turn off for test endpoints.
            type: bool
            default: true
          ca_bundle:
            description: CA bundle to verify a private endpoint's certificate.
            type: path
          storage_class:
            description: Storage class for data objects (for example C(STANDARD_IA)).
            type: str
          server_side_encryption:
            description: Server-side encryption to request (C(AES256) or C(aws:kms)); data is encrypted client-side regardless.
            type: str
          part_size_mb:
            description: Multipart part size in MiB (fixed for every part; R2 needs equal parts). Bounds memory to about three parts.
            type: int
            default: 16
          connect_timeout:
            description: Seconds to wait for a connection before retrying.
            type: int
            default: 10
          read_timeout:
            description: Seconds to wait for a response before retrying, so an unreachable endpoint fails instead of hanging.
            type: int
            default: 60
          max_attempts:
            description: Attempts per request, with backoff.
            type: int
            default: 5
  site:
    description: Site (environment) name; the first level of the repository layout. Keeps sites sharing a bucket apart.
    type: str
    default: default
  host:
    description: The host name backups are stored under. Defaults to this machine's short host name.
    type: str
  state_dir:
    description: Directory for locks, run status records and staging on this host (created 0700).
    type: path
    default: /var/lib/lifeline
  signing_key:
    description:
      - This host's Ed25519 private key, PEM (PKCS#8, as C(openssl genpkey -algorithm ed25519)
        writes it); required to write a backup, which is signed with it. A per-host secret (Vault).
      - It does not decrypt anything; hosts still hold only public encryption keys.
      - Generate one with M(lifeline.dr.backup_key) and C(type=ed25519), or with C(openssl genpkey -algorithm ed25519).
    type: str
  signing_key_file:
    description: Path of a 0600 file holding O(signing_key), for hosts that keep it on disk.
    type: path
  trusted_signers:
    description:
      - Maps a source host name to a list of PEM public keys trusted to sign its manifests (a list,
        so keys rotate). Restore, verify and the catalog accept a backup only when its manifest's
        signature verifies with a key trusted for the host it names; anything else is refused
        before the target changes.
    type: dict
    default: {}
  allow_unsigned:
    description:
      - Read unsigned manifests (backups made by 0.1.0) for this run, with a warning. A manifest
        whose signature is present but does not verify is refused regardless.
    type: bool
    default: false
"""

    ENCRYPTION = r"""
options:
  encryption:
    description:
      - C(age) encrypts to the public O(recipients) (hosts never hold the private key).
      - C(aes-256-gcm) uses the symmetric O(aes_key). C(none) is for tests only.
    type: str
    default: age
    choices: [age, aes-256-gcm, none]
  recipients:
    description: age public keys (C(age1...)) to encrypt new backups to. Needed for backups with C(age).
    type: list
    elements: str
    default: []
  identity:
    description:
      - age private key(s) (C(AGE-SECRET-KEY-1...)), one per line; only needed to restore or verify.
      - Keep old identities after a key rotation so old backups stay readable.
    type: str
  aes_key:
    description: 256-bit key as 64 hex characters, for C(aes-256-gcm).
    type: str
  compression:
    description: Compression applied before encryption. C(zstd) is fast and small; C(gzip) for compatibility.
    type: str
    default: zstd
    choices: [zstd, gzip, none]
  compression_level:
    description: Compression level (zstd 1-19, default 3; gzip 1-9, default 6).
    type: int
  compression_threads:
    description: zstd worker threads; 0 compresses on the calling thread.
    type: int
    default: 2
"""

    POSTGRES = r"""
options:
  login_host:
    description: PostgreSQL host (name, address or socket directory).
    type: str
    default: localhost
  port:
    description: PostgreSQL port.
    type: int
    default: 5432
    aliases: [login_port]
  login_user:
    description: Role to connect as; a superuser for full backups with globals and for restores.
    type: str
    default: postgres
  login_password:
    description:
      - Password; passed to the PostgreSQL tools in a private password file (in memory where the
        kernel allows), never on the command line or in their environment.
    type: str
  maintenance_db:
    description: Database to connect to for cluster-wide work.
    type: str
    default: postgres
  ssl_mode:
    description: libpq sslmode.
    type: str
    choices: [disable, allow, prefer, require, verify-ca, verify-full]
  bin_dir:
    description:
      - Directory holding pg_dump/pg_dumpall/pg_restore.
      - By default the server's own major version when installed, else the newest installed version not older than the server (for
        restores, not older than the pg_dump that wrote the backup).
    type: path
"""

    BACKUP = r"""
options:
  lock_timeout:
    description: Seconds to wait for a concurrent backup of the same host and component to finish.
    type: int
    default: 0
  require_all_repositories:
    description:
      - When true, a backup that could be stored in only some repositories fails the task (the
        copies that were stored are kept and listed). When false it succeeds with a warning.
    type: bool
    default: true
  labels:
    description:
      - Labels recorded in the signed manifest (letters, digits, C(.), C(_), C(-)). C(daily), C(weekly) and
        C(monthly) name the schedule tier (see O(min_interval)); C(keep) pins
        the backup, so M(lifeline.dr.backup_prune) never deletes it (see its O(lifeline.dr.backup_prune#module:pin_labels)).
    type: list
    elements: str
    default: []
  min_interval:
    description:
      - Skip the backup (C(status=skipped), not changed) when one that stands in for it finished
        within this time, e.g. C(12h), C(90m), C(1d12h) or seconds; C(0) or unset never skips.
      - It stands in when it is a full or incremental backup of the same host and component (of the
        same kind for schema- or data-only runs), not a restore's safety backup, stored in every
        repository, signed by this host's key, and of the same schedule tier or a longer one.
        Checked under the lock, so a timer and an AWX job started together take one backup.
      - C(backup.yml) maps C(lifeline_backup_min_interval) here (set it on scheduled AWX jobs).
    type: str
"""
    REDIS = r"""
options:
  login_host:
    description:
      - Redis host. A loopback address means the server runs on this host, so a backup reads its
        RDB file directly (C(redis_backup) with C(method=auto)); any other address is reached over the network.
      - The playbooks map C(lifeline_redis_host) here.
    type: str
    default: 127.0.0.1
  port:
    description: Redis port (C(lifeline_redis_port)).
    type: int
    default: 6379
    aliases: [login_port]
  login_user:
    description: ACL user name (C(lifeline_redis_username)); empty logs in with the password alone (C(requirepass)).
    type: str
  login_password:
    description:
      - Password (C(lifeline_redis_password)). Sent in an C(AUTH) command over the connection, never
        on a command line, in an environment or in a log.
    type: str
  connect_timeout:
    description: Seconds to wait for the server to connect or answer one reply.
    type: int
    default: 30
"""
