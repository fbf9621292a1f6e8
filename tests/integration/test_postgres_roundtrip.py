# -*- coding: utf-8 -*-
# Copyright: Lifeline contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Backups of a real PostgreSQL 15 restored into another real one, through a local directory and
a real S3 endpoint (moto_server): what comes back must be what went in."""
from __future__ import annotations

import datetime
import os
import time

import pytest

from lifeline_it import (
    backup_dir,
    catalog_entry,
    catalog_ids,
    contents_fingerprint,
    databases,
    flip_byte,
    pg_dump_normalized,
    pg_dumpall_normalized,
    restore_for,
    run_backup_for,
    s3_key,
    s3_keys,
)

from ansible_collections.lifeline.dr.plugins.module_utils import crypto
from ansible_collections.lifeline.dr.plugins.module_utils.timeutil import isotime, parse_time

# Facts about the sample data that a correct restore must reproduce: (database, query).
SAMPLE_FACTS = [
    ("postgres", "SELECT string_agg(rolname || ':' || rolcanlogin, ',' ORDER BY rolname) FROM pg_roles "
                 "WHERE rolname IN ('app_owner', 'app_reader', 'reporting')"),
    ("postgres", "SELECT pg_has_role('reporting', 'app_reader', 'member')"),
    ("postgres", "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = 'shop'"),
    ("shop", "SELECT string_agg(nspname, ',' ORDER BY nspname) FROM pg_namespace WHERE nspname IN ('crm', 'sales')"),
    ("shop", "SELECT count(*) FROM crm.customer"),
    ("shop", "SELECT count(*) FROM sales.\"order\""),
    ("shop", "SELECT sum(total) FROM sales.\"order\""),
    ("shop", "SELECT has_table_privilege('app_reader', 'sales.\"order\"', 'SELECT'), "
             "has_table_privilege('app_reader', 'crm.customer', 'INSERT')"),
    ("shop", "SELECT last_value FROM sales.invoice_no"),
    ("shop", "SELECT last_value FROM crm.customer_id_seq"),
    ("shop", "SELECT convert_from(lo_get(424242), 'UTF8')"),
    ("shop", "SELECT pg_get_userbyid(lomowner) FROM pg_largeobject_metadata WHERE oid = 424242"),
    ("shop", "SELECT count(*) FROM crm.customer WHERE city = 'Zürich'"),
    ("shop", "SELECT note FROM crm.customer WHERE id = 7"),
    ("analytics-ü", "SELECT count(*) FROM public.events"),
]


def _facts(pg) -> list:
    return [pg.psql(query, db=db) for db, query in SAMPLE_FACTS]


def test_full_roundtrip_through_local_and_s3_restores_every_sample_object(params, source_pg, target_pg, local_repo,
                                                                          moto, bucket):
    outcome = run_backup_for(params)
    assert outcome.status == "ok"
    assert outcome.stored_in == ["local", "s3"]
    bid = outcome.manifest.backup_id
    names = {a.name for a in outcome.manifest.artifacts}
    assert "globals.sql.zst.age" in names and "db-shop.dump.zst.age" in names
    # every artifact and the manifest are in both repositories
    for name in names | {"manifest.json"}:
        assert os.path.isfile(os.path.join(backup_dir(local_repo, bid), name))
        assert s3_key(bid, name) in s3_keys(moto, bucket)

    report = restore_for(params, target_pg)

    assert report["backup_id"] == bid
    assert report["served_by"] == ["local"]
    assert {d["name"]: d["verified"] for d in report["databases"]} == {
        "analytics-ü": True, "postgres": True, "shop": True}
    shop = next(d for d in report["databases"] if d["name"] == "shop")
    assert shop["rows"] == 22000 and shop["large_objects"] == 1
    source_facts = _facts(source_pg)
    assert source_facts[0] == "app_owner:true,app_reader:false,reporting:true"
    assert source_facts[10] == "large object payload: Grüße aus Lifeline"
    assert source_facts[13] == "naïve café — ☕ 7"
    assert _facts(target_pg) == source_facts
    assert contents_fingerprint(target_pg) == contents_fingerprint(source_pg)


def test_full_roundtrip_pg_dumpall_of_target_equals_source(params, source_pg, target_pg):
    """The Done-when criterion: pg_dumpall of the restored cluster equals the source's."""
    assert run_backup_for(params).status == "ok"
    restore_for(params, target_pg)
    assert pg_dumpall_normalized(target_pg) == pg_dumpall_normalized(source_pg)


def test_roundtrip_restores_database_comment_settings_and_grants(params, source_pg, target_pg):
    assert run_backup_for(params).status == "ok"
    restore_for(params, target_pg)
    query = ("SELECT shobj_description(oid, 'pg_database'), "
             "(SELECT array_to_string(setconfig, ',') FROM pg_db_role_setting WHERE setdatabase = d.oid), "
             "array_to_string(datacl, ',') LIKE '%app_reader=c/%' FROM pg_database d WHERE datname = 'shop'")
    assert source_pg.psql(query) == "Lifeline sample: orders and customers|work_mem=8MB|t"
    assert target_pg.psql(query) == source_pg.psql(query)


