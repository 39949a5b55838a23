"""The accounts view the session 19 query tests (``test_s19_rta_*_query_*``,
``test_s19_chdbq_timeout_next_query``) read: one entity table per test under its own name,
tenant ``t1``'s grant of it, and its rows.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from decimal import Decimal

from core.ports.views import Checkpoint, Position, Target, ViewGrant, ViewStore
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


def fill(
    store: ViewStore, target: Target, table: Table, n: int, *, width: int = 0, offsets: bool = True
) -> None:
    """``table`` made in ``store`` under ``target`` with ``t1``'s accounts 0 .. n-1, at
    checkpoint 1 (at offset ``n`` of partition ("a", 0), or no offsets)."""
    store.ensure(target, [table])
    positions = {("a", 0): Position(n)} if offsets else {}
    store.write(
        target, [table], {table.name: account_rows(0, n, width=width)}, Checkpoint(1, positions)
    )


def write_during_query(
    query: Callable[[], object], write: Callable[[], object]
) -> tuple[float, float]:
    """Seconds ``query`` took on its own thread and seconds ``write`` took, started 0.5 s into
    the query (while it runs). An exception of the query is raised here, after both ended."""
    took: dict[str, float] = {}
    failed: list[BaseException] = []

    def run() -> None:
        started = time.monotonic()
        try:
            query()
        except BaseException as e:  # raised again on the test's thread, not lost with this one
            failed.append(e)
        took["query"] = time.monotonic() - started

    q = threading.Thread(target=run)
    q.start()
    time.sleep(0.5)  # the query is running
    started = time.monotonic()
    write()
    wrote = time.monotonic() - started
    q.join()
    if failed:
        raise failed[0]
    return took["query"], wrote
