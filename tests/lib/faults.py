"""Faults the unit tests inject where a real one cannot be had in-process."""
import errno
import os


class FullDisk:
    """Wraps a writer's real file object and fails write() with OSError(ENOSPC) once ``room``
    bytes went through: the error write(2) returns on a full file system (simulated here; the
    real full-disk test, on a tiny tmpfs, is an integration test)."""

    def __init__(self, fh, room: int) -> None:
        self._fh = fh
        self._room = room

    def write(self, data) -> int:
        if len(data) > self._room:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self._room -= len(data)
        return self._fh.write(data)

    def __getattr__(self, name):
        return getattr(self._fh, name)
