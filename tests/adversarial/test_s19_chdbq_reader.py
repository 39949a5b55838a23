"""chDB analyst queries answered by reader processes on snapshots (the fix of s19 red team finding
3, ``test_s19_rta_chdb_query_lock.py``): what an attacker or an auditor would try on the new path.

``inline_seconds = 0`` sends every query to a reader, so each test here exercises the reader
path: the guard's tenant scope, masks and read-only rule, the time / memory / row bounds, an
erasure done before the query, the snapshot's removal, the live files left untouched, and a
clear refusal when every reader is busy.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from core.errors import HubError, InvalidInput
from core.ports.views import Checkpoint, Position, Target, ViewGrant
from core.projection import Column, Table

pytest.importorskip("chdb")

ACCOUNTS = Table(
    "rq_accounts",
    "entity",
    (
        Column("tenant", "string", agg="key"),
        Column("account_id", "string", agg="key"),
        Column("name", "string", nullable=True),
        Column("balance", "decimal", scale=2),
    ),
)
COLS = ("tenant", "account_id", "name", "balance")
T1 = [ViewGrant("rq_accounts", COLS, "t1", frozenset({"name"}))]
LIVE = Target("rq")
N = 300
SLOW = (
    "SELECT count() AS n FROM rq_accounts a, rq_accounts b, rq_accounts c, rq_accounts d "
    "WHERE concat(a.account_id, b.account_id, c.account_id, d.account_id) = 'x'"
)


def _rows(tenant: str, n: int) -> list[dict[str, object]]:
    return [
        {
            "tenant": tenant,
            "account_id": f"{tenant}-{i}",
            "name": f"secret {tenant} {i}",
            "balance": Decimal(i),
            "src_offsets": {},
        }
        for i in range(n)
    ]


@pytest.fixture
def store(tmp_path: Path) -> Iterator[object]:
    from adapters.chdb_views import ChdbViewStore

    s = ChdbViewStore(str(tmp_path / "chdb"))
    s.inline_seconds = 0.0  # every query in a reader process
    s.ensure(LIVE, [ACCOUNTS])
    batch = {"rq_accounts": _rows("t1", N) + _rows("t2", N)}
    s.write(LIVE, [ACCOUNTS], batch, Checkpoint(1, {("a", 0): Position(2 * N)}))
    try:
        yield s
    finally:
        s.close()


def test_a_reader_keeps_the_tenant_scope_masks_and_refusals(store: object) -> None:
    from adapters.chdb_views import ChdbViewStore

    assert isinstance(store, ChdbViewStore)
    got = store.query(
        "SELECT tenant, count() AS n, countIf(name IS NOT NULL) AS named FROM rq_accounts "
        "GROUP BY tenant",
        T1,
    ).to_pylist()
    assert got == [{"tenant": "t1", "n": N, "named": 0}]  # t2 unseen, names masked
    # the same answer as in the writers' session (the rewrite is done once, in the parent)
    store.inline_seconds = 30.0
    assert store.query("SELECT count() AS n FROM rq_accounts", T1).to_pylist() == [{"n": N}]
    store.inline_seconds = 0.0
    attacks = (
        "SELECT * FROM hub_views.rq_accounts__p",  # the physical table, all tenants
        "SELECT * FROM hub_views.rq_accounts",  # the unfiltered view by its full name
        "SELECT name FROM file('../chdb/store/*/*/*/data.bin', 'RawBLOB')",  # the files
        "SELECT * FROM system.parts",
        "SELECT * FROM rq_accounts SETTINGS readonly = 0",
        "INSERT INTO rq_accounts SELECT * FROM rq_accounts",
        "SELECT * FROM remote('localhost', hub_views.rq_accounts)",
    )
    for sql in attacks:  # refused by the guard, before any reader runs them
        with pytest.raises(InvalidInput) as refused:
            store.query(sql, T1)
        assert refused.value.code in ("query_refused", "query_not_select"), sql
    # no tenant-t2 value reached any answer, and no snapshot outlived its query
    assert os.listdir(f"{store._path}.read") == []


def test_a_reader_query_stops_at_its_time_memory_and_row_bounds(store: object) -> None:
    from adapters.chdb_views import ChdbViewStore

    assert isinstance(store, ChdbViewStore)
    store.query_seconds = 1.5
    with pytest.raises(InvalidInput) as slow:
        store.query(SLOW, T1)
    assert slow.value.code == "query_timeout"
    store.query_memory_bytes = 16 * 1_048_576
    with pytest.raises(InvalidInput) as big:
        store.query(
            "SELECT groupArray(concat(a.account_id, b.account_id, c.account_id)) AS x "
            "FROM rq_accounts a, rq_accounts b, rq_accounts c",
            T1,
        )
    assert big.value.code in ("query_memory_limit", "query_timeout")
    store.query_memory_bytes = 1 << 30
    store.query_seconds = 30.0
    with pytest.raises(InvalidInput) as rows:
        store.query(
            "SELECT a.account_id FROM rq_accounts a, rq_accounts b, rq_accounts c LIMIT 2000000",
            T1,
        )
    assert rows.value.code == "query_too_large"


def test_a_reader_sees_an_erasure_done_before_it_and_the_snapshot_goes(store: object) -> None:
    from adapters.chdb_views import ChdbViewStore

    assert isinstance(store, ChdbViewStore)
    grant = [ViewGrant("rq_accounts", COLS, "t1")]  # names shown
    before = store.query("SELECT name FROM rq_accounts WHERE account_id = 't1-7'", grant)
    assert before.to_pylist() == [{"name": "secret t1 7"}]
    n = store.erase_values(LIVE, ACCOUNTS, "account_id", "t1-7", ["name"], "<erased>", "t1")
    assert n == 1
    after = store.query("SELECT name FROM rq_accounts WHERE account_id = 't1-7'", grant)
    assert after.to_pylist() == [{"name": "<erased>"}]
    assert os.listdir(f"{store._path}.read") == []


def _contents(root: str) -> dict[str, str]:
    out = {}
    for d, _, files in os.walk(root):
        for f in files:
            p = os.path.join(d, f)
            if f == "status" or os.path.islink(p):
                continue
            try:
                out[p] = hashlib.sha256(Path(p).read_bytes()).hexdigest()
            except FileNotFoundError:  # removed by the writer's own background cleanup
                continue
    return out


def test_a_reader_never_changes_a_live_file(store: object) -> None:
    """The snapshot links the live parts' inodes: a reader writing into one would change the
    writer's store. Pending work the reader's engine might finish at load (an asynchronous
    lightweight DELETE, a mutation) must land in the snapshot's own files."""
    from adapters.chdb_views import ChdbViewStore

    assert isinstance(store, ChdbViewStore)
    store._run(  # left pending, as ``_prune_positions`` leaves its DELETE
        "DELETE FROM hub_views.rq_accounts__p WHERE account_id = 't2-1' "
        "SETTINGS lightweight_deletes_sync = 0"
    )
    before = _contents(store._path)
    for _ in range(3):
        store.query("SELECT count() AS n FROM rq_accounts", T1)
    after = _contents(store._path)
    changed = [p for p in before.keys() & after.keys() if before[p] != after[p]]
    assert changed == []


