# -*- coding: utf-8 -*-
# Copyright: Lifeline contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The files component's second method: browsable hard-link snapshots with rsync --link-dest.

Each backup is a complete tree at ``<target>/<site>/<host>/<snapshot>/<path as backed up>``,
unchanged files hard-linked to the previous committed snapshot (``--link-dest``); ``target`` is
a local directory or an SSH target (``[user@]host:/dir``). The manifest goes to the repositories
as for tar, with ``facts.method: rsync`` and ``facts.location``; its one artifact is rsync's
itemized change list (``files.rsync-log``), encrypted like any artifact, and the snapshot's file
tree (``files.rsync-tree``, files_tree: every entry's type, mode, owner, content hash and xattrs),
which a restore checks every copied entry against: the snapshot itself lies outside the signed
repositories. Over SSH the tree is hashed from the sources after the copy and a dry-run checksum
compare proves the remote snapshot equals it (``RsyncComponent.prove_remote``).
Each snapshot is whole, so every rsync backup is ``full`` (no parent to restore first).
"""
from __future__ import annotations

import contextlib
import io
import json
import os
import posixpath
import re
import secrets
import shutil
import subprocess
import tempfile

from ansible_collections.lifeline.dr.plugins.module_utils.component import Source
from ansible_collections.lifeline.dr.plugins.module_utils.errors import (
    ConfigError,
    DependencyError,
    IntegrityError,
    RestoreError,
    SourceError,
)
from ansible_collections.lifeline.dr.plugins.module_utils.files_backup import STATE, FilesComponent
from ansible_collections.lifeline.dr.plugins.module_utils.files_tree import (
    TREE_ARTIFACT,
    TREE_KIND,
    compare,
    read_tree,
    write_tree,
)
from ansible_collections.lifeline.dr.plugins.module_utils.postgres import tail
from ansible_collections.lifeline.dr.plugins.module_utils.timeutil import utcnow

LOG_ARTIFACT = "files.rsync-log"
LOG_KIND = "rsync-log"
ENV = {"LC_ALL": "C", "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}
FLAGS = ["-aHAXS", "--numeric-ids", "--relative", "--stats", "--out-format=%i %n%L"]
_SSH_RE = re.compile(r"^(?:[A-Za-z0-9._-]+@)?[A-Za-z0-9.-]+:(/[A-Za-z0-9._/+-]*)$")
_LOCAL_RE = re.compile(r"^/[A-Za-z0-9._/+-]*$")
_VANISHED_RE = re.compile(r'^file has vanished: "(?P<path>.+)"$')
_FAILED_RE = re.compile(r'^rsync: \[sender\] (?P<cause>.+?) "(?P<path>/.+)": (?P<err>.+)$')
_STATS_RE = re.compile(r"^Number of files: ([\d,]+)")


def check_location(text: str, what: str) -> str:
    """A snapshot location: an absolute local path or [user@]host:/path, nothing a shell could read
    differently; ConfigError (IntegrityError for one read from a manifest) otherwise."""
    if not isinstance(text, str) or ".." in text.split("/") or not (_LOCAL_RE.match(text) or _SSH_RE.match(text)):
        raise (IntegrityError if what == "manifest" else ConfigError)(
            "%s rsync location %r must be an absolute path or [user@]host:/path of letters, digits and "
            "'._/+-'" % (what, text))
    return text.rstrip("/") or "/"


def ssh_argv(ssh_config: str | None) -> list:
    """rsync's ``-e`` for an SSH target: ``ssh -F <file>`` (port, identity, known hosts with
    StrictHostKeyChecking) when ``ssh_config`` names one, else the user's own ssh configuration."""
    if not ssh_config:
        return []
    if not _LOCAL_RE.match(ssh_config):
        raise ConfigError("rsync_ssh_config %r must be an absolute path of letters, digits and '._/+-'" % ssh_config)
    return ["-e", "ssh -F " + ssh_config]


def implied_dirs(paths: list) -> int:
    """Ancestors --relative creates above the backed-up paths (rsync counts them as files)."""
    ancestors = set()
    for path in paths:
        parent = posixpath.dirname(path)
        while parent not in ("/", ""):
            ancestors.add(parent)
            parent = posixpath.dirname(parent)
    return len(ancestors)


