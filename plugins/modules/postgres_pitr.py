#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: Lifeline contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
module: postgres_pitr
short_description: Point-in-time recovery for PostgreSQL with pgBackRest or WAL-G (archiving, base backups, window, restore)
version_added: 0.2.0
description:
  - O(action=configure) writes the pgBackRest config (0600, owned by postgres), creates the stanza,
    sets C(archive_command) and C(archive_timeout) with C(ALTER SYSTEM) and reloads, then runs
    C(pgbackrest check). When C(archive_mode) or C(wal_level) must change it sets them with
    C(ALTER SYSTEM) too, skips the check and reports them in RV(restart_required); it never
    restarts the server itself; restart it (the role's handler does) and run it again.
  - O(action=backup) takes a full, differential or incremental base backup into each repository
    (pgBackRest backs up into one repository per run), so that any one of them restores alone.
  - O(action=info) reports the base backups and the recoverable window (oldest to newest
    restorable time, the newest archived segment and the archive lag).
  - O(action=verify) walks the archive of O(source_host)'s stanza from the oldest base backup's first WAL
    segment to the newest and fails naming every missing segment (a WAL gap, which no restore
    replays past), in every repository; with O(verify_files) also runs C(pgbackrest verify) (checksums of every
    archived and backed up file).
  - O(action=restore) restores O(source_host)'s stanza into O(data_dir) to O(target), starts the
    server on O(port), waits for promotion and proves from the new timeline's history file that
    recovery stopped at the target; an earlier stop fails the task.
  - The repositories are derived from O(repositories); each keeps its stanza under
    C(pitr/<site>/<host>) (a path repository) or C(<prefix>/pitr/<site>/<host>) (S3), so hosts
    never share a stanza. A cluster whose system identifier differs from the stanza's is refused.
author:
  - Lifeline contributors (@lifeline-dr)
requirements:
  - pgbackrest (Debian package) on the host, run as the postgres user; or WAL-G (O(engine=walg), installed by the postgresql role)
  - psycopg2 (Debian python3-psycopg2)
notes:
  - The cipher passphrase is a symmetric secret kept on the host in the pgBackRest config file,
    because PostgreSQL's C(archive_command) needs it at any time. Anyone who reads that file (root,
    postgres) can decrypt the PITR repository. Keep it in Vault and in escrow; without it no WAL
    and no base backup can be restored. Lifeline's own dumps use age, whose private key need not be
    on the host.
  - pgBackRest reaches S3 only over HTTPS; O(repositories[].s3.verify_tls=false) is for tests.
  - A restore sets C(archive_mode=off) in the restored cluster, so it never archives into the
    source's stanza; run O(action=configure) on it with its own O(host) to start archiving.
  - Module options shared by every Lifeline module (signing keys, O(state_dir)) are accepted so
    that C(module_defaults) for C(group/lifeline.dr.lifeline) applies; this module does not use them.
extends_documentation_fragment:
  - lifeline.dr.repository
  - lifeline.dr.repository.postgres
