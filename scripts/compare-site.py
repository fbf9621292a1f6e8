"""Compare the local demo's source with what restore-site.yml rebuilt; exit 1 on any difference.

PostgreSQL: pg_dumpall of both servers. Redis: every key of every database (type, DUMP payload,
whether it has a TTL). Files and secrets: every entry under the backed-up paths against the same
path under the restore root (type, mode, owner, link target, sha256).
"""
from __future__ import annotations

import difflib
import hashlib
import json
import os
import stat
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "lib"))
# pylint: disable=wrong-import-position
from collection import ensure_importable  # noqa: E402
from services import dumpall_normalized  # noqa: E402

ensure_importable()
from redis_server import comparable_value  # noqa: E402  (imports the engine)
from ansible_collections.lifeline.dr.plugins.module_utils.redis_conn import RedisConnection  # noqa: E402

state = os.environ.get("LIFELINE_LOCAL_STATE") or os.path.join(ROOT, ".state", "local")
with open(os.path.join(state, "services.json"), encoding="utf-8") as fh:
    info = json.load(fh)
failed = []


def postgres() -> None:
    source = dumpall_normalized("127.0.0.1", info["source_port"], "postgres", info["postgres_password"])
    restored = dumpall_normalized("127.0.0.1", info["target_port"], "postgres", info["postgres_password"])
    if source != restored:
        sys.stdout.writelines(list(difflib.unified_diff(source, restored, "source", "restored"))[:80])
        failed.append("PostgreSQL (pg_dumpall)")
    else:
        print("PostgreSQL: pg_dumpall of source and restored, %d lines, identical" % len(source))


def _redis_keys(port: int) -> dict:
    conn = RedisConnection(host="127.0.0.1", port=port, password=info["redis_password"])
    keys = {}
    for db in range(16):
        client = conn.connect(db=db)
        cursor = b"0"
        while True:
            cursor, batch = client.call("SCAN", cursor, "COUNT", "1000")
            for key in batch:
                kind = client.call("TYPE", key)
                keys[(db, key)] = (kind, comparable_value(client, kind, key), client.call("PTTL", key) > 0)
            if cursor in (b"0", 0, "0"):
                break
    return keys


def redis() -> None:
    source, restored = _redis_keys(info["redis_source_port"]), _redis_keys(info["redis_target_port"])
    if source != restored:
        diff = sorted(set(source) ^ set(restored))[:10] or [k for k in source if source[k] != restored.get(k)][:10]
        print("Redis differs, e.g. %s" % diff)
        failed.append("Redis (keys, values, TTLs)")
    else:
        print("Redis: %d keys in %d databases, same values and TTLs" % (len(source), len({key[0] for key in source})))


def _tree(top: str) -> list:
    out = []
    for path in [top] + sorted(os.path.join(d, n) for d, dirs, files in os.walk(top) for n in dirs + files):
        st = os.lstat(path)
        entry = [os.path.relpath(path, top), stat.filemode(st.st_mode), st.st_uid, st.st_gid]
        if stat.S_ISLNK(st.st_mode):
            entry.append(os.readlink(path))
        elif stat.S_ISREG(st.st_mode):
            with open(path, "rb") as fh:
                entry.append(hashlib.sha256(fh.read()).hexdigest())
        out.append(entry)
    return out


def files() -> None:
    site = os.path.join(state, "site")
    restored_root = os.path.join(state, "restored")
    for top in (os.path.join(site, "srv", "app"), os.path.join(site, "etc", "app")):
        copy = os.path.join(restored_root, top.lstrip("/"))
        source, restored = _tree(top), _tree(copy)
        if top.endswith("etc/app"):  # secrets: only the two files, not their directory's other entries
            source, restored = source[1:], [e for e in restored[1:] if e[0] in {s[0] for s in source}]
        if source != restored:
            print("files differ under %s:\n  %s" % (top, "\n  ".join(difflib.unified_diff(
                [str(e) for e in source], [str(e) for e in restored], lineterm=""))))
            failed.append("files under " + top)
        else:
            print("files: %d entries under %s restored with modes, owners, links and contents" % (len(source), top))


postgres()
redis()
files()
if failed:
    sys.exit("source and restored DIFFER: " + ", ".join(failed))
