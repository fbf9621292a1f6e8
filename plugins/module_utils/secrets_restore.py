# -*- coding: utf-8 -*-
# Copyright: Lifeline contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Restore a secrets backup: every file to its path under a root, atomically, with its owner and mode.

The plan checks every artifact's meta (hostile input), reads the encrypted digests and compares
each existing file with them: identical content is left alone, different content is replaced
only with ``replace``; every refusal happens there, before anything changes. Then each file is
decrypted straight into an O_EXCL temporary beside its target (no plaintext in staging), given
its owner and mode, fsynced and read back against its digest; only when every file got that far
are they renamed over their targets. A failure before that removes the temporaries and the
directories the restore created.
"""
from __future__ import annotations

import dataclasses
import os
import stat
from typing import Callable

from ansible_collections.lifeline.dr.plugins.module_utils.allowed_paths import check_allowed, normalised
from ansible_collections.lifeline.dr.plugins.module_utils.catalog import Entry
from ansible_collections.lifeline.dr.plugins.module_utils.errors import IntegrityError, RestoreError
from ansible_collections.lifeline.dr.plugins.module_utils.manifest import Artifact, Manifest
from ansible_collections.lifeline.dr.plugins.module_utils.pipeline import Codec, Sink, fetch_artifact
from ansible_collections.lifeline.dr.plugins.module_utils.restore import RestoreJob, step
from ansible_collections.lifeline.dr.plugins.module_utils.secrets_format import (
    DIGESTS_KIND,
    MAX_DIGESTS,
    SECRET_KIND,
    SecretMeta,
    format_mode,
    parse_digests,
    require_encryption,
    secret_artifacts,
)
from ansible_collections.lifeline.dr.plugins.module_utils.secrets_target import (
    Dirs,
    TempFile,
    existing,
    remove_temporaries,
    resolve_owner,
)
from ansible_collections.lifeline.dr.plugins.module_utils.staging import Staging

CREATE, REPLACE, ATTRIBUTES, UNCHANGED = "create", "replace", "attributes", "unchanged"


@dataclasses.dataclass
class SecretsRestoreOptions:
    root: str = "/"                 # a file backed up at /a/b lands at <root>/a/b
    replace: bool = False           # replace an existing file whose content differs
    staging_dir: str = "/var/lib/lifeline/staging"
    state_dir: str = "/var/lib/lifeline"
    allowed_paths: list | None = None  # the source's lifeline_secrets_paths; None: no restriction


@dataclasses.dataclass
class _File:
    art: Artifact
    meta: SecretMeta
    target: str
    uid: int = -1
    gid: int = -1
    action: str = CREATE
    inspected: tuple = ()   # (st_dev, st_ino) of the existing file the plan compared

    def describe(self) -> dict:
        """What the plan and the result show: never content, never a digest."""
        return {"path": self.target, "source_path": self.meta.path, "mode": format_mode(self.meta.mode),
                "owner": self.meta.owner, "group": self.meta.group, "uid": self.uid, "gid": self.gid,
                "action": self.action}


class _Bytes(Sink):
    def __init__(self, limit: int) -> None:
        self.data, self.limit = bytearray(), limit

    def write(self, data: bytes) -> None:
        if len(self.data) + len(data) > self.limit:
            raise IntegrityError("the digests document is larger than one can be")
        self.data += data

    def reset(self) -> None:
        self.data = bytearray()


def checked_files(m: Manifest, root: str) -> list:
    """Every artifact's meta checked (hostile input), before anything is read or written."""
    require_encryption(m.encryption)  # a forged manifest claiming plaintext secrets: refused
    kinds = {a.kind for a in m.artifacts}
    if kinds - {SECRET_KIND, DIGESTS_KIND} or sum(a.kind == DIGESTS_KIND for a in m.artifacts) != 1:
        raise RestoreError("backup %s is not a secrets backup (one digests artifact and secret files "
                           "only); nothing was changed" % m.backup_id)
    files, seen = [], set()
    for art in secret_artifacts(m):
        try:
            meta = SecretMeta.from_artifact(art, m.backup_id)
        except IntegrityError as exc:
            raise RestoreError(str(exc)) from None
        if meta.path in seen:
            raise RestoreError("backup %s lists %s twice; refusing it" % (m.backup_id, meta.path))
        seen.add(meta.path)
        files.append(_File(art, meta, os.path.join(root, meta.path.lstrip("/"))))
    for item in files:
        parent = os.path.dirname(item.meta.path)
        while parent != "/":
            if parent in seen:
                raise RestoreError("backup %s lists %s and a file below it; refusing it" % (m.backup_id, parent))
            parent = os.path.dirname(parent)
    return files