options:
  action:
    description: What to do (see the description).
    type: str
    required: true
    choices: [configure, backup, info, restore, verify, expire]
  wal_segment_size:
    description: The cluster's WAL segment size in bytes (C(SHOW wal_segment_size)), for O(action=verify).
    type: int
    default: 16777216
  verify_files:
    description: With O(action=verify), also run C(pgbackrest verify), which reads every file of the repository.
    type: bool
    default: true
  engine:
    description:
      - C(pgbackrest) or C(walg) (WAL-G, installed by the postgresql role). With C(walg),
        O(action=verify) runs C(wal-g wal-verify integrity timeline) and fails naming every WAL gap,
        O(action=expire) runs C(wal-g delete retain FULL) O(retention_full) (a dry run in check mode,
        C(--confirm) only for real), and O(cipher_pass) is the libsodium key, 64 hex digits.
      - O(action=expire) needs C(walg) in this version (pgBackRest expires after each backup).
    type: str
    default: pgbackrest
    choices: [pgbackrest, walg]
  walg_config_file:
    description: The WAL-G config file (JSON, 0600, owned by postgres) this module writes and C(archive_command) names.
    type: path
    default: /etc/wal-g/lifeline.json
  walg_exe:
    description: The WAL-G executable.
    type: path
    default: /usr/local/bin/wal-g
  walg_delta_max_steps:
    description:
      - WAL-G's C(WALG_DELTA_MAX_STEPS) - how many delta backups may follow a full one. O(backup_type=full)
        pushes a full backup (C(--full)), C(diff) or C(incr) a delta while fewer steps follow the last full one.
    type: int
    default: 6
  cipher_pass:
    description:
      - The pgBackRest repository passphrase (aes-256-cbc), at least 20 characters. The same for every
        repository and for the life of the stanza. Never on a command line; written only into the
        0600 config file.
    type: str
    required: true
  config_file:
    description: The pgBackRest config file this module writes and C(archive_command) names.
    type: path
    default: /etc/pgbackrest/lifeline.conf
  stanza:
    description: The pgBackRest stanza name (one per host; the repository path already names the host).
    type: str
    default: lifeline
  data_dir:
    description:
      - The cluster's data directory. For O(action=configure) and O(action=backup) default the
        server's C(data_directory); required for O(action=restore) (where the cluster is restored).
    type: path
  socket_dir:
    description: Unix socket directory of the server, when not the default C(/var/run/postgresql).
    type: path
  archive_timeout:
    description: Seconds after which a partly filled WAL segment is archived anyway (the RPO knob).
    type: int
    default: 60
  process_max:
    description: Parallel processes for backup, restore and asynchronous archiving.
    type: int
    default: 2
  spool_path:
    description: The asynchronous archiving spool directory.
    type: path
    default: /var/spool/pgbackrest
  archive_push_queue_max:
    description:
      - How much WAL may wait for an unreachable repository before pgBackRest drops it (and
        reports it archived) so that C(pg_wal) cannot fill the disk. Dropped WAL breaks the
        recoverable window until the next base backup.
    type: str
    default: 4GiB
  log_path:
    description: pgBackRest's log directory.
    type: path
    default: /var/log/pgbackrest
  lock_path:
    description: pgBackRest's lock directory.
    type: path
    default: /var/lib/pgbackrest/lock
  retention_full:
    description: Full backups each repository keeps (with every WAL segment they need).
    type: int
    default: 2
  backup_type:
    description: The kind of base backup of O(action=backup).
    type: str
    default: full
    choices: [full, diff, incr]
  source_host:
    description: Whose stanza O(action=restore) (and O(action=info)) reads; default O(host).
    type: str
  target:
    description:
      - The restore point. C(latest) (all archived WAL), C(immediate) (the end of the newest base
        backup), a base backup label (C(20261123-020000F), its end), or an ISO-8601 time (no zone
        means UTC), unless O(target_type) says otherwise.
    type: str
    default: latest
  target_type:
    description: How to read O(target); C(auto) as described there, C(xid) a transaction id, C(name) a restore point.
    type: str
    default: auto
    choices: [auto, latest, immediate, time, xid, name, backup]
  replace:
    description:
      - Restore over an existing data directory. The server on it is stopped and the directory
        moved aside to C(<data_dir>.lifeline-old-<time>); it is put back if the restore fails and
        removed once the restored cluster is verified (see O(keep_previous)).
    type: bool
    default: false
  keep_previous:
    description: With O(replace), keep the old data directory aside after success (its path is returned).
    type: bool
    default: false
  service:
    description:
      - The systemd unit that runs the server on O(data_dir). Empty means no systemd; the module
        starts the server with C(pg_ctl) as the postgres user.
    type: str
    default: ""
  recovery_timeout:
    description: Seconds the restored server may take to replay WAL and promote.
    type: int
    default: 3600
attributes:
  check_mode:
    description:
      - O(action=configure) reports the settings it would change without writing anything;
        O(action=restore) reads the window and checks the target and the data directory (a temporary
        config file is used and removed); O(action=backup) reports a planned backup.
    support: full
  diff_mode:
    description: Not supported.
    support: none