def test_restore_into_server_with_its_own_superuser_password_succeeds_and_keeps_that_password(
        params, source_pg, target_pg):
    target_pg.psql("ALTER ROLE postgres PASSWORD 'the-target-has-its-own-password'")
    target_pg.password = "the-target-has-its-own-password"
    assert run_backup_for(params).status == "ok"

    report = restore_for(params, target_pg)

    assert all(d["verified"] for d in report["databases"])
    assert target_pg.psql("SELECT current_user") == "postgres"  # still logs in with its own password
    assert contents_fingerprint(target_pg)["databases"] == contents_fingerprint(source_pg)["databases"]


def _set_marker(pg, value: str) -> None:
    pg.psql("CREATE TABLE IF NOT EXISTS crm.marker (v text); DELETE FROM crm.marker; "
            "INSERT INTO crm.marker VALUES ('%s')" % value, db="shop")


def test_restore_at_time_between_two_backups_picks_the_older(params, source_pg, target_pg):
    _set_marker(source_pg, "first")
    first = run_backup_for(params)
    consistent_first = parse_time(first.manifest.consistent_at)
    point = consistent_first + datetime.timedelta(seconds=1)
    # the second backup must be consistent strictly after `point` (times have 1 s resolution)
    while datetime.datetime.now(datetime.timezone.utc) < consistent_first + datetime.timedelta(seconds=2):
        time.sleep(0.05)
    _set_marker(source_pg, "second")
    second = run_backup_for(params)
    assert parse_time(second.manifest.consistent_at) > point
    assert catalog_ids(params) == [first.manifest.backup_id, second.manifest.backup_id]

    report = restore_for(params, target_pg, point=isotime(point))

    assert report["backup_id"] == first.manifest.backup_id
    assert target_pg.psql("SELECT v FROM crm.marker", db="shop") == "first"


def test_restore_by_backup_id_restores_that_backup_not_the_latest(params, source_pg, target_pg):
    _set_marker(source_pg, "older")
    older = run_backup_for(params).manifest.backup_id
    _set_marker(source_pg, "newer")
    newer = run_backup_for(params).manifest.backup_id
    assert catalog_ids(params)[-1] == newer

    report = restore_for(params, target_pg, point=older)

    assert report["backup_id"] == older
    assert target_pg.psql("SELECT v FROM crm.marker", db="shop") == "older"


def test_schema_only_backup_restores_the_schema_with_zero_rows(params, source_pg, target_pg):
    outcome = run_backup_for(params, scope="schema")
    assert outcome.manifest.kind == "schema"

    # "latest" never picks a schema-only dump; asked for by id it restores.
    restore_for(params, target_pg, point=outcome.manifest.backup_id)

    assert set(databases(target_pg)) >= {"shop", "analytics-ü"}
    for db, table in (("shop", "crm.customer"), ("shop", 'sales."order"'), ("analytics-ü", "public.events")):
        assert int(source_pg.psql("SELECT count(*) FROM %s" % table, db=db)) > 0
        assert target_pg.psql("SELECT count(*) FROM %s" % table, db=db) == "0"
    for db in ("shop", "analytics-ü"):
        assert pg_dump_normalized(target_pg, db, "--schema-only") == pg_dump_normalized(source_pg, db, "--schema-only")


@pytest.mark.parametrize("encryption,compression,suffix", [
    ("aes-256-gcm", "zstd", ".zst.aes"),
    ("age", "gzip", ".gz.age"),
    ("aes-256-gcm", "gzip", ".gz.aes"),
])
def test_encryption_and_compression_variants_roundtrip(params, source_pg, target_pg, local_repo,
                                                       encryption, compression, suffix):
    variant = dict(params, encryption=encryption, compression=compression, aes_key=crypto.generate_aes_key())
    outcome = run_backup_for(variant)
    assert outcome.status == "ok"
    assert (outcome.manifest.encryption, outcome.manifest.compression) == (encryption, compression)
    assert all(a.name.endswith(suffix) for a in outcome.manifest.artifacts)
    shop = os.path.join(backup_dir(local_repo, outcome.manifest.backup_id), "db-shop.dump" + suffix)
    with open(shop, "rb") as fh:
        stored = fh.read()
    assert b"Kunde 1" not in stored and b"PGDMP" not in stored  # really encrypted

    report = restore_for(variant, target_pg)

    assert report["backup_id"] == outcome.manifest.backup_id
    assert contents_fingerprint(target_pg) == contents_fingerprint(source_pg)


def test_restore_falls_back_to_s3_when_local_artifacts_are_missing(params, source_pg, target_pg, local_repo):
    outcome = run_backup_for(params)
    bid = outcome.manifest.backup_id
    for art in outcome.manifest.artifacts:
        os.unlink(os.path.join(backup_dir(local_repo, bid), art.name))
    # the local manifest is still there, so local is tried first
    assert [r.name for r in catalog_entry(params, bid).repositories] == ["local", "s3"]

    report = restore_for(params, target_pg)

    assert report["served_by"] == ["s3"]
    assert contents_fingerprint(target_pg) == contents_fingerprint(source_pg)


def test_restore_falls_back_to_s3_when_local_artifacts_have_a_flipped_byte(params, source_pg, target_pg,
                                                                           local_repo):
    outcome = run_backup_for(params)
    bid = outcome.manifest.backup_id
    for art in outcome.manifest.artifacts:
        flip_byte(os.path.join(backup_dir(local_repo, bid), art.name))

    report = restore_for(params, target_pg)

    assert report["served_by"] == ["s3"]
    assert contents_fingerprint(target_pg) == contents_fingerprint(source_pg)
