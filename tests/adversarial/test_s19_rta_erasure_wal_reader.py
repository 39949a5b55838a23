"""An analyst's running query kept an erased subject's values in the views' ``-wal`` file
(session 19 red team, finding 1).

Since session 18 the SQLite views file is WAL and each analyst query reads its own snapshot on a
read-only connection; ``erase_values`` then checkpoints and truncates the WAL, because its older
frames hold the pages as they were before the erasure (the values in plaintext). A reader on an
older snapshot keeps ``wal_checkpoint(TRUNCATE)`` from finishing: the store waited only the
driver's default 5 s busy timeout, logged a warning and returned, and nothing tried again. Any
analyst query may run 30 s (``QUERY_SECONDS``), and one row of slow ``instr`` calls runs on past
it (``test_s18_query_lock_hold.py``), so one analyst looping long queries made every erasure
leave the erased values on disk, while the erasure reported success.

Now the erasure waits for the queries running at the time (they end within the store's time
bound), and when one outlives it, the next write of the store retries the truncation.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

from adapters.sqlalchemy_views import SqlAlchemyViewStore
from core.ports.views import Checkpoint, Position, Target
from tests.contract.views_contract import ERASED, PAYMENTS, payment

SECRET = "Ann Quartermaine-Sevigny"


def _files(path: Path) -> list[Path]:
    return [p for p in (path, path.with_name(path.name + "-wal")) if p.exists()]


def _holding(path: Path) -> list[Path]:
    return [f for f in _files(path) if SECRET.encode() in f.read_bytes()]


def _store(path: Path) -> tuple[SqlAlchemyViewStore, Target]:
    store = SqlAlchemyViewStore(f"sqlite:///{path}")
    target = Target("p", "live")
    store.ensure(target, (PAYMENTS,))
    rows = {"ct_payments": [payment("P1", "a", SECRET, "rent"), payment("P2", "b", "Bob", "x")]}
    store.write(target, (PAYMENTS,), rows, Checkpoint(1, {("e", 0): Position(2)}))
    assert _holding(path)  # the premise: the value is on disk before the erasure
    return store, target


def _query_for(path: Path, table: str, seconds: float) -> threading.Thread:
    """A query on its own read-only connection (as ``SqlAlchemyViewStore.query`` opens one)
    holding its snapshot for ``seconds``."""

    def run() -> None:
        raw = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            raw.execute("BEGIN")
            raw.execute(f'SELECT count(*) FROM "{table}"').fetchall()
            started.set()
            time.sleep(seconds)
            raw.execute("COMMIT")
        finally:
            raw.close()

    started = threading.Event()
    t = threading.Thread(target=run, daemon=True)
    t.start()
    assert started.wait(5)
    return t


def _table_name(store: SqlAlchemyViewStore, target: Target) -> str:
    return str(store._table(target, PAYMENTS).name)


def test_an_erasure_waits_for_a_query_within_the_time_bound(tmp_path: Path) -> None:
    path = tmp_path / "views.sqlite"
    store, target = _store(path)
    try:
        # a 7 s query: well inside the 30 s any analyst query may take
        q = _query_for(path, _table_name(store, target), 7.0)
        assert store.erase_values(target, PAYMENTS, "account_id", "a", ["payee"], ERASED) == 1
        q.join()
        assert not _holding(path), "the erased value is still on disk after the erasure"
        assert [r["payee"] for r in store.rows(target, PAYMENTS)] == [ERASED, "Bob"]
    finally:
        store.close()


def test_a_query_outliving_the_bound_leaves_nothing_after_the_next_write(tmp_path: Path) -> None:
    path = tmp_path / "views.sqlite"
    store, target = _store(path)
    store.query_seconds = 1.0  # the bound; this query runs on (a row of slow calls does)
    try:
        q = _query_for(path, _table_name(store, target), 6.5)
        store.erase_values(target, PAYMENTS, "account_id", "a", ["payee"], ERASED)
        q.join()  # the query ended; the projection runner writes its next batch
        more = {"ct_payments": [payment("P3", "c", "Cy", "y")]}
        store.write(target, (PAYMENTS,), more, Checkpoint(2, {("e", 0): Position(3)}))
        assert not _holding(path), "the erased value stayed in the -wal after the next write"
        assert [r["payee"] for r in store.rows(target, PAYMENTS)] == [ERASED, "Bob", "Cy"]
    finally:
        store.close()
