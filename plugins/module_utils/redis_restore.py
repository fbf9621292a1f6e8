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
import time
from typing import Callable

from ansible_collections.lifeline.dr.plugins.module_utils.catalog import Entry
from ansible_collections.lifeline.dr.plugins.module_utils.errors import RestoreError, SourceError
from ansible_collections.lifeline.dr.plugins.module_utils.pipeline import Codec
from ansible_collections.lifeline.dr.plugins.module_utils.redis_checks import verify_restored
from ansible_collections.lifeline.dr.plugins.module_utils.redis_conn import RedisConnection, ReplyError
from ansible_collections.lifeline.dr.plugins.module_utils.redis_datadir import ConfigFile, DataDir, plain_name
from ansible_collections.lifeline.dr.plugins.module_utils.redis_keys import export_records, import_records
from ansible_collections.lifeline.dr.plugins.module_utils.redis_portable import read_file, validate_file
from ansible_collections.lifeline.dr.plugins.module_utils.redis_rdb import finish_check, stream_check
from ansible_collections.lifeline.dr.plugins.module_utils.redis_server import (
    ServiceControl,
    TempRedis,
    replicate_into,
    tcp_owner,
    wait_ready,
)
from ansible_collections.lifeline.dr.plugins.module_utils.restore import RestoreAction, RestoreJob
from ansible_collections.lifeline.dr.plugins.module_utils.staging import Staging

ASIDE = ".lifeline-replaced"


