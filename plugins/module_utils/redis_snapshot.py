# -*- coding: utf-8 -*-
# Copyright: Lifeline contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Taking an RDB snapshot consistently: BGSAVE and wait, or the replication protocol.

BGSAVE: check the fork's memory headroom, wait out a save already running, BGSAVE, poll until
``rdb_bgsave_in_progress:0``, then require ``rdb_last_bgsave_status:ok`` and proof that this
save ran: the save counter ``rdb_saves`` moved (7.0+), or else LASTSAVE moved. A failed save is an
error that says writes may now be refused (MISCONF). Only the RDB file is read, never a live
``appendonlydir``.

Replication (for a server whose data directory is not on this host): ``REPLCONF rdb-only 1``
then ``SYNC``, as ``redis-cli --rdb`` does; the payload comes as a ``$<length>`` bulk or, when the
server saves diskless, between ``$EOF:<40-byte mark>`` markers; both are streamed with bounded
memory.
"""
from __future__ import annotations

import contextlib
import os
import time
from typing import Iterator

from ansible_collections.lifeline.dr.plugins.module_utils.errors import SourceError
from ansible_collections.lifeline.dr.plugins.module_utils.redis_conn import (
    RedisConnection,
    ReplyError,
    RespClient,
    parse_info,
    parse_keyspace,
)

POLL = 0.05
EOF_MARK_LEN = 40


def _meminfo() -> dict:
    out = {}
    with contextlib.suppress(OSError), open("/proc/meminfo", encoding="ascii") as fh:
        for line in fh:
            name, _sep, rest = line.partition(":")
            out[name] = int(rest.split()[0]) * 1024
    return out


def _overcommit() -> int:
    try:
        with open("/proc/sys/vm/overcommit_memory", encoding="ascii") as fh:
            return int(fh.read().strip())
    except (OSError, ValueError):
        return 0


def check_headroom(client: RespClient, *, local: bool) -> dict:
    """Refuse a BGSAVE whose fork may fail for memory (redis#4523): with strict or heuristic
    overcommit, the forked child may need as much memory as the server holds (copy-on-write).
    Only a server on this host can be judged; returns the figures for the manifest."""
    used = int(client.info("memory").get("used_memory_rss", 0) or 0)
    facts = {"used_memory_rss": used}
    if not local:
        return facts
    available = _meminfo().get("MemAvailable")
    overcommit = _overcommit()
    facts.update(mem_available=available, overcommit_memory=overcommit)
    if available is not None and overcommit != 1 and available < used:
        raise SourceError(
            "%s: not enough memory to fork for BGSAVE: the server uses %d MiB, %d MiB are available "
            "and vm.overcommit_memory is %d; free memory or set vm.overcommit_memory=1 (as Redis "
            "recommends)" % (client.where, used >> 20, available >> 20, overcommit))
    return facts


def _persistence(client: RespClient) -> dict:
    return client.info("persistence")


def _save_failed(client: RespClient, info: dict) -> SourceError:
    return SourceError(
        "%s: BGSAVE failed (rdb_last_bgsave_status:%s); the server may now refuse writes with "
        "MISCONF until a save succeeds. Check its log, that its dir (%s) is writable and has space"
        % (client.where, info.get("rdb_last_bgsave_status"), client.config_get("dir") or "?"))


def _wait_idle(client: RespClient, deadline: float) -> dict:
    while True:
        info = _persistence(client)
        if info.get("rdb_bgsave_in_progress") == "0":
            return info
        if time.monotonic() > deadline:
            raise SourceError("%s: BGSAVE still running after the timeout; raise timeout" % client.where)
        time.sleep(POLL)


_QUIET = ("expired_keys", "evicted_keys")


def _bgsave_counted(client: RespClient) -> dict | None:
    """BGSAVE with INFO keyspace right behind it in one pipeline, between two INFO stats. When the
    counters show that nothing ran in between (three commands processed, no key expired or
    evicted), the counts are those of the fork: an RDB holds every key of the fork, expired or
    not, each database's size. Else None. (MULTI/EXEC cannot do this: since Redis 7.0 a BGSAVE
    inside EXEC is only scheduled.)"""
    replies = client.pipeline([("INFO", "stats"), ("BGSAVE",), ("INFO", "keyspace"), ("INFO", "stats")])
    for reply in replies:
        if isinstance(reply, ReplyError):
            raise reply
    before, after = parse_info(replies[0]), parse_info(replies[3])
    try:
        ran = int(after["total_commands_processed"]) - int(before["total_commands_processed"])
        quiet = all(int(after[name]) == int(before[name]) for name in _QUIET)
    except (KeyError, ValueError):
        return None
    return parse_keyspace(parse_info(replies[2])) if ran == 3 and quiet else None


def bgsave(client: RespClient, *, timeout: float = 3600.0) -> tuple:
    """Run a BGSAVE to its end; returns ((LASTSAVE, rdb_saves) after it, the save's identity,
    and the keyspace at its fork, {db: {"keys", "expires"}}, or None when it could not be told).

    Proof that this save happened: the server's save counter ``rdb_saves`` (Redis 7.0+) moved,
    or, on older servers that lack it, LASTSAVE moved (then a save never starts in the second
    of the previous one, since LASTSAVE counts seconds)."""
    deadline = time.monotonic() + timeout
    before = _wait_idle(client, deadline)
    last = int(client.call("LASTSAVE"))
    saves = before.get("rdb_saves")
    if saves is None:
        while int(client.call("TIME")[0]) <= last:
            time.sleep(POLL)
    while True:
        try:
            keyspace = _bgsave_counted(client)
            break
        except ReplyError as exc:
            if "in progress" not in exc.text:   # an AOF rewrite or another save got there first
                raise SourceError("%s refused BGSAVE or INFO: %s" % (client.where, exc.text)) from None
            _wait_idle(client, deadline)
    info = _wait_idle(client, deadline)
    if info.get("rdb_last_bgsave_status") != "ok":
        raise _save_failed(client, info)
    now = int(client.call("LASTSAVE"))
    if now < last or (now == last if saves is None else info.get("rdb_saves") == saves):
        raise SourceError("%s: BGSAVE finished but LASTSAVE and the save counter did not move; "
                          "another process may be managing saves" % client.where)
    return (now, info.get("rdb_saves")), keyspace


def save_identity(client: RespClient) -> tuple:
    """(LASTSAVE, rdb_saves) now: equal to what ``bgsave`` returned while no other save ran."""
    return int(client.call("LASTSAVE")), _persistence(client).get("rdb_saves")


def dump_path(client: RespClient, conn: RedisConnection) -> str | None:
    """The server's RDB file when it is readable here (a local server), else None."""
    if not conn.is_local():
        return None
    directory, name = client.config_get("dir"), client.config_get("dbfilename")
    if not directory or not name:
        return None
    path = os.path.join(directory, name)
    return path if os.access(path, os.R_OK) else None