class SecretsRestore(RestoreJob):
    def __init__(self, entry: Entry, codec: Codec, opts: SecretsRestoreOptions) -> None:
        super().__init__(entry, codec, staging_dir=opts.staging_dir, state_dir=opts.state_dir)
        if not os.path.isabs(opts.root):
            raise RestoreError("the restore root %r is not an absolute path" % opts.root)
        self.opts = opts
        self.root = os.path.normpath(opts.root)
        self.files = checked_files(entry.manifest, self.root)
        check_allowed([f.meta.path for f in self.files], normalised(opts.allowed_paths, "lifeline_secrets_paths"),
                      backup_id=entry.manifest.backup_id, variable="lifeline_secrets_paths")
        self.digests: dict = {}

    def target(self) -> str:
        return "secrets-" + self.root

    def remove_leftovers(self) -> None:
        dirs = Dirs(self.root)
        one_per_dir = {os.path.dirname(f.meta.path): f for f in self.files}
        for item in one_per_dir.values():
            with step("removing temporaries left beside %s" % item.target):
                fd, _missing = dirs.open_parent(item.meta.path, create=False)
                if fd is None:
                    continue
                try:
                    self.warnings.extend(remove_temporaries(fd, os.path.dirname(item.target)))
                finally:
                    os.close(fd)

    def _read_digests(self) -> dict:
        art = next(a for a in self.manifest.artifacts if a.kind == DIGESTS_KIND)
        sink = _Bytes(MAX_DIGESTS)
        self.served_by.add(fetch_artifact(self.manifest, art, self.entry.repositories, self.codec, sink,
                                          warnings=self.warnings))
        return parse_digests(bytes(sink.data), self.manifest)

    def plan(self) -> dict:
        """Each file's action; refuses (nothing changed) a file in the way without ``replace``."""
        self.digests = self.phases.timed("fetch", self._read_digests)
        dirs, conflicts = Dirs(self.root), []
        for item in self.files:
            item.uid, item.gid = resolve_owner(item.meta, self.warnings)
            with step("inspecting %s" % item.target):
                fd, missing = dirs.open_parent(item.meta.path, create=False)
                if fd is None:
                    self._check_creatable(item, missing)
                    item.action = CREATE
                    continue
                try:
                    if not os.access(".", os.W_OK, dir_fd=fd):
                        raise RestoreError("%s is not writable by this user; run the restore with "
                                           "become: true or choose another root" % os.path.dirname(item.target))
                    what, digest, info = existing(fd, os.path.basename(item.target))
                finally:
                    os.close(fd)
            item.action = self._action(item, what, digest, info)
            if item.action == REPLACE and not self.opts.replace:
                conflicts.append(item.target + ("" if what == "file" else " (not a regular file)"))
        if conflicts:
            raise RestoreError("%s already exist%s with other content; nothing was changed. Set replace "
                               "(lifeline_restore_replace: true) to replace %s"
                               % (", ".join(conflicts), "s" if len(conflicts) == 1 else "",
                                  "it" if len(conflicts) == 1 else "them"))
        return {"root": self.root, "files": [f.describe() for f in self.files]}

    def _check_creatable(self, item: _File, missing: list) -> None:
        """Directories will be made for ``item``: the nearest existing one must be writable."""
        probe = os.path.dirname(item.target)
        for _part in missing:
            probe = os.path.dirname(probe)
        while not os.path.isdir(probe):
            probe = os.path.dirname(probe)
        if not os.access(probe, os.W_OK):
            raise RestoreError("restore root %s is not writable (%s cannot be written by this user); run the "
                               "restore with become: true or choose another lifeline_files_restore_root"
                               % (self.root, probe))

    def _action(self, item: _File, what: str, digest, info) -> str:
        if what == "absent":
            return CREATE
        if what == "other":
            if info is not None and stat.S_ISDIR(info.st_mode):
                raise RestoreError("%s is a directory; a secret file cannot replace it; nothing was "
                                   "changed" % item.target)
            return REPLACE
        if digest != self.digests[item.art.name]:
            return REPLACE
        same = (info.st_uid, info.st_gid, info.st_mode & 0o7777) == (item.uid, item.gid, item.meta.mode)
        item.inspected = (info.st_dev, info.st_ino)
        return UNCHANGED if same else ATTRIBUTES

    def to_stage(self, plan: dict) -> list:
        return []  # decrypted straight into a temporary beside each target, never into staging

    def apply(self, plan: dict, staging: Staging, before_replace: Callable | None) -> dict:
        replacing = [f.target for f in self.files if f.action == REPLACE]
        if replacing and before_replace is not None:
            self.phases.timed("safety_backup", before_replace, replacing)
        dirs, ready, fds, done = Dirs(self.root), [], [], False
        try:
            for item in (f for f in self.files if f.action != UNCHANGED):
                with step("preparing %s" % item.target):
                    fds.append(dirs.open_parent(item.meta.path, create=True)[0])
                if item.action == ATTRIBUTES:
                    fds.append(_open_inspected(item, fds[-1]))
                    ready.append((item, None, fds[-1]))
                else:
                    ready.append((item, self._prepare(item, fds[-1]), fds[-1]))
            with self.guard.shielded(), step("putting the restored secret files in place"):
                self.phases.timed("swap", self._swap, ready)
            done = True
        finally:
            for _item, temp, _dir_fd in ready:
                if temp is not None:
                    temp.discard()
            if not done:
                dirs.remove_created()
            for fd in fds:
                os.close(fd)
        results = [_result(f) for f in self.files]
        return {"root": self.root, "files": results, "changed": any(f.action != UNCHANGED for f in self.files),
                "verified": all(r["verified"] for r in results),
                "checks": ["%s (%s): %s" % (r["path"], r["action"], "; ".join(r["checks"])) for r in results]}

    def _prepare(self, item: _File, dir_fd: int) -> TempFile:
        """Decrypt into the temporary, give it owner and mode, fsync, read it back."""
        with step("writing a temporary for %s" % item.target):
            temp = TempFile(dir_fd)
        try:
            self.served_by.add(self.phases.timed("fetch", fetch_artifact, self.manifest, item.art,
                                                 self.entry.repositories, self.codec, temp, warnings=self.warnings))
            with step("writing %s" % item.target):
                written = self.phases.timed("verify", temp.finish, item.uid, item.gid, item.meta.mode)
            if written != self.digests[item.art.name]:
                raise IntegrityError("%s: what was written does not match the digest the backup carries; "
                                     "nothing was changed" % item.target)
        except BaseException:
            temp.discard()
            raise
        return temp

    def _swap(self, ready: list) -> None:
        for item, temp, fd in ready:
            if temp is None:  # same content, other owner or mode: set them on the file the plan compared
                os.fchown(fd, item.uid, item.gid)
                os.fchmod(fd, item.meta.mode)
            else:
                temp.rename_to(os.path.basename(item.target))
                temp.discard()


