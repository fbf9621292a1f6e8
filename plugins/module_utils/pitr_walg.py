# -*- coding: utf-8 -*-
# Copyright: Lifeline contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""WAL archiving through WAL-G (engine only in this increment): its config file, then
archive_command/archive_timeout as for pgBackRest (pitr_archiving). Base backups (backup-push),
restore (backup-fetch), wal-verify and retention are not implemented yet."""
from __future__ import annotations

from ansible_collections.lifeline.dr.plugins.module_utils.pgbackrest_config import write_private
from ansible_collections.lifeline.dr.plugins.module_utils.pitr_archiving import apply, plan, read_state, wanted_settings
from ansible_collections.lifeline.dr.plugins.module_utils.postgres import PgConnection
from ansible_collections.lifeline.dr.plugins.module_utils.walg_config import WalgSettings, archive_command, render


def configure_walg(settings: WalgSettings, conn: PgConnection, *, config_path: str, archive_timeout: int,
                   exe: str = "/usr/local/bin/wal-g") -> dict:
    """Write the 0600 config and set archiving; ``restart_required`` as for pgBackRest."""
    state = read_state(conn)
    wanted = wanted_settings(archive_command(config_path, exe), archive_timeout)
    change = plan(state, wanted)
    written = write_private(config_path, render(settings))
    apply(conn, change, wanted)
    return {"changed": bool(written or change.changed), "config_changed": written,
            "settings_changed": change.changed, "restart_required": change.restart_required,
            "system_id": str(state.system_id)}
