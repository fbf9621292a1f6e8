# -*- coding: utf-8 -*-
# Copyright: Lifeline contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Helpers of the integration tests: run the real engine (or Ansible) against real services and
inspect what it left behind. conftest.py builds the services; the tests import these helpers.

Nothing here mocks anything: PostgreSQL is a real server, S3 is a real moto_server over HTTP,
repositories are real directories.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import subprocess
import sys
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
VENV_BIN = os.path.join(ROOT, ".venv", "bin")
PYTHON = os.path.join(VENV_BIN, "python")
SAMPLE_SQL = os.path.join(ROOT, "tests", "data", "sample_data.sql")
COLLECTIONS = os.path.join(ROOT, ".state", "collections")

for _p in (os.path.join(ROOT, "tests", "lib"), COLLECTIONS):
    if _p not in sys.path:
        sys.path.insert(0, _p)

from tools import run  # noqa: E402

from ansible_collections.lifeline.dr.plugins.module_utils import config  # noqa: E402
from ansible_collections.lifeline.dr.plugins.module_utils.backup import run_backup  # noqa: E402
from ansible_collections.lifeline.dr.plugins.module_utils.errors import LifelineError  # noqa: E402
from ansible_collections.lifeline.dr.plugins.module_utils.postgres_dump import (  # noqa: E402
    PostgresComponent,
    Scope,
)
from ansible_collections.lifeline.dr.plugins.module_utils.postgres_restore import (  # noqa: E402
    PostgresRestore,
    RestoreOptions,
)

SITE = "it"
HOST = "src"
COMPONENT = "postgres"
TMP_MARK = ".lifeline-tmp-"

# ---------------------------------------------------------------- PostgreSQL inspection


def _pg_env(pg) -> dict:
    return dict(os.environ, PGPASSWORD=pg.password, PGCONNECT_TIMEOUT="10")


def _normalize(text: str) -> str:
    """Drop the per-run random \\restrict/\\unrestrict lines (CVE-2025-8714 fix in pg_dump)."""
    return "\n".join(line for line in text.splitlines()
                     if not line.startswith(("\\restrict", "\\unrestrict"))) + "\n"


def pg_dumpall_normalized(pg) -> str:
    """The whole cluster (roles, every database with its properties and data) as SQL text."""
    out = run(["pg_dumpall", "-h", pg.host, "-p", str(pg.port), "-U", pg.user],
              env=_pg_env(pg), text=True)
    return _normalize(out.stdout)


def pg_dump_normalized(pg, dbname: str, *extra: str) -> str:
    """One database's contents (schema, data, large objects), without database-level properties."""
    out = run(["pg_dump", "-h", pg.host, "-p", str(pg.port), "-U", pg.user, *extra, "-d", dbname],
              env=_pg_env(pg), text=True)
    return _normalize(out.stdout)


def pg_globals_normalized(pg) -> str:
    out = run(["pg_dumpall", "--globals-only", "-h", pg.host, "-p", str(pg.port), "-U", pg.user],
              env=_pg_env(pg), text=True)
    return _normalize(out.stdout)


def databases(pg) -> list:
    return pg.psql("SELECT datname FROM pg_database WHERE NOT datistemplate ORDER BY 1").splitlines()


def roles(pg) -> list:
    return pg.psql("SELECT rolname FROM pg_roles WHERE rolname NOT LIKE 'pg\\_%' ORDER BY 1").splitlines()


def contents_fingerprint(pg) -> dict:
    """Roles plus every database's contents (pg_dump per database). Equal for a source and a
    correct restore of it; unlike pg_dumpall it leaves out database-level properties."""
    return {"globals": pg_globals_normalized(pg),
            "databases": {db: hashlib.sha256(pg_dump_normalized(pg, db).encode()).hexdigest()
                          for db in databases(pg)}}


def sql_quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def add_big_table(pg, dbname: str, megabytes: int, table: str = "public.filler") -> None:
    """A table of hard-to-compress text (hex digests), about ``megabytes`` MB of dump output."""
    rows = megabytes * 1024 * 1024 // 132
    pg.psql("CREATE TABLE %s (id int, payload text); "
            "INSERT INTO %s SELECT g, md5(g::text) || md5((g*7)::text) || md5((g*13)::text) || md5((g*31)::text) "
            "FROM generate_series(1, %d) g" % (table, table, rows), db=dbname)


# ---------------------------------------------------------------- the engine


def run_backup_for(params: dict, *, databases=None, scope: str = "full", include_globals: bool = True,
                   site: str = SITE, host: str = HOST, lock_wait: float = 0.0, check_mode: bool = False):
    """One backup run of the postgres component exactly as the module does it; returns the Outcome."""
    component = PostgresComponent(config.pg_connection(params), databases=databases,
                                  scope=Scope(scope), include_globals=include_globals)
    return run_backup(component, config.repositories(params), config.codec(params), site=site,
                      host=host, state_dir=params["state_dir"], signer=config.signer(params), lock_wait=lock_wait,
                      check_mode=check_mode)


