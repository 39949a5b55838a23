"""The sealed-column query rule of the PostgreSQL views, red-teamed (session 20).

A store that keeps PII sealed accepts an unmasked PII column only as a plain result column of
the outermost SELECT (``core.sealedquery``): SQL over sealed text cannot filter, group, order
or compute on the plaintext, and an answer computed from ciphertext is silently wrong (a
``LIKE`` or ``length`` over the sealed text answers about the ciphertext, never the value).

The rule looked for the column names only as plain column references. PostgreSQL has two more
ways to reach a column's stored value: a field of a row, ``(a).email``, and the whole row,
``a``, ``a::text``, ``row_to_json(a)``, ``a.*`` as an argument. Both passed the rule (and the
SQL guard, which rewrites ``a`` to the granted, filtered subquery), so a query filtered or
computed on the sealed text without the refusal the rule promises."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.errors import HubError, InvalidInput
from core.sealedquery import sealed_outputs
from tests.adversarial.test_s20_pgsealed import load, person, pg, pg_hub, pg_query, schema

__all__ = ["pg", "schema"]  # the PostgreSQL fixtures, shared with the sealed views' tests

PII = ("customer_name", "email")


def _refused_as_sealed(sql: str) -> None:
    with pytest.raises(InvalidInput) as refused:  # before: accepted
        sealed_outputs(sql, "postgres", PII)
    assert refused.value.code == "pii_column_sealed", sql


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT email FROM accounts WHERE (accounts).email IS NOT NULL",
        "SELECT customer_name FROM accounts a WHERE (a).customer_name LIKE 'pii:v2:%'",
        "SELECT account_id FROM accounts a WHERE length((a).customer_name) > 60",
        "SELECT account_id FROM accounts a ORDER BY ((a)).email",
        "SELECT account_id, (a).email AS e FROM accounts a",
    ],
)
def test_a_field_of_a_row_is_the_sealed_column(sql: str) -> None:
    _refused_as_sealed(sql)


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT account_id FROM accounts a WHERE a::text LIKE '%pii:v2:%'",
        "SELECT account_id FROM accounts a WHERE length(CAST(a AS TEXT)) > 200",
        "SELECT row_to_json(a) AS j FROM accounts a",
        "SELECT account_id FROM accounts WHERE accounts IS NOT NULL",
        "SELECT count(a.*) AS n FROM accounts a",
        "SELECT account_id FROM accounts a WHERE a.* IS NOT NULL",
        "SELECT account_id FROM (SELECT * FROM accounts) s WHERE s::text LIKE '%x%'",
        "WITH c AS (SELECT * FROM accounts) SELECT md5(c::text) AS h FROM c",
    ],
)
def test_a_whole_row_holding_sealed_columns_is_refused(sql: str) -> None:
    _refused_as_sealed(sql)


@pytest.mark.parametrize(
    ("sql", "opened"),
    [
        ("SELECT * FROM accounts a", set(PII)),
        ("SELECT a.* FROM accounts a", set(PII)),
        ("SELECT * FROM (SELECT * FROM accounts) s", set(PII)),
        ("SELECT s.* FROM (SELECT a.* FROM accounts a) s", set(PII)),
        ("SELECT count(*) AS n FROM accounts a WHERE a.country = 'GB'", set()),
        ("SELECT a.email, a.country FROM accounts a", {"email"}),
    ],
)
def test_plain_and_star_reads_are_still_accepted(sql: str, opened: set[str]) -> None:
    assert sealed_outputs(sql, "postgres", PII) == opened


def test_a_masked_reader_has_no_sealed_columns_and_is_not_refused() -> None:
    sql = "SELECT account_id FROM accounts a WHERE a::text LIKE '%x%'"
    assert sealed_outputs(sql, "postgres", ()) == frozenset()


@pytest.mark.integration
def test_a_live_postgresql_query_on_a_row_field_is_refused(
    pg: str, schema: str, tmp_path: Path
) -> None:
    """On real sealed views: before, each ran on the ciphertext (Alice's 5-letter name was
    'longer than 60', a LIKE matched the sealed prefix) and answered without an error."""
    alice, bob = person("Alice"), person("Bob")
    h = pg_hub(pg, schema, tmp_path / "data")
    try:
        load(h, alice, bob)
        for sql in (
            "SELECT account_id FROM accounts_current a WHERE length((a).customer_name) > 60",
            "SELECT account_id FROM accounts_current a WHERE a::text LIKE '%pii:v2:%'",
        ):
            with pytest.raises(HubError) as refused:
                pg_query(h, sql)
            assert refused.value.code == "pii_column_sealed", sql
    finally:
        h.close()
