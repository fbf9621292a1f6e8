# -*- coding: utf-8 -*-
# Copyright: Lifeline contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A restore's row counts over several connections (issue #6, section 8) give exactly what the
one-connection count gives, on real PostgreSQL 15 with the sample data, and a failure in one
connection fails the count."""
from __future__ import annotations

import pytest

from ansible_collections.lifeline.dr.plugins.module_utils.postgres import PgConnection, count_rows
from ansible_collections.lifeline.dr.plugins.module_utils.postgres_checks import count_rows_parallel


def connection(pg) -> PgConnection:
    return PgConnection(host=pg.host, port=pg.port, user=pg.user, password=pg.password)


@pytest.mark.parametrize("jobs", [1, 2, 4])
def test_parallel_counts_equal_the_sequential_count(source_pg, jobs):
    conn = connection(source_pg)
    with conn.cursor("shop") as cur:
        expected = count_rows(cur, large_objects=True)
    assert expected["tables"]["crm.customer"] == 2000 and expected["large_objects"] == 1

    got = count_rows_parallel(conn, "shop", jobs=jobs, large_objects=True)

    assert got == expected
    assert count_rows_parallel(conn, "shop", jobs=jobs, large_objects=False) == {"tables": expected["tables"]}


def test_a_table_one_connection_cannot_read_fails_the_count(source_pg):
    source_pg.psql('CREATE ROLE counter LOGIN; GRANT CONNECT ON DATABASE shop TO counter; '
                   'GRANT USAGE ON SCHEMA crm, sales TO counter; GRANT SELECT ON crm.customer TO counter; '
                   "ALTER ROLE counter PASSWORD 'counter-pw'", db="shop")
    conn = PgConnection(host=source_pg.host, port=source_pg.port, user="counter", password="counter-pw")

    with pytest.raises(Exception, match="permission denied"):
        count_rows_parallel(conn, "shop", jobs=2, large_objects=False)
