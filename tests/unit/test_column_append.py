"""The embedded log's columnar append stores the bytes the per-record append stores.

``encode_batch_columns`` against ``encode_batch`` (the reference) on random batches, and
``SqliteEventLog.append_columns`` / ``Transaction.append_columns`` against ``append`` of
``ColumnBatch.records()``: the same stored rows (batch bytes, offsets, MAC chain). Unusual
columns (another type, names the column layout cannot hold) take the reference path, which
stores or refuses them exactly as ``append`` does.
"""

from __future__ import annotations

import random
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from adapters.sqlite_log import SqliteEventLog
from adapters.sqlite_log.batch import encode_batch, encode_batch_columns
from core.errors import InvalidInput
from core.ports.eventlog import ColumnBatch

_NAMES = ["ce_id", "ce_type", "ce_time", "hub_nk", "x", "ünï-名", "", "h" * 300]


def _bytes(rng: random.Random, empty: bool = True) -> bytes:
    size = rng.choice([0, 1, 5, 36, 200]) if empty else rng.choice([1, 5, 36])
    return rng.randbytes(size)


def random_batch(rng: random.Random, n: int, ts: int | None = None) -> ColumnBatch:
    """Keys and values (some None), 0-6 headers: shared, varying, varying but all equal."""
    null_keys, null_values = rng.random() < 0.3, rng.random() < 0.2
    keys = [None if null_keys and rng.random() < 0.5 else _bytes(rng) for _ in range(n)]
    values = [None if null_values and rng.random() < 0.3 else _bytes(rng) for _ in range(n)]
    names: list[str] = []
    columns: list[Any] = []
    for _ in range(rng.randrange(7)):
        name = rng.choice(_NAMES)
        if name in names and name.startswith(("ce_", "hub_")):
            continue  # an envelope header twice is refused (tested apart)
        names.append(name)
        kind = rng.randrange(3)
        if kind == 0:
            columns.append(_bytes(rng))
        elif kind == 1:
            columns.append([_bytes(rng)] * n)
        else:
            columns.append([_bytes(rng, empty=rng.random() < 0.5) for _ in range(n)])
    shared = [c for c in columns if not isinstance(c, bytes)]
    if shared and rng.random() < 0.5:  # one list object under two names (ids, correlation ids)
        names.append("ce_correlationid")
        columns.append(rng.choice(shared))
    return ColumnBatch(keys, values, tuple(names), tuple(columns), ts)


def test_encoded_bytes_are_the_references_on_random_batches() -> None:
    rng = random.Random(13)
    for trial in range(400):
        n = rng.choice([1, 2, 3, 17, 200])
        batch = random_batch(rng, n)
        stamps = [1_700_000_000_000 + rng.randrange(3) * (trial % 2)] * n
        rows = batch.header_rows()
        names = [name.encode() for name in batch.header_names]
        expected = encode_batch(batch.keys, batch.values, rows, stamps)
        got = encode_batch_columns(batch.keys, batch.values, names, batch.header_columns, stamps)
        assert got == expected, (trial, batch)


def _rows(path: Path) -> list[tuple[Any, ...]]:
    with sqlite3.connect(path) as conn:
        batches = conn.execute(
            "SELECT t.name, b.part, b.base_offset, b.last_offset, b.record_count,"
            " b.max_timestamp, b.mac, b.data FROM batches b JOIN topics t ON t.id = b.topic_id"
            " ORDER BY b.id"
        ).fetchall()
        parts = conn.execute(
            "SELECT topic_id, part, start_offset, next_offset, head, mac FROM partitions"
            " ORDER BY topic_id, part"
        ).fetchall()
    return [*batches, *parts]


@pytest.mark.parametrize("mac_key", [None, bytes(range(32))], ids=["plain", "authenticated"])
def test_stored_rows_are_the_per_record_appends(tmp_path: Path, mac_key: bytes | None) -> None:
    """Plain appends and a transaction, 1 and 4 partitions, a batch over MAX_BATCH_RECORDS."""
    rng = random.Random(7)
    batches = [random_batch(rng, n, 1_700_000_000_000 + n) for n in (1, 5, 300, 5000)]
    logs = {}
    for mode in ("records", "columns"):
        log = SqliteEventLog(tmp_path / f"{mode}.db", mac_key=mac_key)
        log.create_topic("one", 1)
        log.create_topic("four", 4)
        for batch in batches:
            for topic in ("one", "four"):
                if mode == "records":
                    metas = log.append(topic, batch.records())
                else:
                    metas = log.append_columns(topic, batch)
                logs.setdefault((topic, len(batch)), []).append(metas)
        with log.transaction("t") as tx:
            for batch in batches[:3]:
                if mode == "records":
                    logs.setdefault(("txn", len(batch)), []).append(
                        tx.append("four", batch.records())
                    )
                else:
                    logs.setdefault(("txn", len(batch)), []).append(
                        tx.append_columns("four", batch)
                    )
        if mac_key is not None:
            assert log.integrity_problems() == []
        log.close()
    assert _rows(tmp_path / "columns.db") == _rows(tmp_path / "records.db")
    for metas in logs.values():
        assert metas[0] == metas[1]


