# -*- coding: utf-8 -*-
# Copyright: Lifeline contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""PostgreSQL 13-17: the database facts are read only from pg_database columns that version has
(the column lists below are from each release's catalog documentation; the one for 15 is also
checked against the real server in tests/integration/test_postgres_dump.py), and the pg_dump
version a backup was written with is read back from its manifest, hostile or old, to pick a
pg_restore able to read its archives."""
from __future__ import annotations

import re

import pytest

from ansible_collections.lifeline.dr.plugins.module_utils.errors import DependencyError
from ansible_collections.lifeline.dr.plugins.module_utils.manifest import Artifact, Manifest
from ansible_collections.lifeline.dr.plugins.module_utils.postgres import PgConnection, database_facts_query
from ansible_collections.lifeline.dr.plugins.module_utils.postgres_checks import check_for

_BASE = ["oid", "datname", "datdba", "encoding", "datistemplate", "datallowconn", "datconnlimit",
         "datfrozenxid", "datminmxid", "dattablespace", "datcollate", "datctype", "datacl"]
PG_DATABASE_COLUMNS = {
    13: _BASE + ["datlastsysoid"],
    14: _BASE + ["datlastsysoid"],
    15: _BASE + ["datlocprovider", "daticulocale", "datcollversion"],
    16: _BASE + ["datlocprovider", "daticulocale", "daticurules", "datcollversion"],
    17: _BASE + ["datlocprovider", "dathasloginevt", "datlocale", "daticurules", "datcollversion"],
}
KEYS = {
    13: ("owner", "encoding", "collate", "ctype"),
    14: ("owner", "encoding", "collate", "ctype"),
    15: ("owner", "encoding", "collate", "ctype", "locale_provider", "icu_locale"),
    16: ("owner", "encoding", "collate", "ctype", "locale_provider", "icu_locale", "icu_rules"),
    17: ("owner", "encoding", "collate", "ctype", "locale_provider", "locale", "icu_locale", "icu_rules"),
}


def _select_list(query: str) -> list:
    return query[len("SELECT "):query.index(" FROM pg_database")].split(", ")


@pytest.mark.parametrize("major", sorted(PG_DATABASE_COLUMNS))
def test_database_facts_query_uses_only_columns_that_version_has(major):
    query, keys = database_facts_query(major * 10000 + 7)
    used = set(re.findall(r"\bd\.(\w+)", query))
    assert used - set(PG_DATABASE_COLUMNS[major]) == set()
    assert {"datdba", "encoding", "datcollate", "datctype"} <= used
    assert keys == KEYS[major]
    assert len(_select_list(query)) == len(keys)


@pytest.mark.parametrize("major", [15, 16])
def test_database_facts_query_reads_the_icu_locale_from_daticulocale_on_15_and_16(major):
    query, keys = database_facts_query(major * 10000)
    assert "d.daticulocale" in query and "datlocale" not in query
    assert keys.index("icu_locale") == 5


def test_database_facts_query_on_17_reads_datlocale_and_keeps_icu_locale_for_icu_only():
    query, keys = database_facts_query(170002)
    assert "daticulocale" not in query
    exprs = _select_list(query)
    assert dict(zip(keys, exprs))["icu_locale"] == "CASE WHEN d.datlocprovider = 'i' THEN d.datlocale END"
    assert dict(zip(keys, exprs))["locale"] == "d.datlocale"


@pytest.mark.parametrize("tools, major", [
    ({"pg_dump": "16.4", "pg_dump_major": 16, "server_major": 15}, 16),
    ({"pg_dump": "17.0"}, 17),                     # a 0.1.0 manifest: the version string only
    ({"pg_dump": "17beta2"}, 17),
    ({"pg_dump_major": "16", "pg_dump": "15.3"}, 15),  # a string major is not trusted
    ({"pg_dump_major": True, "pg_dump": "x"}, 0),
    ({"pg_dump_major": 10 ** 9}, 0),
    ({"pg_dump": ["16"]}, 0),
    ({}, 0),
    ("not a dict", 0),
])
def test_archive_major_reads_the_pg_dump_version_and_refuses_malformed_values(tools, major):
    assert PgConnection.archive_major(tools) == major


def _manifest(tools: dict) -> Manifest:
    art = Artifact(name="db-app.dump.zst.age", kind="database", size=1, sha256="ab" * 32, plain_size=1,
                   meta={"database": "app"})
    return Manifest(backup_id="20261123T020000Z-1a2b", site="s", host="h", component="postgres", kind="full",
                    started="2026-11-23T02:00:00Z", finished="2026-11-23T02:00:01Z",
                    consistent_at="2026-11-23T02:00:00Z", compression="zstd", encryption="age",
                    key_id=["age1x"], artifacts=[art], tools=tools)


def test_verify_refuses_a_pg_restore_older_than_the_pg_dump_that_wrote_the_archive(tmp_path):
    # STAND-IN: a script answering --version as pg_restore 15.8 would (no real 16 here).
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "pg_restore").write_text("#!/bin/sh\necho 'pg_restore (PostgreSQL) 15.8'\n")
    (bindir / "pg_restore").chmod(0o755)
    conn = PgConnection(bin_dir=str(bindir))
    manifest = _manifest({"pg_dump": "16.4", "pg_dump_major": 16, "server_major": 15})
    with pytest.raises(DependencyError, match="postgresql-client-16"):
        check_for(conn, manifest)(manifest.artifacts[0])
    older = _manifest({"pg_dump": "15.8", "pg_dump_major": 15, "server_major": 15})
    check = check_for(conn, older)(older.artifacts[0])
    assert check.close() == "1 archive entries"  # the stand-in's one line of output


@pytest.mark.parametrize("meta, wanted, unwanted", [
    ({"locale_provider": "c", "collate": "C.UTF-8", "ctype": "C.UTF-8"}, ["LC_COLLATE"], ["LOCALE_PROVIDER"]),
    ({"locale_provider": "i", "icu_locale": "de-DE"}, ["LOCALE_PROVIDER icu ICU_LOCALE", "Literal('de-DE')"], ["ICU_RULES"]),
    ({"locale_provider": "i", "icu_locale": "und", "icu_rules": "&a < b"}, ["ICU_RULES", "Literal('&a < b')"], []),
    ({"locale_provider": "b", "locale": "C.UTF-8"}, ["LOCALE_PROVIDER builtin BUILTIN_LOCALE", "Literal('C.UTF-8')"], ["icu"]),
])
def test_the_temporary_copy_is_created_with_the_sources_locale_of_every_version(meta, wanted, unwanted):
    # Only PostgreSQL 15 runs here: the 16/17 clauses are checked as the statement text they build.
    from ansible_collections.lifeline.dr.plugins.module_utils.postgres_target import create_database_sql
    text = repr(create_database_sql("lifeline_restore_1", dict(meta, owner="app", encoding="UTF8")))
    for part in wanted:
        assert part in text
    for part in unwanted:
        assert part not in text