seealso:
  - module: lifeline.dr.postgres_restore
    description: The logical restore, from the dumps that continue beside PITR.
  - module: lifeline.dr.postgres_backup
  - module: lifeline.dr.backup_info
"""

EXAMPLES = r"""
- name: Archive WAL with pgBackRest into the Lifeline repositories
  lifeline.dr.postgres_pitr:
    action: configure
    repositories: "{{ lifeline_repositories }}"
    site: prod
    host: "{{ inventory_hostname }}"
    cipher_pass: "{{ vault_lifeline_pitr_cipher_pass }}"
    archive_timeout: 60
  become: true
  register: pitr
  notify: Restart PostgreSQL  # only when pitr.restart_required is not empty (changed_when)

- name: Take a differential base backup
  lifeline.dr.postgres_pitr:
    action: backup
    backup_type: diff
    repositories: "{{ lifeline_repositories }}"
    cipher_pass: "{{ vault_lifeline_pitr_cipher_pass }}"
  become: true

- name: Show the recoverable window of db1
  lifeline.dr.postgres_pitr:
    action: info
    source_host: db1
    repositories: "{{ lifeline_repositories }}"
    cipher_pass: "{{ vault_lifeline_pitr_cipher_pass }}"
  become: true

- name: Find WAL gaps and damaged files in db1's archive
  lifeline.dr.postgres_pitr:
    action: verify
    source_host: db1
    repositories: "{{ lifeline_repositories }}"
    cipher_pass: "{{ vault_lifeline_pitr_cipher_pass }}"

- name: Archive WAL with WAL-G instead (a delta base backup, then check the archive for gaps)
  lifeline.dr.postgres_pitr:
    action: "{{ item }}"
    engine: walg
    backup_type: incr
    repositories: "{{ lifeline_repositories }}"
    cipher_pass: "{{ vault_lifeline_walg_key }}"  # openssl rand -hex 32
  loop: [configure, backup, verify]
  become: true

- name: Restore db1 to one second before the bad migration, into a new data directory
  lifeline.dr.postgres_pitr:
    action: restore
    source_host: db1
    target: "2026-11-23T14:02:11Z"
    data_dir: /var/lib/postgresql/15/main
    service: postgresql@15-main
    port: 5432
    login_password: "{{ vault_postgres_password }}"
    repositories: "{{ lifeline_repositories }}"
    cipher_pass: "{{ vault_lifeline_pitr_cipher_pass }}"
  become: true
"""

RETURN = r"""
restart_required:
  description: Settings (archive_mode, wal_level) that wait for a server restart (O(action=configure)).
  returned: action is configure
  type: list
  elements: str
  sample: [archive_mode]
settings_changed:
  description: Archiving settings that differ from what Lifeline sets (changed unless they need a restart, or in check mode).
  returned: action is configure
  type: list
  elements: str
  sample: [archive_command, archive_timeout]
stanza_created:
  description: Whether the stanza was created by this run.
  returned: action is configure
  type: bool
  sample: true
checked:
  description: Whether archiving was checked end to end (C(pgbackrest check); with WAL-G a switched segment reported archived).
  returned: action is configure
  type: bool
  sample: true
pg_major:
  description: The server's PostgreSQL major version (picks the service name and pg_ctl).
  returned: action is configure
  type: int
  sample: 15
config_file:
  description: The pgBackRest config file written.
  returned: action is configure
  type: str
  sample: /etc/pgbackrest/lifeline.conf
config_changed:
  description: Whether the config file was (re)written.
  returned: action is configure
  type: bool
stanza:
  description: The stanza name.
  returned: action is configure
  type: str
  sample: lifeline
archiver:
  description: The server's archiver statistics before this run (pg_stat_archiver); a growing C(failed_count) means WAL waits for a repository.
  returned: action is configure
  type: dict
  contains:
    last_archived_wal:
      description: The newest segment the server reports archived.
      type: str
      sample: "000000010000000000000042"
    last_archived_time:
      description: When it was archived (ISO-8601).
      type: str
    failed_count:
      description: Failed archive attempts since the statistics were reset.
      type: int
      sample: 0
    last_failed_wal:
      description: The last segment whose archiving failed.
      type: str
  sample: {last_archived_wal: "000000010000000000000042", failed_count: 0}
