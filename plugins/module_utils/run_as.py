# -*- coding: utf-8 -*-
# Copyright: Lifeline contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""subprocess keyword arguments that run a tool as a service account with that account's groups
only: ``user=`` alone changes the uid and leaves root's gid 0 and supplementary groups, so the
tool (and a server it starts) could read and write what group root may."""
from __future__ import annotations

import os
import pwd


def as_user(name: str | None) -> dict:
    """``{}`` when not root or no user is asked for (the tool runs as we do)."""
    if not name or os.geteuid() != 0:
        return {}
    pw = pwd.getpwnam(name)
    groups = sorted(set(os.getgrouplist(name, pw.pw_gid)))
    return {"user": pw.pw_uid, "group": pw.pw_gid, "extra_groups": groups}
