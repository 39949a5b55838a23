"""The embedded log's columnar append answers columns (``AppendedMetadata``), not a
``RecordMetadata`` per record: the answer must be exactly the list ``append`` of the same
records gives (same partitions, offsets, timestamps, in append order), whatever the caller
does with it (index, slice, iterate, compare), and ``appended_columns`` built from it must be
what the log stores (the ledger takes those columns instead of reading the records back)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from adapters.sqlite_log import SqliteEventLog
from core.ports.eventlog import (
    AppendedMetadata,
    ColumnBatch,
    IdempotenceKey,
    RecordMetadata,
    appended_columns,
    metadata_list,
)


def _batch(n: int, *, keyed: bool = True, ts: int | None = 1_796_300_000_123) -> ColumnBatch:
    ids = [b"%08d" % i for i in range(n)]
    return ColumnBatch(
        [b"acct-%d" % (i % 37) if keyed else None for i in range(n)],
        [b"value-%d" % i * (1 + i % 5) for i in range(n)],
        ("ce_specversion", "ce_id", "ce_correlationid", "nk"),
        (b"1.0", ids, ids, [b"nk-%d" % i for i in range(n)]),
        timestamp_ms=ts,
    )


@pytest.fixture(params=[None, b"k" * 32], ids=["plain", "authenticated"])
def log(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SqliteEventLog]:
    log = SqliteEventLog(tmp_path / "log.db", mac_key=request.param)
    for name, parts in (("one", 1), ("four", 4), ("four_records", 4), ("one_records", 1)):
        log.create_topic(name, parts)
    yield log
    log.close()


@pytest.mark.parametrize("parts", [1, 4])
@pytest.mark.parametrize("keyed", [True, False])
def test_the_answer_is_the_records_answer(log: SqliteEventLog, parts: int, keyed: bool) -> None:
    topic = "one" if parts == 1 else "four"
    batch = _batch(300, keyed=keyed)
    log.append(topic, _batch(7, keyed=keyed).records())  # offsets do not start at 0
    log.append(f"{topic}_records", _batch(7, keyed=keyed).records())
    got = log.append_columns(topic, batch)
    want = [replace(m, topic=topic) for m in log.append(f"{topic}_records", batch.records())]
    assert isinstance(got, AppendedMetadata)
    assert len({m.partition for m in want}) == (parts if keyed else 1)
    # the columns alone (nothing built yet) say where each partition's records start
    starts = {p: base for p, base, _ in got.parts}
    assert starts == {p: min(m.offset for m in want if m.partition == p) for p in starts}
    assert got._built is None
    assert len(got) == 300 and bool(got)
    assert got == want and want == got and got == tuple(want) and got != want[:-1]
    assert got[0] == want[0] and got[-1] == want[-1] and got[17:171:3] == want[17:171:3]
    assert list(got) == want and metadata_list(got) is got.as_list()
    assert [m.timestamp_ms for m in got] == [1_796_300_000_123] * 300
    assert all(type(m) is RecordMetadata for m in got)


def test_a_transaction_answers_columns_too(log: SqliteEventLog) -> None:
    batch = _batch(120)
    with log.transaction("t") as tx:
        staged = tx.append_columns("four", batch)
        records = tx.append("four_records", batch.records())
    assert isinstance(staged, AppendedMetadata) and type(records) is list
    assert [(m.partition, m.offset, m.timestamp_ms) for m in staged] == [
        (m.partition, m.offset, m.timestamp_ms) for m in records
    ]


def test_appended_columns_from_the_answer_are_what_the_log_stores(log: SqliteEventLog) -> None:
    batch = _batch(500, ts=None)  # the log's clock: timestamps come from the answer
    log.append("four", _batch(3).records())
    got = log.append_columns("four", batch)
    assert isinstance(got, AppendedMetadata)
    keys, values = list(batch.keys), list(batch.values)
    columns = [[c] if isinstance(c, bytes) else c for c in batch.header_columns]
    from_columns = appended_columns("four", got, keys, values, batch.header_names, columns)
    from_records = appended_columns(
        "four", list(got.as_list()), keys, values, batch.header_names, columns
    )
    assert len(from_columns) == 4
    for c, r in zip(from_columns, from_records, strict=True):
        stored = log.read_columns("four", c.partition, c.offsets[0], len(c))
        for built in (c, r):
            assert (built.partition, list(built.offsets), list(built.timestamps)) == (
                stored.partition,
                list(stored.offsets),
                list(stored.timestamps),
            )
            assert list(built.keys) == list(stored.keys)
            assert list(built.values) == list(stored.values)
            assert built.header_rows() == stored.header_rows()


def test_an_idempotent_retry_answers_the_stored_placement(log: SqliteEventLog) -> None:
    records = _batch(90).records()
    key = IdempotenceKey("producer-1", 0)
    first = log.append("four", records, idempotence=key)
    again = log.append("four", records, idempotence=key)
    assert type(first) is list and first == again
    assert log.end_offsets("four") == {
        p: max(m.offset for m in first if m.partition == p) + 2  # + the transaction marker
        for p in range(4)
    }


class _Span:
    def __init__(self) -> None:
        self.attributes: dict[str, object] = {}

    def set_attribute(self, name: str, value: object) -> None:
        self.attributes[name] = value


@pytest.mark.parametrize("topic", ["one", "four"])
def test_trace_attributes_from_the_columns_are_those_of_the_records(
    log: SqliteEventLog, topic: str
) -> None:
    from core import tracing

    log.append(topic, _batch(5).records())
    got = log.append_columns(topic, _batch(200))
    assert isinstance(got, AppendedMetadata)
    by_columns, by_records = _Span(), _Span()
    tracing.appended(by_columns, by_columns, topic, got)  # type: ignore[arg-type]
    assert got._built is None  # the ranges came from the columns
    tracing.appended(by_records, by_records, topic, list(got))  # type: ignore[arg-type]
    assert by_columns.attributes == by_records.attributes
    assert by_columns.attributes["hub.log.first_offsets"]


def test_records_land_in_their_partition_in_batch_order(log: SqliteEventLog) -> None:
    from core.partitioner import default_partition

    batch = _batch(1000)
    got = log.append_columns("four", batch)
    assert [m.partition for m in got] == [default_partition(k, 4) for k in batch.keys]  # type: ignore[arg-type]
    for p, base, idx in got.parts:  # type: ignore[attr-defined]
        assert idx == sorted(idx) and len(idx) > 100  # batch order within the partition
        stored = log.read_columns("four", p, base, len(idx))
        assert list(stored.values) == [batch.values[i] for i in idx]
        assert list(stored.offsets) == list(range(base, base + len(idx)))


def test_a_partition_given_one_record_of_the_batch(log: SqliteEventLog) -> None:
    from core.partitioner import default_partition

    by_part: dict[int, list[bytes]] = {}
    for i in range(100):
        by_part.setdefault(default_partition(b"k%d" % i, 4), []).append(b"k%d" % i)
    (pa_, lone), (_, many) = [(p, ks) for p, ks in sorted(by_part.items())][:2]
    keys: list[bytes | None] = [many[0], lone[0], many[1], many[2]]
    ids = [b"id-%d" % i for i in range(4)]
    batch = ColumnBatch(keys, [b"v%d" % i for i in range(4)], ("ce_id",), (ids,), 5)
    got = log.append_columns("four", batch)
    want = log.append("four_records", batch.records())
    assert [(m.partition, m.offset) for m in got] == [(m.partition, m.offset) for m in want]
    assert [idx for p, _, idx in got.parts if p == pa_] == [[1]]  # type: ignore[attr-defined]
    for p in {m.partition for m in want}:
        a = log.read_columns("four", p, 0, 10)
        b = log.read_columns("four_records", p, 0, 10)
        assert (list(a.values), a.header_rows()) == (list(b.values), b.header_rows())
