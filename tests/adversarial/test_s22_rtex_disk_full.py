"""A full disk under the data folder (session 22, red team: exhaustion).

SQLite answers ``SQLITE_FULL`` when a write finds no room, and on that error it rolls the whole
transaction back by itself. The tests make a store full the way SQLite itself reports it, with
``PRAGMA max_page_count`` at the file's current size (the same error a full filesystem gives;
checked by hand against a full tmpfs under a running ``hub serve``: docs/benchmarks/
s22-redteam-exhaust22.md), then give the room back and check that nothing acknowledged is lost
and the ledger verifies.

1. The shared write transaction (``adapters.sqlite_open.write_transaction``: the ledger, the
   keyring, subject tenants) rolled back again after SQLite had already done it: "cannot
   rollback - no transaction is active" replaced the real error, escaped as a bare
   ``sqlite3.OperationalError``, and an ingest whose records were already committed to the log
   was answered 500 "this is a bug" (the client retries stored data) instead of its
   acknowledgement with the ledger coverage pending.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from hub.bootstrap import Hub
from ledger.verify import verify_ledger
from tests.adversarial._api import QUOTE, basic, issue_key, quiet_api


@contextmanager
def full(conn: sqlite3.Connection) -> Iterator[None]:
    """``conn``'s database file may not grow while inside (SQLITE_FULL, as on a full disk)."""
    (pages,) = conn.execute("PRAGMA page_count").fetchone()
    conn.execute(f"PRAGMA max_page_count = {pages}")
    try:
        yield
    finally:
        conn.execute("PRAGMA max_page_count = 4294967294")


def _quotes(n: int, tag: str) -> dict[str, list[dict[str, str]]]:
    return {"events": [{**QUOTE, "instrument": f"{tag}{i}"} for i in range(n)]}


def _ledger_conn(hub: Hub) -> sqlite3.Connection:
    conn = hub.ledger.store._conn  # type: ignore[attr-defined]
    assert isinstance(conn, sqlite3.Connection)
    return conn


def test_a_full_ledger_store_leaves_the_ingest_acknowledged_with_coverage_pending(
    tmp_path: Path,
) -> None:
    with quiet_api(tmp_path / "d") as (hub, c):
        pub = basic(issue_key(hub, "publisher", "ann"))
        assert c.post("/v1/ingest/quotes", json=_quotes(5, "A"), headers=pub).status_code == 200
        with full(_ledger_conn(hub)):
            r = c.post("/v1/ingest/quotes", json=_quotes(2000, "B"), headers=pub)
            # the records are in the log: the answer says so, with the coverage pending and
            # the real reason (not "cannot rollback", not a 500)
            assert r.status_code == 200, r.text
            body = r.json()
            assert body["accepted"] == 2000
            assert body["ledger"]["covered"] is False
            assert "full" in body["ledger"]["reason"], body
        # room again: the next sync covers them and the ledger verifies
        r = c.post("/v1/ingest/quotes", json=_quotes(1, "C"), headers=pub)
        assert r.status_code == 200 and r.json()["ledger"]["covered"] is True, r.text
        report = verify_ledger(hub.ledger)
        assert report.ok, report


def _log_conn(hub: Hub) -> sqlite3.Connection:
    conn = hub.log._writer  # type: ignore[attr-defined]
    assert isinstance(conn, sqlite3.Connection)
    return conn


