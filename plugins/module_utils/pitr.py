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
import re

from ansible_collections.lifeline.dr.plugins.module_utils.errors import ConfigError, IntegrityError, NotFoundError, SourceError
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
from ansible_collections.lifeline.dr.plugins.module_utils.pitr_verify import DEFAULT_SEGMENT_SIZE, describe, find_gaps
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


def _repo_ls(pgb: Pgbackrest, index: int, path: str) -> dict:
    out = pgb.run("repo-ls", "--repo=%d" % index, "--output=json", positional=(path,),
                  what="pgbackrest repo-ls (repo%d)" % index)
    try:
        listing = json.loads(out)
    except ValueError:
        raise SourceError("pgbackrest repo-ls printed no JSON: %s" % clean(out, 200)) from None
    return listing if isinstance(listing, dict) else {}


def read_window(pgb: Pgbackrest, repo_count: int) -> Window:
    """Base backups and the recoverable window over every repository. Only the directory that
    holds the newest segment is listed (its archive time closes the window), not the archive."""
    entry = pgb.info()
    times: dict = {}
    for directory in newest_archive_dirs(entry):
        for index in range(1, repo_count + 1):
            listing = _repo_ls(pgb, index, "archive/%s/%s" % (pgb.stanza, directory))
            for seg, when in segment_times(listing).items():
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
    # pgBackRest backs up into one repository per run: each gets its own base backup, so that any
    # one of them restores alone (WAL is pushed to all by archive-push)
    taken = {}
    for index, repo in enumerate(settings.repositories, start=1):
        pgb.run("backup", "--repo=%d" % index, "--type=" + kind.value,
                what="pgbackrest backup --type=%s into %s (repo%d)" % (kind.value, repo["name"], index))
        win = read_window(pgb, len(settings.repositories))
        taken[repo["name"]] = win.backups[-1].label if win.backups else None
    return {"changed": True, "backup": win.backups[-1].to_dict() if win.backups else None,
            "backups_taken": taken, "window": win.to_dict()}


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
        # check mode plans before the server packages are installed (restore-site.yml's pick phase)
        pg_ctl = "" if check_mode else find_tool("pg_ctl", at_least=major or 0, prefer=major, bin_dir=conn.bin_dir).path
        server = Server(settings.data_dir, port=conn.port, pg_ctl=pg_ctl, service=service, socket_dir=socket_dir)
        job = PitrRestore(pgb, server, conn, replace=replace, keep_previous=keep_previous,
                          recovery_timeout=recovery_timeout)
        if check_mode:
            return dict(job.plan(win, target), changed=True)
        result = job.run(win, target)
    return dict(result.to_dict(), changed=True, window=win.to_dict())


_LOG_DIR_RE = re.compile(r"^[0-9A-F]{16}$")
_VERIFY_STATUS_RE = re.compile(r"^status: (\S+)", re.M)


def archived_segments(pgb: Pgbackrest, index: int, archive_id: str, *, since: str | None) -> set:
    """Segment names in one repository's archive of ``archive_id``, one log directory at a time
    (bounded listings), skipping the directories before ``since``'s."""
    found: set = set()
    base = "archive/%s/%s" % (pgb.stanza, archive_id)
    for name, meta in sorted(_repo_ls(pgb, index, base).items()):
        if not _LOG_DIR_RE.match(str(name)) or not isinstance(meta, dict) or meta.get("type") != "path":
            continue
        if since and name[:8] == since[:8] and name < since[:16]:
            continue
        found.update(segment_times(_repo_ls(pgb, index, "%s/%s" % (base, name))))
    return found


def verify(settings: PitrSettings, *, config_path: str, segment_size: int = DEFAULT_SEGMENT_SIZE,
           check_files: bool = True, check_mode: bool = False, exe: str | None = None) -> dict:
    """Every WAL segment from the oldest base backup's start to the newest one is in every
    repository (each missing one named), and, with ``check_files``, ``pgbackrest verify`` finds
    every file of the archive and the backups intact. IntegrityError naming what is wrong."""
    with _config_file(settings, config_path, check_mode=check_mode) as path:
        if not check_mode:
            make_dirs(settings, repositories=False)
        pgb = Pgbackrest(path, settings.stanza, exe=exe)
        win = read_window(pgb, len(settings.repositories))
        start = win.backups[0].wal_start if win.backups else None
        gaps: dict = {}
        problems = []
        current = newest_archive_dirs(pgb.info())
        for index, repo in enumerate(settings.repositories, start=1):
            for archive in current:
                archive_id = archive.split("/", 1)[0]
                found = find_gaps(archived_segments(pgb, index, archive_id, since=start), start=start,
                                  segment_size=segment_size)
                if found:
                    gaps[repo["name"]] = [g.to_dict() for g in found]
                    problems.append("WAL gap in repository %s (archive %s): %s" % (repo["name"], archive_id, describe(found)))
        report = ""
        if check_files:
            report = clean(pgb.run("verify", "--output=text", "--verbose", what="pgbackrest verify"), 2000)
            status = _VERIFY_STATUS_RE.search(report)
            if not status or status.group(1) != "ok":
                problems.append("pgbackrest verify found damaged or missing files: %s" % report)
    if problems:
        raise IntegrityError("%s. A restore cannot replay WAL past a gap: take a new full base backup "
                             "(postgres_pitr action=backup backup_type=full) so the window starts after it, "
                             "and find why the segment was lost (archive-push-queue-max dropped WAL while a "
                             "repository was unreachable, or the repository was altered)" % "; ".join(problems))
    return {"changed": False, "verified": True, "gaps": gaps, "pgbackrest_verify": report, "window": win.to_dict()}