def restore_for(params: dict, target, *, point: str = "latest", site: str = SITE, host: str = HOST,
                before_replace=None, **opts) -> dict:
    """Restore ``host``'s backup at ``point`` into the PostgreSQL server ``target``; returns the report.
    ``opts`` are RestoreOptions fields (databases, replace, include_globals, keep_replaced, ...)."""
    p = dict(params, port=target.port, login_password=target.password)
    entry = config.catalog(p).select(site=site, host=host, component=COMPONENT, point=point)
    opts.setdefault("staging_dir", os.path.join(params["state_dir"], "staging"))
    opts.setdefault("state_dir", params["state_dir"])
    job = PostgresRestore(entry, config.codec(p), config.pg_connection(p), RestoreOptions(**opts))
    return job.run(before_replace=before_replace)


def catalog_ids(params: dict, *, site: str = SITE, host: str = HOST) -> list:
    entries = config.catalog(params).entries(site=site, host=host, component=COMPONENT)
    return [e.manifest.backup_id for e in entries]


def catalog_entry(params: dict, backup_id: str, *, site: str = SITE, host: str = HOST):
    return config.catalog(params).select(site=site, host=host, component=COMPONENT, point=backup_id)


def backup_dir(repo_root: str, backup_id: str, *, site: str = SITE, host: str = HOST) -> str:
    return os.path.join(repo_root, site, host, COMPONENT, backup_id)