def test_readers_all_busy_is_a_clear_retryable_refusal(store: object) -> None:
    from adapters.chdb_views import ChdbViewStore

    assert isinstance(store, ChdbViewStore)
    store.readers = 1
    store.query_seconds = 2.0
    errors: list[HubError] = []

    def run() -> None:
        try:
            store.query(SLOW, T1)
        except HubError as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    codes = sorted(e.code for e in errors)
    assert codes == ["query_readers_busy", "query_timeout"], codes
    busy = next(e for e in errors if e.code == "query_readers_busy")
    assert busy.http_status == 503 and "send it again" in busy.message
    assert os.listdir(f"{store._path}.read") == []


def test_a_tenant_whose_query_fell_over_skips_the_writers_session_for_a_while(
    store: object,
) -> None:
    """A tenant looping queries just past ``inline_seconds`` would hold every tenant's writes
    that long per query; after one falls over, its queries go straight to a reader (for
    ``SLOW_MEMORY_S``), and another tenant's are still answered in the session."""
    from adapters.chdb_views import ChdbViewStore

    assert isinstance(store, ChdbViewStore)
    store.inline_seconds = 0.25
    store.query_seconds = 1.5
    small = "SELECT count() AS n FROM rq_accounts"
    store.query(small, T1)
    assert store.reader_queries == 0  # answered in the session
    with pytest.raises(InvalidInput):
        store.query(SLOW, T1)
    assert store.reader_queries == 1
    held = time_writes_waited(store)  # t1's next slow query: a reader from its start
    assert store.reader_queries == 2
    assert held < 0.2, f"a write waited {held:.2f} s for a query sent straight to a reader"
    assert store.query(small, T1).to_pylist() == [{"n": N}]
    assert store.reader_queries == 3  # t1's small query too, meanwhile
    t2 = [ViewGrant("rq_accounts", COLS, "t2")]
    assert store.query(small, t2).to_pylist() == [{"n": N}]
    assert store.reader_queries == 3  # t2's: the session, as before


def time_writes_waited(store: object) -> float:
    """Seconds one write waits while t1's slow query runs (it is in a reader from the start)."""
    import time

    from adapters.chdb_views import ChdbViewStore

    assert isinstance(store, ChdbViewStore)
    waited: list[float] = []

    def write() -> None:
        time.sleep(0.4)
        t = time.monotonic()
        batch = {"rq_accounts": _rows("t3", 1)}
        store.write(LIVE, [ACCOUNTS], batch, Checkpoint(2, {("a", 0): Position(2 * N + 1)}))
        waited.append(time.monotonic() - t)

    w = threading.Thread(target=write)
    w.start()
    with pytest.raises(InvalidInput):
        store.query(SLOW, T1)
    w.join()
    return waited[0]
