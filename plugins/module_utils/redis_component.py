# -*- coding: utf-8 -*-
# Copyright: Lifeline contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The redis component: one artifact per backup, an RDB snapshot or the portable key stream.

``rdb`` (default): a point-in-time snapshot. On a server whose files are on this host, BGSAVE
and stream its dump.rdb (the open file stays the snapshot whatever the server saves next);
otherwise (or with ``method: replication``) the RDB comes over the replication protocol. Either
way the stream is checked on its way to the repositories (redis_rdb): from a file by its CRC-64,
with the key counts INFO keyspace gave in the BGSAVE's own MULTI/EXEC; over replication by
redis-check-rdb, which counts the keys. The counts go into the artifact's meta.

``portable``: every key by SCAN + PTTL + DUMP (redis_keys), for restoring into the same or a
newer Redis with RESTORE. Keys are read one batch at a time: the stream holds each key as it was
when read, not one instant of the whole server (docs/redis.md).
"""
from __future__ import annotations

import contextlib
import datetime
import enum
import os
from typing import Iterator

from ansible_collections.lifeline.dr.plugins.module_utils.component import Component, Source
from ansible_collections.lifeline.dr.plugins.module_utils.errors import IntegrityError, SourceError
from ansible_collections.lifeline.dr.plugins.module_utils.redis_conn import RedisConnection
from ansible_collections.lifeline.dr.plugins.module_utils.redis_keys import PortableStream, export_records
from ansible_collections.lifeline.dr.plugins.module_utils.redis_rdb import RdbCheck, finish_check, stream_check
from ansible_collections.lifeline.dr.plugins.module_utils.redis_snapshot import (
    bgsave,
    check_headroom,
    dump_path,
    save_identity,
    sync_stream,
)
from ansible_collections.lifeline.dr.plugins.module_utils.timeutil import isotime, utcnow

RDB_NAME = "dump.rdb"
PORTABLE_NAME = "keys.llrp"


class Format(str, enum.Enum):
    RDB = "rdb"
    PORTABLE = "portable"


class Method(str, enum.Enum):
    """How an RDB is fetched: ``auto`` reads the file when it is on this host, else replicates."""

    AUTO = "auto"
    FILE = "file"
    REPLICATION = "replication"


class _Checked:
    """A stream that also feeds ``check`` (redis-check-rdb) as it is read."""

    def __init__(self, stream, check) -> None:
        self.stream, self.check = stream, check

    def read(self, size: int = -1) -> bytes:
        data = self.stream.read(size)
        self.check.write(data)
        return data


class _RdbSource(Source):
    kind = "rdb"
    name = RDB_NAME

    def __init__(self, comp: "RedisComponent") -> None:
        self.comp = comp
        self.meta = {"format": Format.RDB.value}

    def _snapshot_file(self, client):
        """BGSAVE, then open the file it wrote; retried if a save of the server's own replaced
        the file between the two (the counts would not be those of our save)."""
        for _attempt in range(3):
            saved, keyspace = bgsave(client, timeout=self.comp.timeout)
            lastsave = saved[0]
            path = dump_path(client, self.comp.conn)
            if path is None:
                raise SourceError("%s: its RDB file is not readable on this host; use method "
                                  "replication or run the backup as a user that can read it" % client.where)
            fh = open(path, "rb")  # pylint: disable=consider-using-with
            info = os.fstat(fh.fileno())
            if abs(info.st_mtime - lastsave) > 5:
                fh.close()   # a server in a container: the same path here is another file
                raise SourceError("%s: %s was not written by the BGSAVE just run (its time differs "
                                  "from LASTSAVE); is the server in a container? use method replication"
                                  % (client.where, path))
            if save_identity(client) == saved:
                self.size_hint = info.st_size
                return fh, lastsave, keyspace
            fh.close()
        raise SourceError("%s saves so often that its RDB file changed three times while being "
                          "opened; retry or use method replication" % client.where)

    @contextlib.contextmanager
    def open(self):
        comp = self.comp
        what = "the RDB snapshot of %s" % comp.conn.where()
        check = None
        try:
            with comp.conn.connect() as client:
                # Both ways fork the server: check that the fork can get its memory first.
                comp.facts["memory"] = check_headroom(client, local=comp.conn.is_local())
                if comp.use_file(client):
                    fh, saved, keyspace = self._snapshot_file(client)
                    self.meta["method"] = Method.FILE.value
                    comp.consistent_at = isotime(datetime.datetime.fromtimestamp(saved, datetime.timezone.utc))
                    # The CRC-64 proves the bytes; the counts come from the fork, or else from
                    # redis-check-rdb parsing the stream.
                    check = stream_check(what) if keyspace is not None else RdbCheck(what)
                    with fh:
                        yield _Checked(fh, check)
                        self.meta["check"] = finish_check(check, lambda: fh)
                    self._counts(keyspace, check.counts)
                else:
                    # No count of the fork's instant here: redis-check-rdb counts the stream.
                    self.meta["method"] = Method.REPLICATION.value
                    comp.consistent_at = isotime(utcnow())
                    check = RdbCheck(what)
                    with sync_stream(comp.conn) as stream:
                        yield _Checked(stream, check)
                        if not stream.done:
                            raise SourceError("%s: the RDB stream was not read to its end" % comp.conn.where())
                    self.meta["check"] = check.close()
                    self.meta.update(check.counts)
            self.meta["rdb_version"] = check.version
        finally:
            if check is not None:
                check.abort()

    def _counts(self, keyspace: dict | None, parsed: dict) -> None:
        """The fork's counts into the meta; where redis-check-rdb also counted, they must agree."""
        if keyspace is None:
            self.meta.update(parsed)
            return
        keys = sum(v["keys"] for v in keyspace.values())
        if parsed and parsed.get("keys") != keys:
            raise IntegrityError("redis-check-rdb counts %s keys in the RDB, the server held %d at its fork"
                                 % (parsed.get("keys"), keys))
        self.meta.update(keys=keys, expires=sum(v["expires"] for v in keyspace.values()),
                         databases={str(db): v["keys"] for db, v in sorted(keyspace.items())})


