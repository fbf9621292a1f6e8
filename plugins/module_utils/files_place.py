# -*- coding: utf-8 -*-
# Copyright: Lifeline contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Moving a staged, verified copy into place: created, replaced whole (a mount point: its
contents), or merged (newer existing files kept). Every move is a rename on one filesystem."""
from __future__ import annotations

import dataclasses
import os
import secrets
import shutil
import stat

STAGE_PREFIX = ".lifeline-restore-"
REPLACED_PREFIX = ".lifeline-replaced-"
REPLACE, MERGE = "replace", "merge"  # actions besides create (restore.RestoreAction's values)
MAX_LISTED = 200      # written/kept paths returned; the counts cover all


@dataclasses.dataclass
class Moved:
    written: list = dataclasses.field(default_factory=list)
    kept: list = dataclasses.field(default_factory=list)
    written_count: int = 0
    kept_count: int = 0

    def put(self, dest: str) -> None:
        self.written_count += 1
        if len(self.written) < MAX_LISTED:
            self.written.append(dest)

    def keep(self, dest: str) -> None:
        self.kept_count += 1
        if len(self.kept) < MAX_LISTED:
            self.kept.append(dest)


def put_in_place(src: str, item: dict, moved: Moved) -> None:
    """Move the staged ``src`` to ``item['dest']`` as ``item['action']`` says (create, replace, merge)."""
    dest = item["dest"]
    os.makedirs(os.path.dirname(dest), exist_ok=True)
    if not os.path.lexists(dest):
        os.rename(src, dest)
        moved.put(dest)
    elif item["action"] == REPLACE and os.path.ismount(dest):
        _replace_contents(src, dest)
        moved.put(dest)
    elif item["action"] == REPLACE:
        aside = os.path.join(os.path.dirname(dest), REPLACED_PREFIX + secrets.token_hex(4))
        os.rename(dest, aside)
        try:
            os.rename(src, dest)
        except OSError:
            os.rename(aside, dest)
            raise
        moved.put(dest)
        if os.path.isdir(aside) and not os.path.islink(aside):
            shutil.rmtree(aside)
        else:
            os.unlink(aside)
    else:
        _merge(src, dest, moved)


def _replace_contents(src: str, dest: str) -> None:
    """Replace a mount point's contents (it cannot be renamed): its entries go aside inside it,
    the restored ones move in, the directory takes the restored owner, mode and times, and what
    was set aside is removed. Staging directories inside it are left to their owner."""
    aside = os.path.join(dest, REPLACED_PREFIX + secrets.token_hex(4))
    os.mkdir(aside, 0o700)
    for name in os.listdir(dest):
        if not name.startswith((REPLACED_PREFIX, STAGE_PREFIX)):
            os.rename(os.path.join(dest, name), os.path.join(aside, name))
    for name in os.listdir(src):
        os.rename(os.path.join(src, name), os.path.join(dest, name))
    info = os.lstat(src)
    os.chown(dest, info.st_uid, info.st_gid)
    os.chmod(dest, stat.S_IMODE(info.st_mode))
    os.utime(dest, ns=(info.st_atime_ns, info.st_mtime_ns))
    shutil.rmtree(aside)


def _merge(src: str, dest: str, moved: Moved) -> None:
    """Put ``src`` at ``dest``: missing entries are moved in whole, older files replaced, newer
    existing files (and entries of another type) kept."""
    if not os.path.lexists(dest):
        os.rename(src, dest)
        moved.put(dest)
        return
    new, old = os.lstat(src), os.lstat(dest)
    if stat.S_ISDIR(new.st_mode) and stat.S_ISDIR(old.st_mode):
        for name in os.listdir(src):
            _merge(os.path.join(src, name), os.path.join(dest, name), moved)
        return
    if stat.S_ISDIR(new.st_mode) or stat.S_ISDIR(old.st_mode) or old.st_mtime_ns > new.st_mtime_ns:
        moved.keep(dest)
        return
    os.rename(src, dest)
    moved.put(dest)
