# -*- coding: utf-8 -*-
# Copyright: Lifeline contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A throwaway real redis-server for tests: a free loopback port, its own directory, a password.

It is the engine's TempRedis (the same process handling a restore uses) with a fixed test
password and helpers to load and read data; ``RedisService`` is the ServiceControl a managed
restore stops and starts it with, as systemd would (SIGTERM, then the same config again).
"""
from __future__ import annotations

import os
import shutil
import tempfile

from ansible_collections.lifeline.dr.plugins.module_utils.errors import SourceError
from ansible_collections.lifeline.dr.plugins.module_utils.redis_server import ServiceControl, TempRedis

PASSWORD = "lifeline-redis-test-pw"


def comparable_value(client, kind, key):
    """A key's value in a form equal on two servers holding the same data. DUMP holds everything
    (a stream's entries, consumer groups and PEL), but a hashtable-encoded set or hash is dumped in
    bucket order, which follows each server's random hash seed: compare their members instead."""
    if kind in (b"set", "set"):
        return sorted(client.call("SMEMBERS", key))
    if kind in (b"hash", "hash"):
        flat = client.call("HGETALL", key)
        return sorted(zip(flat[::2], flat[1::2]))
    return client.call("DUMP", key)


class RedisServer(TempRedis):
    """``with RedisServer(appendonly=True) as r: r.client().call("SET", "k", "v")``; the
    directory is removed by ``cleanup()`` (the fixtures call it)."""

    def __init__(self, directory: str | None = None, *, appendonly: bool = False, config: dict | None = None,
                 password: str = PASSWORD) -> None:
        self.owns_dir = directory is None
        directory = directory or tempfile.mkdtemp(prefix="lifeline-redis-")
        os.chmod(directory, 0o700)
        cfg = {"appendonly": "yes" if appendonly else "no", "appendfsync": "always" if appendonly else "everysec"}
        cfg.update(config or {})
        super().__init__(directory, config=cfg, password=password)

    def client(self, db: int = 0):
        return self.conn.connect(db=db)

    def params(self) -> dict:
        """The redis module options that reach this server."""
        return {"login_host": "127.0.0.1", "port": self.port, "login_password": self.password}

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def cleanup(self) -> None:
        self.stop()
        if self.owns_dir:
            shutil.rmtree(self.dir, ignore_errors=True)


class RedisService(ServiceControl):
    """Stops and starts a RedisServer the way systemd does a managed one. ``fail`` names verbs
    whose first call fails as a failed ``systemctl`` would: "stop" and "start" do nothing, "started"
    starts the server, then fails (a unit that came up after systemctl gave up)."""

    def __init__(self, server: RedisServer, *, fail: tuple = ()) -> None:
        self.server = server
        self.calls: list = []
        self.fail = set(fail)

    def _failing(self, verb: str) -> None:
        self.calls.append(verb)
        if verb in self.fail:
            self.fail.discard(verb)
            raise SourceError("systemctl %s redis-server failed (exit 1): injected by the test" % verb)

    def stop(self) -> None:
        self._failing("stop")
        self.server.stop()

    def start(self) -> None:
        self._failing("start")
        self.server.start()   # on its config file as CONFIG REWRITE left it
        if "started" in self.fail:
            self.fail.discard("started")
            raise SourceError("systemctl start redis-server failed (exit 1): timed out, injected by the test")