class _RsyncRun(Source):
    name = LOG_ARTIFACT
    kind = LOG_KIND

    def __init__(self, comp: "RsyncComponent") -> None:
        self.comp = comp
        self.meta = {"location": comp.location}

    @contextlib.contextmanager
    def open(self):
        comp = self.comp
        argv = ["rsync", *FLAGS, *ssh_argv(comp.ssh_config), *["--exclude=" + p for p in comp.exclude]]
        if comp.parent_location:
            argv.append("--link-dest=" + comp.parent_location.split(":", 1)[-1])
        if comp.remote:
            argv.append("--mkpath")   # <target>/<site>/<host> may not exist yet (rsync 3.2.3+ at both ends)
        else:
            os.makedirs(os.path.dirname(comp.location), mode=0o700, exist_ok=True)
        argv += ["--"] + comp.paths + [comp.location + "/"]
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            try:
                code = subprocess.run(argv, stdout=out, stderr=err, env=ENV, check=False).returncode
            except OSError as exc:
                raise SourceError("cannot run rsync: %s" % exc.strerror) from None
            err.seek(0)
            stderr = err.read().decode("utf-8", "replace")
            out.seek(0)
            log = out.read()
        text = log.decode("utf-8", "replace")
        skipped = {}
        for line in (stderr + "\n" + text).splitlines():
            match = _VANISHED_RE.match(line) or _FAILED_RE.match(line)
            if match:
                skipped[match.group("path")] = match.groupdict().get("err") or "file has vanished"
        if code not in (0, 23, 24) or (code and not skipped):
            raise SourceError("rsync of %s to %s failed (exit %d): %s" % (", ".join(comp.paths), comp.location,
                                                                          code, tail(stderr)))
        comp.skipped.update(skipped)
        total = next((int(m.group(1).replace(",", "")) for m in map(_STATS_RE.match, text.splitlines()) if m), None)
        if total is None:
            raise SourceError("rsync of %s printed no statistics: %s" % (", ".join(comp.paths), tail(stderr)))
        comp.facts["members"] = self.meta["members"] = total - implied_dirs(comp.paths)
        yield io.BytesIO(log)


class _SnapshotTree(Source):
    """files_tree of the snapshot just written. A local snapshot is read itself; over SSH the
    local sources are read after the copy, then a dry-run checksum compare of the same sources
    with the remote snapshot proves that what was hashed is what the snapshot holds."""

    name = TREE_ARTIFACT
    kind = TREE_KIND

    def __init__(self, comp: "RsyncComponent") -> None:
        self.comp = comp
        self.meta = {}

    @contextlib.contextmanager
    def open(self):
        comp = self.comp
        rels = [posixpath.relpath(p, "/") for p in comp.paths]
        where = "the sources" if comp.remote else "the snapshot %s" % comp.location
        with tempfile.TemporaryFile() as out:
            try:
                self.meta["entries"] = write_tree("/" if comp.remote else comp.location, rels, out)
            except OSError as exc:
                raise SourceError("cannot read %s to record the snapshot's file tree: %s" % (where, exc)) from None
            if comp.remote:
                comp.prove_remote()
            out.seek(0)
            yield out


