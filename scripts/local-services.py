"""Start or stop the embedded local default: a source PostgreSQL with sample data, an empty
target PostgreSQL, and moto_server as S3, all on free loopback ports under .state/local.

  local-services.py start   # writes .state/local/services.json (ports) and identity.txt (0600)
  local-services.py stop    # stops everything start started
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "lib"))
from collection import ensure_importable  # noqa: E402
from services import Moto, Postgres  # noqa: E402

ensure_importable()

from ansible_collections.lifeline.dr.plugins.module_utils import crypto, signing  # noqa: E402  pylint: disable=wrong-import-position

STATE = os.environ.get("LIFELINE_LOCAL_STATE") or os.path.join(ROOT, ".state", "local")
SERVICES = os.path.join(STATE, "services.json")
BUCKET = "lifeline-local"


def start() -> None:
    if os.path.exists(SERVICES):
        stop()
    os.makedirs(STATE, mode=0o755, exist_ok=True)
    for sub in ("repo", "state", "pg-source", "pg-target", "etc"):
        subprocess.run(["rm", "-rf", os.path.join(STATE, sub)], check=True)
    started = []  # stopped again if anything below fails, so a failed start leaves nothing running
    try:
        source = Postgres(os.path.join(STATE, "pg-source"))
        started.append(source.start())
        target = Postgres(os.path.join(STATE, "pg-target"))
        started.append(target.start())
        moto = Moto()
        started.append(moto.start())
        moto.create_bucket(BUCKET)
        env = dict(os.environ, PGPASSWORD=source.password)
        subprocess.run(["psql", "-X", "-q", "-h", source.host, "-p", str(source.port), "-U", source.user,
                        "-f", os.path.join(ROOT, "tests", "data", "sample_data.sql")],
                       env=env, check=True, stdout=subprocess.DEVNULL)
        signing_private, signing_public = signing.generate_signing_key()
        fd = os.open(os.path.join(STATE, "signing_key.pem"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(signing_private)
        identity, recipient = crypto.generate_age_identity()
        fd = os.open(os.path.join(STATE, "identity.txt"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(identity + "\n")
        info = {"source_port": source.port, "target_port": target.port, "postgres_password": source.password,
                "s3_endpoint": moto.endpoint, "bucket": BUCKET, "moto_pid": moto.proc.pid,
                "recipient": recipient, "signing_public_key": signing_public, "source_dir": source.dir, "target_dir": target.dir}
        fd = os.open(SERVICES, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump(info, fh, indent=2)
        moto.proc = None  # keep it running after this script exits; stop() ends it
    except BaseException:
        for service in reversed(started):
            service.stop()
        raise
    print("local services: source PostgreSQL :%d, target PostgreSQL :%d, S3 %s"
          % (source.port, target.port, moto.endpoint))


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
    try:
        with open(SERVICES, encoding="utf-8") as fh:
            info = json.load(fh)
    except FileNotFoundError:
        return
    for key in ("source_dir", "target_dir"):
        Postgres(info[key]).stop()
    _end(info["moto_pid"])
    os.unlink(SERVICES)
    print("local services stopped")


if __name__ == "__main__":
    {"start": start, "stop": stop}[sys.argv[1] if len(sys.argv) > 1 else "start"]()