def as_nobody(func) -> str:
    """Run ``func`` in a child that dropped to uid/gid 65534 (tests run as root, who may write
    anywhere); returns "done", the LifelineError's message, or the repr of anything else."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        os.close(read)
        try:
            os.setgid(65534)
            os.setuid(65534)
            func()
            message = "done"
        except LifelineError as exc:
            message = str(exc)
        except BaseException as exc:  # pylint: disable=broad-except
            message = repr(exc)
        os.write(write, message.encode())
        os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as fh:
        message = fh.read().decode()
    os.waitpid(pid, 0)
    return message


def files_under(root: str) -> list:
    """Every regular file below ``root`` (relative paths, sorted); [] when it does not exist."""
    found = []
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            found.append(os.path.relpath(os.path.join(dirpath, name), root))
    return sorted(found)


def manifests_under(root: str) -> list:
    return [f for f in files_under(root) if f.endswith("/manifest.json")]


def flip_byte(path: str, offset: int | None = None) -> None:
    """Invert one byte in the middle (or at ``offset``) of a file."""
    with open(path, "r+b") as fh:
        size = os.fstat(fh.fileno()).st_size
        pos = size // 2 if offset is None else offset
        fh.seek(pos)
        byte = fh.read(1)
        fh.seek(pos)
        fh.write(bytes([byte[0] ^ 0xFF]))


def flipped(data: bytes, offset: int | None = None) -> bytes:
    pos = len(data) // 2 if offset is None else offset
    return data[:pos] + bytes([data[pos] ^ 0xFF]) + data[pos + 1:]


# ---------------------------------------------------------------- S3 through boto3 (test side)


def s3_client(moto):
    import boto3  # pylint: disable=import-outside-toplevel
    return boto3.client("s3", endpoint_url=moto.endpoint, region_name="us-east-1",
                        aws_access_key_id="testing-access", aws_secret_access_key="testing-secret-key")


def s3_keys(moto, bucket: str) -> list:
    client = s3_client(moto)
    keys = []
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        keys.extend(o["Key"] for o in page.get("Contents", []))
    return sorted(keys)


def s3_key(backup_id: str, name: str, *, prefix: str = "lifeline", site: str = SITE, host: str = HOST) -> str:
    return "/".join([prefix, site, host, COMPONENT, backup_id, name])


# ---------------------------------------------------------------- child processes and Ansible


def child_env(extra: dict | None = None) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (COLLECTIONS, env.get("PYTHONPATH")) if p)
    env["PATH"] = VENV_BIN + os.pathsep + env.get("PATH", "")
    env.update(extra or {})
    return env


def ansible_env(extra: dict | None = None) -> dict:
    env = child_env(extra)
    env.pop("PYTHONPATH", None)  # Ansible finds the collection through ansible.cfg, as users do
    env.setdefault("ANSIBLE_NOCOLOR", "1")
    env.setdefault("ANSIBLE_FORCE_COLOR", "0")
    env.setdefault("ANSIBLE_HOST_KEY_CHECKING", "0")
    env.setdefault("ANSIBLE_LOCALHOST_WARNING", "0")
    env.setdefault("ANSIBLE_INVENTORY_UNPARSED_WARNING", "0")
    return env


def adhoc(module: str, args: dict, *, check: bool = False, timeout: int = 300):
    """Run ``module`` ad hoc on localhost through the real Ansible CLI; return (rc, result, output).

    ``result`` is the module's result as the json stdout callback reports it (None when absent).
    """
    env = ansible_env({"ANSIBLE_STDOUT_CALLBACK": "ansible.builtin.json", "ANSIBLE_LOAD_CALLBACK_PLUGINS": "1"})
    argv = [os.path.join(VENV_BIN, "ansible"), "localhost", "-c", "local",
            "-e", "ansible_python_interpreter=" + PYTHON, "-m", module, "-a", json.dumps(args)]
    if check:
        argv.append("--check")
    proc = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    result = None
    with contextlib.suppress(ValueError, KeyError, IndexError):
        result = json.loads(proc.stdout)["plays"][0]["tasks"][0]["hosts"]["localhost"]
    return proc.returncode, result, proc.stdout + proc.stderr


def ansible_playbook(playbook: str, *args: str, env_extra: dict | None = None, timeout: int = 600,
                     on_start=None) -> subprocess.CompletedProcess:
    """Run ``ansible-playbook -i inventories/local playbooks/<playbook> args...`` from the checkout.
    ``on_start(pid)`` is called once the process runs (for watchers); its return is ignored."""
    argv = [os.path.join(VENV_BIN, "ansible-playbook"), "-i", "inventories/local",
            os.path.join("playbooks", playbook), *args]
    with subprocess.Popen(argv, cwd=ROOT, env=ansible_env(env_extra), stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True) as proc:
        if on_start is not None:
            on_start(proc.pid)
        try:
            out, _err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _err = proc.communicate()
            raise AssertionError("ansible-playbook %s did not finish in %ss:\n%s" % (playbook, timeout, out)) from None
    return subprocess.CompletedProcess(argv, proc.returncode, out, "")


@contextlib.contextmanager
def local_services(state: str):
    """scripts/local-services.py start/stop with LIFELINE_LOCAL_STATE=state; yields services.json."""
    env = child_env({"LIFELINE_LOCAL_STATE": state})
    script = os.path.join(ROOT, "scripts", "local-services.py")
    try:
        run([PYTHON, script, "start"], cwd=ROOT, env=env, timeout=180)  # fails with the script's stderr
        with open(os.path.join(state, "services.json"), encoding="utf-8") as fh:
            yield json.load(fh)
    finally:
        subprocess.run([PYTHON, script, "stop"], cwd=ROOT, env=env, check=False, capture_output=True,
                       timeout=120)


class DescendantArgvWatcher:
    """Samples the argv of every process descending from one pid, every ``interval`` seconds,
    and remembers each argv that contains one of ``needles``."""

    def __init__(self, needles, interval: float = 0.05) -> None:
        self.needles = [n.encode() for n in needles if n]
        self.interval = interval
        self.root = None
        self.hits: list = []
        self.samples = 0
        self.seen: set = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def start(self, pid: int) -> None:
        self.root = pid
        self._thread.start()

    def _descendants(self) -> list:
        parent = {}
        for name in os.listdir("/proc"):
            if not name.isdigit():
                continue
            try:
                with open("/proc/%s/stat" % name, "rb") as fh:
                    stat = fh.read()
            except OSError:
                continue
            # comm may contain spaces and parentheses: the ppid follows the last ')'.
            fields = stat[stat.rfind(b")") + 2:].split()
            parent[int(name)] = int(fields[1])
        out, frontier = [], {self.root}
        while frontier:
            nxt = {pid for pid, ppid in parent.items() if ppid in frontier}
            out.extend(nxt)
            frontier = nxt
        return [self.root] + out

    def _loop(self) -> None:
        while not self._stop.is_set():
            for pid in self._descendants():
                try:
                    with open("/proc/%d/cmdline" % pid, "rb") as fh:
                        argv = fh.read()
                except OSError:
                    continue
                if argv:
                    self.seen.add(argv)
                for needle in self.needles:
                    if needle in argv:
                        self.hits.append((pid, argv.replace(b"\0", b" ").decode("utf-8", "replace")))
            self.samples += 1
            self._stop.wait(self.interval)

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)


def wait_for(predicate, timeout: float, interval: float = 0.01):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    return None


def verify_ok(params: dict, backup_id: str, *, site: str = SITE, host: str = HOST) -> dict:
    """Re-read every copy of every artifact of a backup, checking size, sha256, authentication
    tags and compression framing (records nothing); returns {repository: all artifacts intact}.

    The content check (pg_restore --list) is left out on purpose: it is what backup_verify tests
    cover, and these helpers must say whether bytes were lost, not what the archives hold.
    """
    from ansible_collections.lifeline.dr.plugins.module_utils.verify import Check, verify_backup  # pylint: disable=import-outside-toplevel
    entry = catalog_entry(params, backup_id, site=site, host=host)
    report = verify_backup(entry, config.codec(params), record=False, check_for=lambda art: Check())
    out: dict = {}
    for result in report["results"]:
        out[result["repository"]] = out.get(result["repository"], True) and result["ok"]
    return out


def status_record(params: dict, *, site: str = SITE, host: str = HOST) -> dict:
    path = os.path.join(params["state_dir"], "status", "%s-%s-%s.json" % (site, host, COMPONENT))
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


def seed_existing_shop(pg) -> None:
    """A database 'shop' on the target that already holds data (not the backup's)."""
    pg.psql("CREATE DATABASE shop")
    pg.psql("CREATE TABLE public.precious (id int PRIMARY KEY, v text); "
            "INSERT INTO public.precious SELECT g, 'keep me ' || g FROM generate_series(1, 50) g", db="shop")
