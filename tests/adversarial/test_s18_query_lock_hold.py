"""A query over the SQLite views could hold the projection writers' lock past its time bound
(session 18 finding; fixed: queries read through their own read-only connection on the views
file in WAL mode, never under the writers' lock).

SQLite checks the query's deadline (progress handler, ``sqlite3_interrupt`` alike) only at the
VM's jumps, between rows: never inside one function call, nor between the calls of one row's
columns. ``instr`` and ``replace`` are O(n*m) on their inputs (up to ``QUERY_VALUE_BYTES`` =
1 MiB while a query runs): one call over 1,000,000 / 500,001 characters took 12-14 s here, four
columns of it 75 s under a 1 s bound, and the query *answered*. A 100,000-character SQL holds
hundreds of such calls: the lock every tenant's projection writes wait for, for hours, by one
analyst's request (the per-principal and per-tenant limits bound how many such queries run, not
how long one runs). A fix needs the query off the writers' lock (WAL and a separate reader
connection) or in a process that can be killed at the deadline.

Fixed with the first: a reader on a WAL file never blocks a writer, and it reads the snapshot of
the last commit only (never half a projection batch). The row still runs to its end (SQLite stops
nothing inside one row: a core stays busy that long), but then the query is refused, not
answered late.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from adapters.sqlalchemy_views import SqlAlchemyViewStore
from core.errors import InvalidInput
from core.ports.views import Checkpoint, Position, Target, ViewGrant
from core.projection import Column, Table

ACCOUNTS = Table(
    "lh_accounts",
    "entity",
    (
        Column("tenant", "string", agg="key"),
        Column("account_id", "string", agg="key"),
        Column("balance", "decimal", scale=2),
    ),
)
GRANT = [ViewGrant("lh_accounts", ("tenant", "account_id", "balance"), "t1")]
LIVE = Target("lh")
BOUND = 0.5


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqlAlchemyViewStore]:
    s = SqlAlchemyViewStore(f"sqlite:///{tmp_path / 'views.sqlite'}")
    s.query_seconds = BOUND
    s.ensure(LIVE, [ACCOUNTS])
    row = {"tenant": "t1", "account_id": "a", "balance": Decimal(1), "src_offsets": {}}
    s.write(LIVE, [ACCOUNTS], {"lh_accounts": [row]}, Checkpoint(1, {("a", 0): Position(1)}))
    yield s
    s.close()


def test_a_projection_write_waits_no_longer_than_the_query_bound(
    store: SqlAlchemyViewStore,
) -> None:
    one = "instr(printf('%.*c', 300000, account_id), printf('%.*c', 150000, account_id) || 'b')"
    sql = f"SELECT {', '.join(f'{one} AS c{i}' for i in range(3))} FROM lh_accounts"
    waited: list[float] = []

    def write() -> None:
        time.sleep(0.1)  # the query holds the lock by now
        start = time.monotonic()
        store.write(LIVE, [ACCOUNTS], {}, Checkpoint(2, {("a", 0): Position(1)}))
        waited.append(time.monotonic() - start)

    writer = threading.Thread(target=write)
    writer.start()
    with contextlib.suppress(Exception):  # refused or stopped is fine: the wait matters
        store.query(sql, GRANT)
    writer.join(60)
    assert waited and waited[0] <= BOUND + 0.5, f"the projection write waited {waited[0]:.1f} s"


def test_a_slow_row_is_refused_at_the_bound_not_answered_late(store: SqlAlchemyViewStore) -> None:
    """Four slow calls in one row: the progress handler (every 10k VM steps) never ran during
    them and the query answered past its bound; the interrupt set at the deadline is seen at the
    VM's next jump, after the row, and the query is refused."""
    one = "instr(printf('%.*c', 200000, account_id), printf('%.*c', 100000, account_id) || 'b')"
    sql = f"SELECT {', '.join(f'{one} AS c{i}' for i in range(4))} FROM lh_accounts"
    with pytest.raises(InvalidInput) as exc:
        store.query(sql, GRANT)
    assert exc.value.code == "query_timeout"


def test_the_views_file_is_wal_and_the_query_connection_cannot_write(
    store: SqlAlchemyViewStore, tmp_path: Path
) -> None:
    with contextlib.closing(sqlite3.connect(tmp_path / "views.sqlite")) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    # the authorizer denies writes; the read-only connection refuses them were it bypassed
    with store._sqlite_reader() as raw, pytest.raises(sqlite3.OperationalError, match="readonly"):
        raw.execute("DELETE FROM lh_accounts")
    assert store.query("SELECT balance FROM lh_accounts", GRANT).to_pylist() == [
        {"balance": "1.00"}
    ]


def test_a_query_never_sees_half_a_projection_batch(store: SqlAlchemyViewStore) -> None:
    """A query run while a batch is written (its rows upserted, not yet committed) reads the
    last committed batch; the writer is not held by it either."""
    seen: list[object] = []

    def hook(stage: str) -> None:
        if stage == "rows:lh_accounts":
            seen.append(store.query("SELECT account_id, balance FROM lh_accounts", GRANT))

    row = {"tenant": "t1", "account_id": "b", "balance": Decimal(7), "src_offsets": {}}
    store.write(
        LIVE,
        [ACCOUNTS],
        {"lh_accounts": [row]},
        Checkpoint(2, {("a", 0): Position(2)}),
        hook=hook,
    )
    assert [t.to_pylist() for t in seen] == [[{"account_id": "a", "balance": "1.00"}]]  # type: ignore[attr-defined]
    after = store.query("SELECT account_id FROM lh_accounts ORDER BY account_id", GRANT)
    assert after.to_pylist() == [{"account_id": "a"}, {"account_id": "b"}]


def test_an_in_memory_store_still_answers_on_its_own_connection() -> None:
    """An in-memory database exists on the store's connection only: its queries stay there."""
    s = SqlAlchemyViewStore("sqlite://")
    try:
        s.ensure(LIVE, [ACCOUNTS])
        row = {"tenant": "t1", "account_id": "m", "balance": Decimal(3), "src_offsets": {}}
        s.write(LIVE, [ACCOUNTS], {"lh_accounts": [row]}, Checkpoint(1, {("a", 0): Position(1)}))
        assert s.query("SELECT account_id FROM lh_accounts", GRANT).to_pylist() == [
            {"account_id": "m"}
        ]
        # query_only is off again on the shared connection: the next batch is written
        row = {**row, "account_id": "n"}
        s.write(LIVE, [ACCOUNTS], {"lh_accounts": [row]}, Checkpoint(2, {("a", 0): Position(2)}))
        assert s.query("SELECT count(*) AS n FROM lh_accounts", GRANT).to_pylist() == [{"n": 2}]
    finally:
        s.close()