@dataclasses.dataclass
class ManagedNames:
    """The names a managed restore uses in the server's data directory."""
    rdb: str
    aof: str

    def __post_init__(self) -> None:
        for name in (self.rdb, self.aof):
            plain_name(name, "the server's dbfilename/appenddirname")
        self.tmp = self.rdb + ".lifeline-tmp"
        self.rdb_aside, self.aof_aside = self.rdb + ASIDE, self.aof + ASIDE


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
            settings = {name: client.config_get(name)
                        for name in ("dir", "dbfilename", "appendonly", "appenddirname", "databases")}
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
        databases = int(settings["databases"]) if (settings["databases"] or "").isdigit() else None
        recorded = [self.manifest.facts.get("keyspace") or {}, art.meta.get("databases") or {}]
        if not all(isinstance(r, dict) for r in recorded):
            raise RestoreError("backup %s records its databases in an unknown form" % self.manifest.backup_id)
        self._check_databases(set(recorded[0]) | set(recorded[1]), databases)
        managed = self.opts.service is not None and art.kind == "rdb"
        if managed and not (settings["dir"] and settings["dbfilename"]):
            raise RestoreError("%s does not tell its dir and dbfilename (CONFIG GET refused); a managed "
                               "restore needs them" % self.conn.where())
        action = RestoreAction.REPLACE if held else RestoreAction.CREATE
        return {"format": art.meta.get("format", art.kind), "mode": "managed" if managed else "running",
                "action": action.value, "target_keys": held, "backup_keys": art.meta.get("keys"),
                "appendonly": settings["appendonly"] == "yes", "settings": settings if managed else {},
                "target": self.conn.where(), "target_version": version, "databases": databases}

    def _check_databases(self, names, databases: int | None) -> None:
        """Refuse, before anything changes, a backup holding a db number the target does not have
        (its ``databases`` setting): Redis refuses that SELECT, and a replica or a managed server
        loading such an RDB exits."""
        if not all(isinstance(n, str) and n.isdigit() and len(n) < 10 for n in names):
            raise RestoreError("backup %s names databases %r; expected numbers" % (self.manifest.backup_id, sorted(map(str, names))))
        highest = max((int(n) for n in names), default=0)
        if databases is not None and highest >= databases:
            raise RestoreError("backup %s holds keys in db %d but %s has `databases %d` (db 0 to %d); raise its "
                               "databases setting to at least %d; nothing was changed"
                               % (self.manifest.backup_id, highest, self.conn.where(), databases, databases - 1,
                                  highest + 1))

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
                found = self.phases.timed("check", validate_file, path, what=what)
            self._check_databases(set(found["databases"]), plan["databases"])
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
        # As many databases as the target: an RDB holding more fails here, not in the target.
        temp = TempRedis(staging.path, config={"dbfilename": os.path.basename(path),
                                               **({"databases": str(plan["databases"])} if plan["databases"] else {})})
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
        """Root writes into a directory the Redis account owns: through ``DataDir`` only. The old
        RDB, AOF directory and config are set aside, not replaced, until the server has loaded the
        new RDB with the manifest's key counts; any failure before that puts them all back."""
        settings = plan["settings"]
        server_uid = tcp_owner(self.conn.port)
        if server_uid is None:
            raise RestoreError("no process on this host listens on port %d; a managed restore needs the server "
                               "on this host; nothing was changed" % self.conn.port)
        data = DataDir(settings["dir"], server_uid)
        try:
            names = ManagedNames(settings["dbfilename"], settings["appenddirname"] or "appendonlydir")
            for name in (names.tmp, names.rdb_aside, names.aof_aside):
                if data.kind(name):
                    raise RestoreError("%s/%s was left by a restore that did not finish (or planted): look at it, "
                                       "remove it and run again; nothing was changed" % (data.path, name))
            with redis_step("checking the space in %s" % data.path):
                vfs, need = os.fstatvfs(data.fd), os.path.getsize(path)
            if vfs.f_bavail * vfs.f_frsize < need + (64 << 20):
                raise RestoreError("%s has %d MiB free, the RDB needs %d MiB; nothing was changed"
                                   % (data.path, (vfs.f_bavail * vfs.f_frsize) >> 20, need >> 20))
            with redis_step("reading the config of %s" % self.conn.where()), self.conn.connect() as client:
                config = ConfigFile(client.info("server").get("config_file") or "", (0, server_uid))
            return self._managed_swap(plan, path, data, names, config)
        finally:
            data.close()

    def _managed_swap(self, plan: dict, path: str, data: DataDir, names: "ManagedNames", config: ConfigFile) -> dict:
        service, done = self.opts.service, []   # done: the steps to undo, in order
        with self.guard.shielded():
            try:
                with redis_step("turning AOF off in the config of %s" % self.conn.where()), \
                        self.conn.connect() as client:
                    done.append("config")
                    client.call("CONFIG", "SET", "appendonly", "no")
                    client.call("CONFIG", "REWRITE")   # the start below must load the RDB, not the AOF
                with redis_step("stopping %s" % service.describe()):
                    self.phases.timed("stop", service.stop)
                done.append("stopped")
                with redis_step("writing the RDB into %s" % data.path):
                    done.append("tmp")
                    self.phases.timed("place", data.copy_in, path, names.tmp)
                with redis_step("setting the old RDB and AOF aside in %s" % data.path):
                    for name, aside in ((names.rdb, names.rdb_aside), (names.aof, names.aof_aside)):
                        if data.kind(name):   # the old AOF must never be loaded over the restored RDB
                            data.rename(name, aside)
                            done.append(("aside", name, aside))
                    data.rename(names.tmp, names.rdb)
                    done.append("placed")
                done.append("started")
                with redis_step("starting %s" % service.describe()):
                    self.phases.timed("start", service.start)
                    self.phases.timed("load", wait_ready, self.conn, timeout=self.opts.timeout)
                with redis_step("counting the keys the server loaded"), self.conn.connect() as client:
                    verify_restored(self.artifact().meta, client.keyspace(), what="the RDB as the server loaded it")
                if plan["appendonly"]:
                    with redis_step("turning AOF back on (rewrite) in %s" % self.conn.where()):
                        self.phases.timed("aof_rewrite", self._aof_on)
            except BaseException as exc:
                self._put_back(plan, data, names, config, done, exc)
                raise
        for aside in (names.rdb_aside, names.aof_aside):
            with contextlib.suppress(OSError):
                data.remove(aside)
        return {"aof_rewritten": plan["appendonly"], "rdb_path": os.path.join(data.path, names.rdb)}

    def _put_back(self, plan: dict, data: DataDir, names: "ManagedNames", config: ConfigFile,
                  done: list, exc: BaseException) -> None:
        """Undo ``done`` (see ``_managed_swap``): the server on its own RDB, AOF and config again."""
        service = self.opts.service
        try:
            if "started" in done:
                service.stop()
            if "placed" in done:   # what is under the names now is the new server's
                data.remove(names.rdb)
                data.remove(names.aof)
            for step in reversed(done):
                if isinstance(step, tuple):
                    data.rename(step[2], step[1])
            if "tmp" in done:
                data.remove(names.tmp)
            if "config" in done:
                config.put_back()
            if "stopped" in done:
                service.start()
                wait_ready(self.conn, timeout=self.opts.timeout)
            elif "config" in done:   # the stop failed (or never ran): the server may still run
                self._resume(plan)
        except (SourceError, ReplyError, OSError, RestoreError) as undo:
            cause = getattr(undo, "text", None) or undo
            aside = [step[2] for step in done if isinstance(step, tuple)]
            raise RestoreError("%s; putting the server's own data back failed too: %s.%s" % (
                exc, cause, " Its old files are in %s as %s" % (data.path, " and ".join(aside)) if aside else "")) from None
        if isinstance(exc, RestoreError):
            raise RestoreError("%s; its old RDB, AOF and config were put back and the server was started again "
                               "on its own data" % exc) from None

    def _resume(self, plan: dict) -> None:
        """The server's config is its own again: AOF back on in the running server, or the
        server started when it does not answer."""
        try:
            client = self.conn.connect()
        except SourceError:
            self.opts.service.start()
            wait_ready(self.conn, timeout=self.opts.timeout)
            return
        with client:
            if plan["appendonly"]:
                client.call("CONFIG", "SET", "appendonly", "yes")

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
