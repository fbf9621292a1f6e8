# -*- coding: utf-8 -*-
# Copyright: Lifeline contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Where a restore of files or secrets may write, as the restoring side's inventory says.

A signed manifest names the paths it holds, but the signature only proves which host made the
backup: a host whose signing key is stolen could sign a backup "of" /etc/cron.d/x or
/root/.ssh/authorized_keys and have a clean DR host write it. So the restoring side passes the
source host's configured paths (``lifeline_files_paths`` / ``lifeline_secrets_paths`` from its
own inventory) as ``allowed_paths``, and a backed-up path outside them is refused before the plan.
"""
from __future__ import annotations

import posixpath

from ansible_collections.lifeline.dr.plugins.module_utils.errors import ConfigError, IntegrityError


def normalised(allowed, variable: str) -> list:
    """``allowed`` checked: absolute paths, normalised (None stays None: no restriction)."""
    if allowed is None:
        return None
    out = []
    for path in allowed:
        if not isinstance(path, str) or not path.startswith("/") or "\x00" in path:
            raise ConfigError("allowed_paths entry %r (%s) must be an absolute path" % (path, variable))
        out.append(posixpath.normpath(path))
    return out


def check_allowed(paths, allowed, *, backup_id: str, variable: str) -> None:
    """IntegrityError naming the first of ``paths`` (absolute, from a manifest) that is neither one
    of ``allowed`` nor below one; nothing is checked when ``allowed`` is None."""
    if allowed is None:
        return
    for path in paths:
        if not any(path == top or path.startswith(top.rstrip("/") + "/") for top in allowed):
            raise IntegrityError(
                "backup %s holds %s, which is not under the source host's %s (%s) on this side; refusing "
                "to restore it (a signed manifest alone does not decide where a restore writes). Add the "
                "path to %s for that host in the restoring inventory if it belongs there"
                % (backup_id, path, variable, ", ".join(allowed) or "empty", variable))