class _PortableSource(Source):
    kind = "portable"
    name = PORTABLE_NAME

    def __init__(self, comp: "RedisComponent") -> None:
        self.comp = comp
        self.meta = {"format": Format.PORTABLE.value}

    @contextlib.contextmanager
    def open(self):
        self.comp.consistent_at = isotime(utcnow())
        with self.comp.conn.connect() as client:
            stream = PortableStream(export_records(client))
            yield stream
            if not stream.done:
                raise SourceError("the portable export of %s was not read to its end" % client.where)
            writer = stream.writer
            self.meta.update(keys=writer.keys, databases={str(d): n for d, n in sorted(writer.counts.items())},
                             volatile={str(d): n for d, n in sorted(writer.volatile.items())})


class RedisComponent(Component):
    name = "redis"

    def __init__(self, conn: RedisConnection, *, fmt: Format = Format.RDB, method: Method = Method.AUTO,
                 timeout: float = 3600.0) -> None:
        super().__init__()
        self.conn = conn
        self.format = Format(fmt)
        self.method = Method(method)
        self.timeout = timeout

    def use_file(self, client) -> bool:
        if self.method is Method.REPLICATION:
            return False
        reachable = dump_path(client, self.conn) is not None or (
            self.conn.is_local() and client.config_get("dir") and os.access(client.config_get("dir"), os.R_OK))
        if self.method is Method.FILE and not reachable:
            raise SourceError("%s: method file needs its data directory on this host, readable; use "
                              "method auto or replication" % self.conn.where())
        return bool(reachable)

    def prepare(self) -> None:
        with self.conn.connect() as client:
            server = client.info("server")
            keyspace = client.keyspace()
        version = server.get("redis_version", "")
        self.tools = {"redis_server": version}
        self.facts = {"format": self.format.value, "redis_version": version,
                      "keyspace": {str(db): v for db, v in sorted(keyspace.items())},
                      "keys": sum(v["keys"] for v in keyspace.values())}

    def plan(self) -> list:
        return ["%s snapshot of %s (%d keys in %d databases)" % (
            self.format.value, self.conn.where(), self.facts.get("keys", 0), len(self.facts.get("keyspace", {})))]

    def artifacts(self) -> Iterator[Source]:
        yield _RdbSource(self) if self.format is Format.RDB else _PortableSource(self)
