# -*- coding: utf-8 -*-
# Copyright: Lifeline contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The scripts a postgres restore replays, read as hostile input: how they are split, which
statements pass, what is refused (with its line) and how the connecting role keeps its access.
Known answers: verifiers made by PostgreSQL 15 for role 'kat' with password 'correct horse'."""
from __future__ import annotations

import pytest

from ansible_collections.lifeline.dr.plugins.module_utils.errors import RestoreError
from ansible_collections.lifeline.dr.plugins.module_utils.postgres_script import (
    database_statements,
    globals_statements,
    password_matches,
    quote_ident,
    split,
)

SCRAM = ("SCRAM-SHA-256$4096:NWxJORqZPqThZkNOjZsqYQ==$OI0ctb/hZigdb2R+6YZxc1FFnpO+xpbWpFFLwvv/ju4="
         ":xJO79KFmJwpErU7EG1x18qddHmvrpsHWOEkp02tggwU=")
MD5 = "md593182acce2c39cd7d3346906269f31c0"
KEY = "Te3nMjfcvOEVwwH2Vf3KdqFWWqFtMPVgh0ACYdNJC1iyGxbHez7XcTCsoLGyIdS"
# What pg_dumpall 15.18 --globals-only wrote for a cluster (shortened), restrict lines included.
DUMPALL = """--
-- PostgreSQL database cluster dump
--

\\restrict %s

SET default_transaction_read_only = off;

SET client_encoding = 'UTF8';
SET standard_conforming_strings = on;

CREATE ROLE app_owner;
ALTER ROLE app_owner WITH NOSUPERUSER INHERIT NOCREATEROLE NOCREATEDB LOGIN NOREPLICATION NOBYPASSRLS PASSWORD '%s';
CREATE ROLE "we ird";
ALTER ROLE "we ird" WITH NOSUPERUSER INHERIT NOLOGIN CONNECTION LIMIT 3 VALID UNTIL '2000-01-01 00:00:00+00';
COMMENT ON ROLE app_owner IS E'multi
\\\\line; \\\\! not a command';
ALTER ROLE app_owner SET work_mem TO '1MB';
GRANT app_owner TO "we ird" GRANTED BY postgres;

