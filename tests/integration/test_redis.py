# -*- coding: utf-8 -*-
# Copyright: Lifeline contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The redis component end to end against real redis-servers: backup (RDB by file and by the
replication protocol, portable), restore into a running server and into a managed one, and the
failures that must change nothing."""
from __future__ import annotations

import os
import socket
import time

import pytest

from lifeline_it import files_under, flip_byte
from redis_server import RedisService, comparable_value

from ansible_collections.lifeline.dr.plugins.module_utils import components, config
from ansible_collections.lifeline.dr.plugins.module_utils.backup import run_backup
from ansible_collections.lifeline.dr.plugins.module_utils.component import Component, Source
from ansible_collections.lifeline.dr.plugins.module_utils.errors import IntegrityError, RestoreError, SourceError
from ansible_collections.lifeline.dr.plugins.module_utils.redis_conn import RedisConnection, RespClient
from ansible_collections.lifeline.dr.plugins.module_utils.redis_datadir import DataDir
from ansible_collections.lifeline.dr.plugins.module_utils.redis_keys import import_records
from ansible_collections.lifeline.dr.plugins.module_utils.redis_portable import NO_TTL, Record
from ansible_collections.lifeline.dr.plugins.module_utils.redis_restore import RedisRestore, RedisRestoreOptions
from ansible_collections.lifeline.dr.plugins.module_utils.redis_server import _serve_handshake

REDIS = components.get("redis")
#: the TTL of the key "short": it outlives the backup, not the wait before the restore
SHORT_MS = 2500


def fill(server) -> None:
    """Every type in two databases, keys with and without TTL, one about to expire."""
    with server.client() as c:
        c.call("SET", "str", "value")
        c.call("SET", "bin", bytes(range(256)))
        c.call("SET", "ttl", "lives", "EX", 3000)
        c.call("SET", "short", "dies", "PX", SHORT_MS)
        c.call("RPUSH", "list", *["item%d" % i for i in range(300)])   # a quicklist, not a listpack
        c.call("HSET", "hash", "a", "1", "b", "2")
        c.call("SADD", "set", "x", "y", "z")
        c.call("SADD", "intset", 1, 2, 3)
        c.call("ZADD", "zset", 1, "one", 2.5, "two")
        for i in range(5):
            c.call("XADD", "stream", "*", "n", i)
        c.call("XGROUP", "CREATE", "stream", "readers", "0")
        c.call("XREADGROUP", "GROUP", "readers", "alice", "COUNT", 2, "STREAMS", "stream", ">")
        c.call("PFADD", "hll", "a", "b", "c")
        c.call("SELECT", 5)
        c.call("SET", "db5key", "five")
        c.call("HSET", "db5hash", "f", "v", "g", "w")
        c.call("EXPIRE", "db5hash", 5000)


def contents(server) -> dict:
    """{(db, key): (type, value, has a TTL)} and the TTLs, for comparing two servers
    (the DUMP payload holds everything: a stream's entries, its consumer groups and their PEL)."""
    out, ttls = {}, {}
    with server.client() as c:
        for db in c.keyspace():
            c.call("SELECT", db)
            cursor = b"0"
            while True:
                cursor, keys = c.call("SCAN", cursor)
                for key in keys:
                    pttl = c.call("PTTL", key)
                    kind = c.call("TYPE", key)
                    out[(db, key)] = (kind, comparable_value(c, kind, key), pttl > 0)
                    ttls[(db, key)] = pttl
                if cursor == b"0":
                    break
    return {"keys": out, "ttls": ttls}


def backup(params: dict, server, **opts):
    p = dict(params, **server.params(), **opts)
    return run_backup(REDIS.backup(p), config.repositories(p), config.codec(p), site="it", host="src",
                      state_dir=p["state_dir"], signer=config.signer(p))


def restore_job(params: dict, server, *, backup_id: str = "latest", replace: bool = False, managed: bool = False,
                fail: tuple = ()):
    p = dict(params, **server.params())
    entry = config.catalog(p).select(site="it", host="src", component="redis", point=backup_id)
    return RedisRestore(entry, config.codec(p), RedisConnection.from_params(p), RedisRestoreOptions(
        replace=replace, service=RedisService(server, fail=fail) if managed else None,
        staging_dir=os.path.join(p["state_dir"], "staging"), state_dir=p["state_dir"]))


def assert_same_data(source_data: dict, target, *, short_expired: bool = False) -> None:
    """Every key with the same type and value (DUMP payload) and TTL. The key "short" must be
    absent once it expired (``short_expired``); before that it may have gone already."""
    got = contents(target)
    want = dict(source_data["keys"])
    if short_expired or (0, b"short") not in got["keys"]:
        want.pop((0, b"short"))
    assert got["keys"] == want
    for key, pttl in got["ttls"].items():
        if want[key][2]:
            assert 0 < pttl <= source_data["ttls"][key] and source_data["ttls"][key] - pttl < 30000, key
        else:
            assert pttl == -1, key


@pytest.mark.parametrize("fmt, method", [("rdb", "file"), ("rdb", "replication"), ("portable", "auto")])
def test_round_trip_into_running_server_keeps_every_type_and_ttl_and_drops_expired(
        redis_factory, redis_params, fmt, method):
    source, target = redis_factory(), redis_factory()
    filled = time.monotonic()
    fill(source)
    before = contents(source)
    outcome = backup(redis_params, source, format=fmt, method=method)
    meta = outcome.manifest.artifacts[0].meta
    assert meta["keys"] == 13 and outcome.manifest.facts["keyspace"]["5"]["keys"] == 2
    assert outcome.manifest.tools["redis_server"].startswith("7.")
    if fmt == "rdb":
        assert meta["method"] == method and "checksum OK" in meta["check"]
    time.sleep(max(0.0, filled + SHORT_MS / 1000 + 0.1 - time.monotonic()))   # "short" has expired
    report = restore_job(redis_params, target).run()
    assert report["verified"] is True and report["action"] == "create"
    # A snapshot loaded by replication may hold the expired key until Redis reclaims it; no read
    # ever returns it (and a key copied with RESTORE is never written at all).
    assert report["keys"] == 12 or (report.get("replicated") and report["keys"] == 13)
    with target.client() as c:
        assert c.call("EXISTS", "short") == 0 and c.call("GET", "short") is None
    assert_same_data(before, target, short_expired=True)


def _non_loopback_ipv4() -> str | None:
    import subprocess  # pylint: disable=import-outside-toplevel
    out = subprocess.run(["hostname", "-I"], capture_output=True, text=True, check=False).stdout.split()
    return next((a for a in out if "." in a and not a.startswith("127.")), None)


def test_rdb_restore_into_a_server_elsewhere_copies_keys_through_a_temporary_server(redis_factory, redis_params):
    address = _non_loopback_ipv4()
    if address is None:
        pytest.skip("no non-loopback IPv4 address to reach a server 'elsewhere' by")
    source, target = redis_factory(), redis_factory(config={"bind": "127.0.0.1 " + address})
    fill(source)
    before = contents(source)
    backup(redis_params, source)
    with target.client() as c:
        c.call("SET", "stale", "replaced")
    p = dict(redis_params, login_host=address, port=target.port, login_password=target.password)
    entry = config.catalog(p).select(site="it", host="src", component="redis", point="latest")
    report = RedisRestore(entry, config.codec(p), RedisConnection.from_params(p), RedisRestoreOptions(
        replace=True, staging_dir=os.path.join(p["state_dir"], "staging"), state_dir=p["state_dir"])).run()
    assert "replicated" not in report and report["restored"] >= 12 and set(report["phases"]) >= {"load", "copy"}
    assert report["verified"] is True
    assert_same_data(before, target)
    with target.client() as c:
        assert c.call("EXISTS", "stale") == 0


def test_replication_backup_reads_a_disk_based_sync_too(redis_factory, redis_params):
    source, target = redis_factory(config={"repl-diskless-sync": "no"}), redis_factory()
    fill(source)
    outcome = backup(redis_params, source, method="replication")
    assert outcome.manifest.artifacts[0].meta["keys"] == 13
    restore_job(redis_params, target).run()
    with target.client(db=5) as c:
        assert c.call("GET", "db5key") == b"five"


def test_restore_refuses_target_holding_keys_without_replace_and_changes_nothing(redis_factory, redis_params):
    source, target = redis_factory(), redis_factory()
    fill(source)
    backup(redis_params, source, format="portable")
    with target.client() as c:
        c.call("SET", "precious", "data")
    with pytest.raises(RestoreError, match=r"already holds 1 keys .*nothing was changed.*replace"):
        restore_job(redis_params, target).run()
    with target.client() as c:
        assert c.keyspace() == {0: {"keys": 1, "expires": 0}}
        assert c.call("GET", "precious") == b"data"


@pytest.mark.parametrize("fmt", ["rdb", "portable"])
def test_restore_with_replace_leaves_exactly_the_backup_and_it_survives_a_restart_with_aof(
        redis_factory, redis_params, fmt):
    source, target = redis_factory(), redis_factory(appendonly=True)
    fill(source)
    backup(redis_params, source, format=fmt)
    with target.client() as c:
        c.call("SET", "str", "old value")
        c.call("SET", "stale", "gone after the restore")
    before = contents(source)
    report = restore_job(redis_params, target, replace=True).run()
    assert report["action"] == "replace" and report["plan"]["target_keys"] == 2
    with target.client() as c:
        assert c.call("EXISTS", "stale") == 0
        assert c.call("GET", "str") == b"value"
    short = {(0, b"short")}   # may or may not have expired by now
    assert set(contents(target)["keys"]) - short == set(before["keys"]) - short
    target.stop()
    target.start()   # loads its AOF: the restored keys are in it, the replaced ones are not
    with target.client() as c:
        assert c.call("EXISTS", "stale") == 0 and c.call("GET", "str") == b"value"
    assert set(contents(target)["keys"]) - short == set(before["keys"]) - short


def test_managed_restore_with_appendonly_survives_a_restart(redis_factory, redis_params):
    source = redis_factory()
    target = redis_factory(appendonly=True)
    fill(source)
    backup(redis_params, source)
    with target.client() as c:
        c.call("SET", "old", "in the old AOF")
    before = contents(source)
    job = restore_job(redis_params, target, replace=True, managed=True)
    report = job.run()
    assert job.opts.service.calls == ["stop", "start"]
    assert report["mode"] == "managed" and report["aof_rewritten"] is True and report["verified"] is True
    with target.client() as c:
        assert c.config_get("appendonly") == "yes"
        assert c.info("persistence")["aof_enabled"] == "1"
    with open(target.conf_path, encoding="utf-8") as fh:
        assert "appendonly yes" in fh.read()   # the restart below runs with AOF on
    target.stop()
    target.start()
    assert_same_data(before, target)
    with target.client() as c:
        assert c.call("EXISTS", "old") == 0
    assert not os.path.exists(os.path.join(target.dir, "appendonlydir.lifeline-replaced"))


def _managed_target(redis_factory, redis_params):
    """A backup of a filled server, and a managed target with AOF on holding one key ("old")."""
    source, target = redis_factory(), redis_factory(appendonly=True)
    fill(source)
    backup(redis_params, source)
    with target.client() as c:
        c.call("SET", "old", "only in the AOF")
    return target


def assert_own_data(target) -> None:
    with target.client() as c:
        assert c.keyspace() == {0: {"keys": 1, "expires": 0}} and c.call("GET", "old") == b"only in the AOF"
        assert c.config_get("appendonly") == "yes"
    with open(target.conf_path, encoding="utf-8") as fh:
        assert "appendonly yes" in fh.read()
    assert not [n for n in os.listdir(target.dir) if ".lifeline-" in n and n != "dump.rdb.lifeline-tmp"]


def test_managed_restore_never_follows_a_symlink_planted_in_the_data_directory(redis_factory, redis_params, tmp_path):
    """The Redis account owns the data directory: a symlink it plants where the restore (root)
    writes must not make root overwrite or chown the file it points to."""
    target = _managed_target(redis_factory, redis_params)
    victim = tmp_path / "victim"
    victim.write_bytes(b"root's file")
    victim.chmod(0o600)
    os.symlink(str(victim), os.path.join(target.dir, "dump.rdb.lifeline-tmp"))
    job = restore_job(redis_params, target, replace=True, managed=True)
    with pytest.raises(RestoreError, match=r"dump.rdb.lifeline-tmp was left by a restore .*or planted.*nothing was"):
        job.run()
    assert job.opts.service.calls == []
    assert victim.read_bytes() == b"root's file" and oct(victim.stat().st_mode & 0o777) == "0o600"
    assert_own_data(target)


def test_data_directory_copy_refuses_a_symlink_planted_after_the_check(tmp_path):
    """The same planted name met at the write itself (a race past the check): O_EXCL|O_NOFOLLOW."""
    data, victim, staged = tmp_path / "data", tmp_path / "victim", tmp_path / "staged"
    data.mkdir()
    victim.write_bytes(b"root's file")
    staged.write_bytes(b"REDIS0011 new data")
    os.symlink(str(victim), str(data / "dump.rdb.lifeline-tmp"))
    directory = DataDir(str(data), os.getuid())
    try:
        with pytest.raises(RestoreError, match="already exists .*planted"):
            directory.copy_in(str(staged), "dump.rdb.lifeline-tmp")
    finally:
        directory.close()
    assert victim.read_bytes() == b"root's file"


def test_managed_restore_refuses_a_data_directory_the_server_does_not_own(redis_factory, redis_params):
    """``dir`` pointed at a directory of another account (the server runs as root here) is refused."""
    target = _managed_target(redis_factory, redis_params)
    os.chown(target.dir, 65534, 65534)
    job = restore_job(redis_params, target, replace=True, managed=True)
    with pytest.raises(RestoreError, match=r"owned by uid 65534 .*not only by uid 0 the server runs as"):
        job.run()
    os.chown(target.dir, 0, 0)
    assert job.opts.service.calls == []
    assert_own_data(target)


@pytest.mark.parametrize("fail", ["start", "started"])
def test_managed_restore_whose_start_fails_puts_the_old_rdb_aof_and_config_back(redis_factory, redis_params, fail):
    """The start fails with nothing started, or after the server came up on the new data."""
    target = _managed_target(redis_factory, redis_params)
    with target.client() as c:
        c.call("SAVE")   # an old dump.rdb too: it must come back, not the backup's
    with open(os.path.join(target.dir, "dump.rdb"), "rb") as fh:
        old_rdb = fh.read()
    job = restore_job(redis_params, target, replace=True, managed=True, fail=(fail,))
    with pytest.raises(RestoreError, match="start redis-server failed.*put back .*started again on its own data"):
        job.run()
    assert job.opts.service.calls == ["stop", "start", "stop", "start"]
    assert_own_data(target)
    with open(os.path.join(target.dir, "dump.rdb"), "rb") as fh:
        assert fh.read() == old_rdb
    target.stop()
    target.start()   # from its own AOF again
    assert_own_data(target)


def test_managed_restore_whose_stop_fails_turns_aof_back_on_in_the_running_server(redis_factory, redis_params):
    target = _managed_target(redis_factory, redis_params)
    job = restore_job(redis_params, target, replace=True, managed=True, fail=("stop",))
    with pytest.raises(RestoreError, match="stop redis-server failed.*put back"):
        job.run()
    assert job.opts.service.calls == ["stop"]
    assert_own_data(target)
    with target.client() as c:
        assert c.info("persistence")["aof_enabled"] == "1"


def test_backup_with_wrong_password_fails_clearly_and_stores_nothing(redis_factory, redis_params):
    source = redis_factory()
    p = dict(redis_params, **dict(source.params(), login_password="wrong-password"))
    with pytest.raises(SourceError, match="refused the login: WRONGPASS.*lifeline_redis_password") as exc:
        run_backup(REDIS.backup(p), config.repositories(p), config.codec(p), site="it", host="src",
                   state_dir=p["state_dir"], signer=config.signer(p))
    assert "wrong-password" not in str(exc.value)
    assert not [f for f in files_under(p["repositories"][0]["path"]) if f.endswith("manifest.json")]


def test_backup_of_unreachable_server_fails_clearly(redis_params):
    from services import free_port  # pylint: disable=import-outside-toplevel
    p = dict(redis_params, login_host="127.0.0.1", port=free_port())
    with pytest.raises(SourceError, match="not reachable.*lifeline_redis_host"):
        run_backup(REDIS.backup(p), config.repositories(p), config.codec(p), site="it", host="src",
                   state_dir=p["state_dir"], signer=config.signer(p))


def test_failed_bgsave_is_reported_with_misconf_and_no_backup_is_stored(redis_factory, redis_params):
    source = redis_factory(config={"dbfilename": "blocked"})
    fill(source)
    # A directory where the RDB goes: BGSAVE's rename(temp, dbfilename) fails even for root.
    os.makedirs(os.path.join(source.dir, "blocked", "inside"))
    with pytest.raises(SourceError, match="BGSAVE failed.*rdb_last_bgsave_status:err.*MISCONF"):
        backup(redis_params, source, method="file")
    with source.client() as c:
        assert c.info("persistence")["rdb_last_bgsave_status"] == "err"
    assert not [f for f in files_under(redis_params["repositories"][0]["path"]) if f.endswith("manifest.json")]


@pytest.mark.parametrize("damage, cause", [("truncated", "truncated"), ("flipped", "does not match its manifest.s sha256")])
def test_restore_refuses_truncated_or_corrupt_artifact_and_changes_nothing(redis_factory, redis_params, damage, cause):
    source, target = redis_factory(), redis_factory()
    fill(source)
    outcome = backup(redis_params, source)
    art = outcome.manifest.artifacts[0]
    path = os.path.join(redis_params["repositories"][0]["path"], outcome.manifest.prefix, art.name)
    if damage == "truncated":
        with open(path, "r+b") as fh:
            fh.truncate(art.size // 2)
    else:
        flip_byte(path, art.size // 2)
    with target.client() as c:
        c.call("SET", "keep", "me")
    with pytest.raises(IntegrityError, match=cause):
        restore_job(redis_params, target, replace=True).run()
    with target.client() as c:
        assert c.keyspace() == {0: {"keys": 1, "expires": 0}}


def test_restore_falls_back_to_an_intact_copy_and_checks_that_copy_afresh(redis_factory, redis_params, tmp_path):
    source, target = redis_factory(), redis_factory()
    fill(source)
    params = dict(redis_params, repositories=[{"name": "bad", "path": str(tmp_path / "bad")},
                                              {"name": "good", "path": str(tmp_path / "good")}])
    outcome = backup(params, source)
    art = outcome.manifest.artifacts[0]
    with open(os.path.join(str(tmp_path / "bad"), outcome.manifest.prefix, art.name), "r+b") as fh:
        fh.seek(art.size - 100)   # near the end: redis-check-rdb has read almost all of it
        byte = fh.read(1)
        fh.seek(art.size - 100)
        fh.write(bytes([byte[0] ^ 0xFF]))
    report = restore_job(params, target).run()
    assert report["served_by"] == ["good"] and report["verified"] is True
    assert any("bad" in w for w in report["warnings"])


class _Forged(Component):
    """A signed backup whose content is damaged at the source: only the format checks catch it."""

    name = "redis"

    def __init__(self, kind: str, data: bytes) -> None:
        super().__init__()
        self.kind_name, self.data = kind, data
        self.tools = {"redis_server": "7.0.0"}

    def prepare(self) -> None:
        pass

    def plan(self) -> list:
        return []

    def artifacts(self):
        import contextlib  # pylint: disable=import-outside-toplevel
        import io  # pylint: disable=import-outside-toplevel
        outer = self

        class _Src(Source):
            kind = outer.kind_name
            name = "dump.rdb" if outer.kind_name == "rdb" else "keys.llrp"
            meta = {"format": outer.kind_name, "keys": 3}

            @contextlib.contextmanager
            def open(self):
                yield io.BytesIO(outer.data)
        yield _Src()


@pytest.mark.parametrize("kind, data, why", [
    ("rdb", b"REDIS0010" + b"\xfa" * 50, "truncated or corrupt|redis-check-rdb rejects"),
    ("portable", b"LLRP\x01\x00\x00\x00\x01\x00\x00\x00\x00", "truncated"),
])
def test_restore_refuses_damaged_content_before_touching_the_target(redis_factory, redis_params, kind, data, why):
    target = redis_factory()
    with target.client() as c:
        c.call("SET", "keep", "me")
    run_backup(_Forged(kind, data), config.repositories(redis_params), config.codec(redis_params), site="it",
               host="src", state_dir=redis_params["state_dir"], signer=config.signer(redis_params))
    with pytest.raises(IntegrityError, match=why):
        restore_job(redis_params, target, replace=True).run()
    with target.client() as c:
        assert c.keyspace() == {0: {"keys": 1, "expires": 0}} and c.call("GET", "keep") == b"me"


@pytest.mark.parametrize("fmt", ["rdb", "portable"])
def test_restore_refuses_a_backup_with_more_databases_than_the_target_before_flushing(redis_factory, redis_params, fmt):
    """A key in db 20 (the source has ``databases 32``) cannot go into a target with 16: refused
    before anything changes, not after the target was emptied."""
    source, target = redis_factory(config={"databases": "32"}), redis_factory()
    with source.client() as c:
        c.call("SET", "k0", "zero")
        c.call("SELECT", 20)
        c.call("SET", "k20", "twenty")
    backup(redis_params, source, format=fmt)
    with target.client() as c:
        c.call("SET", "precious", "only copy")
    for managed in (False, True):
        with pytest.raises(RestoreError, match=r"holds keys in db 20 .*`databases 16` .*at least 21; nothing was"):
            restore_job(redis_params, target, replace=True, managed=managed).run()
    with target.client() as c:
        assert c.keyspace() == {0: {"keys": 1, "expires": 0}} and c.call("GET", "precious") == b"only copy"


def test_import_stops_at_a_refused_select_and_puts_no_key_in_another_db(redis_factory):
    """Pipelined, a refused SELECT 20 let the RESTOREs after it run in db 0."""
    target = redis_factory()
    with target.client() as c:
        c.call("SET", "x", "v")
        payload = c.call("DUMP", "x")
        c.call("FLUSHALL")
        records = [Record(0, b"k0", NO_TTL, payload), Record(20, b"k20", NO_TTL, payload),
                   Record(20, b"k20b", NO_TTL, payload)]
        with pytest.raises(SourceError, match=r"SELECT 20 failed: .*DB index is out of range.*`databases`"):
            import_records(c, records, replace=True)
    with target.client() as c:
        assert c.keyspace() == {0: {"keys": 1, "expires": 0}} and c.call("EXISTS", "k20", "k20b") == 0


@pytest.mark.parametrize("first", [b"*2\r\n$4\r\nAUTH\r\n$5\r\nwrong\r\n", b"", b"*1\r\n$4\r\nPING\r\n"])
def test_replication_handoff_sends_nothing_to_a_peer_that_did_not_log_in(tmp_path, first):
    """Any local process may reach the one-shot master's port before the target: a wrong AUTH,
    or none, followed by PSYNC gets an error and a closed connection, never the snapshot."""
    rdb = tmp_path / "dump.rdb"
    rdb.write_bytes(b"REDIS0011 the snapshot's secret bytes")
    ours, theirs = socket.socketpair()
    with theirs:
        theirs.sendall(first + b"*3\r\n$5\r\nPSYNC\r\n$1\r\n?\r\n$2\r\n-1\r\n")
        served = _serve_handshake(RespClient(ours, "x"), "the-random-password", str(rdb))
        ours.close()
        theirs.settimeout(5)
        got = b""
        while True:
            data = theirs.recv(4096)
            if not data:
                break
            got += data
    assert b"FULLRESYNC" not in got and b"secret" not in got
    assert served is False
    assert got.endswith(b"-WRONGPASS invalid password\r\n" if first.startswith(b"*2") else
                        b"-NOAUTH Authentication required.\r\n")


def test_plan_reports_what_would_change_and_changes_nothing(redis_factory, redis_params):
    source, target = redis_factory(), redis_factory(appendonly=True)
    fill(source)
    backup(redis_params, source)
    with target.client() as c:
        c.call("SET", "keep", "me")
    plan = restore_job(redis_params, target, replace=True, managed=True).plan()
    assert plan["mode"] == "managed" and plan["action"] == "replace" and plan["target_keys"] == 1
    assert plan["backup_keys"] == 13 and plan["appendonly"] is True
    assert target.running()
    with target.client() as c:
        assert c.keyspace() == {0: {"keys": 1, "expires": 0}} and c.config_get("appendonly") == "yes"
