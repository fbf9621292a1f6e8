# -*- coding: utf-8 -*-
# Copyright: Lifeline contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""redis-server processes a restore starts or controls.

``replicate_into``: Lifeline as a one-shot master that a running server on this host loads a
staged RDB from. ``TempRedis``: a private server on a free loopback port whose directory is the
restore's own 0700 staging directory; it loads a staged RDB so its keys can be copied into a
running server elsewhere. Its password is random and lives in its 0600 config file, never in
argv. ``ServiceControl``: how a restore stops and starts a server it manages (systemd here; the
tests give their own).
"""
from __future__ import annotations

import abc
import os
import secrets
import shutil
import signal
import socket
import subprocess
import time

from ansible_collections.lifeline.dr.plugins.module_utils.errors import DependencyError, SourceError
from ansible_collections.lifeline.dr.plugins.module_utils.redis_conn import RedisConnection, ReplyError, RespClient


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def tcp_owner(local_port: int, *, remote_port: int | None = None) -> int | None:
    """The uid owning this host's TCP socket on ``local_port``: the listening one, or the one
    connected to ``remote_port``. Read from /proc/net/tcp{,6}: the kernel's word, not a server's."""
    state = "0A" if remote_port is None else "01"   # LISTEN, ESTABLISHED
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table, encoding="ascii") as fh:
                rows = [line.split() for line in fh.readlines()[1:]]
        except OSError:
            continue
        for row in rows:
            if (len(row) > 7 and row[3] == state and int(row[1].rsplit(":", 1)[1], 16) == local_port
                    and (remote_port is None or int(row[2].rsplit(":", 1)[1], 16) == remote_port)):
                return int(row[7])
    return None


def wait_ready(conn: RedisConnection, *, timeout: float, alive=lambda: True) -> None:
    """Until the server answers PING (not LOADING); SourceError after ``timeout``."""
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline and alive():
        try:
            with conn.connect() as client:
                if client.info("persistence").get("loading") == "0":
                    return
                last = "still loading"
        except SourceError as exc:
            last = str(exc)
        except ReplyError as exc:
            last = exc.text
        time.sleep(0.05)
    raise SourceError("%s did not become ready: %s" % (conn.where(), last))


class TempRedis:
    """A redis-server in ``directory`` with ``config`` lines; a context manager that stops it."""

    def __init__(self, directory: str, *, config: dict | None = None, password: str | None = None,
                 port: int | None = None, binary: str = "redis-server") -> None:
        self.dir = directory
        self.port = port or free_port()
        self.password = password if password is not None else secrets.token_hex(16)
        self.binary = binary
        self.config = {"bind": "127.0.0.1", "port": str(self.port), "dir": directory, "save": '""',
                       "appendonly": "no", "daemonize": "no", "protected-mode": "yes",
                       "logfile": os.path.join(directory, "redis.log"), "unixsocket": '""'}
        self.config.update(config or {})
        self.conf_path = os.path.join(directory, "redis.conf")
        self.proc: subprocess.Popen | None = None

    @property
    def conn(self) -> RedisConnection:
        return RedisConnection(host="127.0.0.1", port=self.port, password=self.password or None, timeout=30)

    def write_config(self) -> None:
        lines = ["%s %s" % kv for kv in self.config.items()]
        if self.password:
            lines.append("requirepass %s" % self.password)
        fd = os.open(self.conf_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write("\n".join(lines) + "\n")

    def start(self, *, timeout: float = 120.0) -> "TempRedis":
        exe = shutil.which(self.binary)
        if not exe:
            raise DependencyError("%s is not installed; install Debian's redis-server" % self.binary)
        if not os.path.exists(self.conf_path):   # a restart runs on the config as the server rewrote it
            self.write_config()
        self.proc = subprocess.Popen([exe, self.conf_path], stdin=subprocess.DEVNULL,  # pylint: disable=consider-using-with
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_ready(self.conn, timeout=timeout, alive=lambda: self.proc.poll() is None)
        except SourceError:
            log = self.log_tail()
            self.stop()
            raise SourceError("a redis-server in %s did not start: %s" % (self.dir, log)) from None
        return self

    def log_tail(self, lines: int = 5) -> str:
        try:
            with open(self.config["logfile"], encoding="utf-8", errors="replace") as fh:
                return " | ".join(line.strip() for line in fh.readlines()[-lines:])
        except OSError:
            return "(no log)"

    def stop(self, *, timeout: float = 60.0) -> None:
        """SIGTERM, as systemd stops a server (it saves only as its config says), then wait."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def __enter__(self) -> "TempRedis":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def _serve_handshake(replica: RespClient, password: str, rdb_path: str) -> bool:
    """Answer a replica's handshake as a master with ``requirepass`` does, then send the RDB as a
    full resync. Nothing but PING is served before AUTH with ``password`` succeeded: False (the
    caller drops the connection) for a wrong or missing AUTH; True once the RDB was sent."""
    authenticated = False
    while True:
        command = replica.read_reply()
        if not isinstance(command, list) or not command:
            raise SourceError("the target sent %r during the replication handshake" % (command,))
        name = command[0].upper()
        if name == b"PING":
            replica.send_raw(b"+PONG\r\n")
        elif name == b"AUTH":
            authenticated = secrets.compare_digest(command[-1], password.encode())
            replica.send_raw(b"+OK\r\n" if authenticated else b"-WRONGPASS invalid password\r\n")
            if not authenticated:
                return False
        elif not authenticated:
            replica.send_raw(b"-NOAUTH Authentication required.\r\n")
            return False
        elif name == b"REPLCONF":
            replica.send_raw(b"+OK\r\n")
        elif name in (b"PSYNC", b"SYNC"):
            with open(rdb_path, "rb") as fh:
                size = os.fstat(fh.fileno()).st_size
                replica.send_raw(b"+FULLRESYNC %s 0\r\n$%d\r\n" % (secrets.token_hex(20).encode(), size))
                replica.sock.sendfile(fh)
            return True
        else:
            replica.send_raw(b"-ERR unexpected during the handshake\r\n")


