"""s21 red team of s20 (trust): a sealed column reached by position or by a join's column list.

The sealed-column rule (``core.sealedquery``) refuses a PII column of the PostgreSQL views in
WHERE, GROUP BY, ORDER BY, JOIN ... ON, functions: SQL over sealed text (a fresh nonce per
value) answers silently wrong. It looked for the column by name only, so these computed on the
ciphertext unrefused: ``JOIN ... USING (email)`` (joins nothing: no two seals are equal),
``NATURAL JOIN`` (joins on every shared column, the sealed ones too), ``GROUP BY 1`` /
``ORDER BY 2`` / ``DISTINCT ON (1)`` naming a sealed result column by its position, and
``GROUP BY ALL``. Now each is refused (``pii_column_sealed``) unless the position is known to
be another column.
"""

from __future__ import annotations

import pytest

from core.errors import InvalidInput
from core.sealedquery import sealed_outputs

PII = ("customer_name", "email")


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT a.account_id FROM accounts a JOIN accounts b USING (email)",
        "SELECT a.account_id FROM accounts a NATURAL JOIN accounts b",
        "SELECT email, count(*) AS n FROM accounts GROUP BY 1",
        "SELECT account_id, email FROM accounts ORDER BY 2",
        "SELECT * FROM accounts ORDER BY 3",
        "SELECT DISTINCT ON (1) email, account_id FROM accounts",
        "SELECT email, account_id FROM accounts GROUP BY ALL",
        "SELECT * FROM (SELECT * FROM accounts ORDER BY 2 LIMIT 5) s",
    ],
)
def test_a_sealed_column_by_position_or_join_list_is_refused(sql: str) -> None:
    with pytest.raises(InvalidInput) as refused:  # before: accepted
        sealed_outputs(sql, "postgres", PII)
    assert refused.value.code == "pii_column_sealed", sql


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT account_id, count(*) AS n FROM accounts GROUP BY 1 ORDER BY 2",
        "SELECT account_id, email FROM accounts ORDER BY 1",
        "SELECT a.email FROM accounts a JOIN payments p USING (account_id)",
        "SELECT account_id, count(*) OVER (PARTITION BY 1) AS n FROM accounts",
        "SELECT account_id, status FROM accounts GROUP BY ALL",
    ],
)
def test_other_positions_and_join_columns_pass(sql: str) -> None:
    sealed_outputs(sql, "postgres", PII)
