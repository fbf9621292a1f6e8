# -*- coding: utf-8 -*-
# Copyright: Lifeline contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The files component: directories as one GNU tar stream, full then incremental.

GNU tar's ``--listed-incremental`` snapshot file is the state an incremental builds on. It lives
under ``<state_dir>/files/<key>/`` (``key`` names the site, host, paths and excludes), one file
per backup id, with ``state.json`` naming the current one. A run works on a copy; the copy
becomes current only in ``after_commit``, once the manifest is stored, so the state never runs
ahead of a backup that exists. A run that could not read some paths (``partial``) does not
advance it either: the next incremental builds on the last complete backup and so picks up
those paths again.
"""
from __future__ import annotations

import contextlib
import enum
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from typing import Iterator, Sequence

from ansible_collections.lifeline.dr.plugins.module_utils import files_tar
from ansible_collections.lifeline.dr.plugins.module_utils.component import Component, Source
from ansible_collections.lifeline.dr.plugins.module_utils.errors import ConfigError, SourceError
from ansible_collections.lifeline.dr.plugins.module_utils.postgres import tail

ARTIFACT = "files.tar"
ARTIFACT_KIND = files_tar.ARTIFACT_KIND
STATE = "state.json"


class Level(str, enum.Enum):
    FULL = "full"
    INCREMENTAL = "incremental"
    AUTO = "auto"   # incremental when a snapshot of a committed backup exists, full otherwise


def check_paths(paths: Sequence[str]) -> list:
    """Absolute, existing directories, normalised and without duplicates; the error names the path."""
    if not paths:
        raise ConfigError("no paths to back up: set lifeline_files_paths (module option paths) to "
                          "absolute directories")
    out = []
    for path in paths:
        if not isinstance(path, str) or not path.startswith("/") or "\x00" in path:
            raise ConfigError("files path %r is not absolute; lifeline_files_paths takes absolute "
                              "directories such as /srv/app/uploads" % (path,))
        norm = os.path.normpath(path)
        if norm == "/":
            raise ConfigError("files path / is the whole filesystem: list the directories to back up")
        if not os.path.isdir(norm):
            what = "is not a directory" if os.path.lexists(norm) else "does not exist"
            raise SourceError("files path %s %s on this host; fix lifeline_files_paths or create it" % (norm, what))
        if norm not in out:
            out.append(norm)
    for path in out:
        inside = [p for p in out if p.startswith(path + "/")]
        if inside:
            raise ConfigError("files path %s contains %s: list each directory once" % (path, ", ".join(inside)))
    return sorted(out)


def state_key(site: str, host: str, paths: list, exclude: list) -> str:
    raw = json.dumps([site, host, paths, sorted(exclude)]).encode()
    return hashlib.sha256(raw).hexdigest()[:16]


class _TarStream(Source):
    name = ARTIFACT
    kind = ARTIFACT_KIND

    def __init__(self, comp: "FilesComponent") -> None:
        self.comp = comp
        self.meta = {"paths": comp.paths}

    @contextlib.contextmanager
    def open(self):
        comp = self.comp
        comp.start_work()
        index = os.path.join(comp.state_path, "run.index")
        argv = files_tar.create_argv(comp.paths, snapshot=comp.work_snapshot, exclude=comp.exclude, index_file=index)
        with tempfile.TemporaryFile() as err:
            try:
                proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=err, env=files_tar.ENV,  # pylint: disable=consider-using-with
                                        bufsize=1024 * 1024)
            except OSError as exc:
                raise SourceError("cannot run GNU tar: %s" % exc.strerror) from None
            try:
                yield proc.stdout
            except BaseException:
                proc.kill()
                proc.wait()
                raise
            finally:
                proc.stdout.close()
            code = proc.wait()
            err.seek(0)
            stderr = err.read().decode("utf-8", "replace")
        skipped, other = files_tar.skipped_paths(stderr)
        if code not in (0, 1, 2) or other or (code and not skipped):
            raise SourceError("tar of %s failed (exit %d): %s" % (", ".join(comp.paths), code, tail(stderr)))
        comp.skipped.update(skipped)
        try:
            with open(index, encoding="utf-8", errors="surrogateescape") as fh:
                self.meta.update(files_tar.index_counts(fh.read()))
        finally:
            os.unlink(index)
        comp.facts.update(members=self.meta["members"], bytes=self.meta["bytes"])


class FilesComponent(Component):
    """Back up ``paths`` (absolute directories) as one tar stream; ``exclude`` are GNU tar patterns."""

    name = "files"
    #: the snapshot state of another method lives apart (``<key><suffix>``)
    state_suffix = ""

    def __init__(self, paths: Sequence[str], *, exclude: Sequence[str] = (), level: Level = Level.AUTO,
                 site: str, host: str, state_dir: str) -> None:
        super().__init__()
        self.paths = check_paths(list(paths or []))  # before any repository is touched
        self.exclude = [str(p) for p in exclude or []]
        self.level = Level(level)
        self.site, self.host = site, host
        self.state_dir = state_dir
        self.state_path = ""
        self.current: dict = {}
        self.work_snapshot = ""

    # ---- state ----
    def _read_state(self) -> dict:
        try:
            with open(os.path.join(self.state_path, STATE), encoding="utf-8") as fh:
                state = json.load(fh)
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            raise SourceError("cannot read the files snapshot state %s: %s; remove it to start with a "
                              "full backup" % (os.path.join(self.state_path, STATE), exc)) from None
        snapshot = os.path.join(self.state_path, str(state.get("snapshot", "")))
        if not isinstance(state.get("backup_id"), str) or not os.path.isfile(snapshot):
            return {}
        return state

    def prepare(self) -> None:
        self.tools = {"tar": files_tar.tar_version()}
        self.state_path = os.path.join(self.state_dir, "files",
                                       state_key(self.site, self.host, self.paths, self.exclude) + self.state_suffix)
        self.current = self._read_state()
        if self.level is Level.INCREMENTAL and not self.current:
            raise SourceError("an incremental backup of %s needs a committed earlier backup of the same "
                              "paths and excludes, and there is none in %s; run a full one (level full "
                              "or auto)" % (", ".join(self.paths), self.state_path))
        incremental = self.level is not Level.FULL and bool(self.current)
        self.kind = "incremental" if incremental else "full"
        self.parent_id = self.current["backup_id"] if incremental else None
        self.facts = {"paths": self.paths, "exclude": self.exclude, "level": self.kind}

    def plan(self) -> list:
        what = ("incremental on top of %s" % self.parent_id) if self.parent_id else "full"
        return ["path %s (%s)" % (p, what) for p in self.paths]

    def start_work(self) -> None:
        """A private copy of the current snapshot (none for a full backup) for tar to advance."""
        os.makedirs(self.state_path, mode=0o700, exist_ok=True)
        self.work_snapshot = os.path.join(self.state_path, "run-%d.snar" % os.getpid())
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.work_snapshot)
        if self.parent_id:
            shutil.copyfile(os.path.join(self.state_path, self.current["snapshot"]), self.work_snapshot)

    def artifacts(self) -> Iterator[Source]:
        # consistent_at stays the run's start: a file changed after it may or may not be in.
        yield _TarStream(self)

    def after_commit(self, manifest) -> None:
        if self.skipped:
            return  # partial: the next run builds on the last complete backup (see module doc)
        name = manifest.backup_id + ".snar"
        os.replace(self.work_snapshot, os.path.join(self.state_path, name))
        tmp = os.path.join(self.state_path, STATE + ".tmp")
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump({"backup_id": manifest.backup_id, "snapshot": name, "paths": self.paths,
                       "exclude": self.exclude}, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, os.path.join(self.state_path, STATE))
        old = self.current.get("snapshot")
        if old and old != name:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(os.path.join(self.state_path, old))

    def close(self) -> None:
        if self.work_snapshot:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.work_snapshot)
