# -*- coding: utf-8 -*-
# Copyright: Lifeline contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""redis_backup, redis_restore, and backup_verify/backup_info on redis backups, through the real
`ansible` CLI against real redis-servers."""
from __future__ import annotations

from lifeline_it import adhoc


def _common(params: dict) -> dict:
    return {k: params[k] for k in ("repositories", "site", "host", "state_dir", "signing_key", "trusted_signers")}


def test_redis_modules_back_up_verify_plan_and_restore_with_verified_key_counts(redis_factory, redis_params):
    source, target = redis_factory(), redis_factory()
    with source.client() as c:
        c.call("SET", "a", "1")
        c.call("SET", "b", "2", "EX", 600)
        c.call("XADD", "events", "*", "kind", "signup")
        c.call("SELECT", 2)
        c.call("HSET", "h", "f", "v")

    rc, backed, out = adhoc("lifeline.dr.redis_backup", dict(
        _common(redis_params), **source.params(), recipients=redis_params["recipients"]))
    assert rc == 0, out
    assert backed["status"] == "ok" and backed["changed"] is True and backed["keys"] == 4
    assert backed["keyspace"] == {"0": {"keys": 3, "expires": 1}, "2": {"keys": 1, "expires": 0}}
    assert backed["artifacts"][0]["name"] == "dump.rdb.zst.age"
    assert source.password not in out

    rc, verified, out = adhoc("lifeline.dr.backup_verify", dict(
        _common(redis_params), component="redis", identity=redis_params["identity"]))
    assert rc == 0, out
    assert verified["ok"] is True and "4 keys" in verified["results"][0]["detail"]

    rc, info, out = adhoc("lifeline.dr.backup_info", dict(_common(redis_params), component="redis"))
    assert rc == 0, out
    assert [b["backup_id"] for b in info["backups"]] == [backed["backup_id"]]

    restore_args = dict(_common(redis_params), **target.params(), identity=redis_params["identity"])
    rc, planned, out = adhoc("lifeline.dr.redis_restore", restore_args, check=True)
    assert rc == 0, out
    assert planned["plan"]["action"] == "create" and planned["plan"]["backup_keys"] == 4
    with target.client() as c:
        assert c.keyspace() == {}   # check mode changed nothing

    rc, restored, out = adhoc("lifeline.dr.redis_restore", restore_args)
    assert rc == 0, out
    assert restored["verified"] is True and restored["keys"] == 4 and restored["backup_id"] == backed["backup_id"]
    assert set(restored["phases"]) >= {"fetch", "check", "replicate"} and restored["replicated"] is True
    with target.client(db=2) as c:
        assert c.call("HGET", "h", "f") == b"v"
    assert target.password not in out


def test_redis_backup_with_wrong_password_fails_with_the_cause_and_never_shows_the_password(redis_factory, redis_params):
    source = redis_factory()
    args = dict(_common(redis_params), **dict(source.params(), login_password="not-the-password-42"),
                recipients=redis_params["recipients"])
    rc, result, out = adhoc("lifeline.dr.redis_backup", args)
    assert rc != 0
    assert result["failed"] is True and result["error"] == "SourceError"
    assert "WRONGPASS" in result["msg"] and "lifeline_redis_password" in result["msg"]
    assert "not-the-password-42" not in out
