# -*- coding: utf-8 -*-
# Copyright: Lifeline contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The backup side of the postgres component against a real PostgreSQL 15: what it records in
the manifest (tool versions, database facts read per server version, the tables of each dump's
snapshot, S3 size hints) and pg_dump's own words when it fails before writing anything."""
from __future__ import annotations

import pytest

from lifeline_it import run_backup_for

from ansible_collections.lifeline.dr.plugins.module_utils import config
from ansible_collections.lifeline.dr.plugins.module_utils.errors import SourceError
from ansible_collections.lifeline.dr.plugins.module_utils.postgres import database_facts, database_facts_query
from ansible_collections.lifeline.dr.plugins.module_utils.postgres_dump import PostgresComponent

USER_TABLES = ("SELECT string_agg(schemaname || '.' || tablename, ',' ORDER BY schemaname || '.' || tablename "
               "COLLATE \"C\") FROM pg_tables WHERE schemaname NOT IN ('pg_catalog', 'information_schema')")


def _databases(outcome) -> dict:
    return {a.meta["database"]: a.meta for a in outcome.manifest.artifacts if a.kind == "database"}


def test_pg_dump_failing_before_any_output_is_reported_with_pg_dumps_own_message(params, source_pg):
    source_pg.psql("CREATE TABLE crm.secret (v text)", db="shop")  # owned by postgres, no grant
    limited = dict(params, login_user="reporting", login_password="reporting-pw")

    with pytest.raises(SourceError) as err:
        run_backup_for(limited, databases=["shop"], include_globals=False)

    message = str(err.value)
    assert "pg_dump of database 'shop' failed (exit 1)" in message
    assert "permission denied for table secret" in message
    assert "did not produce" not in message


@pytest.mark.parametrize("scope", ["full", "schema", "data"])
def test_every_scope_records_the_user_tables_of_its_snapshot(params, source_pg, scope):
    source_pg.psql("CREATE TABLE \"Odd Schema\" (i int)", db="shop")

    outcome = run_backup_for(params, scope=scope, databases=["shop", "analytics-ü"], include_globals=False)

    for name, meta in _databases(outcome).items():
        assert meta["relations"] == source_pg.psql(USER_TABLES, db=name).split(","), name
        assert meta["relations"] == sorted(meta["relations"])
        assert ("tables" in meta) is (scope != "schema")
        if scope != "schema":
            assert sorted(meta["tables"]) == meta["relations"]
    assert "public.Odd Schema" in _databases(outcome)["shop"]["relations"]


def test_manifest_records_the_pg_dump_version_and_major_that_wrote_the_archives(params):
    outcome = run_backup_for(params, databases=["shop"], include_globals=False)

    tools = outcome.manifest.tools
    assert tools["pg_dump_major"] == 15 == tools["server_major"]
    assert tools["pg_dump"].startswith("15.")


def test_each_database_source_hints_its_size_to_the_repositories(params, source_pg):
    comp = PostgresComponent(config.pg_connection(params), databases=["shop", "postgres"], include_globals=False)
    comp.prepare()
    hints = {src.dbname: src.size_hint for src in comp.artifacts()}
    for name in ("shop", "postgres"):
        assert hints[name] == int(source_pg.psql("SELECT pg_database_size('%s')" % name)) > 1024 * 1024


def test_database_facts_on_postgresql_15_use_its_columns_and_the_17_query_would_not(params, source_pg):
    conn = config.pg_connection(params)
    num, _text = conn.server_version()
    assert num // 10000 == 15
    with conn.cursor() as cur:
        facts = database_facts(cur, "shop", server_version_num=num)
        with pytest.raises(Exception, match="datlocale"):
            cur.execute(database_facts_query(170000)[0], ("shop",))
    assert facts == {"owner": "app_owner", "encoding": "UTF8", "collate": "C.UTF-8", "ctype": "C.UTF-8",
                     "locale_provider": "c", "icu_locale": None}
