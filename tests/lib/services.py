# -*- coding: utf-8 -*-
# Copyright: Lifeline contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Throwaway services for tests and the local demo: real PostgreSQL and an S3 HTTP endpoint
(moto server), on free loopback ports. Each is a context manager that stops what it started, so
nothing is left running.

PostgreSQL runs as the 'postgres' user when we are root, so its data directory must be
somewhere that user can reach whatever the checkout's location (a clone under /root or under a
0700 ``mktemp -d`` is not): service_dir() makes one under /tmp.
"""
from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

from tools import ToolError, run, tail

PG_BIN = os.environ.get("LIFELINE_PG_BIN", "/usr/lib/postgresql/15/bin")
SUPERUSER_PASSWORD = "lifeline-test-pw"
#: where service_dir() creates directories: world-traversable, independent of the checkout
SERVICES_TMP = os.environ.get("LIFELINE_SERVICES_TMP", "/tmp")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def service_dir(label: str) -> str:
    """A new directory (mode 0755, under SERVICES_TMP) for services that run as another user:
    every user can traverse to it, wherever the checkout is. The caller removes it."""
    path = tempfile.mkdtemp(prefix="lifeline-%s-" % label, dir=SERVICES_TMP)
    os.chmod(path, 0o755)
    return path


def run_as_postgres(argv, **kwargs) -> subprocess.CompletedProcess:
    """initdb and postgres refuse to run as root: drop to the 'postgres' system user. A failure
    raises tools.ToolError with the command and the tool's stderr."""
    return run(argv, user="postgres" if os.geteuid() == 0 else None, **kwargs)


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
        """initdb (unless the data directory holds a cluster) and start the server. A failing
        initdb or pg_ctl raises tools.ToolError carrying its stderr and the server log's tail."""
        os.makedirs(self.dir, exist_ok=True)
        owner = pwd.getpwnam("postgres") if os.geteuid() == 0 else None
        if owner:
            os.chown(self.dir, owner.pw_uid, owner.pw_gid)
        if not os.path.exists(os.path.join(self.data, "PG_VERSION")):
            pwfile = os.path.join(self.dir, "pwfile")
            fd = os.open(pwfile, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(self.password + "\n")
            try:
                if owner:
                    os.chown(pwfile, owner.pw_uid, -1)
                run_as_postgres([os.path.join(PG_BIN, "initdb"), "-D", self.data, "-U", self.user,
                                 "--pwfile", pwfile, "-A", "scram-sha-256", "-E", "UTF8",
                                 "--locale", "C.UTF-8"])
            finally:
                os.unlink(pwfile)
        log = os.path.join(self.dir, "log")
        opts = "-c listen_addresses=127.0.0.1 -p %d -k %s -c fsync=off" % (self.port, self.dir)
        try:
            run_as_postgres([os.path.join(PG_BIN, "pg_ctl"), "-D", self.data, "-o", opts, "-w",
                             "-l", log, "start"])
        except ToolError as exc:  # pg_ctl says "Examine the log output": show it
            with contextlib.suppress(OSError), open(log, "rb") as fh:
                exc.stderr = (exc.stderr or b"") + b"\nserver log " + log.encode() + b":\n" + fh.read()[-4000:]
            raise
        return self

    def stop(self) -> None:
        if os.path.exists(os.path.join(self.data, "postmaster.pid")):
            run_as_postgres([os.path.join(PG_BIN, "pg_ctl"), "-D", self.data, "-m", "immediate", "-w", "stop"])

    def running(self) -> bool:
        """Whether a server runs on this data directory (pg_ctl status)."""
        return run_as_postgres([os.path.join(PG_BIN, "pg_ctl"), "-D", self.data, "status"],
                               check=False).returncode == 0

    def psql(self, sql: str, db: str = "postgres") -> str:
        env = dict(os.environ, PGPASSWORD=self.password)
        out = run(["psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h", self.host,
                   "-p", str(self.port), "-U", self.user, "-d", db, "-c", sql], env=env, text=True)
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
        # stderr to an unlinked file (not a pipe nobody reads): shown if the server does not come up
        with tempfile.TemporaryFile() as errors:
            self.proc = subprocess.Popen([exe, "-H", "127.0.0.1", "-p", str(self.port)],  # pylint: disable=consider-using-with
                                         stdout=subprocess.DEVNULL, stderr=errors)
            deadline = time.time() + 30
            while time.time() < deadline and self.proc.poll() is None:
                with contextlib.suppress(OSError):
                    urllib.request.urlopen(self.endpoint + "/moto-api/", timeout=1).read()  # nosec - loopback
                    return self
                time.sleep(0.2)
            self.stop()
            errors.seek(0)
            raise RuntimeError("moto_server did not start on %s:\n%s"
                               % (self.endpoint, tail(errors.read()) or "(no output)"))

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
    out = run(["pg_dumpall", "-h", host, "-p", str(port), "-U", user],
              env=dict(os.environ, PGPASSWORD=password), text=True).stdout
    return [line for line in out.splitlines(keepends=True)
            if not line.startswith(("\\restrict", "\\unrestrict"))]


class PitrPostgres(Postgres):
    """A Postgres whose local socket lets the postgres OS user in (peer, as Debian's default
    pg_hba does, which pgBackRest relies on), with archive_mode on and wal_level replica in its
    postgresql.conf (unless ``archive=False``: then the module must ask for a restart);
    archive_command is left for the module to set (ALTER SYSTEM)."""

    def __init__(self, base_dir: str, port: int | None = None, *, archive: bool = True) -> None:
        super().__init__(base_dir, port)
        self.archive = archive

    def start(self) -> "Postgres":
        fresh = not os.path.exists(os.path.join(self.data, "PG_VERSION"))
        super().start()
        if fresh:
            self.stop()
            with open(os.path.join(self.data, "pg_hba.conf"), "r+", encoding="utf-8") as fh:
                rules = fh.read()
                fh.seek(0)
                fh.write("local all postgres peer\n" + rules)
            if self.archive:
                with open(os.path.join(self.data, "postgresql.conf"), "a", encoding="utf-8") as fh:
                    fh.write("archive_mode = on\nwal_level = replica\n")
            super().start()
        return self


class TlsProxy:
    """HTTPS on a loopback port in front of a plain HTTP endpoint (the session's moto_server),
    with a throwaway self-signed certificate. pgBackRest talks to S3 only over TLS and, with
    OpenSSL 3, fails on a server that closes without a TLS close_notify (moto_server --ssl does);
    asyncio's TLS transport closes properly. Clients turn verification off, in tests only."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.port = free_port()
        self.endpoint = "https://127.0.0.1:%d" % self.port
        self._loop = None
        self._thread = None
        self._dir = None

    def _context(self):
        import datetime  # pylint: disable=import-outside-toplevel
        import ssl  # pylint: disable=import-outside-toplevel
        from cryptography import x509  # pylint: disable=import-outside-toplevel
        from cryptography.hazmat.primitives import hashes, serialization  # pylint: disable=import-outside-toplevel
        from cryptography.hazmat.primitives.asymmetric import ec  # pylint: disable=import-outside-toplevel
        from cryptography.x509.oid import NameOID  # pylint: disable=import-outside-toplevel
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
        now = datetime.datetime.now(datetime.timezone.utc)
        cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
                .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
                .not_valid_after(now + datetime.timedelta(days=1)).sign(key, hashes.SHA256()))
        self._dir = tempfile.mkdtemp(prefix="lifeline-tls-")
        cert_file, key_file = os.path.join(self._dir, "cert.pem"), os.path.join(self._dir, "key.pem")
        with open(cert_file, "wb") as fh:
            fh.write(cert.public_bytes(serialization.Encoding.PEM))
        with open(key_file, "wb") as fh:
            fh.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(cert_file, key_file)
        return context

    async def _pipe(self, reader, writer) -> None:
        try:
            while True:
                data = await reader.read(65536)
                if not data:
                    break
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()

    async def _handle(self, reader, writer) -> None:
        import asyncio  # pylint: disable=import-outside-toplevel
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        except OSError:
            writer.close()
            return
        await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))

    def start(self) -> "TlsProxy":
        import asyncio  # pylint: disable=import-outside-toplevel
        import threading  # pylint: disable=import-outside-toplevel
        context = self._context()
        self._loop = asyncio.new_event_loop()
        ready = threading.Event()

        def serve() -> None:
            asyncio.set_event_loop(self._loop)
            server = self._loop.run_until_complete(
                asyncio.start_server(self._handle, "127.0.0.1", self.port, ssl=context))
            ready.set()
            try:
                self._loop.run_forever()
            finally:
                server.close()
                self._loop.run_until_complete(server.wait_closed())
                self._loop.close()

        self._thread = threading.Thread(target=serve, daemon=True)
        self._thread.start()
        ready.wait(10)
        return self

    def stop(self) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
            self._loop = None
        if self._dir:
            shutil.rmtree(self._dir, ignore_errors=True)

    def __enter__(self) -> "TlsProxy":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
