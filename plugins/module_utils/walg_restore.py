# -*- coding: utf-8 -*-
# Copyright: Lifeline contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The WAL-G half of a point-in-time restore: pick the base backup, ``backup-fetch`` it into the
empty data directory and write the recovery settings that pgBackRest's restore writes itself
(restore_command, the target, ``recovery_target_action=promote``, ``archive_mode=off`` so the
restored cluster never archives into the source's prefix, and ``recovery.signal``).

Everything else (window check, making room, start, waiting for promotion, the proof from the
timeline history, putting the old directory back) is pitr_restore.PitrRestore's, shared with
pgBackRest.
"""
from __future__ import annotations

import os

from ansible_collections.lifeline.dr.plugins.module_utils.errors import ConfigError
from ansible_collections.lifeline.dr.plugins.module_utils.pitr_window import RecoveryTarget, TargetKind, Window
from ansible_collections.lifeline.dr.plugins.module_utils.walg_config import restore_command
from ansible_collections.lifeline.dr.plugins.module_utils.walg_run import Walg


def base_backup_for(window: Window, target: RecoveryTarget) -> str:
    """The named backup; for a time target the newest that ended at or before it; else the newest."""
    if target.kind is TargetKind.BACKUP:
        return target.value
    usable = [b for b in window.backups if target.time is None or b.stop <= target.time]
    if not usable:
        raise ConfigError("no base backup ended before %s: nothing was touched" % target.describe())
    return usable[-1].label


def _quote(value: str) -> str:
    """A postgresql.conf string value."""
    if "\n" in value or "\r" in value or "\0" in value:
        raise ConfigError("a recovery setting may not contain a line break")
    return "'%s'" % value.replace("\\", "\\\\").replace("'", "''")


def recovery_settings(target: RecoveryTarget, command: str) -> dict:
    """The settings that make the fetched cluster recover to ``target`` and promote there."""
    conf = {"restore_command": command, "archive_mode": "off", "recovery_target_timeline": "latest"}
    kind = target.kind
    if kind in (TargetKind.IMMEDIATE, TargetKind.BACKUP):
        conf["recovery_target"] = "immediate"
    elif kind is TargetKind.TIME:
        conf["recovery_target_time"] = target.value
    elif kind is TargetKind.XID:
        conf["recovery_target_xid"] = target.value
    elif kind is TargetKind.NAME:
        conf["recovery_target_name"] = target.value
    if kind is not TargetKind.LATEST:
        conf["recovery_target_action"] = "promote"
    return conf


def write_recovery(data_dir: str, settings: dict) -> None:
    """Append ``settings`` to postgresql.auto.conf (the last value wins over the source's own
    archive_command) and create recovery.signal, both owned by the data directory's owner."""
    st = os.stat(data_dir)
    auto = os.path.join(data_dir, "postgresql.auto.conf")
    lines = ["# lifeline: point-in-time restore with WAL-G"]
    lines += ["%s = %s" % (k, _quote(v)) for k, v in settings.items()]
    with open(auto, "a", encoding="utf-8") as fh:
        fh.write("\n".join(lines) + "\n")
    signal = os.path.join(data_dir, "recovery.signal")
    open(signal, "w", encoding="utf-8").close()
    for path in (auto, signal):
        os.chmod(path, 0o600)
        if os.geteuid() == 0:
            os.chown(path, st.st_uid, st.st_gid)


class WalgFetch:
    """PitrRestore's ``fetch`` for WAL-G (see the module docstring)."""

    def __init__(self, walg: Walg) -> None:
        self.walg = walg

    def __call__(self, data_dir: str, target: RecoveryTarget, window: Window) -> str:
        name = base_backup_for(window, target)
        self.walg.run("backup-fetch", data_dir, name, what="wal-g backup-fetch %s" % name)
        write_recovery(data_dir, recovery_settings(target, restore_command(self.walg.config, self.walg.exe)))
        return name