system_id:
  description: The server's system identifier.
  returned: action is configure
  type: str
  sample: "7711504486521387995"
backup:
  description: The base backup just taken.
  returned: action is backup and not check mode
  type: dict
  sample: {label: 20261123-020000F, type: full, start: "2026-11-23T02:00:00.000Z", stop: "2026-11-23T02:00:09.000Z",
           wal_start: "000000010000000000000002", wal_stop: "000000010000000000000003", size: 22992374, repo_size: 2833632}
backups_taken:
  description: The label of the base backup taken into each repository, by repository name.
  returned: action is backup and not check mode
  type: dict
  sample: {local: 20261123-020000F, s3: 20261123-020112F}
window:
  description: The base backups and the recoverable window of the stanza.
  returned: action is info, backup, restore or verify
  type: dict
  contains:
    backups:
      description: Base backups, oldest first (label, type, start, stop, wal_start, wal_stop, size, repo_size).
      type: list
      elements: dict
    oldest:
      description: The oldest restorable time (the end of the oldest base backup), UTC.
      type: str
      sample: "2026-11-23T02:00:09.000Z"
    newest:
      description: The newest restorable time (when the newest WAL segment was archived), UTC.
      type: str
      sample: "2026-11-23T14:05:00.000Z"
    last_segment:
      description: The newest archived WAL segment.
      type: str
      sample: "000000010000000000000042"
    archive_lag:
      description: Seconds since the newest segment was archived.
      type: float
      sample: 12.5
    system_id:
      description: The system identifier the stanza belongs to.
      type: str
    pg_version:
      description: The PostgreSQL major version of the stanza.
      type: str
      sample: "15"
  sample: {oldest: "2026-11-23T02:00:09.000Z", newest: "2026-11-23T14:05:00.000Z", last_segment: "000000010000000000000042"}
data_dir:
  description: The data directory restored into (restore), or the server's data directory (configure).
  returned: action is restore or configure
  type: str
  sample: /var/lib/postgresql/15/main
stop_reason:
  description: Why recovery stopped, as PostgreSQL wrote it into the new timeline's history (the proof).
  returned: action is restore and not check mode
  type: str
  sample: "before 2026-11-23 14:02:11.262578+00"
last_replayed:
  description: Commit time of the last transaction replayed, UTC.
  returned: action is restore and not check mode
  type: str
  sample: "2026-11-23T14:02:10.791Z"
timeline:
  description: The restored cluster's new timeline.
  returned: action is restore and not check mode
  type: int
  sample: 2
previous_data_dir:
  description: Where the replaced data directory was kept (with O(keep_previous)); null otherwise.
  returned: action is restore and not check mode
  type: str
disabled_settings:
  description:
    - Settings of the backup's C(postgresql.auto.conf) (or a C(postgresql.conf) in the data directory) that
      were commented out before the restored server first started, each with the reason (they would run a
      shell command, or load a library by path, on this host). Also given as warnings.
  returned: action is restore and not check mode
  type: list
  elements: str
  sample: ["postgresql.auto.conf: recovery_end_command (runs a shell command)"]
backup_set:
  description: The base backup the restore starts from.
  returned: action is restore
  type: str
  sample: 20261123-020000F
replaces_existing:
  description: Whether the restore would replace an existing data directory (check mode).
  returned: action is restore and check mode
  type: bool
target_time:
  description:
    - The time the restore point stands for, known before the restore (check mode), that is the time itself,
      the end of the named base backup (C(immediate) the newest), or the window's end (C(latest)); null for
      an xid or a restore point name. restore-site.yml chooses the other components at it.
  returned: action is restore and check mode
  type: str
  sample: "2026-11-23T02:00:09.000Z"
consistent_at:
  description: The time the restored data is as of (a time target, else the last replayed commit).
  returned: action is restore and not check mode
  type: str
restore_point_age_seconds:
  description: Seconds from RV(consistent_at) to the end of the restore (the RPO of this restore).
  returned: action is restore and not check mode
  type: float
