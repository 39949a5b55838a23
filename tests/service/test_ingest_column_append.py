"""Files ingested through the columnar append store what the per-record append stores.

The same file goes through ``publish_file`` on two hubs: on one the accepted rows go to the log
as ``Record``s (``ingest.columnar.column_append = False``, the reference), on the other as one
``ColumnBatch`` per batch (the default). Event ids, the receipt time and the log's append time
are fixed for both runs, so the data topic's stored batches must be identical byte for byte
(offsets, MAC chain, batch bytes) and so must its ledger leaves and its quarantine entries (with
their originals). The files mix accepted rows, rows that fail rules (quarantined, row by row),
duplicates within and across files.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime
from itertools import count
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from adapters.sqlite_log import SqliteEventLog
from benchmarks.e2e import write_files
from hub.bootstrap import Hub
from ingest import columnar
from ingest.files import publish_file
from ingest.quarantine import decode_entry, entries
from tests.service.test_ingest_arrow_readers import avro_file, csv_file, jsonl
from tests.service.test_ingest_arrow_readers import two as two

FIXED_NOW = datetime.now(UTC)  # the files' times are drawn around the real clock
FIXED_MS = 1_796_300_000_000
_FRESH = {"event_id"}  # a quarantine entry's own id (uuid7, drawn when it is written)


class _FrozenDatetime(datetime):
    @classmethod
    def now(cls, tz: Any = None) -> Any:  # the batch's receipt time
        return FIXED_NOW


@pytest.fixture
def fixed_ids(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """Deterministic ids and times for the columnar path and the log; ``restart()`` before
    each hub's run makes both runs draw the same ids."""
    state = {"ids": count()}

    def ids(n: int, now_ns: int | None = None) -> list[bytes]:
        return [b"%036d" % next(state["ids"]) for _ in range(n)]

    def stamps(values: Any) -> list[int]:
        return [FIXED_MS if t is None else t for t in values]

    monkeypatch.setattr(columnar, "uuid7_bytes", ids)
    monkeypatch.setattr(columnar, "datetime", _FrozenDatetime)
    monkeypatch.setattr(SqliteEventLog, "_timestamps", staticmethod(stamps))

    def restart() -> None:
        state["ids"] = count()

    yield restart


def _batches(h: Hub, topic: str) -> list[tuple[Any, ...]]:
    path = h.log._path  # type: ignore[attr-defined]
    with sqlite3.connect(path) as conn:
        return conn.execute(
            "SELECT b.part, b.base_offset, b.last_offset, b.record_count, b.max_timestamp,"
            " b.mac, b.data FROM batches b JOIN topics t ON t.id = b.topic_id WHERE t.name = ?"
            " ORDER BY b.id",
            (topic,),
        ).fetchall()


def _leaves(h: Hub, topic: str) -> list[tuple[Any, ...]]:
    h.ledger.sync()
    out = []
    for p, end in sorted(h.log.end_offsets(topic).items()):
        for r in h.log.read(topic, p, 0, end + 1):
            index = h.ledger.index_of(topic, p, r.offset)
            assert index is not None
            leaf = h.ledger.store.leaf(index)
            assert leaf is not None
            out.append(leaf[1:])  # (topic, part, off, ts, actor, ..., leaf hash)
    return out


def _parquet(folder: Path, n: int, start: int) -> Path:
    """``benchmarks.e2e``'s Parquet trades, their accounts among the 60 the hubs know."""
    path = write_files(folder, n, start)["Parquet"]
    table = pq.read_table(path)
    accounts = pa.array([f"ACC-{i % 60}" for i in range(start, start + n)])
    pq.write_table(table.set_column(1, "account_id", accounts), path)
    return path


def _files(h: Hub, tmp_path: Path, fmt: str) -> list[Path]:
    if fmt == "parquet":  # a clean file, then one half of whose rows repeat the first's
        return [_parquet(tmp_path / "p1", 200, 0), _parquet(tmp_path / "p2", 200, 100)]
    if fmt == "avro":
        return [avro_file(h, tmp_path / "t.avro", 250, seed=3)]
    if fmt == "csv":
        return [csv_file(tmp_path / "t.csv", 250, seed=4)]
    return [jsonl(tmp_path / "t.jsonl", 250, seed=5)]


@pytest.mark.parametrize("fmt", ["parquet", "avro", "jsonl", "csv"])
def test_column_append_stores_the_per_record_bytes(
    two: tuple[Hub, Hub],
    fixed_ids: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    fmt: str,
) -> None:
    files = _files(two[0], tmp_path, fmt)
    results = []
    for h, by_columns in zip(two, (False, True), strict=True):
        monkeypatch.setattr(columnar, "column_append", by_columns)
        fixed_ids()
        got = [publish_file(h.ingest, f, "trades", batch_size=61).result for f in files]
        results.append([(r.accepted, r.rejected, r.duplicates) for r in got])
    (reference, columns) = two
    assert results[0] == results[1]
    # enough rows accepted to exercise the path (the CSV file's count varies around 100 with the
    # clock its timestamps are drawn from; a CI run saw 99)
    assert sum(a for a, _, _ in results[1]) > 50
    if fmt == "parquet":
        assert results[1][1][2] == 100  # the second file's repeated half
    # Each hub has its own MAC key: the batches' MACs differ, everything else must not
    # (``tests/unit/test_column_append.py`` compares MACs under one key).
    got, expected = _batches(columns, "trades"), _batches(reference, "trades")
    assert len(got) > 3
    assert [b[:-2] + b[-1:] for b in got] == [b[:-2] + b[-1:] for b in expected]
    assert _leaves(columns, "trades") == _leaves(reference, "trades")
    quarantined = _quarantined(columns)
    assert quarantined == _quarantined(reference)
    assert len(quarantined) == sum(r for _, r, _ in results[1])
    if fmt != "parquet":
        assert quarantined and all(q["original"] for q in quarantined)


def _quarantined(h: Hub) -> list[dict[str, Any]]:
    """The hub's quarantine entries with their originals, all but the id each entry draws."""
    out = []
    for e in entries(h.ingest, limit=100_000):
        full = decode_entry(h.ingest, e["offset"])
        out.append({k: v for k, v in {**e, **full}.items() if k not in _FRESH})
    return out
