"""s21 red team of s20 (trust): a cast cannot look up the PostgreSQL server's catalogue.

s20's SQL guard refuses the functions and keywords that describe the engine (``version()``,
``current_user``, ``current_setting`` ...), and every catalogue table as a source. PostgreSQL's
object-identifier types do the same lookups through a cast: ``'pg_authid'::regclass`` answers
the relation's id and a missing name fails ("relation ... does not exist"), so any reader could
probe which tables, roles (``regrole``), functions and extensions (``regproc``, ``regprocedure``),
schemas (``regnamespace``) and types the server holds, outside the views it was granted. Casts
to types the server defines (a table's row type, ``pg_lsn`` ...) are as much a lookup. Now a
cast to an object-identifier type or to a type sqlglot does not know is refused with the
other engine-describing constructs (``query_refused``).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlglot import exp

from core.errors import HubError, InvalidInput
from core.ports.views import ViewGrant
from core.sqlguard import guard
from tests.adversarial.test_s20_pgsealed import load, person, pg, pg_hub, pg_query, schema

__all__ = ["pg", "schema"]  # the PostgreSQL fixtures

GRANTS = [ViewGrant("t", ("a", "b", "tenant"), "acme")]

LOOKUPS = [
    "SELECT 'pg_authid'::regclass AS r FROM t",
    "SELECT CAST('postgres' AS regrole) AS r FROM t",
    "SELECT 'pg_read_file'::regproc AS r FROM t",
    "SELECT 'dblink(text,text)'::regprocedure AS r FROM t",
    "SELECT 'public'::regnamespace AS r FROM t",
    "SELECT 'int4'::regtype AS r FROM t",
    "SELECT a FROM t WHERE 'hub_ledger'::regclass IS NOT NULL",
    "SELECT '0/0'::pg_lsn AS r FROM t",
    "SELECT CAST('(1,x)' AS accounts_current) AS r FROM t",
]


@pytest.mark.parametrize("sql", LOOKUPS)
def test_a_cast_that_looks_up_the_catalogue_is_refused(sql: str) -> None:
    with pytest.raises(InvalidInput) as refused:  # before: rewritten and sent
        guard(sql, "postgres", GRANTS, exp.to_table)
    assert refused.value.code == "query_refused", sql
    assert "describes the query engine itself" in str(refused.value)


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT a::int AS n, CAST(b AS TEXT) AS s, a::numeric(10, 2) AS d FROM t",
        "SELECT CAST(a AS TIMESTAMP) AS ts, a::date AS d, a::boolean AS f FROM t",
        "SELECT CAST(a AS VARCHAR(10)) AS v, a::jsonb AS j, a::uuid AS u FROM t",
    ],
)
def test_ordinary_casts_pass(sql: str) -> None:
    guard(sql, "postgres", GRANTS, exp.to_table)


def test_a_live_catalogue_probe_is_refused(pg: str, schema: str, tmp_path: Path) -> None:
    """On real PostgreSQL views: before, the probe answered the relation's name (it exists)."""
    h = pg_hub(pg, schema, tmp_path / "data")
    try:
        load(h, person("Alice"), person("Bob"))
        for sql in (
            "SELECT 'pg_authid'::regclass::text AS r FROM accounts_current LIMIT 1",
            "SELECT CAST('postgres' AS regrole)::text AS r FROM accounts_current LIMIT 1",
        ):
            with pytest.raises(HubError) as refused:
                pg_query(h, sql)
            assert refused.value.code == "query_refused", sql
        assert pg_query(h, "SELECT account_id FROM accounts_current ORDER BY account_id")
    finally:
        h.close()
