# -*- coding: utf-8 -*-
# Copyright: Lifeline contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A small RESP2 client over a plain socket: the one connection path of the redis component.

Why not redis-py: the backup fetches an RDB over the replication protocol (SYNC), a raw byte
stream redis-py does not expose, and a restore pipelines tens of thousands of RESTOREs; a socket,
a buffered reader and RESP framing do both in ~150 lines with no dependency on managed hosts.
The password goes in an AUTH command on the socket, never into argv, the environment or a log;
error messages name the server, never the password.
"""
from __future__ import annotations

import dataclasses
import socket
from typing import Iterable, Sequence

from ansible_collections.lifeline.dr.plugins.module_utils.errors import SourceError

#: RESP limits this client accepts from a server (a hostile or broken peer cannot exhaust memory)
MAX_LINE = 64 * 1024
MAX_BULK = 512 * 1024 * 1024
MAX_ARRAY = 1 << 24


class ReplyError(Exception):
    """An error reply from the server (``-ERR ...``, ``-MISCONF ...``); ``code`` is its first word."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text
        self.code = text.split(" ", 1)[0]


@dataclasses.dataclass
class RedisConnection:
    """Where a Redis server answers and how to log in (the password is never shown)."""

    host: str = "127.0.0.1"
    port: int = 6379
    password: str | None = dataclasses.field(default=None, repr=False)
    username: str | None = None
    timeout: float = 30.0

    @classmethod
    def from_params(cls, params: dict) -> "RedisConnection":
        """From the modules' options (login_host, port, login_password, login_user)."""
        return cls(host=params.get("login_host") or "127.0.0.1", port=int(params.get("port") or 6379),
                   password=params.get("login_password") or None, username=params.get("login_user") or None,
                   timeout=float(params.get("connect_timeout") or 30))

    def where(self) -> str:
        return "Redis at %s:%d" % (self.host, self.port)

    def is_local(self) -> bool:
        """Whether the server runs on this machine (its files are this host's files)."""
        return self.host in ("localhost", "::1") or self.host.startswith("127.")

    def connect(self, *, db: int = 0) -> "RespClient":
        """A logged-in client; SourceError naming the cause and the fix otherwise."""
        try:
            sock = socket.create_connection((self.host, self.port), timeout=self.timeout)
        except OSError as exc:
            raise SourceError("%s is not reachable: %s; check lifeline_redis_host/lifeline_redis_port "
                              "and that redis-server runs" % (self.where(), exc.strerror or exc)) from None
        client = RespClient(sock, self.where())
        try:
            if self.password:
                args = ["AUTH", self.username, self.password] if self.username else ["AUTH", self.password]
                client.call(*args)
            client.call("PING")
            if db:
                client.call("SELECT", db)
        except ReplyError as exc:
            client.close()
            if exc.code in ("NOAUTH", "WRONGPASS", "ERR") and ("auth" in exc.text.lower() or
                                                               "password" in exc.text.lower()):
                raise SourceError("%s refused the login: %s; check lifeline_redis_password (and "
                                  "lifeline_redis_username for an ACL user)" % (self.where(), exc.code)) from None
            raise SourceError("%s: %s" % (self.where(), exc.text)) from None
        except BaseException:
            client.close()
            raise
        return client


def encode_command(args: Sequence) -> bytes:
    """One command in RESP (bulk strings; str, bytes, int and float arguments)."""
    out = [b"*%d\r\n" % len(args)]
    for arg in args:
        if isinstance(arg, str):
            arg = arg.encode()
        elif isinstance(arg, (int, float)):
            arg = repr(arg).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(arg), arg))
    return b"".join(out)


def parse_info(reply: bytes) -> dict:
    """An INFO reply as a dict of strings."""
    out = {}
    for row in reply.decode("utf-8", "replace").splitlines():
        if row and not row.startswith("#") and ":" in row:
            key, value = row.split(":", 1)
            out[key] = value
    return out


def parse_keyspace(info: dict) -> dict:
    """{db: {"keys": n, "expires": n}} from INFO keyspace's fields."""
    out = {}
    for name, value in info.items():
        if name.startswith("db") and name[2:].isdigit():
            fields = dict(item.split("=", 1) for item in value.split(",") if "=" in item)
            out[int(name[2:])] = {"keys": int(fields.get("keys", 0)), "expires": int(fields.get("expires", 0))}
    return out


