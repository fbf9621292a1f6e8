# -*- coding: utf-8 -*-
# Copyright: Lifeline contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The RESP reader against a peer that lies: replies come from a socket pair, not a server."""
from __future__ import annotations

import socket
import threading

import pytest

from ansible_collections.lifeline.dr.plugins.module_utils.errors import SourceError
from ansible_collections.lifeline.dr.plugins.module_utils.redis_conn import (
    MAX_BULK,
    ReplyError,
    RespClient,
    encode_command,
)


def _client(payload: bytes) -> RespClient:
    ours, theirs = socket.socketpair()
    ours.settimeout(5)

    def serve():
        theirs.sendall(payload)
        theirs.close()
    threading.Thread(target=serve, daemon=True).start()
    return RespClient(ours, "test peer")


def test_resp_reads_every_reply_kind():
    client = _client(b"+OK\r\n:-2\r\n$3\r\nabc\r\n$-1\r\n*2\r\n$1\r\na\r\n:5\r\n-ERR bad thing\r\n")
    assert [client.read_reply() for _index in range(5)] == ["OK", -2, b"abc", None, [b"a", 5]]
    err = client.read_reply()
    assert isinstance(err, ReplyError) and err.code == "ERR"


def test_resp_pairs_reader_reads_pttl_and_dump_replies():
    client = _client(b":-1\r\n$2\r\nv1\r\n:1500\r\n$-1\r\n:-2\r\n$0\r\n\r\n")
    assert client.read_int_bulk_pairs(3) == [(-1, b"v1"), (1500, None), (-2, b"")]


@pytest.mark.parametrize("payload, why", [
    (b"$%d\r\n" % (MAX_BULK + 1), "over the limit"),
    (b"*%d\r\n" % (1 << 30), "over the limit"),
    (b"$10\r\nabc", "closed the connection"),
    (b"?what\r\n", "unexpected reply"),
    (b":12x\r\n", "malformed"),
    (b"+" + b"x" * 70000, "longer than"),
    (b"", "closed the connection"),
])
def test_resp_refuses_hostile_replies(payload, why):
    with pytest.raises(SourceError, match=why):
        _client(payload).read_reply()


@pytest.mark.parametrize("payload, why", [
    (b":1\r\n$%d\r\n" % (MAX_BULK + 1), "over the limit"),
    (b":1\r\n$5\r\nab", "closed the connection"),
    (b"+OK\r\n$1\r\na\r\n", "malformed"),
])
def test_resp_pairs_reader_refuses_hostile_replies(payload, why):
    with pytest.raises(SourceError, match=why):
        _client(payload).read_int_bulk_pairs(1)


def test_resp_encodes_binary_safe_arguments():
    assert encode_command(("SET", b"k\r\n", 5, 2.5)) == b"*4\r\n$3\r\nSET\r\n$3\r\nk\r\n\r\n$1\r\n5\r\n$3\r\n2.5\r\n"
