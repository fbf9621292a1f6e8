# -*- coding: utf-8 -*-
# Copyright: Lifeline contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""WAL archiving on a running server: read the settings, set archive_command and archive_timeout
with ALTER SYSTEM and reload, and say when a restart is needed (archive_mode or wal_level must
change; the role's handler restarts the service, never this code).
"""
from __future__ import annotations

import dataclasses
import shlex
import time

from ansible_collections.lifeline.dr.plugins.module_utils.errors import RepositoryError
from ansible_collections.lifeline.dr.plugins.module_utils.postgres import PgConnection, sql

_SETTINGS = ("archive_mode", "wal_level", "archive_command", "archive_timeout", "data_directory",
             "server_version_num")


@dataclasses.dataclass
class ArchiveState:
    settings: dict
    pending_restart: list
    system_id: int
    last_archived_wal: str | None
    last_archived_time: str | None
    failed_count: int
    last_failed_wal: str | None

    @property
    def data_directory(self) -> str:
        return self.settings["data_directory"]


def archive_command(config: str, stanza: str, exe: str = "pgbackrest") -> str:
    return "%s --config=%s --stanza=%s archive-push %%p" % (exe, shlex.quote(config), shlex.quote(stanza))


def read_state(conn: PgConnection) -> ArchiveState:
    with conn.cursor() as cur:
        cur.execute("SELECT name, setting, pending_restart FROM pg_settings WHERE name = ANY(%s)", (list(_SETTINGS),))
        rows = cur.fetchall()
        cur.execute("SELECT system_identifier FROM pg_control_system()")
        system_id = int(cur.fetchone()[0])
        cur.execute("SELECT last_archived_wal, last_archived_time, failed_count, last_failed_wal "
                    "FROM pg_stat_archiver")
        wal, when, failed, failed_wal = cur.fetchone()
    return ArchiveState(settings={r[0]: r[1] for r in rows}, pending_restart=[r[0] for r in rows if r[2]],
                        system_id=system_id, last_archived_wal=wal,
                        last_archived_time=when.isoformat() if when else None,
                        failed_count=int(failed or 0), last_failed_wal=failed_wal)


@dataclasses.dataclass
class ArchivingChange:
    changed: list
    restart_required: list


def wanted_settings(command: str, timeout: int) -> dict:
    return {"archive_mode": "on", "wal_level": "replica", "archive_command": command,
            "archive_timeout": str(int(timeout))}


def plan(state: ArchiveState, wanted: dict) -> ArchivingChange:
    """Which settings differ, and which of those take a restart."""
    current = state.settings
    changed = []
    for name, value in wanted.items():
        have = current.get(name)
        if name == "wal_level" and have == "logical":
            continue  # logical includes replica
        if name == "archive_mode" and have == "always":
            continue
        if have != value:
            changed.append(name)
    restart = [n for n in changed if n in ("archive_mode", "wal_level")]
    restart += [n for n in state.pending_restart if n in ("archive_mode", "wal_level") and n not in restart]
    return ArchivingChange(changed=changed, restart_required=restart)


def apply(conn: PgConnection, change: ArchivingChange, wanted: dict) -> None:
    """ALTER SYSTEM for every changed setting, then pg_reload_conf()."""
    if not change.changed:
        return
    with conn.cursor() as cur:
        for name in change.changed:
            cur.execute(sql().SQL("ALTER SYSTEM SET {} = %s").format(sql().Identifier(name)), (wanted[name],))
        cur.execute("SELECT pg_reload_conf()")


def check_archived(conn: PgConnection, *, timeout: float = 60) -> str:
    """Archiving works end to end: write a WAL record (a restore point), switch segments and wait
    until the archiver reports that segment archived. RepositoryError naming the archiver's last
    failure otherwise. Returns the segment."""
    with conn.cursor() as cur:
        cur.execute("SELECT pg_create_restore_point('lifeline-archive-check')")
        cur.execute("SELECT pg_walfile_name(pg_switch_wal())")
        segment = cur.fetchone()[0]
    deadline = time.monotonic() + timeout
    while True:
        state = read_state(conn)
        if (state.last_archived_wal or "")[:24] >= segment:
            return segment
        if time.monotonic() > deadline:
            raise RepositoryError("WAL segment %s was not archived within %ds: archive_command fails (last failed "
                                  "segment %s, %d failures; see the server log)"
                                  % (segment, timeout, state.last_failed_wal, state.failed_count))
        time.sleep(0.3)
