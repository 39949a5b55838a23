"""``Ledger.cover(handed=...)``: the records a caller just appended, handed over as columns
(``appended_columns``, from the append's own metadata) instead of read back from the log.

The ledger MUST store byte-identical tiles, side index, positions and checkpoints either way
(random appends: header columns and per-record headers, keyed routing with marker offsets,
wall-clock timestamps, sync batches that cut a handed chunk). The handoff is the caller's word,
not the log's: ``hub ledger verify`` re-derives every leaf from the log, so columns that differ
from what was stored are caught there."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from adapters.local_signer import LocalKeyFileSigner
from adapters.sqlite_log import SqliteEventLog, handoff
from adapters.tile_ledgerstore import TileLedgerStore
from core.ports.eventlog import EventLog, Record, RecordColumns, RecordMetadata, appended_columns
from ledger.service import Ledger, LedgerConfig
from ledger.verify import verify_ledger
from tests.unit.test_ledger_columns import _appends, _dump


@pytest.fixture(autouse=True)
def _hand_every_append(monkeypatch: pytest.MonkeyPatch) -> None:
    """These tests hand small appends: the floor that spares them in production is lowered."""
    monkeypatch.setattr(handoff, "MIN_HANDED", 1)


def _handed(topic: str, recs: list[Record], metas: list[RecordMetadata]) -> list[RecordColumns]:
    """``appended_columns`` of an append whose records share header names (else nothing)."""
    rows = [r.headers for r in recs]
    names = tuple(name for name, _ in rows[0])
    if not names or any(tuple(name for name, _ in h) != names for h in rows):
        return []
    columns = [list(col) for col in zip(*[[v for _, v in h] for h in rows], strict=True)]
    if len(set(columns[0])) == 1:
        columns[0] = columns[0][:1]  # the one-item form of a shared value
    keys, values = [r.key for r in recs], [r.value for r in recs]
    return appended_columns(topic, metas, keys, values, names, columns)


@contextmanager
def _no_stored_batches(log: SqliteEventLog) -> Iterator[None]:
    """The log as one without stored batches to hand (Kafka, a cold tier): the handed columns
    are used where they are given."""
    log.read_encoded = lambda *a, **k: None  # type: ignore[method-assign,assignment]
    try:
        yield
    finally:
        del log.read_encoded


def _ledger(log: SqliteEventLog, folder: Path, key: Path) -> Ledger:
    return Ledger(
        log,
        TileLedgerStore(folder / "ledger.sqlite"),
        LocalKeyFileSigner(key, "test/ledger"),
        LedgerConfig(origin="test/ledger", sync_batch=97, checkpoint_every_leaves=50),
        clock_us=lambda: 1_764_000_000_000_000,
    )


def test_handed_columns_are_what_the_log_stored(tmp_path: Path) -> None:
    rnd = random.Random(7)
    log = SqliteEventLog(tmp_path / "log.sqlite")
    log.create_topic("trades", 3)
    for recs, part in _appends(rnd, 20):
        if rnd.random() < 0.3:  # the log stamps the time
            recs = [Record(r.value, r.key, r.headers, None, r.partition) for r in recs]
        if part is not None:
            recs = [Record(r.value, r.key, r.headers, r.timestamp_ms, part) for r in recs]
        metas = log.append("trades", recs)
        for c in _handed("trades", recs, metas):
            stored = log.read_columns("trades", c.partition, c.offsets[0], len(c))
            assert list(stored.offsets) == list(c.offsets)
            assert stored.records() == c.records()
    log.close()


def test_cover_with_handed_columns_stores_what_reading_the_log_stores(tmp_path: Path) -> None:
    rnd = random.Random(11)
    log = SqliteEventLog(tmp_path / "log.sqlite", mac_key=b"k" * 32)
    log.create_topic("trades", 3)
    log.create_topic("hub.audit", 1)
    (tmp_path / "handed").mkdir()
    (tmp_path / "read").mkdir()
    key = tmp_path / "ledger.key"
    handed, read = _ledger(log, tmp_path / "handed", key), _ledger(log, tmp_path / "read", key)
    used = 0
    for i, (recs, part) in enumerate(_appends(rnd, 40)):
        if i % 3 == 0:
            recs = [Record(r.value, r.key, r.headers, None, r.partition) for r in recs]
        topic = "hub.audit" if part == 2 and rnd.random() < 0.5 else "trades"
        if part is not None:
            recs = [Record(r.value, r.key, r.headers, r.timestamp_ms, 0) for r in recs]
        metas = log.append(topic, recs)
        cols = _handed(topic, recs, metas)
        used += sum(c.header_names is not None for c in cols)
        if rnd.random() < 0.2:  # another writer's records, never handed over
            log.append("trades", [Record(b"other", b"k", (("ce_type", b"X"),), None, 1)])
        with _no_stored_batches(log):  # else the log's stored batches are hashed instead
            got = handed.cover(metas, handed=cols)
        assert got["covered"], got
        assert read.cover(metas)["covered"]
    assert used  # the header-column form was handed over
    for ledger in (handed, read):
        assert verify_ledger(ledger).ok
    cps = [
        [(c.size, c.root, c.note) for c in x.store.checkpoints(min_size=0)] for x in (handed, read)
    ]
    assert cps[0] == cps[1]
    for ledger in (handed, read):
        ledger.store.close()
    assert _dump(tmp_path / "handed" / "ledger.sqlite") == _dump(
        tmp_path / "read" / "ledger.sqlite"
    )
    log.close()


def test_verify_catches_handed_columns_that_differ_from_the_log(tmp_path: Path) -> None:
    log = SqliteEventLog(tmp_path / "log.sqlite", mac_key=b"k" * 32)
    log.create_topic("trades", 1)
    ledger = _ledger(log, tmp_path, tmp_path / "ledger.key")
    recs = [Record(b"v%d" % i, b"k", (("ce_type", b"Trade"),), None) for i in range(20)]
    metas = log.append("trades", recs)
    (c,) = _handed("trades", recs, metas)
    values = list(c.values)
    values[13] = b"not what was appended"
    lie = RecordColumns(
        c.topic, c.partition, c.offsets, c.timestamps, c.keys, values,
        c.header_names, c.header_values,
    )  # fmt: skip
    ledger._stored.clear()  # what the append handed on (``on_stored``): as Kafka, nothing
    with _no_stored_batches(log):  # (the embedded log's would be hashed instead)
        assert ledger.cover(metas, handed=[lie])["covered"]  # the ledger took the caller's word
    report = verify_ledger(ledger)
    assert not report.ok
    first = report.first
    assert first is not None and first.index == 13, report.as_dict()["first_problem"]
    ledger.store.close()
    log.close()


def test_the_columnar_ingest_hands_over_what_the_log_stored(tmp_path: Path) -> None:
    from hub.api.ingest_batch import ingest_body
    from hub.bootstrap import bootstrap
    from hub.settings import load_settings
    from tests.service.accounts import open_accounts

    h = bootstrap(load_settings(environ={}, data_dir=tmp_path / "hub"))
    try:
        open_accounts(h, [f"ACC-{i}" for i in range(5)])
        trade = {
            "account_id": "ACC-1", "instrument": "AAPL", "side": "BUY", "quantity": "100",
            "price": "12.5", "currency": "USD", "executed_at": "2026-11-25T14:30:00.000000Z",
        }  # fmt: skip
        rows = [
            {**trade, "trade_id": f"T-{i % 90}", "account_id": f"ACC-{i % 7}"} for i in range(120)
        ]
        body = json.dumps({"events": rows}).encode()  # duplicates and unknown accounts
        kw: dict[str, Any] = dict(ndjson=False, source="http:t", producer="t", tenant="default")
        result = ingest_body(h.ingest, "trades", body, **kw)
        cols = result.appended_columns()
        assert result.accepted and result.rejected and result.duplicates
        assert sum(map(len, cols)) == result.accepted
        for c in cols:
            stored = h.log.read_columns("trades", c.partition, c.offsets[0], len(c))
            assert list(stored.offsets) == list(c.offsets)
            assert stored.records() == c.records()
        assert h.ledger.cover(handed=cols)["covered"]
        assert verify_ledger(h.ledger).ok
    finally:
        h.close()


def test_holds_records_agrees_with_reading(tmp_path: Path) -> None:
    rnd = random.Random(3)
    log = SqliteEventLog(tmp_path / "log.sqlite")
    log.create_topic("trades", 3)
    for recs, _ in _appends(rnd, 12):
        log.append("trades", recs)  # keyed: transactions leave marker offsets
    log.delete_records_before("trades", 1, 5)
    for part, end in log.end_offsets("trades").items():
        for _ in range(60):
            a = rnd.randint(0, end + 2)
            b = rnd.randint(a, end + 3)
            want = EventLog.holds_records(log, "trades", part, a, b)
            assert log.holds_records("trades", part, a, b) == want, (part, a, b)
    log.close()


def test_a_handed_chunk_cut_by_a_sync_batch_is_not_read_back(tmp_path: Path) -> None:
    """A log without stored batches to hand (``read_encoded`` None: Kafka, a cold tier): one
    append of 1,000 records covered in sync batches of 97: every batch after the first takes
    the rest of the handed chunk (none of the range is read back from the log), and the ledger
    is byte-identical to one that read the log."""
    log = SqliteEventLog(tmp_path / "log.sqlite", mac_key=b"k" * 32)
    log.create_topic("trades", 1)
    (tmp_path / "handed").mkdir()
    (tmp_path / "read").mkdir()
    key = tmp_path / "ledger.key"
    handed, read = _ledger(log, tmp_path / "handed", key), _ledger(log, tmp_path / "read", key)
    recs = [
        Record(b"v%d" % i, b"k%d" % (i % 13) if i % 5 else None, (("ce_type", b"T"),), None)
        for i in range(1000)
    ]
    metas = log.append("trades", recs)
    cols = _handed("trades", recs, metas)
    assert len(cols) == 1 and cols[0].header_names is not None
    reads: list[tuple[str, int, int]] = []
    real = log.read_columns

    def spy(topic: str, part: int, pos: int, *a: Any) -> Any:
        reads.append((topic, part, pos))
        return real(topic, part, pos, *a)

    handed.log.read_columns = spy  # type: ignore[method-assign,assignment]
    with _no_stored_batches(log):
        assert handed.cover(metas, handed=cols) == {"covered": True, "tree_size": 1000}
    assert [r for r in reads if r[0] == "trades"] == []
    del handed.log.read_columns  # the instance's own again
    assert read.cover(metas) == {"covered": True, "tree_size": 1000}
    assert verify_ledger(handed).ok
    cps = [[(c.size, c.root) for c in x.store.checkpoints(min_size=0)] for x in (handed, read)]
    assert cps[0] == cps[1] and len(cps[0]) == 20
    for ledger in (handed, read):
        ledger.store.close()
    assert _dump(tmp_path / "handed" / "ledger.sqlite") == _dump(
        tmp_path / "read" / "ledger.sqlite"
    )
    log.close()


def test_the_embedded_log_hashes_its_stored_batches_even_when_handed(tmp_path: Path) -> None:
    """The embedded log hands its stored batches (``read_encoded``): those are hashed, not the
    handed columns (cheaper: docs/benchmarks/s15-cover.md). Handed columns that differ from
    the log therefore do not reach the ledger at all on this log."""
    log = SqliteEventLog(tmp_path / "log.sqlite", mac_key=b"k" * 32)
    log.create_topic("trades", 1)
    ledger = _ledger(log, tmp_path, tmp_path / "ledger.key")
    recs = [Record(b"v%d" % i, b"k", (("ce_type", b"Trade"),), None) for i in range(300)]
    metas = log.append("trades", recs)
    (c,) = _handed("trades", recs, metas)
    lie = RecordColumns(
        c.topic, c.partition, c.offsets, c.timestamps, c.keys, [b"x"] * len(c),
        c.header_names, c.header_values,
    )  # fmt: skip
    assert ledger.cover(metas, handed=[lie]) == {"covered": True, "tree_size": 300}
    assert verify_ledger(ledger).ok
    ledger.store.close()
    log.close()


def test_handed_as_a_function_is_built_only_when_a_read_needs_it(tmp_path: Path) -> None:
    """``cover(handed=result.appended_columns)``: the embedded log's stored batches are read,
    so the columns are never built; a log without stored batches builds and hashes them, with
    the same tree either way."""
    log = SqliteEventLog(tmp_path / "log.sqlite", mac_key=b"k" * 32)
    log.create_topic("trades", 1)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    key = tmp_path / "ledger.key"
    stored, other = _ledger(log, tmp_path / "a", key), _ledger(log, tmp_path / "b", key)
    recs = [Record(b"v%d" % i, b"k%d" % i, (("ce_type", b"T"),), None) for i in range(150)]
    metas = log.append("trades", recs)
    calls: list[int] = []

    def build() -> list[RecordColumns]:
        calls.append(1)
        return _handed("trades", recs, metas)

    assert stored.cover(metas, handed=build) == {"covered": True, "tree_size": 150}
    assert calls == []
    reads: list[int] = []
    real = log.read_columns

    def spy(*a: Any) -> Any:
        reads.append(1)
        return real(*a)

    log.read_columns = spy  # type: ignore[method-assign,assignment]
    other._stored.clear()  # what the append handed on (``on_stored``): as Kafka, nothing
    with _no_stored_batches(log):
        assert other.cover(metas, handed=build) == {"covered": True, "tree_size": 150}
    del log.read_columns
    assert calls == [1] and reads == []  # built once, and no record read back
    assert stored.store.tree_size() == other.store.tree_size() == 150
    for ledger in (stored, other):
        ledger.sync(force_checkpoint=True)
    cps = [x.store.latest_checkpoint() for x in (stored, other)]
    assert cps[0] is not None and cps[1] is not None and cps[0].root == cps[1].root

    for ledger in (stored, other):
        ledger.store.close()
    log.close()
