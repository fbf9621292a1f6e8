# -*- coding: utf-8 -*-
# Copyright: Lifeline contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Point-in-time recovery with pgBackRest: the operations the postgres_pitr module offers.

configure (config file, stanza, archiving settings, check) -> backup (full/diff/incr) -> info
(base backups and the recoverable window) -> restore (see pitr_restore). Each takes the
PitrSettings of one host's stanza; a restore takes the *source* host's settings with the
target's data directory and port.
"""
from __future__ import annotations

import enum
import json
import os

from ansible_collections.lifeline.dr.plugins.module_utils.errors import ConfigError, NotFoundError, SourceError
from ansible_collections.lifeline.dr.plugins.module_utils.pgbackrest_config import (
    PitrSettings,
    make_dirs,
    private_config,
    render,
    write_private,
)
from ansible_collections.lifeline.dr.plugins.module_utils.pgbackrest_run import Pgbackrest, SystemIdMismatch, clean
from ansible_collections.lifeline.dr.plugins.module_utils.pitr_archiving import (
    apply,
    archive_command,
    plan,
    read_state,
    wanted_settings,
)
from ansible_collections.lifeline.dr.plugins.module_utils.pitr_restore import PitrRestore
from ansible_collections.lifeline.dr.plugins.module_utils.pitr_server import Server
from ansible_collections.lifeline.dr.plugins.module_utils.pitr_window import (
    RecoveryTarget,
    Window,
    newest_archive_dirs,
    segment_times,
    window,
)
from ansible_collections.lifeline.dr.plugins.module_utils.postgres import PgConnection
from ansible_collections.lifeline.dr.plugins.module_utils.postgres_tools import find_tool


class BackupType(enum.Enum):
    FULL = "full"
    DIFF = "diff"
    INCR = "incr"


def read_window(pgb: Pgbackrest, repo_count: int) -> Window:
    """Base backups and the recoverable window over every repository. Only the directory that
    holds the newest segment is listed (its archive time closes the window), not the archive."""
    entry = pgb.info()
    times: dict = {}
    for directory in newest_archive_dirs(entry):
        for index in range(1, repo_count + 1):
            out = pgb.run("repo-ls", "--repo=%d" % index, "--output=json", positional=("archive/%s/%s" % (pgb.stanza, directory),),
                          what="pgbackrest repo-ls (repo%d)" % index)
            try:
                listing = json.loads(out)
            except ValueError:
                raise SourceError("pgbackrest repo-ls printed no JSON: %s" % clean(out, 200)) from None
            for seg, when in segment_times(listing if isinstance(listing, dict) else {}).items():
                times[seg] = max(times.get(seg, when), when)
    return window(entry, segment_times=times)


def stanza_system_id(pgb: Pgbackrest) -> int | None:
    """The system identifier the stanza was created for; None when there is no stanza yet."""
    try:
        entry = pgb.info()
    except NotFoundError:
        return None
    return window(entry, segment_times={}).system_id


def configure(settings: PitrSettings, conn: PgConnection, *, config_path: str, archive_timeout: int,
              check_mode: bool = False, exe: str | None = None) -> dict:
    """Idempotent: write the config, create the stanza, set archive_command/archive_timeout (ALTER
    SYSTEM + reload), and run ``check`` when archiving is live. ``restart_required`` lists the
    settings (archive_mode, wal_level) that wait for a restart; nothing here restarts."""
    state = read_state(conn)
    if os.path.realpath(state.data_directory) != os.path.realpath(settings.data_dir):
        raise ConfigError("the server at %s:%s runs on %s, not on lifeline_postgresql_data_dir %s: set the "
                          "variable to the server's data_directory" % (conn.host, conn.port, state.data_directory,
                                                                       settings.data_dir))
    pgb = Pgbackrest(config_path, settings.stanza, exe=exe)
    wanted = wanted_settings(archive_command(config_path, settings.stanza, pgb.exe), archive_timeout)
    change = plan(state, wanted)
    text = render(settings)
    result = {"config_file": config_path, "system_id": str(state.system_id), "stanza": settings.stanza,
              "data_dir": state.data_directory, "pg_major": int(state.settings["server_version_num"]) // 10000,
              "settings_changed": change.changed, "restart_required": change.restart_required,
              "stanza_created": False, "checked": False, "config_changed": False,
              "archiver": {"last_archived_wal": state.last_archived_wal,
                           "last_archived_time": state.last_archived_time,
                           "failed_count": state.failed_count, "last_failed_wal": state.last_failed_wal}}
    if check_mode:
        result["changed"] = bool(change.changed) or _differs(config_path, text)
        return result
    result["config_changed"] = write_private(config_path, text)
    make_dirs(settings)
    existing = stanza_system_id(pgb)
    if existing is not None and existing != state.system_id:
        raise SystemIdMismatch(
            "the stanza %r at %s belongs to the cluster with system identifier %s, this server's is %s: "
            "refusing to archive into it (a restored, cloned or re-initialised cluster must archive under "
            "its own host name; for a new cluster on the same host remove the old stanza with "
            "`pgbackrest stanza-delete` after you no longer need its backups)"
            % (settings.stanza, settings.stanza_path(), existing, state.system_id))
    if existing is None:
        pgb.run("stanza-create", what="pgbackrest stanza-create")
        result["stanza_created"] = True
    apply(conn, change, wanted)
    if not change.restart_required:
        pgb.run("check", what="pgbackrest check (archiving works end to end)")
        result["checked"] = True
    result["changed"] = bool(result["config_changed"] or change.changed or result["stanza_created"])
    return result


def _differs(path: str, text: str) -> bool:
    try:
        with open(path, encoding="utf-8") as fh:
            return fh.read() != text
    except OSError:
        return True


def backup(settings: PitrSettings, conn: PgConnection, *, config_path: str, kind: BackupType,
           exe: str | None = None) -> dict:
    """A base backup of ``kind``; refuses when the stanza belongs to another cluster."""
    state = read_state(conn)
    pgb = Pgbackrest(config_path, settings.stanza, exe=exe)
    existing = stanza_system_id(pgb)
    if existing is None:
        raise NotFoundError("no stanza %r yet: run postgres_pitr action=configure first" % settings.stanza)
    if existing != state.system_id:
        raise SystemIdMismatch("the stanza %r belongs to system identifier %s, this server is %s: refusing "
                               "to back up into it" % (settings.stanza, existing, state.system_id))
    pgb.run("backup", "--type=" + kind.value, what="pgbackrest backup --type=" + kind.value)
    win = read_window(pgb, len(settings.repositories))
    return {"changed": True, "backup": win.backups[-1].to_dict() if win.backups else None,
            "window": win.to_dict()}


def _config_file(settings: PitrSettings, path: str, *, check_mode: bool):
    """``path`` written with ``settings``; in check mode a private temporary copy, removed after."""
    return private_config(path, render(settings), temporary=check_mode)


def info(settings: PitrSettings, *, config_path: str, check_mode: bool = False, exe: str | None = None) -> dict:
    with _config_file(settings, config_path, check_mode=check_mode) as path:
        if not check_mode:
            make_dirs(settings, repositories=False)
        win = read_window(Pgbackrest(path, settings.stanza, exe=exe), len(settings.repositories))
    return {"changed": False, "window": win.to_dict()}


def restore(settings: PitrSettings, conn: PgConnection, *, config_path: str, target: RecoveryTarget,
            service: str = "", socket_dir: str | None = None, replace: bool = False, keep_previous: bool = False,
            recovery_timeout: int = 3600, check_mode: bool = False, exe: str | None = None) -> dict:
    """Restore ``settings``' stanza (the source host's) into ``settings.data_dir`` to ``target``,
    start it on ``conn.port`` and prove the target was reached. Refused before anything is
    touched when the target is outside the window or the data directory is occupied."""
    with _config_file(settings, config_path, check_mode=check_mode) as path:
        if not check_mode:
            make_dirs(settings, repositories=False)
        pgb = Pgbackrest(path, settings.stanza, exe=exe, timeout=max(3600, recovery_timeout))
        win = read_window(pgb, len(settings.repositories))
        major = int(win.pg_version) if win.pg_version and win.pg_version.isdigit() else None
        pg_ctl = find_tool("pg_ctl", at_least=major or 0, prefer=major, bin_dir=conn.bin_dir).path
        server = Server(settings.data_dir, port=conn.port, pg_ctl=pg_ctl, service=service, socket_dir=socket_dir)
        job = PitrRestore(pgb, server, conn, replace=replace, keep_previous=keep_previous,
                          recovery_timeout=recovery_timeout)
        if check_mode:
            return dict(job.plan(win, target), changed=True)
        result = job.run(win, target)
    return dict(result.to_dict(), changed=True, window=win.to_dict())