def _open_inspected(item: _File, dir_fd: int) -> int:
    """The existing file whose owner and mode are to be set, opened without following a link and
    checked to be the very file the plan compared (same device and inode, a regular file with one
    name: fchmod on a second name of another file would change that file too)."""
    fd = os.open(os.path.basename(item.target), os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC,
                 dir_fd=dir_fd)
    info = os.fstat(fd)
    if (info.st_dev, info.st_ino) != item.inspected or not stat.S_ISREG(info.st_mode) or info.st_nlink != 1:
        os.close(fd)
        raise RestoreError("%s changed since it was inspected (another file, not a regular file, or one with "
                           "more than one name); nothing was changed" % item.target)
    return fd


_CHECKS = {CREATE: "written and read back: content matches the digest the backup carries",
           REPLACE: "written and read back: content matches the digest the backup carries",
           ATTRIBUTES: "content already identical to the backup's digest; owner and mode set",
           UNCHANGED: "content, owner and mode already as in the backup"}


def _result(item: _File) -> dict:
    """A restored file as the module returns it: what was checked, in words; no content, no digest."""
    return dict(item.describe(), verified=True, checks=[
        _CHECKS[item.action], "%d bytes, as in the manifest" % item.art.plain_size,
        "mode %s, owner %d:%d" % (format_mode(item.meta.mode), item.uid, item.gid)])
