"""The accounts view the session 19 query tests (``test_s19_rta_*_query_*``,
``test_s19_chdbq_timeout_next_query``) read: one entity table per test under its own name,
tenant ``t1``'s grant of it, and its rows.
"""

from __future__ import annotations

from decimal import Decimal

from core.ports.views import ViewGrant
from core.projection import Column, Table

COLUMNS = ("tenant", "account_id", "balance")


def accounts(name: str) -> Table:
    """An entity table keyed by tenant and account, with a decimal balance."""
    return Table(
        name,
        "entity",
        (
            Column("tenant", "string", agg="key"),
            Column("account_id", "string", agg="key"),
            Column("balance", "decimal", scale=2),
        ),
    )


def grant(name: str) -> list[ViewGrant]:
    """Tenant ``t1``'s grant of every column of ``name``."""
    return [ViewGrant(name, COLUMNS, "t1")]


def account_rows(first: int, n: int, tenant: str = "t1", width: int = 0) -> list[dict[str, object]]:
    """Accounts ``first`` .. ``first + n - 1`` of ``tenant``, the id zero-padded to ``width``,
    each balance its number."""
    return [
        {
            "tenant": tenant,
            "account_id": str(i).zfill(width),
            "balance": Decimal(i),
            "src_offsets": {},
        }
        for i in range(first, first + n)
    ]
