# -*- coding: utf-8 -*-
# Copyright: Lifeline contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Tools run as postgres carry postgres's groups only, never root's gid 0."""
from __future__ import annotations

import os
import pwd
import subprocess

import pytest

from ansible_collections.lifeline.dr.plugins.module_utils.run_as import as_user


@pytest.mark.skipif(os.geteuid() != 0, reason="dropping to another user needs root; CI runs as root")
def test_a_tool_run_as_postgres_has_its_groups_and_not_roots():
    pw = pwd.getpwnam("postgres")
    out = subprocess.run(["sh", "-c", "id -u; id -G"], capture_output=True, text=True, check=True, **as_user("postgres")).stdout
    uid, groups = out.splitlines()[0], out.splitlines()[1].split()
    assert int(uid) == pw.pw_uid
    assert str(pw.pw_gid) in groups and "0" not in groups, groups


def test_no_user_or_not_root_changes_nothing():
    assert as_user(None) == {} and as_user("") == {}