def test_a_full_event_log_answers_507_storage_full_and_the_same_request_succeeds_later(
    tmp_path: Path,
) -> None:
    """2. A full event log answered 503 ``decision_not_recorded`` (the decision is the first
    write) or 500 ``storage_error`` / ``internal_error``; the registry 500. Now each is 507
    ``storage_full`` saying that nothing was kept and what to do; afterwards the same request
    succeeds and every acknowledged record is there."""
    with quiet_api(tmp_path / "d") as (hub, c):
        pub = basic(issue_key(hub, "publisher", "ann"))
        admin = basic(issue_key(hub, "admin", "root"))
        assert c.post("/v1/ingest/quotes", json=_quotes(5, "A"), headers=pub).status_code == 200
        before = sum(hub.log.end_offsets("quotes").values())
        schema = '{"type":"record","name":"Thing","namespace":"x","fields":[]}'
        with full(_log_conn(hub)):
            r = c.post("/v1/ingest/quotes", json=_quotes(500, "B"), headers=pub)
            assert r.status_code == 507, r.text
            assert r.json()["reason"] == "storage_full"
            assert "no room" in r.json()["message"] and "send" in r.json()["message"]
            r = c.post("/subjects/x.Thing/versions", json={"schema": schema}, headers=admin)
            assert r.status_code == 507 and r.json()["reason"] == "storage_full", r.text
        assert sum(hub.log.end_offsets("quotes").values()) == before  # nothing half-stored
        r = c.post("/v1/ingest/quotes", json=_quotes(500, "B"), headers=pub)
        assert r.status_code == 200 and r.json()["accepted"] == 500, r.text
        r = c.post("/subjects/x.Thing/versions", json={"schema": schema}, headers=admin)
        assert r.status_code == 200, r.text
        assert verify_ledger(hub.ledger).ok


def test_an_append_after_sqlite_rolled_the_transaction_back_is_not_stored_alone(
    tmp_path: Path,
) -> None:
    """3. Inside an event-log transaction, an append that found the disk full made SQLite roll
    the whole transaction back; the staged append then failed with "no such savepoint", and an
    append after it (a caller that went on) ran outside any transaction: it was stored although
    the transaction failed and what was staged before it was gone. Now the transaction is
    marked lost: later appends and the commit fail with the disk-full reason, nothing is
    stored."""
    import os

    from adapters.sqlite_log import SqliteEventLog
    from core.errors import StorageFull
    from core.ports.eventlog import Record

    log = SqliteEventLog(tmp_path / "log.sqlite")
    try:
        log.create_topic("t", 1)
        errors: list[BaseException] = []
        try:
            with log.transaction("x") as txn:
                txn.append("t", [Record(key=b"k", value=b"A" * 100)])
                with full(log._writer):
                    try:
                        txn.append("t", [Record(key=b"k", value=os.urandom(300_000))])
                    except StorageFull as exc:
                        errors.append(exc)
                txn.append("t", [Record(key=b"k", value=b"C" * 100)])
        except StorageFull as exc:
            errors.append(exc)
        assert len(errors) == 2, errors
        assert "rolled back" in str(errors[1])
        assert [r for r in log.read("t", 0, 0, 100) if r.value] == []
        # the log goes on
        log.append("t", [Record(key=b"k", value=b"D")])
        assert [r.value for r in log.read("t", 0, 0, 100) if r.value] == [b"D"]
    finally:
        log.close()


def test_opening_the_chdb_views_again_does_not_rewrite_a_shared_tables_metadata(
    tmp_path: Path,
) -> None:
    """4. Restarting `hub serve` on a full disk left chDB's metadata file of an aggregate
    view's shared table EMPTY (``market_bars__agg_*.sql``, 0 bytes): every start ran
    ``ALTER TABLE ... ADD COLUMN IF NOT EXISTS``, which rewrites that file even when the column
    is there; once space was back, `hub serve` no longer started ("Empty query (in file ...)",
    "Application startup failed"). The column is now asked for first, so a start that changes
    nothing writes nothing there."""
    import pytest

    pytest.importorskip("chdb")
    from adapters.chdb_views import ChdbViewStore
    from adapters.clickhouse_views import shared_table
    from core.ports.views import Target
    from tests.contract.views_contract import AGG

    target = Target("rtex", "rtex")
    folder = tmp_path / "chdb"
    store = ChdbViewStore(folder)
    try:
        store.ensure(target, (AGG,))
    finally:
        store.close()
    name = shared_table(target, AGG).split(".", 1)[1]
    (meta,) = folder.glob(f"store/*/*/{name}.sql")
    before = (meta.stat().st_mtime_ns, meta.stat().st_ino, meta.read_bytes())
    store = ChdbViewStore(folder)
    try:
        store.ensure(target, (AGG,))  # a second start: nothing to change
    finally:
        store.close()
    assert (meta.stat().st_mtime_ns, meta.stat().st_ino, meta.read_bytes()) == before