class RsyncComponent(FilesComponent):
    """Back up ``paths`` as a hard-link snapshot under ``target`` (local dir or [user@]host:/dir)."""

    state_suffix = "-rsync"

    def __init__(self, paths, *, target: str, ssh_config: str | None = None, **kwargs) -> None:
        super().__init__(paths, **kwargs)
        self.target = check_location(target or "", "the")
        self.ssh_config = ssh_config
        ssh_argv(ssh_config)   # a bad path fails before anything runs
        self.remote = not self.target.startswith("/")
        self.location = ""
        self.parent_location = ""
        self.committed = False

    def prepare(self) -> None:
        try:
            version = subprocess.run(["rsync", "--version"], capture_output=True, env=ENV, check=False).stdout
        except OSError as exc:
            raise DependencyError("cannot run rsync (%s); install the Debian package rsync" % exc.strerror) from None
        super().prepare()
        self.tools = {"rsync": version.decode("utf-8", "replace").splitlines()[0].strip()}
        self.kind, self.parent_id = "full", None  # every snapshot is complete
        self.parent_location = self.current.get("location", "") if self.current else ""
        name = "%s-%s" % (utcnow().strftime("%Y%m%dT%H%M%SZ"), secrets.token_hex(3))
        self.location = "%s/%s/%s/%s" % (self.target.rstrip("/"), self.site, self.host, name)
        self.facts.update(method="rsync", location=self.location, link_dest=self.parent_location or None,
                          level="snapshot")

    def plan(self) -> list:
        base = ("hard-linked to %s" % self.parent_location) if self.parent_location else "first snapshot"
        return ["path %s -> rsync snapshot under %s (%s)" % (p, self.target, base) for p in self.paths]

    def _read_state(self) -> dict:
        try:
            with open(os.path.join(self.state_path, STATE), encoding="utf-8") as fh:
                state = json.load(fh)
        except (OSError, ValueError):
            return {}
        return state if isinstance(state.get("location"), str) else {}

    def start_work(self) -> None:
        pass

    def artifacts(self):
        yield _RsyncRun(self)
        yield _SnapshotTree(self)

    def prove_remote(self) -> None:
        """After the copy and the hashing of the sources: rsync's dry-run checksum compare of the
        same sources with the remote snapshot. Any itemized difference (a file changed, created or
        removed since the copy) fails the backup naming it: the signed tree would not describe the
        snapshot and a restore would refuse it, so no manifest is committed for it."""
        argv = ["rsync", "-n", "-c", "-aHAXS", "--numeric-ids", "--relative", "--delete", "--itemize-changes",
                "--out-format=%i %n%L", *ssh_argv(self.ssh_config), *["--exclude=" + p for p in self.exclude],
                "--", *self.paths, self.location + "/"]
        try:
            proc = subprocess.run(argv, capture_output=True, env=ENV, check=False)
        except OSError as exc:
            raise SourceError("cannot run rsync: %s" % exc.strerror) from None
        out = proc.stdout.decode("utf-8", "replace")
        if proc.returncode not in (0, 24):
            raise SourceError("comparing %s with the snapshot %s failed (exit %d): %s"
                              % (", ".join(self.paths), self.location, proc.returncode, tail(proc.stderr)))
        names = {"/" + line.split(None, 1)[1].split(" -> ")[0].strip("/")
                 for line in out.splitlines() if len(line.split(None, 1)) == 2}
        # Only what the tree describes counts: directories --relative implies above the paths are not in it.
        changed = sorted(n for n in names if any(n == p or n.startswith(p.rstrip("/") + "/") for p in self.paths))
        if changed:
            raise SourceError("%d paths changed while they were copied to %s (e.g. %s); the file tree would not "
                              "describe the snapshot, so nothing was committed: run the backup again"
                              % (len(changed), self.location, ", ".join(changed[:5])))

    def after_commit(self, manifest) -> None:
        os.makedirs(self.state_path, mode=0o700, exist_ok=True)
        tmp = os.path.join(self.state_path, STATE + ".tmp")
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump({"backup_id": manifest.backup_id, "location": self.location, "paths": self.paths}, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, os.path.join(self.state_path, STATE))
        self.committed = True

    def close(self) -> None:
        # A local snapshot no manifest describes is removed (a remote one is left, never restored).
        if self.location and not self.remote and not self.committed:
            shutil.rmtree(self.location, ignore_errors=True)


def copy_snapshot(manifest, location: str, tops: list, stages: dict, tree_path: str,
                  ssh_config: str | None = None) -> list:
    """rsync ``tops`` out of the snapshot at ``location`` into their staging directories (device
    nodes refused, as tar's are), then compare every copied entry with the signed file tree at
    ``tree_path``: the snapshot lies where other hosts may write."""
    checks = []
    for top in tops:
        rel = posixpath.relpath(top, "/")
        argv = ["rsync", "-aHAXS", "--numeric-ids", "--relative", "--no-devices", *ssh_argv(ssh_config), "--",
                "%s/./%s" % (location, rel), stages[top] + "/"]
        proc = subprocess.run(argv, capture_output=True, env=ENV, check=False)
        if proc.returncode != 0:
            raise RestoreError("copying %s out of the rsync snapshot %s failed (exit %d): %s; nothing was "
                               "moved into place" % (top, location, proc.returncode, tail(proc.stderr)))
        what = "backup %s (snapshot %s)" % (manifest.backup_id, location)
        tree = read_tree(tree_path, [rel], what)
        count = compare(stages[top], [rel], tree, what)
        checks.append("%d entries under %s copied from the snapshot %s, each as the signed file tree records "
                      "(type, mode, owner, content, xattrs)" % (count, top, location))
    return checks