checks:
  description: What was verified on the promoted cluster (the stop reason, its system identifier, its port).
  returned: action is restore and not check mode
  type: list
  elements: str
phases:
  description: Seconds spent in each phase (restore, recovery, verify).
  returned: action is restore and not check mode
  type: dict
  sample: {restore: 8.1, recovery: 3.9, verify: 0.1}
total_seconds:
  description: Seconds the restore took, from the window check to the verified cluster.
  returned: action is restore and not check mode
  type: float
pgbackrest_verify:
  description: The text report of C(pgbackrest verify) (empty without O(verify_files)).
  returned: action is verify
  type: str
verified:
  description: Whether the archive and the backups verified.
  returned: action is verify
  type: bool
integrity:
  description: WAL-G's integrity status (OK, or WARNING while segments are still uploading; a lost range fails the task).
  returned: action is verify
  type: str
  sample: OK
ranges:
  description: WAL ranges per timeline and status (FOUND, MISSING_DELAYED, MISSING_UPLOADING, MISSING_LOST).
  returned: action is verify
  type: list
  elements: dict
  sample: [{timeline: 1, first: "000000010000000000000002", last: "000000010000000000000042", count: 65, status: FOUND}]
gaps:
  description:
    - The WAL gaps found (none when the task succeeds; the failure message names them). pgBackRest - per
      repository, the missing segments; WAL-G - its MISSING_LOST ranges.
  returned: action is verify
  type: raw
  sample: {}
deleted:
  description: Base backups deleted by O(action=expire) (in check mode, those it would delete).
  returned: action is expire
  type: list
  elements: str
  sample: [base_000000010000000000000002]
kept:
  description: Base backups O(action=expire) keeps.
  returned: action is expire
  type: list
  elements: str
dry_run:
  description: Whether O(action=expire) only ran WAL-G's dry run (check mode, or nothing to delete).
  returned: action is expire
  type: bool
error:
  description: The class of the engine error (C(DecryptionError) for a wrong passphrase, C(SystemIdMismatch), ...).
  returned: failure
  type: str
  sample: DecryptionError
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.lifeline.dr.plugins.module_utils import config, pitr, pitr_walg
from ansible_collections.lifeline.dr.plugins.module_utils.module import merge, postgres_spec, repository_spec, run
from ansible_collections.lifeline.dr.plugins.module_utils.pgbackrest_config import PitrSettings
from ansible_collections.lifeline.dr.plugins.module_utils.pitr_archiving import read_state
from ansible_collections.lifeline.dr.plugins.module_utils.pitr_window import RecoveryTarget


def settings(p: dict, *, host: str, data_dir: str, port: int) -> PitrSettings:
    return PitrSettings(
        repositories=[dict(r) for r in p["repositories"]], site=p["site"], host=host, data_dir=data_dir,
        cipher_pass=p["cipher_pass"], stanza=p["stanza"], port=port, socket_dir=p["socket_dir"],
        process_max=p["process_max"], spool_path=p["spool_path"], archive_push_queue_max=p["archive_push_queue_max"],
        log_path=p["log_path"], lock_path=p["lock_path"], retention_full=p["retention_full"])


