# -*- coding: utf-8 -*-
# Copyright: Lifeline contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What a component (postgres, redis, files, secrets) gives the orchestration on the backup side.

A ``Component`` yields ``Source``s, one per artifact; ``backup.run_backup`` streams each through
the pipeline into every repository and commits the manifest. Components never touch
repositories or ciphers.
"""
from __future__ import annotations

import abc
import contextlib
from typing import TYPE_CHECKING, BinaryIO, Iterator

if TYPE_CHECKING:  # pragma: no cover - typing only
    from ansible_collections.lifeline.dr.plugins.module_utils.manifest import Manifest


class Source(abc.ABC):
    """One artifact's data as a stream; ``open()`` raises SourceError if the producer failed."""

    name: str = ""
    kind: str = ""
    meta: dict
    #: bytes the stream is expected to hold, if known (lets S3 choose a part size)
    size_hint: int | None = None

    @abc.abstractmethod
    def open(self) -> contextlib.AbstractContextManager[BinaryIO]: ...


class Component(abc.ABC):
    """The backup side of one component.

    ``kind`` is the manifest's kind (full, incremental, schema, data); an incremental sets
    ``parent_id`` to the backup it builds on. ``after_commit`` runs only once the manifest is
    stored, so state a component advances (a tar snapshot file) never runs ahead of a backup
    that exists. ``skipped`` maps what a source could not read (a file that vanished or was
    unreadable mid-run) to the cause: the backup is stored and its outcome is partial.
    """

    name: str = ""
    kind: str = "full"

    def __init__(self) -> None:
        self.tools: dict = {}
        self.facts: dict = {}
        self.consistent_at: str | None = None
        self.parent_id: str | None = None
        self.labels: list = []
        self.skipped: dict = {}

    @abc.abstractmethod
    def prepare(self) -> None:
        """Connect and gather what the backup needs; fail early with SourceError."""

    @abc.abstractmethod
    def plan(self) -> list:
        """What a run would back up (check mode reports it)."""

    @abc.abstractmethod
    def artifacts(self) -> Iterator[Source]: ...

    def after_commit(self, manifest: "Manifest") -> None:
        """Called once the manifest is stored in at least one repository."""

    def close(self) -> None:
        pass
