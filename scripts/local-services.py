# -*- coding: utf-8 -*-
# Copyright: Lifeline contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Start or stop the embedded local default: a source PostgreSQL and Redis with sample data, an
empty target PostgreSQL and Redis, moto_server as S3, all on free loopback ports, and a sample
site tree (uploads and secret files) for the files and secrets components.

  local-services.py start   # writes <state>/services.json (ports, where the services live),
                            # identity.txt and signing_key.pem (0600)
  local-services.py stop    # stops everything start started and removes the servers' data

<state> is $LIFELINE_LOCAL_STATE or .state/local in the checkout. The PostgreSQL data
directories are not there: the servers run as the 'postgres' user, who cannot reach a checkout
under /root or under any 0700 directory. They live in a per-run directory under /tmp
(services.service_dir), recorded in services.json as services_dir so that stop removes it.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import sys
import time


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "lib"))
# pylint: disable=wrong-import-position
from collection import ensure_importable  # noqa: E402
from services import Moto, Postgres, service_dir  # noqa: E402
from tools import ToolError, run  # noqa: E402

ensure_importable()

from redis_server import RedisServer  # noqa: E402

from ansible_collections.lifeline.dr.plugins.module_utils import crypto, signing  # noqa: E402

STATE = os.environ.get("LIFELINE_LOCAL_STATE") or os.path.join(ROOT, ".state", "local")
SERVICES = os.path.join(STATE, "services.json")
BUCKET = "lifeline-local"