def act(module: AnsibleModule) -> dict:
    p = module.params
    conn = config.pg_connection(p)
    host = config.host_name(p)
    action = p["action"]
    if p["engine"] == "walg":
        return pitr_walg.run_action(p, conn, host=host, check_mode=module.check_mode,
                                    restore_config=lambda source: restore_config(dict(p, config_file=p["walg_config_file"]), source))
    if action == "expire":
        module.fail_json(msg="action=expire is implemented for engine=walg only in this version; pgBackRest "
                             "expires by itself after each backup (retention_full)")
    if action in ("configure", "backup"):
        data_dir = p["data_dir"] or read_state(conn).data_directory
        s = settings(p, host=host, data_dir=data_dir, port=conn.port)
        if action == "configure":
            return pitr.configure(s, conn, config_path=p["config_file"], archive_timeout=p["archive_timeout"],
                                  check_mode=module.check_mode)
        if module.check_mode:
            return {"changed": True, "backup": None}
        return pitr.backup(s, conn, config_path=p["config_file"], kind=pitr.BackupType(p["backup_type"]))
    source = p["source_host"] or host
    if action == "verify":
        s = settings(p, host=source, data_dir=p["data_dir"] or "/var/lib/postgresql", port=conn.port)
        return pitr.verify(s, config_path=restore_config(p, source), segment_size=p["wal_segment_size"],
                           check_files=p["verify_files"], check_mode=module.check_mode)
    if action == "info":
        s = settings(p, host=source, data_dir=p["data_dir"] or "/var/lib/postgresql", port=conn.port)
        return pitr.info(s, config_path=restore_config(p, source), check_mode=module.check_mode)
    if not p["data_dir"]:
        module.fail_json(msg="action=restore needs data_dir (lifeline_postgresql_data_dir): where the cluster is restored")
    kind = p["target_type"]
    target = (RecoveryTarget.from_point(p["target"]) if kind == "auto"
              else RecoveryTarget.parse(kind=kind, value=p["target"]))
    s = settings(p, host=source, data_dir=p["data_dir"], port=conn.port)
    return pitr.restore(s, conn, config_path=restore_config(p, source), target=target, service=p["service"],
                        socket_dir=p["socket_dir"], replace=p["replace"], keep_previous=p["keep_previous"],
                        recovery_timeout=p["recovery_timeout"], check_mode=module.check_mode)


def warn_disabled(module: AnsibleModule, result: dict) -> dict:
    """Each setting a restore disabled (either engine) is also a warning: the operator must see it."""
    for item in result.get("disabled_settings") or []:
        module.warn("a setting from the backup was disabled before the restored server started: %s" % item)
    return result


def restore_config(p: dict, source: str) -> str:
    """The config file that reads ``source``'s stanza, beside this host's own: the restored
    cluster's restore_command names it, so it stays."""
    base, ext = p["config_file"].rsplit(".", 1) if "." in p["config_file"].rsplit("/", 1)[-1] else (p["config_file"], "conf")
    return "%s-from-%s.%s" % (base, source, ext)


def pitr_spec() -> dict:
    return dict(
        action=dict(type="str", required=True, choices=["configure", "backup", "info", "restore", "verify", "expire"]),
        wal_segment_size=dict(type="int", default=16 * 1024 * 1024),
        verify_files=dict(type="bool", default=True),
        engine=dict(type="str", default="pgbackrest", choices=["pgbackrest", "walg"]),
        walg_config_file=dict(type="path", default="/etc/wal-g/lifeline.json"),
        walg_exe=dict(type="path", default="/usr/local/bin/wal-g"),
        walg_delta_max_steps=dict(type="int", default=6),
        cipher_pass=dict(type="str", required=True, no_log=True),
        config_file=dict(type="path", default="/etc/pgbackrest/lifeline.conf"),
        stanza=dict(type="str", default="lifeline"),
        data_dir=dict(type="path"),
        socket_dir=dict(type="path"),
        archive_timeout=dict(type="int", default=60),
        process_max=dict(type="int", default=2),
        spool_path=dict(type="path", default="/var/spool/pgbackrest"),
        archive_push_queue_max=dict(type="str", default="4GiB"),
        log_path=dict(type="path", default="/var/log/pgbackrest"),
        lock_path=dict(type="path", default="/var/lib/pgbackrest/lock"),
        retention_full=dict(type="int", default=2),
        backup_type=dict(type="str", default="full", choices=["full", "diff", "incr"]),
        source_host=dict(type="str"),
        target=dict(type="str", default="latest"),
        target_type=dict(type="str", default="auto",
                         choices=["auto", "latest", "immediate", "time", "xid", "name", "backup"]),
        replace=dict(type="bool", default=False),
        keep_previous=dict(type="bool", default=False),
        service=dict(type="str", default=""),
        recovery_timeout=dict(type="int", default=3600),
    )


def main() -> None:
    module = AnsibleModule(argument_spec=merge(repository_spec(), postgres_spec(), pitr_spec()),
                           supports_check_mode=True)
    run(module, lambda: warn_disabled(module, act(module)), changed=False)


if __name__ == "__main__":
    main()
