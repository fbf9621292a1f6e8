# -*- coding: utf-8 -*-
# Copyright: Lifeline contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The restore side every component shares: lock, leftovers, plan, staging, fetch, phases.

``RestoreJob.run`` is a template method (barman's backup executor): it takes the per-target
lock, removes what a killed restore left behind (its staging directory, and whatever the
component left on the target), plans (every refusal happens here, before anything changes),
checks staging space, and hands a fresh staging directory to the component's ``apply``.
SIGTERM and SIGHUP raise inside the run so every ``finally`` removes staged plaintext and
temporary copies; stretches that must not be cut (a swap, a clean-up) are shielded.
"""
from __future__ import annotations

import abc
import contextlib
import enum
import os
import re
import signal
import threading
import time
from typing import Callable, Iterator, Sequence

from ansible_collections.lifeline.dr.plugins.module_utils import staging as staging_mod
from ansible_collections.lifeline.dr.plugins.module_utils.catalog import Entry
from ansible_collections.lifeline.dr.plugins.module_utils.errors import LifelineError, RestoreError
from ansible_collections.lifeline.dr.plugins.module_utils.locking import Lock
from ansible_collections.lifeline.dr.plugins.module_utils.manifest import Artifact
from ansible_collections.lifeline.dr.plugins.module_utils.pipeline import Codec, Sink, fetch_artifact
from ansible_collections.lifeline.dr.plugins.module_utils.timeutil import parse_time, utcnow


class RestoreAction(str, enum.Enum):
    """What a restore does to one target object (a database, a key space, a directory)."""

    CREATE = "create"                 # nothing of that name exists
    REPLACE = "replace"               # it exists and holds data: needs replace=true
    REPLACE_EMPTY = "replace-empty"   # it exists and holds nothing (a fresh server's "postgres")


class Interrupted(BaseException):
    """A signal asked the restore to stop. A BaseException, so no ``except Exception`` swallows
    it on its way out through the clean-up."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signame = signal.Signals(signum).name


class SignalGuard:
    """Turns SIGTERM and SIGHUP into ``Interrupted`` while installed (main thread only; the old
    handlers come back afterwards). Inside ``shielded()`` a signal is only recorded: a swap or
    a clean-up runs to its end. Only the first signal counts."""

    SIGNALS = (signal.SIGTERM, signal.SIGHUP)

    def __init__(self) -> None:
        self.received: int | None = None
        self._shield = 0

    def _handle(self, signum, _frame) -> None:
        if self.received is None:
            self.received = signum
            if not self._shield:
                raise Interrupted(signum)

    @contextlib.contextmanager
    def installed(self) -> Iterator["SignalGuard"]:
        if threading.current_thread() is not threading.main_thread():
            yield self
            return
        old = {sig: signal.signal(sig, self._handle) for sig in self.SIGNALS}
        try:
            yield self
        finally:
            for sig, handler in old.items():
                signal.signal(sig, handler)

    @contextlib.contextmanager
    def shielded(self) -> Iterator[None]:
        self._shield += 1
        try:
            yield
        finally:
            self._shield -= 1


class Phases:
    """Seconds spent per named phase, summed over repeats (reported to the operator as RTO parts)."""

    def __init__(self) -> None:
        self.seconds: dict = {}

    def timed(self, name: str, func: Callable, *args, **kwargs):
        start = time.monotonic()
        try:
            return func(*args, **kwargs)
        finally:
            self.seconds[name] = round(self.seconds.get(name, 0.0) + time.monotonic() - start, 3)


def cause_of(exc: BaseException) -> str:
    """One line naming what went wrong, from an OSError or a driver error."""
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror + (" (%s)" % exc.filename if exc.filename else "")
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


@contextlib.contextmanager
def step(what: str, errors: Sequence[type] = ()) -> Iterator[None]:
    """Maps OSError (and ``errors``, e.g. the database driver's) to RestoreError naming the step."""
    try:
        yield
    except LifelineError:
        raise
    except (OSError, *errors) as exc:
        raise RestoreError("%s failed: %s" % (what, cause_of(exc))) from None


class _Both(Sink):
    def __init__(self, *sinks: Sink) -> None:
        self.sinks = sinks

    def write(self, data: bytes) -> None:
        for sink in self.sinks:
            sink.write(data)

    def reset(self) -> None:
        for sink in self.sinks:
            sink.reset()


_LOCK_NAME = re.compile(r"[^A-Za-z0-9._-]")


class RestoreJob(abc.ABC):
    """One restore of one backup onto one target. Components implement the abstract parts."""

    def __init__(self, entry: Entry, codec: Codec, *, staging_dir: str, state_dir: str) -> None:
        self.entry = entry
        self.manifest = entry.manifest
        self.codec = codec
        self.staging_dir = staging_dir
        self.state_dir = state_dir
        self.phases = Phases()
        self.guard = SignalGuard()
        self.served_by: set = set()
        #: what the operator must learn (fallbacks to another copy, leftovers removed)
        self.warnings: list[str] = []

    # ---- what a component provides ----
    @abc.abstractmethod
    def target(self) -> str:
        """Names the target (e.g. 'host:port'); one restore per target runs at a time."""

    def remove_leftovers(self) -> None:
        """Remove what a killed restore left on the target; runs under the target's lock."""

    @abc.abstractmethod
    def plan(self) -> dict:
        """What the restore would do; raises before anything changes when it must refuse."""

    @abc.abstractmethod
    def to_stage(self, plan: dict) -> list[Artifact]:
        """The artifacts ``apply`` stages (their plaintext must fit in staging at once)."""

    @abc.abstractmethod
    def apply(self, plan: dict, staging: staging_mod.Staging, before_replace: Callable | None) -> dict:
        """Stage, check, then change the target; returns the component's part of the result.

        The final swap runs inside ``self.guard.shielded()``: a signal never cuts it in half."""

    # ---- shared ----
    def fetch(self, art: Artifact, staging: staging_mod.Staging, name: str | None = None, *,
              entry: Entry | None = None, also: Sink | None = None) -> str:
        """Stage one artifact (first intact copy, size+sha256+AEAD checked); returns its path.
        ``entry`` is another backup of the chain (an incremental's parent); default: this one.
        ``also`` (a content check) sees the same plaintext as it is staged."""
        entry = entry or self.entry
        sink = staging.create(name or art.name)
        try:
            self.served_by.add(self.phases.timed(
                "fetch", fetch_artifact, entry.manifest, art, entry.repositories, self.codec,
                sink if also is None else _Both(sink, also), warnings=self.warnings))
        finally:
            sink.close()
        return sink.path

    def run(self, *, before_replace: Callable[[list], object] | None = None) -> dict:
        started = time.monotonic()
        lock_name = "restore-" + _LOCK_NAME.sub("_", self.target())
        try:
            with self.guard.installed(), step("restore of backup %s" % self.manifest.backup_id):
                with Lock(os.path.join(self.state_dir, "locks"), lock_name):
                    with self.guard.shielded():
                        self.warnings.extend(staging_mod.remove_stale(self.staging_dir))
                        self.remove_leftovers()
                    plan = self.phases.timed("plan", self.plan)
                    with staging_mod.Staging(self.staging_dir) as staging:
                        staging.check_space(sum(a.plain_size for a in self.to_stage(plan)))
                        result = self.apply(plan, staging, before_replace)
        except Interrupted as exc:
            raise RestoreError("restore of backup %s was interrupted by %s before anything was swapped "
                               "in; its staged files and temporary copies were removed"
                               % (self.manifest.backup_id, exc.signame)) from None
        m = self.manifest
        result.update(backup_id=m.backup_id, host=m.host, site=m.site, consistent_at=m.consistent_at,
                      plan=plan, served_by=sorted(self.served_by), phases=self.phases.seconds,
                      warnings=self.warnings, total_seconds=round(time.monotonic() - started, 3),
                      restore_point_age_seconds=int((utcnow() - parse_time(m.consistent_at)).total_seconds()))
        return result
