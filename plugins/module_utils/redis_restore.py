# -*- coding: utf-8 -*-
# Copyright: Lifeline contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Restore a redis backup into a running server, or into a server Lifeline manages.

The artifact is staged and checked whole (an RDB's CRC-64 or redis-check-rdb, redis_rdb; the
portable parser with its count and sha256) before the target changes; a target that holds keys is replaced only with
``replace``. Then:

- running server (not managed): a portable stream is RESTOREd key by key; an RDB is loaded into
  a temporary redis-server inside the 0700 staging directory, checked there, and its keys are
  copied over with DUMP/PTTL -> RESTORE. The writes reach the target's AOF like any others.
- managed server: AOF is turned off in the server's config, the server stopped, the RDB placed
  (owned as its data directory) and the old AOF directory set aside, the server started (it loads
  the RDB), AOF turned back on (Redis rewrites it from the loaded data) and the config rewritten:
  the data survives the next restart with ``appendonly yes`` (redis#12762, #837).

The key counts are compared with the manifest's before the run reports success.
"""
from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import time
from typing import Callable

from ansible_collections.lifeline.dr.plugins.module_utils.catalog import Entry
from ansible_collections.lifeline.dr.plugins.module_utils.errors import RestoreError, SourceError
from ansible_collections.lifeline.dr.plugins.module_utils.pipeline import Codec
from ansible_collections.lifeline.dr.plugins.module_utils.redis_checks import verify_restored
from ansible_collections.lifeline.dr.plugins.module_utils.redis_conn import RedisConnection, ReplyError
from ansible_collections.lifeline.dr.plugins.module_utils.redis_keys import export_records, import_records
from ansible_collections.lifeline.dr.plugins.module_utils.redis_portable import read_file, validate_file
from ansible_collections.lifeline.dr.plugins.module_utils.redis_rdb import finish_check, stream_check
from ansible_collections.lifeline.dr.plugins.module_utils.redis_server import (
    ServiceControl,
    TempRedis,
    replicate_into,
    wait_ready,
)
from ansible_collections.lifeline.dr.plugins.module_utils.restore import RestoreAction, RestoreJob
from ansible_collections.lifeline.dr.plugins.module_utils.staging import Staging

ASIDE = ".lifeline-replaced"


@dataclasses.dataclass
class RedisRestoreOptions:
    replace: bool = False
    #: how to stop and start a server Lifeline manages; None: restore into the running server
    service: ServiceControl | None = None
    staging_dir: str = "/var/lib/lifeline/staging"
    state_dir: str = "/var/lib/lifeline"
    timeout: float = 3600.0


@contextlib.contextmanager
def redis_step(what: str):
    """A failure talking to Redis (or the file system) becomes a RestoreError naming the step."""
    try:
        yield
    except (SourceError, OSError) as exc:
        raise RestoreError("%s failed: %s" % (what, getattr(exc, "strerror", None) or exc)) from None
    except ReplyError as exc:
        raise RestoreError("%s failed: %s" % (what, exc.text)) from None


def _version(text: str) -> tuple:
    return tuple(int(p) for p in text.split(".")[:2] if p.isdigit())


class RedisRestore(RestoreJob):
    def __init__(self, entry: Entry, codec: Codec, conn: RedisConnection, opts: RedisRestoreOptions) -> None:
        super().__init__(entry, codec, staging_dir=opts.staging_dir, state_dir=opts.state_dir)
        self.conn = conn
        self.opts = opts

    def target(self) -> str:
        return "redis-%s-%s" % (self.conn.host, self.conn.port)

    def artifact(self):
        arts = [a for a in self.manifest.artifacts if a.kind in ("rdb", "portable")]
        if len(arts) != 1:
            raise RestoreError("backup %s holds %d Redis artifacts, expected one" % (self.manifest.backup_id, len(arts)))
        return arts[0]

    # ---- planning: every refusal before the first change ----
    def plan(self) -> dict:
        art = self.artifact()
        with redis_step("reading %s" % self.conn.where()), self.conn.connect() as client:
            version = client.info("server").get("redis_version", "")
            if client.info("replication").get("role") == "slave":
                raise RestoreError("%s is a replica (REPLICAOF); restore into its master, or run "
                                   "REPLICAOF NO ONE first" % self.conn.where())
            keyspace = client.keyspace()
            settings = {name: client.config_get(name) for name in ("dir", "dbfilename", "appendonly", "appenddirname")}
        source = str(self.manifest.tools.get("redis_server", ""))
        if _version(version) < _version(source):
            raise RestoreError("%s runs Redis %s but backup %s comes from Redis %s; restore into %s or newer"
                               % (self.conn.where(), version, self.manifest.backup_id, source, source))
        held = sum(v["keys"] for v in keyspace.values())
        if held and not self.opts.replace:
            raise RestoreError(
                "%s already holds %d keys (%s); nothing was changed. Set replace (lifeline_restore_replace: "
                "true) to replace them" % (self.conn.where(), held,
                                           ", ".join("db%d: %d" % (db, v["keys"]) for db, v in sorted(keyspace.items()))))
        managed = self.opts.service is not None and art.kind == "rdb"
        if managed and not (settings["dir"] and settings["dbfilename"]):
            raise RestoreError("%s does not tell its dir and dbfilename (CONFIG GET refused); a managed "
                               "restore needs them" % self.conn.where())
        action = RestoreAction.REPLACE if held else RestoreAction.CREATE
        return {"format": art.meta.get("format", art.kind), "mode": "managed" if managed else "running",
                "action": action.value, "target_keys": held, "backup_keys": art.meta.get("keys"),
                "appendonly": settings["appendonly"] == "yes", "settings": settings if managed else {},
                "target": self.conn.where(), "target_version": version}

    def to_stage(self, plan: dict) -> list:
        return [self.artifact()]

    def apply(self, plan: dict, staging: Staging, before_replace: Callable | None) -> dict:
        art = self.artifact()
        what = "backup %s (%s)" % (self.manifest.backup_id, art.name)
        if art.kind == "rdb":
            path = self._fetch_rdb(art, staging, what)
        else:
            path = self.fetch(art, staging, name="keys.llrp")
            with redis_step("checking the staged %s" % what):
                self.phases.timed("check", validate_file, path, what=what)
        if plan["action"] == RestoreAction.REPLACE.value and before_replace is not None:
            before_replace(["redis"])
        if plan["mode"] == "managed":
            result = self._managed(plan, path)
        elif art.kind == "rdb":
            result = self._rdb_into_running(plan, staging, path)
        else:
            with self.guard.shielded():
                self._flush_if_replacing(plan)
                with redis_step("restoring %s into %s" % (what, self.conn.where())), self.conn.connect() as client:
                    result = self.phases.timed("restore", import_records, client, read_file(path, what=what),
                                               replace=self.opts.replace)
        with redis_step("counting the keys of %s" % self.conn.where()), self.conn.connect() as client:
            keyspace = client.keyspace()
        result.update(verify_restored(art.meta, keyspace, what="the restored %s" % self.conn.where()))
        result.update(format=plan["format"], mode=plan["mode"], action=plan["action"])
        return result

    def _fetch_rdb(self, art, staging: Staging, what: str) -> str:
        """Stage the RDB checked as it arrives (its CRC-64, or redis-check-rdb); refuse it unless
        the check passes and, where it counted them, finds the keys the manifest records. The key
        counts of what was loaded are compared with the manifest's after the load too."""
        check = stream_check(what)
        try:
            path = self.fetch(art, staging, name="dump.rdb", also=check)
            with open(path, "rb") as staged:
                self.phases.timed("check", finish_check, check, lambda: staged)
        finally:
            check.abort()
        if check.counts and isinstance(art.meta.get("keys"), int) and check.counts.get("keys") != art.meta["keys"]:
            raise RestoreError("the staged %s holds %s keys, its manifest records %d"
                               % (what, check.counts.get("keys"), art.meta["keys"]))
        return path

    def _flush_if_replacing(self, plan: dict) -> None:
        if plan["target_keys"]:
            with redis_step("emptying %s before the restore" % self.conn.where()), self.conn.connect() as client:
                client.call("FLUSHALL")

    # ---- an RDB into a running server: through a temporary server ----
    def _rdb_into_running(self, plan: dict, staging: Staging, path: str) -> dict:
        if self.conn.is_local():
            # The target can reach this host's loopback: it loads the snapshot itself by
            # replication from Lifeline (replacing everything it held, at C speed).
            with self.guard.shielded(), redis_step("replicating the snapshot into %s" % self.conn.where()):
                self.phases.timed("replicate", replicate_into, self.conn, path, timeout=self.opts.timeout)
            return {"replicated": True}
        temp = TempRedis(staging.path, config={"dbfilename": os.path.basename(path)})
        with redis_step("loading the RDB into a temporary redis-server"):
            self.phases.timed("load", temp.start, timeout=self.opts.timeout)
        try:
            with redis_step("checking the temporary server"), temp.conn.connect() as source:
                verify_restored(self.artifact().meta, source.keyspace(), what="the RDB as loaded")
            with self.guard.shielded():
                self._flush_if_replacing(plan)
                with redis_step("copying the keys into %s" % self.conn.where()), \
                        temp.conn.connect() as source, self.conn.connect() as client:
                    return self.phases.timed("copy", import_records, client, export_records(source),
                                             replace=self.opts.replace)
        finally:
            temp.stop()

    # ---- a managed server: stop, place, start with AOF off, AOF back on ----
    def _managed(self, plan: dict, path: str) -> dict:
        settings, service = plan["settings"], self.opts.service
        data_dir = settings["dir"]
        rdb = os.path.join(data_dir, settings["dbfilename"])
        aof_dir = os.path.join(data_dir, settings["appenddirname"] or "appendonlydir")
        with redis_step("checking the space in %s" % data_dir):
            free, need = shutil.disk_usage(data_dir).free, os.path.getsize(path)
        if free < need + (64 << 20):
            raise RestoreError("%s has %d MiB free, the RDB needs %d MiB; nothing was changed"
                               % (data_dir, free >> 20, need >> 20))
        with redis_step("turning AOF off in the config of %s" % self.conn.where()), self.conn.connect() as client:
            config_file = client.info("server").get("config_file") or ""
            with open(config_file, "rb") as fh:
                saved_config = fh.read()   # put back if the RDB cannot be placed
            client.call("CONFIG", "SET", "appendonly", "no")
            client.call("CONFIG", "REWRITE")   # the start below must load the RDB, not the AOF
        with self.guard.shielded():
            with redis_step("stopping %s" % service.describe()):
                self.phases.timed("stop", service.stop)
            tmp = rdb + ".lifeline-tmp"
            try:
                with redis_step("writing the RDB into %s" % data_dir):
                    self.phases.timed("place", self._write_beside, path, tmp)
            except RestoreError as exc:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                self._roll_back(config_file, saved_config, exc)
            with redis_step("placing the RDB in %s" % data_dir):
                os.replace(tmp, rdb)
                if os.path.isdir(aof_dir):   # the old AOF must never be loaded over the restored RDB
                    shutil.rmtree(aof_dir + ASIDE, ignore_errors=True)
                    os.rename(aof_dir, aof_dir + ASIDE)
            with redis_step("starting %s" % service.describe()):
                self.phases.timed("start", service.start)
                self.phases.timed("load", wait_ready, self.conn, timeout=self.opts.timeout)
            if plan["appendonly"]:
                with redis_step("turning AOF back on (rewrite) in %s" % self.conn.where()):
                    self.phases.timed("aof_rewrite", self._aof_on)
        shutil.rmtree(aof_dir + ASIDE, ignore_errors=True)
        return {"aof_rewritten": plan["appendonly"], "rdb_path": rdb}

    def _roll_back(self, config_file: str, saved_config: bytes, exc: RestoreError) -> None:
        """The RDB was not placed: the server's files are as they were; put its config back and
        start it on its own data again."""
        with redis_step("putting back %s and starting %s" % (config_file, self.opts.service.describe())):
            with open(config_file, "wb") as fh:
                fh.write(saved_config)
            self.opts.service.start()
            wait_ready(self.conn, timeout=self.opts.timeout)
        raise RestoreError("%s; the server was started again on its own data" % exc) from None

    @staticmethod
    def _write_beside(staged: str, tmp: str) -> None:
        """A durable copy of the staged RDB beside the server's, owned as its data directory."""
        owner = os.stat(os.path.dirname(tmp))
        shutil.copyfile(staged, tmp)
        os.chmod(tmp, 0o660)
        if os.geteuid() == 0:
            os.chown(tmp, owner.st_uid, owner.st_gid)
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())

    def _aof_on(self) -> None:
        with self.conn.connect() as client:
            client.call("CONFIG", "SET", "appendonly", "yes")   # starts a rewrite from the loaded data
            deadline = time.monotonic() + self.opts.timeout
            while True:
                info = client.info("persistence")
                if (info.get("aof_rewrite_in_progress") == "0" and info.get("aof_rewrite_scheduled") == "0"
                        and info.get("aof_enabled") == "1"):
                    break
                if time.monotonic() > deadline:
                    raise SourceError("the AOF rewrite did not finish in time")
                time.sleep(0.05)
            if info.get("aof_last_bgrewrite_status") != "ok":
                raise SourceError("the AOF rewrite failed (aof_last_bgrewrite_status:%s); check the "
                                  "server's log and free space in its dir" % info.get("aof_last_bgrewrite_status"))
            client.call("CONFIG", "REWRITE")
