# -*- coding: utf-8 -*-
# Copyright: Lifeline contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Restore a files backup: the incremental chain, extracted in order, swapped in only when whole.

Each archive of the chain (full first, catalog.chain) is fetched, its listing is checked
(files_tar.check_listing: hostile names refused, counts compared with its manifest), then
extracted with ``--listed-incremental=/dev/null`` (deletions between backups honoured) into a
0700 directory next to the destination, on the target's filesystem. Only when every link
extracted and the staged tree matches what the archives list is anything moved into place, so
a missing link, a damaged archive or a refused one writes nothing at the destination.

Into an existing destination the default is a merge: files the backup has are put in place
unless the existing file is newer (kept and reported); files it does not have are left. With
``replace`` the destination is swapped for the restored copy as a whole (the exact state of the
backup; the old copy is removed once the new one is in place).
"""
from __future__ import annotations

import contextlib
import dataclasses
import os
import posixpath
import shutil
import stat
import subprocess
import re
import tempfile
from typing import Callable, Sequence

from ansible_collections.lifeline.dr.plugins.module_utils import files_tar
from ansible_collections.lifeline.dr.plugins.module_utils.allowed_paths import check_allowed, normalised
from ansible_collections.lifeline.dr.plugins.module_utils.catalog import Entry
from ansible_collections.lifeline.dr.plugins.module_utils.errors import (
    ConfigError,
    IntegrityError,
    NotFoundError,
    RestoreError,
)
from ansible_collections.lifeline.dr.plugins.module_utils.files_backup import ARTIFACT_KIND
from ansible_collections.lifeline.dr.plugins.module_utils.files_place import (
    MERGE,
    REPLACED_PREFIX,
    STAGE_PREFIX,
    Moved,
    Stage,
    put_in_place,
)
from ansible_collections.lifeline.dr.plugins.module_utils.files_rsync import check_location, copy_snapshot
from ansible_collections.lifeline.dr.plugins.module_utils.files_tree import TREE_KIND
from ansible_collections.lifeline.dr.plugins.module_utils.manifest import Manifest
from ansible_collections.lifeline.dr.plugins.module_utils.pipeline import Codec
from ansible_collections.lifeline.dr.plugins.module_utils.postgres import tail
from ansible_collections.lifeline.dr.plugins.module_utils.restore import RestoreAction, RestoreJob, step
from ansible_collections.lifeline.dr.plugins.module_utils.staging import Staging

_SNAPSHOT_NAME = re.compile(r"^[0-9]{8}T[0-9]{6}Z-[0-9a-f]{6}$")


@dataclasses.dataclass
class FilesRestoreOptions:
    paths: Sequence[str] | None = None   # absolute paths as backed up; None: everything
    root: str = "/"                      # /a/b is restored at <root>/a/b
    replace: bool = False
    staging_dir: str = "/var/lib/lifeline/staging"
    state_dir: str = "/var/lib/lifeline"
    rsync_target: str | None = None      # rsync backups: where this side keeps snapshots (required)
    allowed_paths: list | None = None    # the source's lifeline_files_paths; None: no restriction
    rsync_ssh_config: str | None = None  # rsync backups on an SSH target: ssh -F this file


def backed_up_paths(manifest: Manifest) -> list:
    """The manifest's ``paths`` fact, checked: absolute, normalised, not '/' (hostile input)."""
    paths = manifest.facts.get("paths")
    if not isinstance(paths, list) or not paths or not all(
            isinstance(p, str) and p.startswith("/") and p != "/" and "\x00" not in p
            and posixpath.normpath(p) == p for p in paths):
        raise IntegrityError("backup %s does not name the paths it holds as absolute directories"
                             % manifest.backup_id)
    return paths


def archive_of(manifest: Manifest):
    """The one tar artifact of a files backup."""
    arts = [a for a in manifest.artifacts if a.kind == ARTIFACT_KIND]
    if len(arts) != 1:
        raise IntegrityError("backup %s holds %d tar archives; a files backup holds one" % (manifest.backup_id, len(arts)))
    return arts[0]


def snapshot_location(manifest: Manifest, rsync_target: str | None) -> str:
    """The snapshot an rsync backup names, which must be exactly where the restoring side's
    ``rsync_target`` keeps this host's snapshots (``<target>/<site>/<host>/<time>-<hex>``): the
    signed location alone may name any path or SSH host."""
    if not rsync_target:
        raise ConfigError("backup %s is an rsync snapshot: set rsync_target (lifeline_files_rsync_target) to the "
                          "directory this side keeps snapshots under" % manifest.backup_id)
    target = check_location(rsync_target, "the")
    location = check_location(manifest.facts.get("location"), "manifest")
    want = "%s/%s/%s/" % (target.rstrip("/"), manifest.site, manifest.host)
    if not location.startswith(want) or not _SNAPSHOT_NAME.match(location[len(want):]):
        raise IntegrityError("backup %s names the snapshot %s, which is not a snapshot of %s under rsync_target %s"
                             % (manifest.backup_id, location, manifest.host, target))
    return location


