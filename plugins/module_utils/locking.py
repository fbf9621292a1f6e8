# -*- coding: utf-8 -*-
# Copyright: Lifeline contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Per host+component lock that heals itself.

An flock is tied to the open file, so the kernel releases it when the holder dies: a crashed
run never leaves a lock that blocks the next one (restic#2736, borg#2306). The file records who
holds it, so a refusal names the pid, host and start time.
"""
from __future__ import annotations

import fcntl
import json
import os
import socket
import time

from ansible_collections.lifeline.dr.plugins.module_utils.errors import LockedError, RepositoryError
from ansible_collections.lifeline.dr.plugins.module_utils.timeutil import isotime, utcnow


class Lock:
    def __init__(self, lock_dir: str, name: str, *, wait: float = 0.0) -> None:
        self.path = os.path.join(lock_dir, name + ".lock")
        self.wait = wait
        self._fd: int | None = None

    def __enter__(self) -> "Lock":
        try:
            os.makedirs(os.path.dirname(self.path), mode=0o700, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise RepositoryError("cannot create lock file %s: %s" % (self.path, exc.strerror)) from None
        deadline = time.monotonic() + self.wait
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    holder = self._holder(fd)
                    os.close(fd)
                    raise LockedError(
                        "another run holds %s (%s); waited %ss. It is released as soon as that "
                        "process ends, so a crashed run never blocks the next one"
                        % (self.path, holder, self.wait)) from None
                time.sleep(0.2)
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                                  "since": isotime(utcnow())}).encode(), 0)
        self._fd = fd
        return self

    @staticmethod
    def _holder(fd: int) -> str:
        try:
            info = json.loads(os.pread(fd, 4096, 0) or b"{}")
            return "pid %s on %s since %s" % (info.get("pid"), info.get("host"), info.get("since"))
        except ValueError:
            return "holder unknown"

    def __exit__(self, *exc) -> None:
        if self._fd is not None:
            os.ftruncate(self._fd, 0)
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None
