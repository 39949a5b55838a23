"""Session 25 (issue 13, HTTP speed): the fixed cost of a request's ``Ledger.cover`` cut without
changing what is stored or acknowledged.

- ``SqliteEventLog.all_end_offsets`` reads every topic's ends in one statement (the port's
  default asked topic by topic); the topic rows are still authenticated.
- A sync no longer reads again, every time, a partition whose only unread offset is the
  transaction marker a transactional append left (``Ledger._no_records``,
  ``StoredBatches.marker_only``).
- A ledger write transaction reads the tree's edge chunks in one statement.
- Concurrent covers join a sync that began after their records were appended
  (``Ledger._covering_sync``) instead of each running its own.

The same requests through the path before (these four undone) and through this one store the
same ledger: the same leaves, node chunks, positions and acknowledgements.
"""

from __future__ import annotations

import random
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import adapters.tile_ledgerstore as tiles
from adapters.sqlite_log.log import SqliteEventLog
from core.errors import HubError, LogTampered
from core.ports.eventlog import EventLog
from hub.api.ingest_batch import ingest_body
from hub.bootstrap import Hub, bootstrap
from hub.settings import load_settings
from ledger.stored import StoredBatches
from ledger.verify import verify_ledger
from tests.service.accounts import open_accounts
from tests.service.test_ingest_http_columnar import KW, json_body
from tests.service.test_ingest_line_blocks import fixed as fixed

ACCOUNTS = ["A", *(f"ACC-{i}" for i in range(60))]


def _old_chunk(self: Any, level: int, chunk: int) -> bytes:
    """``_Write.chunk`` before: one statement per edge chunk."""
    if level % tiles.TILE_HEIGHT:
        row = self._conn.execute(
            "SELECT data FROM edges WHERE level = ? AND chunk = ?", (level, chunk)
        ).fetchone()
        if row is not None:
            return bytes(row[0])
    got = tiles._derived_chunk(self._conn, level, chunk)
    if got is None:
        raise IndexError(f"no node chunk ({level}, {chunk}) in the ledger tiles.")
    return got


class _Forgets(dict[Any, Any]):
    def __setitem__(self, key: Any, value: Any) -> None:
        pass


def _path_before(m: pytest.MonkeyPatch, h: Hub) -> None:
    m.setattr(SqliteEventLog, "all_end_offsets", EventLog.all_end_offsets)
    m.setattr(StoredBatches, "marker_only", lambda *a: False)
    m.setattr(tiles._Write, "chunk", _old_chunk)
    m.setattr(h.ledger, "_no_records", _Forgets())
    m.setattr(h.ledger, "_covering_sync", lambda handed: h.ledger.sync(handed=handed).size)


@pytest.fixture
def hubs(tmp_path: Path, fixed: Any) -> Iterator[tuple[Hub, Hub, Any]]:
    made = []
    for name in ("before", "after"):
        fixed()
        h = bootstrap(load_settings(environ={}, data_dir=tmp_path / name))
        h.ledger.stop()  # only the covers sync: the same syncs on both hubs
        open_accounts(h, ACCOUNTS)
        made.append(h)
    yield made[0], made[1], fixed
    for h in made:
        h.close()


def _requests(h: Hub, bodies: list[bytes]) -> list[Any]:
    out = []
    for body in bodies:
        try:
            r = ingest_body(h.ingest, "trades", body, ndjson=False, **KW)
        except HubError as exc:  # a body refused whole: nothing appended
            out.append(exc.code)
            continue
        out.append((r.accepted, r.rejected, h.ledger.cover(handed=r.appended_columns)))
    return out


def _ledger(h: Hub) -> tuple[Any, ...]:
    """The leaves (their records' place, and the trades' leaf hashes: the hub's own records,
    accounts among them, carry times and ids these tests do not fix) and positions."""
    store = h.ledger.store
    leaves = [
        row if row[1] == "trades" else row[:4] for rows in store.iter_leaves() for row in rows
    ]
    return store.tree_size(), store.positions(), leaves


