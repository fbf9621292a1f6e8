# -*- coding: utf-8 -*-
# Copyright: Lifeline contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Point-in-time recovery with WAL-G: the postgres_pitr actions for ``engine: walg``.

configure (0600 config, archive_command/archive_timeout as for pgBackRest) -> backup
(``backup-push``; delta backups by WALG_DELTA_MAX_STEPS in the config) -> info (base backups and
the window) -> restore (``backup-fetch`` through pitr_restore.PitrRestore, with its proof) ->
verify (``wal-verify integrity timeline``: named gaps) -> expire (``delete retain FULL N``, a dry
run in check mode, ``--confirm`` only for real).

A prefix belongs to one cluster: every base backup records its system identifier, and a server
whose identifier differs is refused before it archives or backs up into the prefix (as
pgBackRest's stanza check does).
"""
from __future__ import annotations

from ansible_collections.lifeline.dr.plugins.module_utils.errors import ConfigError, IntegrityError
from ansible_collections.lifeline.dr.plugins.module_utils.pgbackrest_config import private_config, write_private
from ansible_collections.lifeline.dr.plugins.module_utils.pgbackrest_run import SystemIdMismatch
from ansible_collections.lifeline.dr.plugins.module_utils.pitr_archiving import apply, check_archived, plan, read_state, wanted_settings
from ansible_collections.lifeline.dr.plugins.module_utils.pitr_restore import PitrRestore
from ansible_collections.lifeline.dr.plugins.module_utils.pitr_server import Server
from ansible_collections.lifeline.dr.plugins.module_utils.pitr_window import BaseBackup, RecoveryTarget, Window
from ansible_collections.lifeline.dr.plugins.module_utils.postgres import PgConnection
from ansible_collections.lifeline.dr.plugins.module_utils.postgres_tools import find_tool
from ansible_collections.lifeline.dr.plugins.module_utils.walg_config import WalgSettings, archive_command, render
from ansible_collections.lifeline.dr.plugins.module_utils.walg_restore import WalgFetch
from ansible_collections.lifeline.dr.plugins.module_utils.walg_run import (
    Walg,
    parse_backup_list,
    parse_wal_listing,
    parse_wal_verify,
)

DEFAULT_EXE = "/usr/local/bin/wal-g"


def list_backups(walg: Walg) -> list:
    return parse_backup_list(walg.run("backup-list", "--detail", "--json", what="wal-g backup-list"))


def read_window(walg: Walg) -> Window:
    """Base backups (backup-list) and the window; its end is the upload time of the newest
    segment (``st ls wal_005/``), as for pgBackRest."""
    backups = list_backups(walg)
    times = parse_wal_listing(walg.run("st", "ls", "wal_005/", what="wal-g st ls wal_005/"))
    last = max(times) if times else None
    newest = times.get(last) if last else None
    if newest and backups:
        newest = max(newest, backups[-1].stop)
    top = backups[-1] if backups else None
    return Window(
        backups=tuple(BaseBackup(label=b.name, type="delta" if b.delta else "full", start=b.start, stop=b.stop,
                                 wal_start=b.wal_start, wal_stop=b.wal_stop, size=b.size, repo_size=b.repo_size)
                      for b in backups),
        oldest=backups[0].stop if backups else None, newest=newest, last_segment=last,
        system_id=top.system_id if top else None,
        pg_version=str(top.pg_version // 10000) if top and top.pg_version and top.pg_version >= 100000 else None)


def check_owner(walg: Walg, system_id: int, what: str) -> None:
    """SystemIdMismatch when a base backup in the prefix belongs to another cluster."""
    foreign = sorted({b.system_id for b in list_backups(walg) if b.system_id not in (None, system_id)})
    if foreign:
        raise SystemIdMismatch(
            "the WAL-G prefix %s holds base backups of the cluster with system identifier %s, this server's is "
            "%s: refusing to %s (a restored, cloned or re-initialised cluster must archive under its own host "
            "name; remove the old prefix only after you no longer need its backups)"
            % (walg.config, ", ".join(str(s) for s in foreign), system_id, what))


def configure_walg(settings: WalgSettings, conn: PgConnection, *, config_path: str, archive_timeout: int,
                   exe: str = DEFAULT_EXE, check_mode: bool = False) -> dict:
    """Write the 0600 config, refuse a prefix of another cluster, set archiving;
    ``restart_required`` as for pgBackRest (the role's handler restarts)."""
    state = read_state(conn)
    wanted = wanted_settings(archive_command(config_path, exe), archive_timeout)
    change = plan(state, wanted)
    result = {"config_file": config_path, "system_id": str(state.system_id), "data_dir": state.data_directory,
              "pg_major": int(state.settings["server_version_num"]) // 10000,
              "settings_changed": change.changed, "restart_required": change.restart_required,
              "stanza_created": False, "checked": False,
              "archiver": {"last_archived_wal": state.last_archived_wal,
                           "last_archived_time": state.last_archived_time,
                           "failed_count": state.failed_count, "last_failed_wal": state.last_failed_wal}}
    if check_mode:
        return dict(result, changed=bool(change.changed), config_changed=False)
    written = write_private(config_path, render(settings))
    check_owner(Walg(config_path, exe=exe), state.system_id, "archive into it")
    apply(conn, change, wanted)
    if not change.restart_required:
        result["checked"] = bool(check_archived(conn))
    return dict(result, changed=bool(written or change.changed), config_changed=written)


def backup_walg(settings: WalgSettings, conn: PgConnection, *, config_path: str, exe: str = DEFAULT_EXE,
                full: bool = False) -> dict:
    """``backup-push`` of the data directory: a delta while fewer than WALG_DELTA_MAX_STEPS deltas
    follow the last full backup, unless ``full``."""
    state = read_state(conn)
    walg = Walg(config_path, exe=exe)
    check_owner(walg, state.system_id, "back up into it")
    walg.run("backup-push", settings.data_dir, *(["--full"] if full else []), what="wal-g backup-push")
    win = read_window(walg)
    return {"changed": True, "backup": win.backups[-1].to_dict() if win.backups else None, "window": win.to_dict()}


def info_walg(walg: Walg) -> dict:
    return {"changed": False, "window": read_window(walg).to_dict()}


def restore_walg(walg: Walg, conn: PgConnection, *, data_dir: str, target: RecoveryTarget, service: str = "",
                 socket_dir: str | None = None, replace: bool = False, keep_previous: bool = False,
                 recovery_timeout: int = 3600, check_mode: bool = False) -> dict:
    """Restore the prefix ``walg`` reads into ``data_dir``; PitrRestore checks, starts and proves."""
    win = read_window(walg)
    major = int(win.pg_version) if win.pg_version and win.pg_version.isdigit() else None
    pg_ctl = find_tool("pg_ctl", at_least=major or 0, prefer=major, bin_dir=conn.bin_dir).path
    server = Server(data_dir, port=conn.port, pg_ctl=pg_ctl, service=service, socket_dir=socket_dir)
    job = PitrRestore(None, server, conn, replace=replace, keep_previous=keep_previous,
                      recovery_timeout=recovery_timeout, fetch=WalgFetch(walg))
    if check_mode:
        return dict(job.plan(win, target), changed=True)
    return dict(job.run(win, target).to_dict(), changed=True, window=win.to_dict())


def verify_walg(walg: Walg) -> dict:
    """``wal-verify integrity timeline``: IntegrityError naming every lost range (a gap no restore
    can cross) or a timeline conflict; warnings (segments still uploading) pass."""
    report = parse_wal_verify(walg.run("wal-verify", "integrity", "timeline", "--json", what="wal-g wal-verify"))
    problems = ["WAL gap on timeline %d: %s .. %s (%d segments lost)" % (g["timeline"], g["first"], g["last"], g["count"])
                for g in report["gaps"]]
    if report["timeline"] == "FAILURE":
        problems.append("timeline conflict: the storage holds timeline %s, the cluster runs on %s (another "
                        "cluster archives into this prefix, or this one was restored without a new prefix)"
                        % (report["highest_storage_timeline"], report["current_timeline"]))
    if problems:
        raise IntegrityError("wal-g wal-verify found: %s. A restore cannot replay past a gap: take a new base "
                             "backup now" % "; ".join(problems))
    return dict(report, changed=False)


def retained(backups: list, keep_full: int) -> tuple:
    """(kept, deleted) names for ``delete retain FULL keep_full``: the newest ``keep_full`` full
    backups and every backup after the oldest of them; permanent backups are always kept."""
    fulls = [b for b in backups if not b.delta]
    if keep_full < 1:
        raise IntegrityError("retention must keep at least one full backup")
    if len(fulls) <= keep_full:
        return [b.name for b in backups], []
    boundary = fulls[-keep_full].stop
    kept = [b.name for b in backups if b.stop >= boundary or b.permanent]
    return kept, [b.name for b in backups if b.name not in kept]


def expire_walg(walg: Walg, *, keep_full: int, check_mode: bool = False) -> dict:
    """``delete retain FULL <n>``: in check mode WAL-G's dry run (no --confirm) and the backups it
    would delete; for real with ``--confirm``, then the storage is listed again."""
    before = list_backups(walg)
    kept, doomed = retained(before, keep_full)
    args = ["delete", "retain", "FULL", str(int(keep_full))]
    if check_mode or not doomed:
        walg.run(*args, what="wal-g delete retain (dry run)")
        return {"changed": bool(doomed), "deleted": doomed, "kept": kept, "dry_run": True}
    walg.run(*args, "--confirm", what="wal-g delete retain --confirm")
    after = {b.name for b in list_backups(walg)}
    missing = [n for n in kept if n not in after]
    if missing:
        raise IntegrityError("wal-g delete retain removed backups Lifeline meant to keep: %s" % ", ".join(missing))
    return {"changed": True, "deleted": [n for n in doomed if n not in after], "kept": kept, "dry_run": False}


def run_action(p: dict, conn: PgConnection, *, host: str, check_mode: bool, restore_config) -> dict:
    """postgres_pitr with ``engine: walg``: ``p`` are the module's parameters; ``restore_config(source)``
    names the config that reads ``source``'s prefix on a restore target."""
    action = p["action"]
    exe = p["walg_exe"]
    if action in ("configure", "backup"):
        data_dir = p["data_dir"] or read_state(conn).data_directory
        s = settings_from(p, host=host, data_dir=data_dir, port=conn.port)
        if action == "configure":
            return configure_walg(s, conn, config_path=p["walg_config_file"], archive_timeout=p["archive_timeout"],
                                  exe=exe, check_mode=check_mode)
        if check_mode:
            return {"changed": True, "backup": None}
        return backup_walg(s, conn, config_path=p["walg_config_file"], exe=exe, full=p["backup_type"] == "full")
    if action == "restore" and not p["data_dir"]:
        raise ConfigError("action=restore needs data_dir (lifeline_postgresql_data_dir): where the cluster is restored")
    own = action in ("verify", "expire")
    source = host if own else (p["source_host"] or host)
    path = p["walg_config_file"] if own else restore_config(source)
    data_dir = p["data_dir"] or (read_state(conn).data_directory if own else "/var/lib/postgresql")
    s = settings_from(p, host=source, data_dir=data_dir, port=conn.port)
    with private_config(path, render(s), temporary=check_mode) as written:
        return _act(p, Walg(written, exe=exe, timeout=max(3600, p["recovery_timeout"])), conn, check_mode=check_mode)


def _act(p: dict, walg: Walg, conn: PgConnection, *, check_mode: bool) -> dict:
    action = p["action"]
    if action == "info":
        return info_walg(walg)
    if action == "verify":
        return verify_walg(walg)
    if action == "expire":
        return expire_walg(walg, keep_full=p["retention_full"], check_mode=check_mode)
    kind = p["target_type"]
    target = (RecoveryTarget.from_point(p["target"]) if kind == "auto"
              else RecoveryTarget.parse(kind=kind, value=p["target"]))
    return restore_walg(walg, conn, data_dir=p["data_dir"], target=target, service=p["service"],
                        socket_dir=p["socket_dir"], replace=p["replace"], keep_previous=p["keep_previous"],
                        recovery_timeout=p["recovery_timeout"], check_mode=check_mode)


def settings_from(p: dict, *, host: str, data_dir: str, port: int) -> WalgSettings:
    return WalgSettings(repositories=[dict(r) for r in p["repositories"]], site=p["site"], host=host,
                        data_dir=data_dir, libsodium_key=p["cipher_pass"], socket_dir=p["socket_dir"], port=port,
                        upload_concurrency=p["process_max"], delta_max_steps=p["walg_delta_max_steps"])
