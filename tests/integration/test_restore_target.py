# -*- coding: utf-8 -*-
# Copyright: Lifeline contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What a restore does to a target that already has something on it, against real PostgreSQL 15:
every step that can fail runs before the first swap, a database holding any user object is not
replaced without ``replace``, the connecting role keeps its access, and each database's result
says what was verified."""
from __future__ import annotations

import os
import subprocess
import types

import pytest
import keys  # tests/lib, on sys.path through conftest.py

from forge import read_manifest, write_manifest
from lifeline_it import (
    HOST,
    SITE,
    adhoc,
    backup_dir,
    databases,
    flip_byte,
    pg_dumpall_normalized,
    restore_for,
    roles,
    run_backup_for,
)

from ansible_collections.lifeline.dr.plugins.module_utils.errors import RestoreError

SHOP = "db-shop.dump.zst.age"


def leftovers(pg) -> list:
    return [d for d in databases(pg) if d.startswith(("lifeline_restore_", "lifeline_replaced_"))]


def resign(params, backup_id: str, edit) -> None:
    """Apply ``edit`` to the backup's manifest in the local repository and sign it with the
    trusted key (as the source host would have, had it recorded that)."""
    repo = params["repositories"][0]["path"]
    body = read_manifest(repo, backup_id)
    edit(body)
    write_manifest(repo, body, keys.SIGNER)


def shop_meta(body: dict) -> dict:
    return next(a for a in body["artifacts"] if a["name"] == SHOP)["meta"]


@pytest.fixture
def local_only(params) -> dict:
    return dict(params, repositories=[params["repositories"][0]])


# ---------------------------------------------------------------- swap ordering


def test_a_database_setting_that_fails_to_apply_leaves_every_database_untouched_and_no_temp_database(
        params, source_pg, target_pg):
    # shop's database-level grant needs a role the target lacks; the roles are not restored.
    source_pg.psql("CREATE ROLE dbgrantee; GRANT CONNECT ON DATABASE shop TO dbgrantee")
    assert run_backup_for(params).status == "ok"
    target_pg.psql("CREATE ROLE app_owner; CREATE ROLE app_reader; CREATE ROLE reporting")
    target_pg.psql('CREATE DATABASE "analytics-ü"')
    target_pg.psql("CREATE TABLE kept (id int); INSERT INTO kept VALUES (1), (2)", db="analytics-ü")
    before = pg_dumpall_normalized(target_pg)

    with pytest.raises(RestoreError) as err:
        restore_for(params, target_pg, include_globals=False, replace=True)

    message = str(err.value)
    assert "database-level settings of 'shop'" in message and "nothing was swapped in" in message
    assert 'role "dbgrantee" does not exist' in message
    assert pg_dumpall_normalized(target_pg) == before  # analytics-ü and postgres were not swapped either
    assert leftovers(target_pg) == []


# ---------------------------------------------------------------- what counts as empty


@pytest.mark.parametrize("objects,kind", [
    ("CREATE FUNCTION public.f() RETURNS int LANGUAGE sql AS 'SELECT 1'", "functions or procedures: 1"),
    ("CREATE TYPE public.mood AS ENUM ('ok')", "types or domains: 1"),
    ("CREATE FOREIGN DATA WRAPPER w; CREATE SERVER s FOREIGN DATA WRAPPER w", "foreign servers: 1"),
    ("CREATE SCHEMA sales", "schemas: 1"),
])
def test_a_database_holding_only_a_function_type_foreign_server_or_schema_is_not_replaced_without_replace(
        params, target_pg, objects, kind):
    assert run_backup_for(params, databases=["shop"]).status == "ok"
    target_pg.psql("CREATE DATABASE shop")
    target_pg.psql(objects, db="shop")
    before = pg_dumpall_normalized(target_pg)

    with pytest.raises(RestoreError) as err:
        restore_for(params, target_pg)

    assert "'shop' already exists" in str(err.value) and kind in str(err.value)
    assert "replace" in str(err.value)
    assert pg_dumpall_normalized(target_pg) == before


def test_a_database_that_refuses_connections_is_not_replaced_without_replace(params, target_pg):
    assert run_backup_for(params, databases=["shop"]).status == "ok"
    target_pg.psql("CREATE DATABASE shop ALLOW_CONNECTIONS false")
    before = pg_dumpall_normalized(target_pg)

    with pytest.raises(RestoreError) as err:
        restore_for(params, target_pg)

    assert "'shop' does not accept connections" in str(err.value)
    assert pg_dumpall_normalized(target_pg) == before


def test_an_empty_existing_database_is_replaced_without_replace(params, target_pg):
    assert run_backup_for(params, databases=["shop"]).status == "ok"
    target_pg.psql("CREATE DATABASE shop")

    report = restore_for(params, target_pg)

    assert [(d["name"], d["action"]) for d in report["databases"]] == [("shop", "replace-empty")]
    assert target_pg.psql('SELECT count(*) FROM sales."order"', db="shop") == "20000"


# ---------------------------------------------------------------- the connecting role


def test_a_backup_that_makes_the_connecting_role_nologin_nosuperuser_and_expired_does_not_lock_it_out(
        params, source_pg, target_pg):
    source_pg.psql("CREATE ROLE restorer NOLOGIN NOSUPERUSER CONNECTION LIMIT 0 PASSWORD 'source-pw' "
                   "VALID UNTIL '2000-01-01'")
    assert run_backup_for(params).status == "ok"
    target_pg.psql("CREATE ROLE restorer LOGIN SUPERUSER PASSWORD 'restorer-pw'")
    as_restorer = types.SimpleNamespace(port=target_pg.port, password="restorer-pw")

    report = restore_for(dict(params, login_user="restorer"), as_restorer)

    assert all(d["verified"] for d in report["databases"])
    assert target_pg.psql("SELECT rolcanlogin, rolsuper, rolvaliduntil IS NULL, rolconnlimit FROM pg_roles "
                          "WHERE rolname = 'restorer'") == "t|t|t|-1"
    login = subprocess.run(["psql", "-X", "-A", "-t", "-h", target_pg.host, "-p", str(target_pg.port), "-U",
                            "restorer", "-d", "postgres", "-c", "SELECT current_user"],
                           env=dict(os.environ, PGPASSWORD="restorer-pw"), capture_output=True, text=True, check=False)
    assert login.stdout.strip() == "restorer", login.stderr
    (warning,) = [w for w in report["warnings"] if "restorer" in w]
    for attribute in ("NOLOGIN", "NOSUPERUSER", "CONNECTION LIMIT", "VALID UNTIL", "its password"):
        assert attribute in warning
    assert {"app_owner", "app_reader", "reporting"} <= set(roles(target_pg))


# ---------------------------------------------------------------- what was verified


def test_each_database_result_says_what_was_verified(params, target_pg):
    assert run_backup_for(params).status == "ok"

    report = restore_for(params, target_pg)

    results = {d["name"]: d for d in report["databases"]}
    assert all(d["verified"] for d in results.values())
    shop = results["shop"]
    assert "row counts of 2 tables (22000 rows), as in the manifest" in shop["checks"]
    assert "1 large objects, as in the manifest" in shop["checks"]
    assert "row counts of 0 tables (0 rows), as in the manifest" in results["postgres"]["checks"]
    assert set(report["phases"]) >= {"plan", "fetch", "globals", "pg_restore", "verify", "database_settings", "swap"}


def test_schema_only_restore_verifies_the_relations_its_manifest_records(local_only, target_pg):
    backup_id = run_backup_for(local_only, scope="schema", databases=["shop"]).manifest.backup_id
    resign(local_only, backup_id, lambda body: shop_meta(body).update(relations=["crm.customer", "sales.order"]))

    report = restore_for(local_only, target_pg, point=backup_id)

    (shop,) = report["databases"]
    assert shop["verified"] is True
    assert shop["checks"] == ["2 relations present, as in the manifest"]


def test_schema_only_restore_refuses_a_copy_missing_a_relation_the_manifest_records(local_only, target_pg):
    backup_id = run_backup_for(local_only, scope="schema", databases=["shop"]).manifest.backup_id
    resign(local_only, backup_id,
           lambda body: shop_meta(body).update(relations=["crm.customer", "crm.ghost", "sales.order"]))

    with pytest.raises(RestoreError) as err:
        restore_for(local_only, target_pg, point=backup_id)

    assert "crm.ghost: missing" in str(err.value)
    assert "shop" not in databases(target_pg) and leftovers(target_pg) == []


def test_schema_only_restore_of_a_manifest_without_relations_says_nothing_was_verified(local_only, target_pg):
    backup_id = run_backup_for(local_only, scope="schema", databases=["shop"]).manifest.backup_id
    resign(local_only, backup_id, lambda body: shop_meta(body).pop("relations", None))

    report = restore_for(local_only, target_pg, point=backup_id)

    (shop,) = report["databases"]
    assert shop["verified"] is False and shop["checks"] == []


def test_a_copy_with_a_table_the_manifest_does_not_record_is_refused(local_only, target_pg):
    backup_id = run_backup_for(local_only, databases=["shop"]).manifest.backup_id
    resign(local_only, backup_id, lambda body: shop_meta(body)["tables"].pop("crm.customer"))

    with pytest.raises(RestoreError) as err:
        restore_for(local_only, target_pg)

    assert "crm.customer: 2000 rows, not in the manifest" in str(err.value)
    assert "shop" not in databases(target_pg) and leftovers(target_pg) == []


# ---------------------------------------------------------------- errors and warnings


def test_the_module_shows_a_fallback_from_a_damaged_copy_as_a_task_warning(params, target_pg, local_repo):
    backup_id = run_backup_for(params, databases=["shop"]).manifest.backup_id
    flip_byte(os.path.join(backup_dir(local_repo, backup_id), SHOP))

    rc, result, output = adhoc("lifeline.dr.postgres_restore", {
        "repositories": params["repositories"], "site": SITE, "host": HOST, "state_dir": params["state_dir"],
        "trusted_signers": params["trusted_signers"], "identity": params["identity"],
        "login_host": target_pg.host, "port": target_pg.port, "login_password": target_pg.password})

    assert rc == 0, output
    (warning,) = [w for w in result["warnings"] if SHOP in w]
    assert "read from S3 repository 's3'" in warning and "the copy of %s" % SHOP in warning
    assert "local repository 'local' (%s)" % local_repo in warning and "failed authentication" in warning
    assert result["served_by"] == ["local", "s3"]
    (shop,) = result["databases"]
    assert shop["verified"] is True and "1 large objects, as in the manifest" in shop["checks"]


def test_an_unusable_staging_dir_is_a_restore_error_naming_it(params, target_pg, tmp_path):
    assert run_backup_for(params, databases=["shop"]).status == "ok"
    blocker = tmp_path / "not-a-directory"
    blocker.write_bytes(b"")

    with pytest.raises(RestoreError) as err:
        restore_for(params, target_pg, staging_dir=str(blocker / "staging"))

    assert "staging directory %s" % (blocker / "staging") in str(err.value)
    assert "Not a directory" in str(err.value) and "staging_dir" in str(err.value)
    assert "shop" not in databases(target_pg)