class _Bytes(bytes):
    """A bytes subclass: not the plain kind the column checks and the native prepare take."""


@pytest.mark.parametrize(
    "unusual",
    [
        ColumnBatch([b"k"] * 3, [b"v"] * 3, ("h",), (("a", "b", "c"),)),  # str values
        ColumnBatch([b"k"] * 3, [b"v"] * 3, ("h",), (range(3),)),  # not a list
        ColumnBatch([b"k"] * 3, [b"v"] * 3, ("\ud800",), (b"x",)),  # not UTF-8
        ColumnBatch([b"k"] * 3, [b"v"] * 3, (b"h",), (b"x",)),  # type: ignore[arg-type]
        ColumnBatch([b"k"] * 3, [b"v"] * 3, ("h" * 70_000,), (b"x",)),  # name too long
        ColumnBatch([b"k"] * 3, [b"v"] * 3, ("ce_id", "ce_id"), (b"x", b"y")),
        ColumnBatch([b"k"] * 3, [b"v", bytearray(b"v"), b"v"]),  # type: ignore[list-item]
        ColumnBatch([b"k"] * 3, [b"v"] * 3, timestamp_ms=-1),
        ColumnBatch([b"k", 3, b"k"], [b"v"] * 3),  # type: ignore[list-item]
        ColumnBatch([b"k", _Bytes(b"k"), b"k"], [b"v"] * 3),
        ColumnBatch([b"k"] * 3, [b"v", b"v", _Bytes(b"v")]),
        ColumnBatch([b"k"] * 3, [b"v"] * 3, ("h",), ([b"a", _Bytes(b"b"), b"c"],)),
        ColumnBatch([b"k"] * 3, [b"v"] * 3, ("h", "i"), (_Bytes(b"x"), (b"a", b"b", b"c"))),
        ColumnBatch([b"k"] * 3, [b"v"] * 3, ("h",), ([b"a", b"b", b"c"],), timestamp_ms=True),
    ],
    ids=[
        "str",
        "range",
        "surrogate",
        "bytes-name",
        "long-name",
        "envelope-twice",
        "bytearray",
        "negative-ts",
        "int-key",
        "bytes-subclass-key",
        "bytes-subclass-value",
        "bytes-subclass-header",
        "bytes-subclass-shared-header",
        "bool-ts",
    ],
)
def test_unusual_columns_are_stored_or_refused_as_append_does(
    tmp_path: Path, unusual: ColumnBatch
) -> None:
    outcome = {}
    for mode in ("records", "columns"):
        log = SqliteEventLog(tmp_path / f"{mode}.db")
        log.create_topic("t", 2)
        try:
            if mode == "records":
                outcome[mode] = log.append("t", unusual.records())
            else:
                outcome[mode] = log.append_columns("t", unusual)
        except InvalidInput as exc:
            outcome[mode] = (type(exc), str(exc))
        log.close()
    if isinstance(outcome["records"], list):  # stored: the same rows (timestamps aside)
        assert [(m.partition, m.offset) for m in outcome["columns"]] == [
            (m.partition, m.offset) for m in outcome["records"]
        ]
    else:
        assert outcome["columns"] == outcome["records"]


def test_header_names_memo_answers_as_the_names_alone_would() -> None:
    """``plain_header_names`` keeps each name tuple's answer: asked again (the decision sink's
    fixed names) it gives the same names, a copy its caller may change, and names it refused
    (not UTF-8, a duplicated envelope header) stay refused; the columns are still checked per
    batch (a column of another type is refused under names seen before)."""
    from adapters.sqlite_log import batch as batch_module

    good = ColumnBatch([b"k"], [b"v"], ("a", "ce_id"), (b"x", [b"1"]))
    first = batch_module.plain_header_names(good)
    assert first == [b"a", b"ce_id"]
    first.append(b"changed")
    assert batch_module.plain_header_names(good) == [b"a", b"ce_id"]
    for names in (("\ud800",), ("ce_id", "ce_id")):
        bad = ColumnBatch([b"k"], [b"v"], names, tuple(b"x" for _ in names))
        assert batch_module.plain_header_names(bad) is None
        assert batch_module.plain_header_names(bad) is None
    odd = ColumnBatch([b"k"], [b"v"], ("a", "ce_id"), (b"x", ["1"]))  # type: ignore[list-item]
    assert batch_module.plain_header_names(odd) is None
    assert len(batch_module._NAMES_SEEN) <= batch_module._NAMES_SEEN_MAX