\\unrestrict %s
""" % (KEY, SCRAM, KEY)


def texts(statements) -> list:
    return [s.text for s in statements]


# ---------------------------------------------------------------- splitting


def test_split_keeps_semicolons_and_backslashes_inside_strings_and_identifiers():
    stmts = split("COMMENT ON ROLE a IS 'x; y';\nCOMMENT ON ROLE \"b;\" IS E'it\\'s; \\\\';\n", what="t")
    assert texts(stmts) == ["COMMENT ON ROLE a IS 'x; y'", "COMMENT ON ROLE \"b;\" IS E'it\\'s; \\\\'"]
    assert [s.line for s in stmts] == [1, 2]


def test_split_reads_a_backslash_in_a_standard_string_as_postgresql_does():
    # standard_conforming_strings is on: 'x\' ends at the second quote, so the COPY is a statement
    stmts = split("COMMENT ON ROLE a IS 'x\\'; COPY (SELECT 1) TO PROGRAM 'touch y';", what="t")
    assert texts(stmts) == ["COMMENT ON ROLE a IS 'x\\'", "COPY (SELECT 1) TO PROGRAM 'touch y'"]


def test_split_reads_an_escape_string_as_postgresql_does():
    stmts = split("COMMENT ON ROLE a IS E'x\\'; COPY (SELECT 1) TO PROGRAM ''touch y''';", what="t")
    assert len(stmts) == 1 and stmts[0].text.startswith("COMMENT")


@pytest.mark.parametrize("text", ["DO $$ BEGIN PERFORM 1; END $$;", "SELECT 1 /* ; */;", "COMMENT ON ROLE a IS 'open"])
def test_split_refuses_what_the_dump_tools_never_write(text):
    with pytest.raises(RestoreError) as err:
        split(text, what="globals.sql")
    assert "globals.sql line 1" in str(err.value)


# ---------------------------------------------------------------- globals


def test_globals_of_pg_dumpall_pass_without_session_settings_or_restrict_lines():
    stmts = globals_statements(DUMPALL)
    assert [s.create_role for s in stmts if s.create_role] == ["app_owner", "we ird"]
    kept = texts(s for s in stmts if not s.create_role)
    assert not [t for t in kept if t.startswith(("SET", "\\"))]
    assert kept[0] == "ALTER ROLE app_owner WITH NOSUPERUSER INHERIT NOCREATEROLE NOCREATEDB LOGIN NOREPLICATION " \
                      "NOBYPASSRLS PASSWORD '%s'" % SCRAM
    assert "GRANT app_owner TO \"we ird\" GRANTED BY postgres" in kept
    assert [s.line for s in stmts][:2] == [12, 13]


@pytest.mark.parametrize("line", [
    "\\! touch /tmp/lifeline-pwned",
    "\\o /tmp/lifeline-pwned",
    "\\copy (SELECT 1) TO PROGRAM 'touch /tmp/lifeline-pwned'",
    "\\restrict %s \\! touch /tmp/lifeline-pwned" % KEY,
    "  \\! touch /tmp/lifeline-pwned",
    "\\connect other",
])
def test_globals_with_a_psql_meta_command_are_refused_naming_the_line(line):
    lines = DUMPALL.splitlines()
    lines.insert(14, line)
    with pytest.raises(RestoreError) as err:
        globals_statements("\n".join(lines))
    assert "globals.sql line 15: psql meta-command" in str(err.value)
    assert "nothing was changed" in str(err.value)


def test_a_meta_command_inside_a_statement_is_refused():
    with pytest.raises(RestoreError) as err:
        globals_statements("CREATE ROLE a\n\\! touch /tmp/x\n;")
    assert "line 2: psql meta-command" in str(err.value)


@pytest.mark.parametrize("statement", [
    "COPY (SELECT 1) TO PROGRAM 'touch /tmp/lifeline-pwned'",
    "SELECT pg_catalog.pg_read_file('/etc/shadow')",
    "CREATE FUNCTION f() RETURNS int LANGUAGE sql AS 'SELECT 1'",
    "ALTER ROLE app_owner RENAME TO x",
    "DROP ROLE app_owner",
    "CREATE ROLE a LOGIN SUPERUSER",
    "ALTER SYSTEM SET archive_command = 'touch /tmp/x'",
])
def test_globals_with_a_statement_pg_dumpall_does_not_write_are_refused(statement):
    with pytest.raises(RestoreError) as err:
        globals_statements(DUMPALL + statement + ";\n")
    assert "globals.sql line 22" in str(err.value) and "pg_dumpall --globals-only" in str(err.value)


def test_connecting_role_is_never_made_nologin_nosuperuser_limited_or_expired():
    warnings = []
    line = ("ALTER ROLE kat WITH NOSUPERUSER NOINHERIT NOCREATEROLE NOCREATEDB NOLOGIN NOREPLICATION NOBYPASSRLS "
            "CONNECTION LIMIT 0 VALID UNTIL '2000-01-01 00:00:00+00';")
    assert globals_statements(line, connecting_role="kat", connecting_password="x", warnings=warnings) == []
    assert warnings and "kat" in warnings[0]
    for attribute in ("NOLOGIN", "NOSUPERUSER", "CONNECTION LIMIT", "VALID UNTIL"):
        assert attribute in warnings[0]


def test_connecting_role_keeps_what_grants_access():
    line = "ALTER ROLE kat WITH SUPERUSER NOLOGIN CONNECTION LIMIT -1 REPLICATION VALID UNTIL 'infinity';"
    (stmt,) = globals_statements(line, connecting_role="kat")
    assert stmt.text == "ALTER ROLE kat WITH SUPERUSER REPLICATION"


def test_other_roles_attributes_are_restored_as_backed_up():
    line = "ALTER ROLE app WITH NOSUPERUSER NOLOGIN VALID UNTIL '2000-01-01 00:00:00+00';"
    (stmt,) = globals_statements(line, connecting_role="kat", connecting_password="x")
    assert stmt.text == line[:-1]


def test_connecting_role_keeps_its_password_when_the_backup_has_a_different_one():
    line = "ALTER ROLE kat WITH LOGIN PASSWORD '%s';" % SCRAM
    (stmt,) = globals_statements(line, connecting_role="kat", connecting_password="another password")
    assert stmt.text == "ALTER ROLE kat WITH LOGIN"


def test_connecting_role_gets_the_backups_verifier_when_it_is_the_same_password():
    line = "ALTER ROLE kat WITH LOGIN PASSWORD '%s';" % SCRAM
    (stmt,) = globals_statements(line, connecting_role="kat", connecting_password="correct horse")
    assert stmt.text == line[:-1]


def test_a_quoted_connecting_role_is_recognised():
    line = 'ALTER ROLE "Kat Admin" WITH NOLOGIN;'
    assert globals_statements(line, connecting_role="Kat Admin") == []
    assert len(globals_statements(line, connecting_role="kat admin")) == 1


def test_password_matches_a_real_scram_verifier_only_for_its_password():
    assert password_matches(SCRAM, "correct horse", "kat")
    assert not password_matches(SCRAM, "correct horse!", "kat")


def test_password_matches_a_real_md5_verifier_only_for_its_password_and_role():
    assert password_matches(MD5, "correct horse", "kat")
    assert not password_matches(MD5, "correct horse", "other")


def test_quote_ident_matches_pg_dumpall():
    assert quote_ident("postgres") == "postgres"
    assert quote_ident("App") == '"App"'
    assert quote_ident('a"b') == '"a""b"'


# ---------------------------------------------------------------- database-level settings

# What pg_restore 15.18 --create -L <database-level entries> -f - wrote (shortened).
DB_LEVEL = """\\restrict %s
SET statement_timeout = 0;
SELECT pg_catalog.set_config('search_path', '', false);
CREATE DATABASE "analytics-ü" WITH TEMPLATE = template0 ENCODING = 'UTF8' LOCALE_PROVIDER = libc LOCALE = 'C.UTF-8';
ALTER DATABASE "analytics-ü" OWNER TO reporting;
\\unrestrict %s
\\connect -reuse-previous=on "dbname='analytics-ü'"
COMMENT ON DATABASE "analytics-ü" IS 'Lifeline; sample';
ALTER DATABASE "analytics-ü" SET work_mem TO '8MB';
ALTER ROLE reporting IN DATABASE "analytics-ü" SET work_mem TO '2MB';
GRANT CONNECT ON DATABASE "analytics-ü" TO app_reader;
REVOKE ALL ON DATABASE "analytics-ü" FROM PUBLIC;
SECURITY LABEL FOR dummy ON DATABASE "analytics-ü" IS 'x';
""" % (KEY, KEY)


def test_database_level_statements_are_rewritten_for_the_temporary_copy():
    stmts = database_statements(DB_LEVEL, database="analytics-ü", temp="lifeline_restore_0a1b2c3d")
    assert texts(stmts) == [
        "ALTER DATABASE lifeline_restore_0a1b2c3d OWNER TO reporting",
        "COMMENT ON DATABASE lifeline_restore_0a1b2c3d IS 'Lifeline; sample'",
        "ALTER DATABASE lifeline_restore_0a1b2c3d SET work_mem TO '8MB'",
        "ALTER ROLE reporting IN DATABASE lifeline_restore_0a1b2c3d SET work_mem TO '2MB'",
        "GRANT CONNECT ON DATABASE lifeline_restore_0a1b2c3d TO app_reader",
        "REVOKE ALL ON DATABASE lifeline_restore_0a1b2c3d FROM PUBLIC",
        "SECURITY LABEL FOR dummy ON DATABASE lifeline_restore_0a1b2c3d IS 'x'",
    ]


def test_a_plain_database_name_matches_case_folded():
    stmts = database_statements("ALTER DATABASE Shop SET work_mem TO '8MB';", database="shop", temp="lifeline_restore_1")
    assert texts(stmts) == ["ALTER DATABASE lifeline_restore_1 SET work_mem TO '8MB'"]


@pytest.mark.parametrize("statement", [
    "ALTER DATABASE other SET work_mem TO '8MB'",
    "GRANT CONNECT ON DATABASE \"analytics-ü\", other TO app_reader",
    "ALTER ROLE postgres NOLOGIN",
    "ALTER DATABASE \"analytics-ü\" RENAME TO x",
    "COPY (SELECT 1) TO PROGRAM 'touch /tmp/x'",
])
def test_database_level_statements_for_anything_else_are_refused(statement):
    with pytest.raises(RestoreError) as err:
        database_statements(DB_LEVEL + statement + ";\n", database="analytics-ü", temp="lifeline_restore_1")
    assert "database-level settings of 'analytics-ü' line 14" in str(err.value)


def test_database_level_script_with_a_shell_command_is_refused():
    with pytest.raises(RestoreError) as err:
        database_statements(DB_LEVEL + "\\! touch /tmp/x\n", database="analytics-ü", temp="lifeline_restore_1")
    assert "line 14: psql meta-command" in str(err.value)