class _SyncReader:
    """The RDB payload of a SYNC as a file-like ``read``."""

    def __init__(self, client: RespClient, size: int | None, mark: bytes | None) -> None:
        self.client, self.left, self.mark = client, size, mark
        self._tail = b""     # diskless: held back, it may be (part of) the end mark
        self.done = False

    def read(self, size: int = 1024 * 1024) -> bytes:
        if self.done:
            return b""
        if self.mark is None:
            if not self.left:
                self.done = True
                return b""
            data = self.client.read_some(min(size, self.left))
            self.left -= len(data)
            return data
        while True:
            data = self._tail + self.client.read_some(size)
            if data.endswith(self.mark):
                self.done = True
                return data[:-len(self.mark)]
            keep = min(len(data), EOF_MARK_LEN)
            self._tail, out = data[-keep:], data[:-keep]
            if out:
                return out


@contextlib.contextmanager
def sync_stream(conn: RedisConnection) -> Iterator[_SyncReader]:
    """The server's RDB over the replication protocol (needs SYNC permission for an ACL user)."""
    client = conn.connect()
    try:
        with contextlib.suppress(ReplyError):
            client.call("REPLCONF", "rdb-only", "1")  # 7.0+: no command stream after the RDB
        client.send(("SYNC",))
        while True:
            line = client.readline()
            if line:               # empty lines are keep-alives while the server forks and saves
                break
        if line.startswith(b"-"):
            raise SourceError("%s refused SYNC: %s; the user needs the SYNC permission, or run the "
                              "backup on the Redis host" % (conn.where(), line[1:].decode("utf-8", "replace")))
        if line.startswith(b"$EOF:") and len(line) == 5 + EOF_MARK_LEN:
            reader = _SyncReader(client, None, line[5:])
        elif line.startswith(b"$") and line[1:].isdigit():
            reader = _SyncReader(client, int(line[1:]), None)
        else:
            raise SourceError("%s answered SYNC with %r, not an RDB payload" % (conn.where(), line[:40]))
        yield reader   # the caller checks reader.done: a payload not read to its end is no snapshot
    finally:
        client.close()