def test_covers_store_the_ledger_the_path_before_stored(
    hubs: tuple[Hub, Hub, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    before, after, fixed = hubs
    rnd = random.Random(25)
    bodies = [
        json_body(
            rnd.choice([1, 7, 40, 150]), rnd, rnd.choice([0.0, 0.2]), k % 3 == 0, base=1000 * k
        )
        for k in range(30)
    ]
    fixed()
    with monkeypatch.context() as m:
        _path_before(m, before)
        want = _requests(before, bodies)
        want_ledger = _ledger(before)
    fixed()
    got = _requests(after, bodies)
    assert got == want
    assert _ledger(after) == want_ledger
    assert sum(row[1] == "trades" for row in want_ledger[2]) > 1000
    assert verify_ledger(after.ledger).ok  # every leaf hash and root re-derived from the log


def test_a_cover_with_nothing_new_reads_no_partition_again(
    hubs: tuple[Hub, Hub, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    _, h, _ = hubs
    _requests(h, [json_body(40, random.Random(1), 0.0, False)])
    reads: list[tuple[str, int]] = []
    real = SqliteEventLog.read_encoded

    def counted(log: SqliteEventLog, topic: str, part: int, *a: Any) -> Any:
        reads.append((topic, part))
        return real(log, topic, part, *a)

    monkeypatch.setattr(SqliteEventLog, "read_encoded", counted)
    size = h.ledger.cover()["tree_size"]
    assert h.ledger.cover() == {"covered": True, "tree_size": size}
    assert reads == []  # before: a read of every partition that ends in a marker, each cover


def test_concurrent_covers_join_one_sync_and_each_covers_its_records(tmp_path: Path) -> None:
    h = bootstrap(load_settings(environ={}, data_dir=tmp_path / "data"))
    try:
        h.ledger.stop()
        open_accounts(h, ACCOUNTS)
        h.ledger.cover()
        n = 6
        acks: dict[int, Any] = {}
        waiting = threading.Barrier(n + 1)

        def request(k: int) -> None:
            r = ingest_body(
                h.ingest,
                "trades",
                json_body(20, random.Random(k), 0.0, False, base=100 * k),
                ndjson=False,
                **KW,
            )
            waiting.wait()
            acks[k] = (r, h.ledger.cover(handed=r.appended_columns))

        threads = [threading.Thread(target=request, args=(k,)) for k in range(n)]
        with h.ledger.syncs_paused():  # every request appended and waits for the sync lock
            for t in threads:
                t.start()
            waiting.wait()
            time.sleep(0.3)
        for t in threads:
            t.join()
        assert h.ledger.covers_joined >= n - 1
        for r, ack in acks.values():
            assert ack["covered"] is True
            for c in r.appended_columns():
                for offset in (c.offsets[0], c.offsets[-1]):
                    index = h.ledger.index_of(c.topic, c.partition, offset)
                    assert index is not None and index < ack["tree_size"]
        assert verify_ledger(h.ledger).ok
    finally:
        h.close()


def test_all_end_offsets_in_one_read_equal_the_topic_by_topic_ones(tmp_path: Path) -> None:
    data = tmp_path / "data"
    h = bootstrap(load_settings(environ={}, data_dir=data))
    try:
        open_accounts(h, ACCOUNTS[:5])
        log = h.log
        assert isinstance(log, SqliteEventLog)
        assert log.all_end_offsets() == EventLog.all_end_offsets(log)
        assert len(log.all_end_offsets()) > 10
        with sqlite3.connect(data / "log.sqlite") as conn:  # someone edits the log file
            conn.execute("UPDATE topics SET partitions = 2 WHERE name = 'trades'")
        with pytest.raises(LogTampered, match=r"topic 'trades' .* fails its MAC"):
            log.all_end_offsets()
    finally:
        h.close()