class RespClient:
    """One connection. ``call`` sends a command and reads its reply; ``pipeline`` sends many at
    once and reads their replies in order (an error reply is returned as a ReplyError, not
    raised, so one failing key does not lose the others' replies)."""

    def __init__(self, sock: socket.socket, where: str) -> None:
        self.sock = sock
        self.where = where
        self.reader = sock.makefile("rb", buffering=1024 * 1024)

    def close(self) -> None:
        try:
            self.reader.close()
        finally:
            self.sock.close()

    def __enter__(self) -> "RespClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def send(self, *commands: Sequence) -> None:
        self.send_raw(b"".join(encode_command(c) for c in commands))

    def send_raw(self, data: bytes) -> None:
        """Commands already encoded (a hot loop's batch)."""
        try:
            self.sock.sendall(data)
        except OSError as exc:
            raise SourceError("%s: sending failed: %s" % (self.where, exc.strerror or exc)) from None

    def call(self, *args):
        self.send(args)
        reply = self.read_reply()
        if isinstance(reply, ReplyError):
            raise reply
        return reply

    def pipeline(self, commands: Iterable[Sequence]) -> list:
        commands = list(commands)
        if not commands:
            return []
        self.send(*commands)
        return [self.read_reply() for _command in commands]

    # ---- reading ----
    def readline(self) -> bytes:
        try:
            line = self.reader.readline(MAX_LINE)
        except OSError as exc:
            raise SourceError("%s: reading failed: %s" % (self.where, exc.strerror or exc)) from None
        if not line:
            raise SourceError("%s closed the connection" % self.where)
        if not line.endswith(b"\r\n"):
            if line.endswith(b"\n"):
                return line[:-1]  # replication keep-alive newlines
            raise SourceError("%s sent a line longer than %d bytes" % (self.where, MAX_LINE))
        return line[:-2]

    def read_exact(self, size: int) -> bytes:
        try:
            data = self.reader.read(size)
        except OSError as exc:
            raise SourceError("%s: reading failed: %s" % (self.where, exc.strerror or exc)) from None
        if len(data) != size:
            raise SourceError("%s closed the connection mid-reply" % self.where)
        return data

    def read_some(self, size: int) -> bytes:
        """Up to ``size`` bytes as they arrive (a raw stream, such as an RDB over SYNC)."""
        try:
            data = self.reader.read1(size)
        except OSError as exc:
            raise SourceError("%s: reading failed: %s" % (self.where, exc.strerror or exc)) from None
        if not data:
            raise SourceError("%s closed the connection mid-stream" % self.where)
        return data

    def _length(self, line: bytes, limit: int) -> int:
        try:
            value = int(line[1:])
        except ValueError:
            raise SourceError("%s sent a malformed reply" % self.where) from None
        if value > limit:
            raise SourceError("%s sent a reply of %d elements/bytes, over the limit %d" % (self.where, value, limit))
        return value

    def read_reply(self):
        line = self.readline()
        kind = line[:1]
        if kind == b"$":
            size = self._length(line, MAX_BULK)
            if size < 0:
                return None
            return self.read_exact(size + 2)[:-2]
        if kind == b":":
            return self._length(line, 1 << 63)
        if kind == b"+":
            return line[1:].decode("utf-8", "replace")
        if kind == b"-":
            return ReplyError(line[1:].decode("utf-8", "replace"))
        if kind == b"*":
            count = self._length(line, MAX_ARRAY)
            if count < 0:
                return None
            return [self.read_reply() for _index in range(count)]
        raise SourceError("%s sent an unexpected reply %r" % (self.where, line[:40]))

    def read_int_bulk_pairs(self, count: int) -> list:
        """``count`` (integer, bulk) reply pairs, as PTTL + DUMP give them: the export's hot loop,
        parsed without the general reader. An error reply raises ReplyError."""
        readline, read = self.reader.readline, self.reader.read
        out = []
        try:
            for _index in range(count):
                first, second = readline(MAX_LINE), readline(MAX_LINE)
                if first[:1] != b":" or second[:1] != b"$" or not first.endswith(b"\r\n"):
                    bad = first if first[:1] != b":" else second
                    if bad[:1] == b"-":
                        raise ReplyError(bad[1:].strip().decode("utf-8", "replace"))
                    if second[:3] == b"$-1":
                        out.append((int(first[1:]), None))
                        continue
                    raise SourceError("%s sent a malformed reply %r" % (self.where, bad[:40]))
                size = int(second[1:])
                if size > MAX_BULK:
                    raise SourceError("%s sent a bulk of %d bytes, over the limit" % (self.where, size))
                if size < 0:
                    out.append((int(first[1:]), None))
                    continue
                data = read(size + 2)
                if len(data) != size + 2:
                    raise SourceError("%s closed the connection mid-reply" % self.where)
                out.append((int(first[1:]), data[:-2]))
        except ValueError:
            raise SourceError("%s sent a malformed reply" % self.where) from None
        except OSError as exc:
            raise SourceError("%s: reading failed: %s" % (self.where, exc.strerror or exc)) from None
        return out

    # ---- helpers ----
    def info(self, section: str) -> dict:
        """INFO ``section`` as a dict of strings."""
        return parse_info(self.call("INFO", section))

    def keyspace(self) -> dict:
        """{db: {"keys": n, "expires": n}} for every database holding keys."""
        return parse_keyspace(self.info("keyspace"))

    def config_get(self, name: str) -> str | None:
        """A CONFIG GET value, None when the command is refused (renamed, ACL) or unknown."""
        try:
            reply = self.call("CONFIG", "GET", name)
        except ReplyError:
            return None
        if isinstance(reply, list) and len(reply) == 2:
            return reply[1].decode("utf-8", "replace")
        return None

    def server_time_ms(self) -> int:
        secs, micros = self.call("TIME")
        return int(secs) * 1000 + int(micros) // 1000