def _write_secret(path: str, data: bytes) -> None:
    """A new file only its owner can read (0600 from the first byte, not chmod-ed after)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)


def _signing_key() -> str:
    """A new Ed25519 signing key for the demo's source host (PEM, PKCS#8, as `openssl genpkey
    -algorithm ed25519` writes it) in signing_key.pem; returns the public key PEM that the
    inventory's trusted signers hold."""
    private, public = signing.generate_signing_key()
    _write_secret(os.path.join(STATE, "signing_key.pem"), private.encode("ascii"))
    return public


def _sample_site(root: str) -> None:
    """What backup.yml backs up besides PostgreSQL: an uploads tree (files) and two secret files
    (an environment file 0600, a TLS key 0400) under <state>/site; restores land in <state>/restored."""
    shutil.rmtree(root, ignore_errors=True)
    uploads = os.path.join(root, "srv", "app", "uploads")
    os.makedirs(os.path.join(uploads, "2026", "11"), mode=0o755)
    os.makedirs(os.path.join(uploads, "empty"), mode=0o755)
    for n in range(50):
        with open(os.path.join(uploads, "2026", "11", "photo-%02d.bin" % n), "wb") as fh:
            fh.write(os.urandom(1024 * (n + 1)))
    with open(os.path.join(uploads, "README — read me.txt"), "w", encoding="utf-8") as fh:
        fh.write("Grüße from the local demo\n" * 100)
    os.symlink("2026/11/photo-00.bin", os.path.join(uploads, "latest.bin"))
    os.link(os.path.join(uploads, "2026", "11", "photo-01.bin"), os.path.join(uploads, "hardlink.bin"))
    secrets = os.path.join(root, "etc", "app")
    os.makedirs(secrets, mode=0o700)
    _write_secret(os.path.join(secrets, "app.env"), b"DATABASE_PASSWORD=local-demo-only\n")
    _write_secret(os.path.join(secrets, "tls.key"), b"-----BEGIN PRIVATE KEY-----\nlocal-demo\n-----END PRIVATE KEY-----\n")
    os.chmod(os.path.join(secrets, "tls.key"), 0o400)


def _sample_redis(server: RedisServer) -> None:
    """Keys of every type in two databases, some with TTLs (the demo compares them after the restore)."""
    client = server.client()
    for n in range(200):
        client.call("SET", "key:%d" % n, "value-%d" % n)
    client.call("HSET", "user:1", "name", "Ada", "greeting", "Grüße")
    client.call("RPUSH", "queue", "a", "b", "c")
    client.call("SADD", "tags", "x", "y")
    client.call("ZADD", "board", "1", "one", "2", "two")
    client.call("XADD", "events", "*", "kind", "signup")
    client.call("SET", "session:abc", "token", "EX", "86400")
    server.client(db=3).call("SET", "cache:1", "hot", "PX", "90000000")


def start() -> None:
    if os.path.exists(SERVICES):
        stop()
    os.makedirs(STATE, mode=0o755, exist_ok=True)
    for sub in ("repo", "state", "etc", "restored"):
        shutil.rmtree(os.path.join(STATE, sub), ignore_errors=True)
    _sample_site(os.path.join(STATE, "site"))
    services_dir = service_dir("local")
    started = []  # stopped again if anything below fails, so a failed start leaves nothing running
    try:
        source = Postgres(os.path.join(services_dir, "pg-source"))
        started.append(source.start())
        target = Postgres(os.path.join(services_dir, "pg-target"))
        started.append(target.start())
        for name in ("redis-source", "redis-target"):
            os.makedirs(os.path.join(services_dir, name), mode=0o700)
        redis_source = RedisServer(os.path.join(services_dir, "redis-source"), appendonly=True)
        started.append(redis_source.start())
        _sample_redis(redis_source)
        redis_target = RedisServer(os.path.join(services_dir, "redis-target"), appendonly=True)
        started.append(redis_target.start())
        moto = Moto()
        started.append(moto.start())
        moto.create_bucket(BUCKET)
        run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", source.host, "-p", str(source.port),
             "-U", source.user, "-f", os.path.join(ROOT, "tests", "data", "sample_data.sql")],
            env=dict(os.environ, PGPASSWORD=source.password))
        identity, recipient = crypto.generate_age_identity()
        _write_secret(os.path.join(STATE, "identity.txt"), (identity + "\n").encode("ascii"))
        info = {"source_port": source.port, "target_port": target.port, "postgres_password": source.password,
                "s3_endpoint": moto.endpoint, "bucket": BUCKET, "moto_pid": moto.proc.pid,
                "recipient": recipient, "signing_public_key": _signing_key(),
                "services_dir": services_dir, "source_dir": source.dir, "target_dir": target.dir,
                "redis_password": redis_source.password, "redis_source_port": redis_source.port,
                "redis_target_port": redis_target.port,
                "redis_pids": [redis_source.proc.pid, redis_target.proc.pid]}
        _write_secret(SERVICES, json.dumps(info, indent=2).encode("utf-8"))
        moto.proc = redis_source.proc = redis_target.proc = None  # keep them running; stop() ends them
    except BaseException:
        for service in reversed(started):
            service.stop()
        shutil.rmtree(services_dir, ignore_errors=True)
        raise
    print("local services: source PostgreSQL :%d, target PostgreSQL :%d, source Redis :%d, target Redis :%d, "
          "S3 %s; data in %s" % (source.port, target.port, redis_source.port, redis_target.port, moto.endpoint,
                                 services_dir))


def _end(pid: int) -> None:
    """SIGTERM, wait up to 10 s for the process to go, then SIGKILL: stop returns with it gone."""
    for sig, wait in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.1)


def stop() -> None:
    """Stop what services.json records and remove the servers' data; services.json goes last,
    so a stop that fails half-way can be run again."""
    try:
        with open(SERVICES, encoding="utf-8") as fh:
            info = json.load(fh)
    except FileNotFoundError:
        return
    failed = []
    for key in ("source_dir", "target_dir"):
        server = Postgres(info[key])
        try:
            server.stop()
        except ToolError as exc:
            if server.running():  # else a stale postmaster.pid: nothing left to stop
                failed.append(str(exc))
    _end(info["moto_pid"])
    for pid in info.get("redis_pids", []):
        _end(pid)
    if failed:  # a server we could not stop keeps its data directory
        sys.exit("local services: could not stop PostgreSQL:\n" + "\n".join(failed))
    for key in ("services_dir", "source_dir", "target_dir"):  # source/target_dir: 0.1.0's layout
        if info.get(key):
            shutil.rmtree(info[key], ignore_errors=True)
    os.unlink(SERVICES)
    print("local services stopped")


if __name__ == "__main__":
    try:
        {"start": start, "stop": stop}[sys.argv[1] if len(sys.argv) > 1 else "start"]()
    except (ToolError, RuntimeError) as exc:
        sys.exit("local services: %s" % exc)
