# -*- coding: utf-8 -*-
# Copyright: Lifeline contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Names that come from the database server: artifact names stay injective and safe, database
names reach libpq tools as names and never as connection strings (checked with libpq's own
parser), and the password file says what libpq must read."""
from __future__ import annotations

import os
import random
import stat

import psycopg2.extensions
import pytest

from ansible_collections.lifeline.dr.plugins.module_utils.errors import ConfigError
from ansible_collections.lifeline.dr.plugins.module_utils.manifest import check_artifact_name
from ansible_collections.lifeline.dr.plugins.module_utils.postgres import (
    PgConnection,
    dbname_conninfo,
    guard_database_args,
    passfile_text,
    safe_name,
)

# The longest codec suffix an artifact name gets.
SUFFIX = ".zst.age"
HOSTILE = ["host=attacker.example", "postgresql://attacker.example/x", "postgres://a:1/x",
           "it's", "back\\slash", "a=b", "with space", "Zürich-ü", "dbname='x' host=evil", "'", "\\", "",
           "x' host='evil", "trailing\\", "a\nb", "日本語のデータベース"]


def _artifact(name: str) -> str:
    return "db-%s.dump%s" % (safe_name(name), SUFFIX)


def test_safe_name_keeps_the_reviewed_collision_pair_apart():
    # 0.1.0 mapped both to sales_db-5fab688f: the second backup overwrote the first.
    assert safe_name("sales_db-5fab688f") == "sales_db-5fab688f"
    assert safe_name("sales db") != safe_name("sales_db-5fab688f")
    assert safe_name("sales db").startswith("sales_db.")


def test_safe_name_keeps_plain_lower_case_names_readable():
    assert [safe_name(n) for n in ("shop", "app_2", "a-b")] == ["shop", "app_2", "a-b"]


def test_safe_name_hashes_names_differing_only_in_case_apart_even_when_case_is_folded():
    names = ["sales", "Sales", "SALES", "sAles"]
    assert len({_artifact(n).lower() for n in names}) == len(names)


def _random_names(rng: random.Random, count: int) -> list:
    # Characters that matter: the slug's own alphabet, its replacement character, the separator
    # and hash alphabets, path characters, quotes, non-ASCII and case variants.
    alphabet = "abcdefSALES0123456789_-.. /\\'\"=:@%üß日\t"
    names = set()
    while len(names) < count:
        names.add("".join(rng.choices(alphabet, k=rng.randint(1, 63))))
    return sorted(names)


def test_artifact_names_are_injective_and_valid_for_thousands_of_random_names():
    rng = random.Random(6)
    names = _random_names(rng, 20000) + HOSTILE
    # plain names that look like a slug plus hash of another name must not collide with it
    names += [safe_name(n) for n in names[:2000]] + [safe_name(n).replace(".", "-") for n in names[:2000]]
    names = sorted(set(names))
    artifacts = {}
    for name in names:
        art = _artifact(name)
        assert check_artifact_name(art) == art
        assert ".." not in art and "/" not in art and len(art) <= 200
        assert artifacts.setdefault(art.lower(), name) == name, "%r and %r collide" % (artifacts[art.lower()], name)
    assert len(artifacts) == len(names)


@pytest.mark.parametrize("name", HOSTILE)
def test_dbname_conninfo_is_read_by_libpq_as_exactly_that_database_name(name):
    parsed = psycopg2.extensions.parse_dsn(dbname_conninfo(name))  # libpq's PQconninfoParse
    assert parsed == {"dbname": name}


def test_guard_database_args_quotes_every_database_option_and_nothing_else():
    argv = ["/usr/lib/postgresql/15/bin/pg_dump", "-Fc", "-d", "host=evil", "--dbname=postgresql://evil/x",
            "-dport=1", "--data-only", "--snapshot=00000003-1", "--", "-d"]
    assert guard_database_args(argv) == [
        argv[0], "-Fc", "-d", "dbname='host=evil'", "--dbname=dbname='postgresql://evil/x'",
        "-ddbname='port=1'", "--data-only", "--snapshot=00000003-1", "--", "-d"]


def test_guard_database_args_knows_which_tool_takes_the_database_with_l():
    listing = ["pg_restore", "--create", "-l", "/stage/db.dump"]
    assert guard_database_args(listing) == listing  # pg_restore's -l lists, it takes no value
    assert guard_database_args(["/usr/bin/pg_dumpall", "--globals-only", "-l", "host=evil"]) == [
        "/usr/bin/pg_dumpall", "--globals-only", "-l", "dbname='host=evil'"]
    # pg_dumpall's -d is a connection string: guarded too, so it can only name a database
    assert guard_database_args(["pg_dumpall", "-d", "host=evil"]) == ["pg_dumpall", "-d", "dbname='host=evil'"]


def _pgpass_lines(text: str) -> list:
    """The fields of each line, split and unescaped as libpq's passwordFromFile does."""
    out = []
    for line in text.splitlines():
        fields, cur, escaped = [], "", False
        for ch in line:
            if escaped:
                cur, escaped = cur + ch, False
            elif ch == "\\":
                escaped = True
            elif ch == ":" and len(fields) < 4:
                fields.append(cur)
                cur = ""
            else:
                cur += ch
        out.append(fields + [cur])
    return out