def _accept_replica(listener: socket.socket, target: RedisConnection, password: str, rdb_path: str,
                    timeout: float) -> RespClient:
    """The connection of ``target`` that logged in and was sent the RDB. Any other local process
    may connect to the port first: one owned by another account than the target's listening
    socket, or one that fails AUTH, is dropped and the next is waited for."""
    server_uid = tcp_owner(target.port)
    port = listener.getsockname()[1]
    refused, deadline = 0, time.monotonic() + min(timeout, 60)
    while True:
        try:
            listener.settimeout(max(0.01, deadline - time.monotonic()))
            sock, peer = listener.accept()
        except OSError:
            raise SourceError("%s did not connect to the replication port on 127.0.0.1 and log in%s; is it on "
                              "another host or in a container?" % (target.where(), " (%d other connections "
                                                                   "refused)" % refused if refused else "")) from None
        sock.settimeout(min(timeout, 30))   # a silent impostor does not hold the port for long
        replica = RespClient(sock, "the target's replication link")
        peer_uid = tcp_owner(peer[1], remote_port=port)
        if server_uid is None or peer_uid == server_uid:
            try:
                if _serve_handshake(replica, password, rdb_path):
                    return replica
            except (SourceError, OSError):
                pass
        replica.close()
        refused += 1


def replicate_into(target: RedisConnection, rdb_path: str, *, timeout: float) -> None:
    """Load ``rdb_path`` into the running ``target`` by replication: Lifeline listens on a
    loopback port as a one-shot master, ``REPLICAOF`` points the target at it, and the target
    loads the snapshot itself (at C speed, replacing all it held; with AOF on it rewrites its AOF
    after the sync, which is waited for). ``masterauth``/``masteruser`` are set for the sync (a
    random password, which the one-shot master requires before it sends anything) and put back;
    ``REPLICAOF NO ONE`` ends it however it ends.
    """
    password = secrets.token_hex(16)
    with socket.socket() as listener, target.connect() as client:
        listener.bind(("127.0.0.1", 0))
        listener.listen(4)
        saved = {name: client.config_get(name) for name in ("masterauth", "masteruser")}
        replica = None
        try:
            client.call("CONFIG", "SET", "masterauth", password)
            if saved["masteruser"] is not None:
                client.call("CONFIG", "SET", "masteruser", "")
            client.call("REPLICAOF", "127.0.0.1", listener.getsockname()[1])
            replica = _accept_replica(listener, target, password, rdb_path, timeout)
            deadline = time.monotonic() + timeout
            while True:
                repl, pers = client.info("replication"), client.info("persistence")
                if (repl.get("master_link_status") == "up" and repl.get("master_sync_in_progress") == "0"
                        and pers.get("loading") == "0" and pers.get("aof_rewrite_in_progress") == "0"
                        and pers.get("aof_rewrite_scheduled") == "0"):
                    break
                if time.monotonic() > deadline:
                    raise SourceError("%s did not finish loading the snapshot in time" % target.where())
                time.sleep(0.02)
        finally:
            client.call("REPLICAOF", "NO", "ONE")
            for name, value in saved.items():
                if value is not None:
                    client.call("CONFIG", "SET", name, value)
            if replica is not None:
                replica.close()


class ServiceControl(abc.ABC):
    """Stops and starts the server a managed restore replaces the data of."""

    @abc.abstractmethod
    def stop(self) -> None: ...

    @abc.abstractmethod
    def start(self) -> None: ...

    def describe(self) -> str:
        return type(self).__name__


class SystemdService(ServiceControl):
    def __init__(self, unit: str) -> None:
        self.unit = unit

    def describe(self) -> str:
        return "systemd unit %s" % self.unit

    def _systemctl(self, verb: str) -> None:
        try:
            out = subprocess.run(["systemctl", verb, self.unit], capture_output=True, text=True,
                                 timeout=300, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise SourceError("systemctl %s %s failed: %s" % (verb, self.unit, exc)) from None
        if out.returncode != 0:
            raise SourceError("systemctl %s %s failed (exit %d): %s" % (
                verb, self.unit, out.returncode, (out.stderr or out.stdout).strip()[-300:]))

    def stop(self) -> None:
        self._systemctl("stop")

    def start(self) -> None:
        self._systemctl("start")