def tree_of(manifest: Manifest):
    """The signed file tree of an rsync backup (backups made before it existed are refused)."""
    arts = [a for a in manifest.artifacts if a.kind == TREE_KIND]
    if len(arts) != 1:
        raise IntegrityError("backup %s is an rsync snapshot without a signed file tree (made by lifeline.dr 0.2.0 "
                             "before trees were recorded): its files cannot be checked, so it is not restored; "
                             "copy it by hand after checking it, or restore a newer backup" % manifest.backup_id)
    return arts[0]


def _within(path: str, top: str) -> bool:
    return path == top or path.startswith(top + "/")


class FilesRestore(RestoreJob):
    def __init__(self, entry: Entry, codec: Codec, chain: list, opts: FilesRestoreOptions) -> None:
        super().__init__(entry, codec, staging_dir=opts.staging_dir, state_dir=opts.state_dir)
        self.chain = chain
        self.opts = opts
        self.roots = backed_up_paths(entry.manifest)
        self.location = ""
        if entry.manifest.facts.get("method") == "rsync":
            # An rsync snapshot is whole: no chain; its location is hostile input like any fact.
            self.chain = chain = [entry]
            self.location = snapshot_location(entry.manifest, opts.rsync_target)
            self.tree = tree_of(entry.manifest)
        for link in ([] if self.location else chain):
            if backed_up_paths(link.manifest) != self.roots:
                raise IntegrityError("backup %s of the chain of %s holds other paths; the chain is not one "
                                     "series" % (link.manifest.backup_id, entry.manifest.backup_id))
            archive_of(link.manifest)
        root = opts.root or "/"
        if not root.startswith("/"):
            raise ConfigError("restore root %r must be an absolute path (lifeline_files_restore_root)" % root)
        self.root = os.path.normpath(root)
        check_allowed(sorted(set(self.chosen().values())), normalised(opts.allowed_paths, "lifeline_files_paths"),
                      backup_id=entry.manifest.backup_id, variable="lifeline_files_paths")

    def dest(self, path: str) -> str:
        return os.path.normpath(os.path.join(self.root, path.lstrip("/")))

    def target(self) -> str:
        return "files-" + self.root

    def stage_parent(self, top: str) -> str:
        """Where ``top``'s staging directory goes: next to its destination, or inside it when the
        destination is a mount point (so every move into place stays on one filesystem)."""
        dest = self.dest(top)
        return dest if os.path.isdir(dest) and os.path.ismount(dest) else os.path.dirname(dest)

    def remove_leftovers(self) -> None:
        for parent in {self.stage_parent(top) for top in self.roots}:
            with contextlib.suppress(OSError):
                for name in os.listdir(parent):
                    path = os.path.join(parent, name)
                    info = os.lstat(path)
                    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid():
                        continue  # not one this user's restore made
                    if name.startswith(STAGE_PREFIX):
                        shutil.rmtree(path, ignore_errors=True)
                        self.warnings.append("removed %s left by a restore that did not finish" % path)
                    elif name.startswith(REPLACED_PREFIX):
                        self.warnings.append("%s is a copy a killed restore moved aside; check it and remove "
                                             "it by hand" % path)

    # ---- planning ----
    def chosen(self) -> dict:
        """Each path to restore -> the backed-up directory holding it."""
        out = {}
        for path in self.opts.paths or self.roots:
            norm = os.path.normpath(path) if isinstance(path, str) and path.startswith("/") else None
            top = next((t for t in self.roots if norm and _within(norm, t)), None)
            if top is None:
                raise NotFoundError("backup %s holds %s; %r is not under them" % (
                    self.manifest.backup_id, ", ".join(self.roots), path))
            out[norm] = top
        return out

    def plan(self) -> dict:
        if os.path.lexists(self.root) and not os.path.isdir(self.root):
            raise RestoreError("restore root %s is not a directory" % self.root)
        probe = self.root
        while not os.path.lexists(probe):
            probe = os.path.dirname(probe)
        if not os.access(probe, os.W_OK):
            raise RestoreError("restore root %s is not writable (%s cannot be written by this user or is on "
                               "a read-only filesystem); choose another lifeline_files_restore_root" % (self.root, probe))
        paths = {}
        for path in self.chosen():
            dest = self.dest(path)
            if not os.path.lexists(dest):
                action = RestoreAction.CREATE.value
            else:
                action = RestoreAction.REPLACE.value if self.opts.replace else MERGE
            paths[path] = {"dest": dest, "action": action}
        return {"root": self.root, "replace": self.opts.replace, "paths": paths,
                "backups": [e.manifest.backup_id for e in self.chain]}

    def to_stage(self, plan: dict) -> list:
        if self.location:
            return [self.tree]  # the snapshot itself is copied straight next to the destination
        # One archive is staged at a time: the largest must fit.
        return [max((archive_of(e.manifest) for e in self.chain), key=lambda a: a.plain_size)]

    # ---- the run ----
    def apply(self, plan: dict, staging: Staging, before_replace: Callable | None) -> dict:
        chosen = self.chosen()
        tops = sorted(set(chosen.values()))
        stages: dict = {}
        made: dict = {}   # top -> Stage: the moves check that a staging directory is still ours
        try:
            with step("creating a staging directory for the restore under %s" % self.root):
                for top in tops:
                    parent = self.stage_parent(top)
                    os.makedirs(parent, exist_ok=True)
                    stages[top] = tempfile.mkdtemp(prefix=STAGE_PREFIX, dir=parent)
                    made[top] = Stage.made(stages[top])
            if self.location:
                tree = self.fetch(self.tree, staging)
                checks = self.phases.timed("copy", copy_snapshot, self.manifest, self.location, tops, stages, tree,
                                           self.opts.rsync_ssh_config)
            else:
                checks = self._extract_chain(tops, stages, staging)
            sources = {}
            for path, top in chosen.items():
                src = os.path.normpath(os.path.join(stages[top], files_tar.relative(path)))
                if not os.path.lexists(src):
                    raise NotFoundError("%s is not in backup %s (it did not exist or was deleted by then)"
                                        % (path, self.manifest.backup_id))
                sources[path] = files_tar.relative(path)
            moved = Moved()
            with self.guard.shielded(), step("moving the restored files into place under %s" % self.root):
                for path, rel in sources.items():
                    self.phases.timed("swap", put_in_place, self.root, made[chosen[path]], rel, plan["paths"][path],
                                      moved)
        finally:
            for stage in stages.values():
                shutil.rmtree(stage, ignore_errors=True)
        return {"root": self.root, "verified": True, "checks": checks, "backups": plan["backups"],
                "paths": [{"path": p, **plan["paths"][p]} for p in chosen],
                "written": moved.written, "written_count": moved.written_count,
                "kept_newer": moved.kept, "kept_newer_count": moved.kept_count}

    def _extract_chain(self, tops: list, stages: dict, staging: Staging) -> list:
        """Fetch, check and extract every link in order; compare the staged trees with the model."""
        names = [files_tar.relative(t) for t in self.roots]
        symlinks: set = set()
        model: set = set()
        checks = []
        for link in self.chain:
            m = link.manifest
            art = archive_of(m)
            what = "backup %s (%s)" % (m.backup_id, art.name)
            path = self.fetch(art, staging, "%s.tar" % m.backup_id, entry=link)
            for top in tops:  # the symlinks earlier links really made, beside those their listings named
                symlinks |= files_tar.walk_symlinks(os.path.join(stages[top], files_tar.relative(top)),
                                                    files_tar.relative(top))
            listing = self.phases.timed("check", files_tar.check_listing, path, roots=names,
                                        symlinks=symlinks, what=what)
            want = (art.meta.get("members"), art.meta.get("bytes"))
            if want != (listing.members, listing.bytes):
                raise IntegrityError("%s lists %d members and %d bytes of file data; its manifest records %s and "
                                     "%s" % (what, listing.members, listing.bytes, want[0], want[1]))
            checks.append("backup %s (%s): %d members, %d bytes of file data, as its manifest records"
                          % (m.backup_id, m.kind, listing.members, listing.bytes))
            files_tar.apply_listing(model, listing)
            for top in tops:
                self.phases.timed("extract", self._extract, path, top, stages[top], what)
            staging.remove("%s.tar" % m.backup_id)
        for top in tops:
            rel = files_tar.relative(top)
            expected = {n for n in model if _within(n, rel)}
            staged = files_tar.walk_names(os.path.join(stages[top], rel), rel)
            if staged != expected:
                diff = sorted(staged ^ expected)
                raise RestoreError("the restored copy of %s does not match what the archives list (%d "
                                   "differences, e.g. %s); nothing was moved into place"
                                   % (top, len(diff), ", ".join("/" + d for d in diff[:5])))
            checks.append("%d entries under %s, as the archives of the chain list" % (len(staged), top))
        return checks

    @staticmethod
    def _extract(archive: str, top: str, stage: str, what: str) -> None:
        # Full member names below the stage: --strip-components would not apply to the
        # directory rename records of an incremental dumpdir.
        rel = files_tar.relative(top)
        argv = [files_tar.TAR, "--extract", "--file=" + archive, "--directory=" + stage,
                *files_tar.EXTRACT_FLAGS, "--", rel]
        proc = subprocess.run(argv, capture_output=True, env=files_tar.ENV, check=False)
        if proc.returncode != 0:
            raise RestoreError("extracting %s into staging failed (exit %d): %s; nothing was moved into place"
                               % (what, proc.returncode, tail(proc.stderr)))