def test_passfile_escapes_colon_and_backslash_and_binds_host_port_and_user():
    text = passfile_text(host="db.example", port=5433, user="ad:min", password="p:a\\ss'w")
    assert _pgpass_lines(text) == [["db.example", "5433", "*", "ad:min", "p:a\\ss'w"]]


def test_passfile_for_a_socket_directory_also_matches_localhost_as_libpq_looks_it_up():
    lines = _pgpass_lines(passfile_text(host="/var/run/postgresql", port=5432, user="postgres", password="pw"))
    assert [line[0] for line in lines] == ["/var/run/postgresql", "localhost"]


def test_passfile_refuses_a_password_with_a_line_break():
    with pytest.raises(ConfigError, match="line break"):
        passfile_text(host="h", port=1, user="u", password="a\nb")


def _read(path: str) -> str:
    with open(path, encoding="utf-8") as fh:
        return fh.read()


def test_launch_args_pass_the_password_in_a_0600_memory_file_and_no_pgpassword(monkeypatch):
    monkeypatch.setenv("PGPASSWORD", "inherited-secret")
    conn = PgConnection(host="127.0.0.1", port=5999, user="u", password="the-secret")
    with conn.launch_args("some db") as launch:
        env, (fd,) = launch["env"], launch["pass_fds"]
        assert "PGPASSWORD" not in env and env["PGDATABASE"] == "some db"
        assert env["PGPASSFILE"] == "/proc/self/fd/%d" % fd
        assert os.readlink(env["PGPASSFILE"]).startswith("/memfd:")  # never on a file system
        assert stat.S_IMODE(os.stat(env["PGPASSFILE"]).st_mode) == 0o600
        assert _read(env["PGPASSFILE"]) == "127.0.0.1:5999:*:u:the-secret\n"
    with pytest.raises(OSError):
        os.fstat(fd)  # closed: the file is gone once the tool has exited


def test_without_memfd_the_passfile_is_in_a_private_directory_removed_afterwards(monkeypatch):
    monkeypatch.delattr(os, "memfd_create")
    conn = PgConnection(host="127.0.0.1", port=5999, user="u", password="the-secret")
    with conn.launch_args() as launch:
        path = launch["env"]["PGPASSFILE"]
        assert launch["pass_fds"] == ()
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        assert stat.S_IMODE(os.stat(os.path.dirname(path)).st_mode) == 0o700
        assert _read(path) == "127.0.0.1:5999:*:u:the-secret\n"
    assert not os.path.exists(os.path.dirname(path))


def test_launch_args_move_an_inherited_pgpassword_into_the_passfile(monkeypatch):
    monkeypatch.setenv("PGPASSWORD", "inherited-secret")
    with PgConnection(host="h", port=1, user="u").launch_args() as launch:
        assert "PGPASSWORD" not in launch["env"]
        assert _read(launch["env"]["PGPASSFILE"]).endswith(":inherited-secret\n")


def test_launch_args_without_any_password_leave_the_users_own_passfile_alone(monkeypatch):
    monkeypatch.delenv("PGPASSWORD", raising=False)
    monkeypatch.setenv("PGPASSFILE", "/home/op/.pgpass")
    with PgConnection(host="h", port=1, user="u").launch_args() as launch:
        assert launch == {"env": launch["env"], "pass_fds": ()}
        assert launch["env"]["PGPASSFILE"] == "/home/op/.pgpass"
