"""Throwaway services for tests and the local demo: real PostgreSQL and an S3 HTTP endpoint
(moto server), on free loopback ports, in a directory the caller owns. Each is a context
manager that stops what it started, so nothing is left running."""
from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import sys
import time
import urllib.request

PG_BIN = os.environ.get("LIFELINE_PG_BIN", "/usr/lib/postgresql/15/bin")
SUPERUSER_PASSWORD = "lifeline-test-pw"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _as_postgres(argv, **kwargs):
    """initdb and postgres refuse to run as root: drop to the 'postgres' system user."""
    if os.geteuid() == 0:
        pw = pwd.getpwnam("postgres")
        kwargs["preexec_fn"] = lambda: (os.setgid(pw.pw_gid), os.setuid(pw.pw_uid))
    return subprocess.run(argv, check=True, capture_output=True, **kwargs)


class Postgres:
    def __init__(self, base_dir: str, port: int | None = None) -> None:
        self.dir = base_dir
        self.data = os.path.join(base_dir, "data")
        self.port = port or free_port()
        self.host = "127.0.0.1"
        self.user = "postgres"
        self.password = SUPERUSER_PASSWORD

    def conn_args(self) -> dict:
        return {"host": self.host, "port": self.port, "user": self.user, "password": self.password}

    def start(self) -> "Postgres":
        os.makedirs(self.dir, exist_ok=True)
        if os.geteuid() == 0:
            pw = pwd.getpwnam("postgres")
            os.chown(self.dir, pw.pw_uid, pw.pw_gid)
        pwfile = os.path.join(self.dir, "pwfile")
        with open(pwfile, "w", encoding="utf-8") as fh:
            fh.write(self.password + "\n")
        os.chmod(pwfile, 0o600)
        if os.geteuid() == 0:
            os.chown(pwfile, pwd.getpwnam("postgres").pw_uid, -1)
        if not os.path.exists(os.path.join(self.data, "PG_VERSION")):
            _as_postgres([os.path.join(PG_BIN, "initdb"), "-D", self.data, "-U", self.user,
                          "--pwfile", pwfile, "-A", "scram-sha-256", "-E", "UTF8",
                          "--locale", "C.UTF-8"])
        os.unlink(pwfile)
        opts = "-c listen_addresses=127.0.0.1 -p %d -k %s -c fsync=off" % (self.port, self.dir)
        _as_postgres([os.path.join(PG_BIN, "pg_ctl"), "-D", self.data, "-o", opts, "-w",
                      "-l", os.path.join(self.dir, "log"), "start"])
        return self

    def stop(self) -> None:
        if os.path.exists(os.path.join(self.data, "postmaster.pid")):
            _as_postgres([os.path.join(PG_BIN, "pg_ctl"), "-D", self.data, "-m", "immediate", "-w", "stop"])

    def psql(self, sql: str, db: str = "postgres") -> str:
        env = dict(os.environ, PGPASSWORD=self.password)
        out = subprocess.run(["psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h", self.host,
                              "-p", str(self.port), "-U", self.user, "-d", db, "-c", sql],
                             env=env, check=True, capture_output=True, text=True)
        return out.stdout.strip()

    def __enter__(self) -> "Postgres":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


class Moto:
    """moto_server: a real S3 HTTP endpoint on loopback."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.endpoint = "http://127.0.0.1:%d" % self.port
        self.proc = None

    def start(self) -> "Moto":
        exe = shutil.which("moto_server", path=os.path.dirname(sys.executable)) or "moto_server"
        self.proc = subprocess.Popen([exe, "-H", "127.0.0.1", "-p", str(self.port)],  # pylint: disable=consider-using-with
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 30
        while time.time() < deadline:
            with contextlib.suppress(OSError):
                urllib.request.urlopen(self.endpoint + "/moto-api/", timeout=1).read()  # nosec - loopback
                return self
            time.sleep(0.2)
        self.stop()
        raise RuntimeError("moto_server did not start on %s" % self.endpoint)

    def stop(self) -> None:
        if self.proc:
            self.proc.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=10)
            if self.proc.poll() is None:
                self.proc.kill()
            self.proc = None

    def s3_settings(self, bucket: str, prefix: str = "lifeline") -> dict:
        return {"bucket": bucket, "prefix": prefix, "endpoint_url": self.endpoint, "region": "us-east-1",
                "access_key": "testing-access", "secret_key": "testing-secret-key"}

    def create_bucket(self, bucket: str) -> None:
        import boto3  # pylint: disable=import-outside-toplevel
        boto3.client("s3", endpoint_url=self.endpoint, region_name="us-east-1",
                     aws_access_key_id="x", aws_secret_access_key="x").create_bucket(Bucket=bucket)

    def __enter__(self) -> "Moto":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def dumpall_normalized(host: str, port: int, user: str, password: str) -> list:
    """pg_dumpall as lines, without the random \\restrict keys PostgreSQL adds to every dump."""
    out = subprocess.run(["pg_dumpall", "-h", host, "-p", str(port), "-U", user],
                         env=dict(os.environ, PGPASSWORD=password), check=True,
                         capture_output=True, text=True).stdout
    return [line for line in out.splitlines(keepends=True)
            if not line.startswith(("\\restrict", "\\unrestrict"))]
