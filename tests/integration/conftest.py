# -*- coding: utf-8 -*-
# Copyright: Lifeline contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Fixtures of the integration tests: real PostgreSQL 15 servers, a real moto_server (S3 over
HTTP on loopback), age keys and the parameter dicts the modules take.

Every test gets its own PostgreSQL servers, its own bucket and its own repository directory, so
no test sees another's state. Starting servers is made cheap by running initdb once per session
(one empty cluster, one loaded with tests/data/sample_data.sql), stopping them cleanly and
copying their data directory for each test. Everything started here is stopped here.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import lifeline_it  # noqa: E402  (puts tests/lib and the collection on sys.path)
from lifeline_it import SAMPLE_SQL  # noqa: E402
from services import PG_BIN, Postgres, run_as_postgres, service_dir  # noqa: E402
from tools import run  # noqa: E402
import keys  # noqa: E402

from ansible_collections.lifeline.dr.plugins.module_utils import crypto  # noqa: E402


def _stop_clean(pg: Postgres) -> None:
    """A fast (clean) shutdown, so a copy of the data directory starts without recovery."""
    run_as_postgres([os.path.join(PG_BIN, "pg_ctl"), "-D", pg.data, "-m", "fast", "-w", "stop"])


def _load_sample(pg: Postgres) -> None:
    run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", pg.host, "-p", str(pg.port), "-U", pg.user,
         "-f", SAMPLE_SQL], env=dict(os.environ, PGPASSWORD=pg.password))


@pytest.fixture(scope="session")
def workdir():
    """A world-traversable scratch directory (the servers run as the 'postgres' user)."""
    path = service_dir("it")
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def pg_golden(workdir):
    """Data directories of two stopped clusters: 'empty' (fresh initdb) and 'sample' (a separate
    initdb loaded with the sample data)."""
    golden = {}
    for kind in ("empty", "sample"):
        pg = Postgres(os.path.join(workdir, "golden-" + kind))
        pg.start()
        try:
            if kind == "sample":
                _load_sample(pg)
        finally:
            _stop_clean(pg)
        golden[kind] = pg.data
    return golden


class PgFactory:
    """Starts PostgreSQL servers from copies of the golden clusters; stops them all at the end."""

    def __init__(self, workdir: str, golden: dict) -> None:
        self.workdir = workdir
        self.golden = golden
        self.started: list = []

    def new(self, kind: str = "empty") -> Postgres:
        base = os.path.join(self.workdir, "pg-%s-%s" % (kind, uuid.uuid4().hex[:8]))
        os.makedirs(base)
        run(["cp", "-a", self.golden[kind], os.path.join(base, "data")])
        pg = Postgres(base)
        self.started.append(pg)
        pg.start()
        return pg

    def close(self) -> None:
        for pg in self.started:
            try:
                pg.stop()
            except subprocess.CalledProcessError:
                pass  # already stopped by the test (a "source down" scenario)
            shutil.rmtree(pg.dir, ignore_errors=True)


@pytest.fixture
def pg_factory(workdir, pg_golden):
    factory = PgFactory(workdir, pg_golden)
    yield factory
    factory.close()


@pytest.fixture
def source_pg(pg_factory) -> Postgres:
    """A running PostgreSQL 15 holding the sample data (schemas, roles, grants, a large object...)."""
    return pg_factory.new("sample")


@pytest.fixture
def target_pg(pg_factory) -> Postgres:
    """A running, empty PostgreSQL 15 (a fresh initdb) to restore into."""
    return pg_factory.new("empty")


@pytest.fixture(scope="session")
def moto(moto_server):
    """The session's moto_server (root conftest.py), under the name these tests use."""
    return moto_server


@pytest.fixture
def bucket(s3_bucket) -> str:
    return s3_bucket


@pytest.fixture(scope="session")
def age_keys():
    """(identity, recipient) of the age key backups are encrypted to."""
    return crypto.generate_age_identity()


@pytest.fixture(scope="session")
def other_age_keys():
    """A second, unrelated age key pair."""
    return crypto.generate_age_identity()


@pytest.fixture
def params(tmp_path, source_pg, moto, bucket, age_keys) -> dict:
    """Module-style parameters: a local repository in tmp_path and an S3 repository on moto,
    age encryption, the source server as the PostgreSQL to back up."""
    identity, recipient = age_keys
    return {
        "repositories": [{"name": "local", "path": str(tmp_path / "repo")},
                         {"name": "s3", "s3": moto.s3_settings(bucket)}],
        "recipients": [recipient],
        "identity": identity,
        "login_host": source_pg.host,
        "port": source_pg.port,
        "login_password": source_pg.password,
        "state_dir": str(tmp_path / "state"),
        **keys.signing_params(),
    }


@pytest.fixture
def local_repo(params) -> str:
    return params["repositories"][0]["path"]


@pytest.fixture
def closed_s3():
    """S3 settings for an endpoint on a loopback port nobody listens on (fails fast)."""
    from services import free_port  # pylint: disable=import-outside-toplevel
    return {"bucket": "nowhere", "prefix": "lifeline", "endpoint_url": "http://127.0.0.1:%d" % free_port(),
            "region": "us-east-1", "access_key": "testing-access", "secret_key": "testing-secret-key",
            "connect_timeout": 1, "read_timeout": 2, "max_attempts": 1}


@pytest.fixture
def redis_factory():
    """Starts throwaway real redis-servers (tests/lib/redis_server.py); stops and removes them all."""
    from redis_server import RedisServer  # pylint: disable=import-outside-toplevel
    started: list = []

    def new(**kwargs) -> RedisServer:
        server = RedisServer(**kwargs)
        started.append(server)
        return server.start()

    yield new
    for server in started:
        server.cleanup()


@pytest.fixture
def redis_params(tmp_path, age_keys) -> dict:
    """Module-style parameters of the redis tests: a local repository, age, signing; the server's
    own options (login_host, port, login_password) are added per test."""
    identity, recipient = age_keys
    return {"repositories": [{"name": "local", "path": str(tmp_path / "repo")}], "recipients": [recipient],
            "identity": identity, "state_dir": str(tmp_path / "state"), "site": "it", "host": "src",
            **keys.signing_params()}


@pytest.fixture
def pitr_dir():
    """A world-traversable scratch directory for one PITR test (its servers run as postgres)."""
    path = service_dir("pitr")
    yield path
    shutil.rmtree(path, ignore_errors=True)


__all__ = ["lifeline_it"]


@pytest.fixture
def files_params(tmp_path, moto, bucket, age_keys) -> dict:
    """Module-style parameters of the files component: a local repository in tmp_path and an S3
    repository on moto, age encryption; ``paths`` are set by each test."""
    identity, recipient = age_keys
    return {
        "repositories": [{"name": "local", "path": str(tmp_path / "repo")},
                         {"name": "s3", "s3": moto.s3_settings(bucket)}],
        "recipients": [recipient], "identity": identity, "site": "it", "host": "src",
        "state_dir": str(tmp_path / "state"), **keys.signing_params(),
    }
