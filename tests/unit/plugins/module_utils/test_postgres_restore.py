"""Pure logic of postgres_restore: globals rewriting and password verifier checks.
Known answers: verifiers made by PostgreSQL 15 for role 'kat' with password 'correct horse'."""
from ansible_collections.lifeline.dr.plugins.module_utils.postgres_restore import (
    idempotent_globals,
    password_matches,
    quote_ident,
)

SCRAM = ("SCRAM-SHA-256$4096:NWxJORqZPqThZkNOjZsqYQ==$OI0ctb/hZigdb2R+6YZxc1FFnpO+xpbWpFFLwvv/ju4="
         ":xJO79KFmJwpErU7EG1x18qddHmvrpsHWOEkp02tggwU=")
MD5 = "md593182acce2c39cd7d3346906269f31c0"


def test_password_matches_a_real_scram_verifier_only_for_its_password():
    assert password_matches(SCRAM, "correct horse", "kat")
    assert not password_matches(SCRAM, "correct horse!", "kat")


def test_password_matches_a_real_md5_verifier_only_for_its_password_and_role():
    assert password_matches(MD5, "correct horse", "kat")
    assert not password_matches(MD5, "correct horse", "other")


def test_create_role_becomes_re_runnable():
    out = idempotent_globals('CREATE ROLE "App Owner";\n')
    assert "EXCEPTION WHEN duplicate_object" in out and 'CREATE ROLE "App Owner";' in out


def test_connecting_role_keeps_its_password_when_the_backup_has_a_different_one():
    line = "ALTER ROLE kat WITH LOGIN PASSWORD '%s';" % SCRAM
    out = idempotent_globals(line, connecting_role="kat", connecting_password="another password")
    assert "PASSWORD" not in out and "ALTER ROLE kat WITH LOGIN;" in out


def test_connecting_role_gets_the_backups_verifier_when_it_is_the_same_password():
    line = "ALTER ROLE kat WITH LOGIN PASSWORD '%s';" % SCRAM
    assert idempotent_globals(line, connecting_role="kat", connecting_password="correct horse").strip() == line


def test_other_roles_passwords_are_restored_as_backed_up():
    line = "ALTER ROLE app WITH LOGIN PASSWORD '%s';" % SCRAM
    assert idempotent_globals(line, connecting_role="kat", connecting_password="x").strip() == line


def test_quote_ident_matches_pg_dumpall():
    assert quote_ident("postgres") == "postgres"
    assert quote_ident("App") == '"App"'
    assert quote_ident('a"b') == '"a""b"'
