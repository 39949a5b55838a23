"""The EventLog contract (``core/ports/eventlog.py``), run against every adapter.

Subclass ``EventLogContract`` once per adapter (as ``Test...``) and provide two fixtures:
``log`` (a fresh adapter) and ``reopen`` (a callable that closes a log and returns a new adapter
over the same storage); a log kept in a folder subclasses ``FolderEventLogContract`` instead and
says only how to open it. Every test makes its own topic, group, producer and transactional names
with a random suffix, so the suite can run against a shared Kafka broker; tests never assume they
are alone (no exact ``topics()`` lists) and assert dense offsets only for plain appends.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from core.consumer import Consumer
from core.errors import (
    DuplicateEnvelopeHeader,
    HubError,
    InvalidInput,
    OutOfOrderSequence,
    TopicExists,
    TopicNotFound,
)
from core.partitioner import default_partition
from core.ports.eventlog import (
    ColumnBatch,
    EventLog,
    IdempotenceKey,
    Record,
    RecordColumns,
    StoredRecord,
    TopicPartition,
)

Reopen = Callable[[EventLog], EventLog]


def unique(kind: str = "t") -> str:
    """A name no other test (or earlier run against the same broker) uses."""
    return f"contract.{kind}.{uuid.uuid4().hex[:16]}"


def values(records: list[StoredRecord]) -> list[bytes | None]:
    return [r.value for r in records]


def read_all(log: EventLog, topic: str, partition: int = 0) -> list[StoredRecord]:
    return list(log.scan(topic, partition))


def columns_all(
    log: EventLog, topic: str, partition: int = 0, start: int = 0, limit: int = 1000
) -> list[RecordColumns]:
    """``read_columns`` from ``start`` to the end offset, by the port's rule for ``read``: stop
    after two reads in a row return nothing (only marker offsets left, or a short fetch)."""
    end = log.end_offsets(topic)[partition]
    out: list[RecordColumns] = []
    pos = start
    while pos < end:
        got = log.read_columns(topic, partition, pos, limit)
        if not len(got):
            got = log.read_columns(topic, partition, pos, limit)
            if not len(got):
                break
        out.append(got)
        pos = got.offsets[-1] + 1
    return out


def check_columns(cols: RecordColumns, topic: str, partition: int) -> None:
    """The shape ``RecordColumns`` promises: equal lengths, one header form, offsets rising."""
    n = len(cols)
    assert (cols.topic, cols.partition) == (topic, partition)
    assert len(cols.timestamps) == len(cols.keys) == len(cols.values) == n
    assert list(cols.offsets) == sorted(set(cols.offsets))
    if cols.header_names is None:
        assert cols.headers is not None and len(cols.headers) == n
        assert cols.header_values == ()
    else:
        assert cols.headers is None
        assert len(cols.header_values) == len(cols.header_names)
        assert all(len(col) == n for col in cols.header_values)


class EventLogContract:
    """Adapter-independent tests; not collected itself (its name does not start with Test)."""

    @pytest.fixture
    def log(self) -> Iterator[EventLog]:
        raise NotImplementedError("the adapter's test class provides the log fixture")

    @pytest.fixture
    def reopen(self) -> Reopen:
        raise NotImplementedError("the adapter's test class provides the reopen fixture")

    def topic(self, log: EventLog, partitions: int = 1, **config: str) -> str:
        name = unique()
        log.create_topic(name, partitions, config or None)
        return name

    # -- waking followers (wait_for_append) ------------------------------------------------------
    # A polling period of 30 s: only the append's wake-up can make these pass in time.
    def test_an_append_wakes_a_waiter_at_once(self, log: EventLog) -> None:
        t = self.topic(log, 2)
        seen = log.append_generation()
        timer = threading.Timer(0.2, lambda: log.append(t, [Record(value=b"x", key=b"k")]))
        timer.start()
        started = time.monotonic()
        assert log.wait_for_append(seen, 30.0) != seen
        assert time.monotonic() - started < 10, "the waiter slept instead of being woken"
        timer.join()

    def test_an_append_before_the_wait_is_not_missed(self, log: EventLog) -> None:
        t = self.topic(log)
        seen = log.append_generation()
        log.append(t, [Record(value=b"x"), Record(value=b"y")])
        started = time.monotonic()
        assert log.wait_for_append(seen, 30.0) != seen
        assert time.monotonic() - started < 1

    def test_a_committed_transaction_wakes_a_waiter(self, log: EventLog) -> None:
        t = self.topic(log)
        seen = log.append_generation()
        with log.transaction(unique("txn")) as txn:
            txn.append(t, [Record(value=b"x")])
        started = time.monotonic()
        assert log.wait_for_append(seen, 30.0) != seen
        assert time.monotonic() - started < 1

    # -- topics -----------------------------------------------------------------------------------
    def test_create_topic_returns_its_info(self, log: EventLog) -> None:
        name = unique()
        info = log.create_topic(name, 3)
        assert (info.name, info.partitions) == (name, 3)
        assert log.topic(name).partitions == 3
        assert log.end_offsets(name) == {0: 0, 1: 0, 2: 0}

    def test_create_topic_is_idempotent_for_the_same_partition_count(self, log: EventLog) -> None:
        name = unique()
        log.create_topic(name, 2)
        again = log.create_topic(name, 2)
        assert (again.name, again.partitions) == (name, 2)

    def test_create_topic_with_another_partition_count_raises(self, log: EventLog) -> None:
        name = unique()
        log.create_topic(name, 2)
        with pytest.raises(TopicExists, match=name):
            log.create_topic(name, 3)
        assert log.topic(name).partitions == 2

    def test_topic_config_is_kept(self, log: EventLog) -> None:
        config = {"retention.ms": "604800000", "cleanup.policy": "delete"}
        name = unique()
        log.create_topic(name, 1, config)
        assert config.items() <= dict(log.topic(name).config).items()

    def test_topics_lists_created_topics_sorted(self, log: EventLog) -> None:
        a, b = self.topic(log), self.topic(log)
        names = [t.name for t in log.topics()]
        assert {a, b} <= set(names)
        assert names == sorted(names)

    def test_all_end_offsets_are_each_topics_end_offsets(self, log: EventLog) -> None:
        """``all_end_offsets`` (one call for a ledger sync) answers what ``end_offsets`` of
        each listed topic answers, partitions and offsets alike, every listed topic in it."""
        a, b = unique(), unique()
        log.create_topic(a, 3)
        log.create_topic(b, 1)
        log.append(a, [Record(b"x", key=str(i).encode()) for i in range(7)])
        log.append(b, [Record(b"y")])
        ends = log.all_end_offsets()
        assert {a, b} <= set(ends)
        assert list(ends) == sorted(ends)
        assert ends[a] == log.end_offsets(a) and len(ends[a]) == 3 and sum(ends[a].values()) >= 7
        assert ends[b] == log.end_offsets(b) == {0: 1}
        assert {a, b} <= {t.name for t in log.topics()}

    def test_unknown_topic_raises_topic_not_found(self, log: EventLog) -> None:
        name = unique("missing")
        with pytest.raises(TopicNotFound, match=name):
            log.topic(name)
        with pytest.raises(TopicNotFound):
            log.append(name, [Record(b"v")])
        with pytest.raises(TopicNotFound):
            log.read(name, 0, 0)
        with pytest.raises(TopicNotFound):
            log.end_offsets(name)
        with pytest.raises(TopicNotFound):
            log.committed(unique("group"), name)

    @pytest.mark.parametrize(
        "bad", ["", "a b", "x" * 250, "é", "a/b", "a:b", ".", "..", "tab\t", "new\n"]
    )
    def test_invalid_topic_names_are_rejected(self, log: EventLog, bad: str) -> None:
        with pytest.raises(InvalidInput, match="Topic name"):
            log.create_topic(bad)

    def test_legal_topic_name_characters_are_accepted(self, log: EventLog) -> None:
        name = f"Az09._-{uuid.uuid4().hex}"
        name += "x" * (249 - len(name))
        assert log.create_topic(name).name == name

    @pytest.mark.parametrize("partitions", [0, -1])
    def test_partitions_must_be_at_least_one(self, log: EventLog, partitions: int) -> None:
        with pytest.raises(InvalidInput, match="partitions"):
            log.create_topic(unique(), partitions)

    # -- append -----------------------------------------------------------------------------------
    def test_append_returns_metadata_in_record_order(self, log: EventLog) -> None:
        topic = self.topic(log)
        meta = log.append(topic, [Record(b"a"), Record(b"b"), Record(b"c")])
        assert [(m.topic, m.partition, m.offset) for m in meta] == [
            (topic, 0, 0),
            (topic, 0, 1),
            (topic, 0, 2),
        ]

    def test_offsets_are_dense_across_batches(self, log: EventLog) -> None:
        topic = self.topic(log)
        offsets = []
        for size in (1, 5, 2, 40):
            offsets += [m.offset for m in log.append(topic, [Record(b"x")] * size)]
        assert offsets == list(range(48))
        assert log.end_offsets(topic) == {0: 48}
        assert [r.offset for r in read_all(log, topic)] == offsets

    def test_empty_append_stores_nothing(self, log: EventLog) -> None:
        topic = self.topic(log)
        assert log.append(topic, []) == []
        assert log.end_offsets(topic) == {0: 0}

    def test_a_repeated_envelope_header_is_refused_and_nothing_stored(self, log: EventLog) -> None:
        topic = self.topic(log)
        twice = (("ce_tenant", b"acme"), ("x", b"1"), ("x", b"2"), ("ce_tenant", b"globex"))
        for batch in ([Record(b"ok"), Record(b"v", headers=twice)], [Record(b"v", headers=twice)]):
            with pytest.raises(DuplicateEnvelopeHeader, match=r"Record \d .*'ce_tenant'"):
                log.append(topic, batch)
        with pytest.raises(DuplicateEnvelopeHeader), log.transaction(unique()) as tx:
            tx.append(topic, [Record(b"v", headers=twice)])
        assert log.end_offsets(topic) == {0: 0}
        log.append(topic, [Record(b"v", headers=twice[1:3])])  # a caller's own name may repeat
        assert [r.headers for r in read_all(log, topic)] == [twice[1:3]]

    # -- append_columns ---------------------------------------------------------------------
    @staticmethod
    def _column_batch(n: int) -> ColumnBatch:
        """Keys with a None among them, shared and per-record headers (one varying column
        holding one value throughout), a tombstone."""
        return ColumnBatch(
            [None if i % 7 == 3 else b"acct-%d" % (i % 11) for i in range(n)],
            [None if i == 5 else b"value-%d" % i for i in range(n)],
            ("ce_type", "ce_id", "x", "same", "x"),
            (b"trade", [b"id-%d" % i for i in range(n)], b"1", [b"s"] * n, b"2"),
        )

    def _stored(self, log: EventLog, topic: str) -> list[tuple[object, ...]]:
        return [
            (r.partition, r.offset, r.key, r.value, r.headers)
            for p in range(log.topic(topic).partitions)
            for r in read_all(log, topic, p)
        ]

    def test_append_columns_stores_what_append_stores(self, log: EventLog) -> None:
        batch = self._column_batch(60)
        by_records, by_columns = self.topic(log, 3), self.topic(log, 3)
        meta = log.append(by_records, batch.records())
        got = log.append_columns(by_columns, batch)
        assert [(m.partition, m.offset) for m in got] == [(m.partition, m.offset) for m in meta]
        assert all(m.topic == by_columns for m in got)
        assert self._stored(log, by_columns) == self._stored(log, by_records)
        assert log.end_offsets(by_columns) == log.end_offsets(by_records)
        in_txn = self.topic(log, 3)
        with log.transaction(unique()) as tx:
            staged = tx.append_columns(in_txn, batch)
        assert [(m.partition, m.offset) for m in staged] == [(m.partition, m.offset) for m in meta]
        assert self._stored(log, in_txn) == self._stored(log, by_records)
        assert log.append_columns(in_txn, ColumnBatch([], [])) == []

    def test_append_columns_refuses_what_append_refuses(self, log: EventLog) -> None:
        topic = self.topic(log, 3)
        short = ColumnBatch([b"k"], [b"a", b"b"])
        with pytest.raises(InvalidInput, match="one item per value"):
            log.append_columns(topic, short)
        unnamed = ColumnBatch([b"k"], [b"a"], ("h",), ())
        with pytest.raises(InvalidInput, match="one column per name"):
            log.append_columns(topic, unnamed)
        twice = ColumnBatch([None], [b"v"], ("ce_tenant", "ce_tenant"), (b"acme", b"globex"))
        with pytest.raises(DuplicateEnvelopeHeader):
            log.append_columns(topic, twice)
        text = ColumnBatch([None, None], [b"v", "text"])  # type: ignore[list-item]
        with pytest.raises(InvalidInput, match="Record 1"):
            log.append_columns(topic, text)
        with pytest.raises(InvalidInput), log.transaction(unique()) as tx:
            tx.append_columns(topic, short)
        assert log.end_offsets(topic) == {0: 0, 1: 0, 2: 0}

    def test_keyed_records_land_where_kafka_would_put_them(self, log: EventLog) -> None:
        topic = self.topic(log, 6)
        records = [Record(b"v%d" % i, key=b"account-%d" % i) for i in range(120)]
        meta = log.append(topic, records)
        for r, m in zip(records, meta, strict=True):
            assert r.key is not None
            assert m.partition == default_partition(r.key, 6)
        # Within each partition, batch order is kept and offsets are dense.
        for p in range(6):
            expected = [r.value for r, m in zip(records, meta, strict=True) if m.partition == p]
            assert values(read_all(log, topic, p)) == expected
            assert [m.offset for m in meta if m.partition == p] == list(range(len(expected)))

    def test_keyless_records_go_to_partition_zero(self, log: EventLog) -> None:
        topic = self.topic(log, 4)
        meta = log.append(topic, [Record(b"a"), Record(b"b", key=None)])
        assert [m.partition for m in meta] == [0, 0]

    def test_explicit_partitions_are_honoured(self, log: EventLog) -> None:
        topic = self.topic(log, 3)
        meta = log.append(
            topic,
            [
                Record(b"a", key=b"k", partition=2),
                Record(b"b", partition=1),
                Record(b"c", partition=2),
                Record(b"d", key=b"k"),
            ],
        )
        assert [(m.partition, m.offset) for m in meta[:3]] == [(2, 0), (1, 0), (2, 1)]
        assert meta[3].partition == default_partition(b"k", 3)
        assert values(read_all(log, topic, 2))[:2] == [b"a", b"c"]

    def test_explicit_partition_out_of_range_raises(self, log: EventLog) -> None:
        topic = self.topic(log, 2)
        with pytest.raises(InvalidInput, match="partition"):
            log.append(topic, [Record(b"a", partition=2)])
        assert log.end_offsets(topic) == {0: 0, 1: 0}

    @pytest.mark.parametrize(
        "bad",
        [
            Record("text"),  # type: ignore[arg-type]
            Record(b"v", key="text"),  # type: ignore[arg-type]
            Record(b"v", headers=(("h", "text"),)),  # type: ignore[arg-type]
            Record(b"v", headers=((b"h", b"v"),)),  # type: ignore[arg-type]
            Record(b"v", timestamp_ms=-5),
            Record(b"v", partition=99),
            Record(b"v", partition=-1),
            {"value": b"v"},
        ],
        ids=[
            "str-value",
            "str-key",
            "str-header",
            "bytes-header-name",
            "neg-ts",
            "p99",
            "p-1",
            "dict",
        ],
    )
    def test_a_batch_with_one_invalid_record_stores_nothing(self, log: EventLog, bad) -> None:
        topic = self.topic(log, 3)
        good = [Record(b"ok%d" % i, key=b"k%d" % i, headers=(("h", b"1"),)) for i in range(30)]
        with pytest.raises(InvalidInput, match="Record 17"):
            log.append(topic, [*good[:17], bad, *good[17:]])
        assert log.end_offsets(topic) == {0: 0, 1: 0, 2: 0}
        meta = log.append(topic, good)  # the log is still usable
        assert sum(len(read_all(log, topic, p)) for p in range(3)) == 30
        written = {m.partition for m in meta}
        # A multi-partition append is a Kafka transaction: one marker offset per partition.
        assert sum(log.end_offsets(topic).values()) == 30 + len(written)

    def test_keys_values_and_headers_round_trip_byte_exact(self, log: EventLog) -> None:
        topic = self.topic(log)
        every_byte = bytes(range(256))
        records = [
            Record(every_byte, key=every_byte, headers=(("bin", every_byte),)),
            Record(None, key=b"tombstone"),
            Record(b"", key=b""),
            Record(b"no key", key=None),
            Record(
                b"headers",
                headers=(("dup", b"1"), ("dup", b"2"), ("ünïcode-名前", b"x"), ("empty", b"")),
            ),
            Record(os.urandom(1 << 20), key=b"big"),
            Record(None, key=None, headers=(("only", b"headers"),)),
        ]
        log.append(topic, records)
        stored = log.read(topic, 0, 0)
        assert len(stored) == len(records)
        for r, s in zip(records, stored, strict=True):
            assert (s.key, s.value, s.headers) == (r.key, r.value, r.headers)
            assert s.topic == topic and s.partition == 0
        assert stored[4].header("dup") == b"1"

    def test_given_timestamps_are_kept(self, log: EventLog) -> None:
        topic = self.topic(log)
        stamps = [1_600_000_000_000, 1_600_000_000_000, 1_700_000_000_123, 0 + 1, 1_600_000_000_001]
        meta = log.append(topic, [Record(b"x", timestamp_ms=t) for t in stamps])
        assert [m.timestamp_ms for m in meta] == stamps
        assert [r.timestamp_ms for r in read_all(log, topic)] == stamps

    def test_missing_timestamps_default_to_append_time(self, log: EventLog) -> None:
        topic = self.topic(log)
        before = time.time_ns() // 1_000_000
        meta = log.append(topic, [Record(b"x"), Record(b"y", timestamp_ms=5)])
        after = time.time_ns() // 1_000_000
        assert before - 1000 <= meta[0].timestamp_ms <= after + 1000
        assert meta[1].timestamp_ms == 5
        assert [r.timestamp_ms for r in read_all(log, topic)] == [m.timestamp_ms for m in meta]

    # -- read -------------------------------------------------------------------------------------
    def test_read_from_any_offset(self, log: EventLog) -> None:
        topic = self.topic(log)
        expected: list[bytes | None] = []
        for size in (3, 1, 7, 2):
            batch = [Record(b"%d" % (len(expected) + i)) for i in range(size)]
            log.append(topic, batch)
            expected += [r.value for r in batch]
        for offset in range(len(expected) + 1):
            got = log.read(topic, 0, offset)
            assert values(got) == expected[offset:]
            assert [r.offset for r in got] == list(range(offset, len(expected)))

    def test_read_respects_max_records(self, log: EventLog) -> None:
        topic = self.topic(log)
        log.append(topic, [Record(b"%d" % i) for i in range(10)])
        log.append(topic, [Record(b"%d" % i) for i in range(10, 20)])
        for offset, limit in [(0, 1), (0, 10), (5, 10), (9, 2), (15, 100)]:
            got = log.read(topic, 0, offset, max_records=limit)
            assert [r.offset for r in got] == list(range(offset, min(offset + limit, 20)))

    def test_read_past_the_end_returns_nothing(self, log: EventLog) -> None:
        topic = self.topic(log)
        assert log.read(topic, 0, 0) == []
        log.append(topic, [Record(b"a")])
        assert log.read(topic, 0, 1) == []

    def test_read_rejects_bad_arguments(self, log: EventLog) -> None:
        topic = self.topic(log, 2)
        with pytest.raises(InvalidInput, match="-1"):
            log.read(topic, 0, -1)
        with pytest.raises(InvalidInput, match="Partition 2"):
            log.read(topic, 2, 0)
        with pytest.raises(InvalidInput, match="max_records"):
            log.read(topic, 0, 0, max_records=0)

    # -- read_columns ------------------------------------------------------------------------
    def _odd_batches(self, log: EventLog, topic: str) -> None:
        """Appends of every header shape the log meets: the envelope (same names, a constant and
        a varying value), no headers, repeated and empty names, binary values, null keys and
        values, and a two-partition append (a transaction: marker offsets between batches)."""
        env = [
            Record(
                b"v%d" % i,
                key=b"acct-%d" % (i % 3),
                headers=(("ce_id", b"id-%d" % i), ("ce_type", b"Paid"), ("ce_source", b"\xff")),
                partition=0,
            )
            for i in range(7)
        ]
        log.append(topic, env)
        log.append(topic, [Record(None, partition=0), Record(b"", key=b"", partition=0)])
        log.append(
            topic,
            [
                Record(b"r", headers=(("x", b"1"), ("x", b"2"), ("", b"")), partition=0),
                Record(b"s", key=b"\x00\x01", headers=(("y", bytes(range(256))),), partition=0),
            ],
        )
        log.append(topic, [Record(b"a", partition=0), Record(b"b", partition=1)])
        log.append(topic, env[:3])

    def test_read_columns_returns_what_read_returns(self, log: EventLog) -> None:
        topic = self.topic(log, 2)
        self._odd_batches(log, topic)
        for part in (0, 1):
            expected = read_all(log, topic, part)
            for limit in (1, 2, 5, 1000):
                chunks = columns_all(log, topic, part, limit=limit)
                for c in chunks:
                    check_columns(c, topic, part)
                    assert len(c) <= limit
                got = [r for c in chunks for r in c.records()]
                assert got == expected, (part, limit)
            for offset in range(expected[-1].offset + 2):
                got = [r for c in columns_all(log, topic, part, start=offset) for r in c.records()]
                assert got == [r for r in expected if r.offset >= offset], offset

    def test_read_columns_starts_at_the_beginning_offset(self, log: EventLog) -> None:
        topic = self.topic(log)
        log.append(topic, [Record(b"%d" % i) for i in range(5)])
        log.append(topic, [Record(b"%d" % i) for i in range(5, 9)])
        log.delete_records_before(topic, 0, 3)
        got = [r for c in columns_all(log, topic) for r in c.records()]
        assert [r.offset for r in got] == list(range(3, 9))
        assert [r.value for r in got] == [b"%d" % i for i in range(3, 9)]

    def test_read_columns_past_the_end_and_bad_arguments(self, log: EventLog) -> None:
        topic = self.topic(log, 2)
        assert len(log.read_columns(topic, 0, 0)) == 0
        log.append(topic, [Record(b"a", partition=0)])
        assert len(log.read_columns(topic, 0, 1)) == 0
        with pytest.raises(InvalidInput, match="-1"):
            log.read_columns(topic, 0, -1)
        with pytest.raises(InvalidInput, match="Partition 2"):
            log.read_columns(topic, 2, 0)
        with pytest.raises(InvalidInput, match="max_records"):
            log.read_columns(topic, 0, 0, max_records=0)

    # -- read_encoded (optional) -------------------------------------------------------------
    def test_read_encoded_holds_what_read_columns_returns(self, log: EventLog) -> None:
        topic = self.topic(log, 2)
        if log.read_encoded(topic, 0, 0) is None:
            return  # not offered (the port's default): readers use read_columns
        self._odd_batches(log, topic)
        log.delete_records_before(topic, 1, 1)
        checked = 0
        for part in (0, 1):
            end = log.end_offsets(topic)[part]
            for limit in (1, 2, 5, 1000):
                for offset in range(end + 1):
                    enc = log.read_encoded(topic, part, offset, limit)
                    cols = log.read_columns(topic, part, offset, limit)
                    if enc is None:  # allowed: these records are not stored so (a cold tier)
                        continue
                    checked += 1
                    assert len(enc) == len(cols)
                    assert enc.offsets == list(cols.offsets)
                    assert enc.columns().records() == cols.records(), (part, limit, offset)
                    n = len(enc)
                    for a, b in ((0, n), (1, n), (0, n - 1), (n // 2, n // 2 + 1)):
                        if 0 <= a <= b <= n:
                            got = enc.slice(a, b).columns().records()
                            assert got == cols.records()[a:b], (part, offset, a, b)
                    if n:
                        cut = cols.offsets[-1]
                        assert enc.below(cut).columns().records() == cols.below(cut).records()
        assert checked
        with pytest.raises(InvalidInput, match="-1"):
            log.read_encoded(topic, 0, -1)
        with pytest.raises(InvalidInput, match="max_records"):
            log.read_encoded(topic, 0, 0, max_records=0)

    def test_scan_yields_every_record_from_start(self, log: EventLog) -> None:
        topic = self.topic(log)
        for _ in range(5):
            log.append(topic, [Record(b"v")] * 7)
        assert [r.offset for r in log.scan(topic, 0, start=3, batch=4)] == list(range(3, 35))

    def test_beginning_offsets_start_at_zero(self, log: EventLog) -> None:
        topic = self.topic(log, 2)
        log.append(topic, [Record(b"a", partition=1)])
        assert log.beginning_offsets(topic) == {0: 0, 1: 0}
        assert log.end_offsets(topic) == {0: 0, 1: 1}

    def test_delete_records_before_raises_the_beginning_offset(
        self, log: EventLog, reopen: Reopen
    ) -> None:
        topic = self.topic(log, 2)
        log.append(topic, [Record(b"%d" % i, partition=0) for i in range(6)])  # one batch
        log.append(topic, [Record(b"%d" % i, partition=0) for i in range(6, 10)])
        log.append(topic, [Record(b"x", partition=1)])
        assert log.delete_records_before(topic, 0, 3) == 3  # straddles the first batch
        assert log.beginning_offsets(topic) == {0: 3, 1: 0}
        assert [r.offset for r in log.read(topic, 0, 0, 100)] == list(range(3, 10))
        assert [r.offset for r in read_all(log, topic, 0)] == list(range(3, 10))
        assert log.delete_records_before(topic, 0, 1) == 3  # never lowers the start
        assert log.delete_records_before(topic, 0, 7) == 7  # drops the first batch whole
        assert values(log.read(topic, 0, 0, 100)) == [b"7", b"8", b"9"]
        with pytest.raises(InvalidInput):
            log.delete_records_before(topic, 0, 11)
        with pytest.raises(InvalidInput):
            log.delete_records_before(topic, 2, 0)
        assert log.delete_records_before(topic, 0, 10) == 10  # everything
        assert log.read(topic, 0, 0, 100) == []
        assert log.end_offsets(topic) == {0: 10, 1: 1}
        assert log.append(topic, [Record(b"new", partition=0)])[0].offset == 10  # not reused
        log = reopen(log)
        assert log.beginning_offsets(topic) == {0: 10, 1: 0}
        assert values(read_all(log, topic, 0)) == [b"new"]
        assert values(read_all(log, topic, 1)) == [b"x"]

    # -- durability -------------------------------------------------------------------------------
    def test_records_offsets_and_config_survive_reopen(self, log: EventLog, reopen: Reopen) -> None:
        topic = unique()
        log.create_topic(topic, 2, {"retention.ms": "86400000"})  # a day: Kafka enforces it
        records = [
            Record(b"v%d" % i, key=b"k%d" % i, headers=(("h", b"%d" % i),)) for i in range(50)
        ]
        meta = log.append(topic, records)
        group = unique("group")
        log.commit_offsets(group, {TopicPartition(topic, 0): 3})
        before = {p: read_all(log, topic, p) for p in (0, 1)}
        log = reopen(log)
        assert log.topic(topic).partitions == 2
        assert dict(log.topic(topic).config)["retention.ms"] == "86400000"
        assert {p: read_all(log, topic, p) for p in (0, 1)} == before
        assert sum(len(v) for v in before.values()) == len(meta)
        assert log.committed(group, topic) == {0: 3}
        # The 50 records spanned both partitions: each got one marker offset after them.
        assert log.append(topic, [Record(b"next", partition=0)])[0].offset == len(before[0]) + 1

    def test_marker_offsets_follow_kafka_transactions(self, log: EventLog) -> None:
        """One partition: dense offsets. Several, or a transaction: one marker per partition."""
        topic = self.topic(log, 2)
        single = log.append(topic, [Record(b"a", partition=0), Record(b"b", partition=0)])
        assert [m.offset for m in single] == [0, 1]
        assert log.end_offsets(topic) == {0: 2, 1: 0}
        both = log.append(topic, [Record(b"c", partition=0), Record(b"d", partition=1)])
        assert [(m.partition, m.offset) for m in both] == [(0, 2), (1, 0)]
        assert log.end_offsets(topic) == {0: 4, 1: 2}
        with log.transaction(unique("txn")) as txn:
            txn.append(topic, [Record(b"e", partition=1)])
        assert log.end_offsets(topic) == {0: 4, 1: 4}
        nxt = log.append(topic, [Record(b"f", partition=1)])
        assert nxt[0].offset == 4
        assert [r.value for r in read_all(log, topic, 1)] == [b"d", b"e", b"f"]
        assert [r.offset for r in log.read(topic, 1, 1, 10)] == [2, 4]  # from a marker: next

    # -- idempotent producers ---------------------------------------------------------------------
    def test_idempotent_retry_is_stored_once_and_returns_the_original_metadata(
        self, log: EventLog
    ) -> None:
        topic = self.topic(log, 3)
        producer = unique("producer")
        batch = [Record(b"v%d" % i, key=b"k%d" % i) for i in range(20)]
        first = log.append(topic, batch, idempotence=IdempotenceKey(producer, 0))
        time.sleep(0.01)  # a re-append would get a later timestamp
        retry = log.append(topic, batch, idempotence=IdempotenceKey(producer, 0))
        assert retry == first
        markers = len({m.partition for m in first})  # a multi-partition append's markers
        assert sum(log.end_offsets(topic).values()) == 20 + markers
        second = log.append(topic, batch[:2], idempotence=IdempotenceKey(producer, 1))
        second_parts = {m.partition for m in second}
        markers += len(second_parts) if len(second_parts) > 1 else 0
        assert sum(log.end_offsets(topic).values()) == 22 + markers
        assert sum(len(read_all(log, topic, p)) for p in range(3)) == 22
        assert log.append(topic, batch[:2], idempotence=IdempotenceKey(producer, 1)) == second

    def test_idempotent_sequence_gap_raises(self, log: EventLog) -> None:
        topic = self.topic(log)
        producer = unique("producer")
        log.append(topic, [Record(b"a")], idempotence=IdempotenceKey(producer, 0))
        with pytest.raises(OutOfOrderSequence, match=producer):
            log.append(topic, [Record(b"b")], idempotence=IdempotenceKey(producer, 2))
        assert log.end_offsets(topic) == {0: 1}

    def test_idempotent_sequence_rewind_raises(self, log: EventLog) -> None:
        topic = self.topic(log)
        producer = unique("producer")
        for seq in range(3):
            log.append(topic, [Record(b"%d" % seq)], idempotence=IdempotenceKey(producer, seq))
        with pytest.raises(OutOfOrderSequence):
            log.append(topic, [Record(b"0")], idempotence=IdempotenceKey(producer, 0))
        assert log.end_offsets(topic) == {0: 3}

    def test_a_new_idempotent_producer_starts_at_sequence_zero(self, log: EventLog) -> None:
        topic = self.topic(log)
        with pytest.raises(OutOfOrderSequence):
            log.append(topic, [Record(b"a")], idempotence=IdempotenceKey(unique("p"), 1))
        assert log.end_offsets(topic) == {0: 0}

    def test_idempotence_is_per_producer_and_topic(self, log: EventLog) -> None:
        t1, t2 = self.topic(log), self.topic(log)
        p1, p2 = unique("producer"), unique("producer")
        for topic in (t1, t2):
            for producer in (p1, p2):
                log.append(topic, [Record(b"x")], idempotence=IdempotenceKey(producer, 0))
        assert log.end_offsets(t1) == log.end_offsets(t2) == {0: 2}

    def test_idempotence_state_survives_reopen(self, log: EventLog, reopen: Reopen) -> None:
        topic = self.topic(log)
        producer = unique("producer")
        first = log.append(topic, [Record(b"a")], idempotence=IdempotenceKey(producer, 0))
        log = reopen(log)
        assert log.append(topic, [Record(b"a")], idempotence=IdempotenceKey(producer, 0)) == first
        assert log.end_offsets(topic) == {0: 1}

    # -- transactions -----------------------------------------------------------------------------
    def test_commit_makes_appends_and_offsets_visible_together(self, log: EventLog) -> None:
        source, sink = self.topic(log), self.topic(log, 2)
        log.append(source, [Record(b"in%d" % i) for i in range(5)])
        group = unique("group")
        with log.transaction(unique("txn")) as txn:
            meta = txn.append(sink, [Record(b"out%d" % i, key=b"k%d" % i) for i in range(5)])
            txn.commit_offsets(group, {TopicPartition(source, 0): 5})
            assert read_all(log, sink, 0) + read_all(log, sink, 1) == []
            assert log.committed(group, source) == {}
        assert log.committed(group, source) == {0: 5}
        for m in meta:
            (stored,) = log.read(sink, m.partition, m.offset, 1)
            assert stored.offset == m.offset and stored.timestamp_ms == m.timestamp_ms
        assert sorted(v or b"" for p in (0, 1) for v in values(read_all(log, sink, p))) == [
            b"out%d" % i for i in range(5)
        ]

    def test_an_exception_in_the_block_aborts_appends_and_offsets(self, log: EventLog) -> None:
        topic = self.topic(log)
        group = unique("group")
        log.append(topic, [Record(b"before")])
        with pytest.raises(RuntimeError, match="boom"), log.transaction(unique("txn")) as txn:
            txn.append(topic, [Record(b"aborted")])
            txn.commit_offsets(group, {TopicPartition(topic, 0): 1})
            raise RuntimeError("boom")
        log.append(topic, [Record(b"after")])
        assert values(read_all(log, topic)) == [b"before", b"after"]
        assert log.committed(group, topic) == {}

    def test_explicit_abort_discards_everything(self, log: EventLog) -> None:
        topic = self.topic(log)
        group = unique("group")
        with log.transaction(unique("txn")) as txn:
            txn.append(topic, [Record(b"aborted")])
            txn.commit_offsets(group, {TopicPartition(topic, 0): 1})
            txn.abort()
        assert values(read_all(log, topic)) == []
        assert log.committed(group, topic) == {}

    def test_an_ended_transaction_cannot_be_used(self, log: EventLog) -> None:
        topic = self.topic(log)
        with log.transaction(unique("txn")) as txn:
            txn.append(topic, [Record(b"a")])
        with pytest.raises(HubError):
            txn.append(topic, [Record(b"b")])
        assert values(read_all(log, topic)) == [b"a"]

    def test_sequential_transactions_with_one_id_both_commit(self, log: EventLog) -> None:
        topic = self.topic(log)
        tid = unique("txn")
        for value in (b"a", b"b"):
            with log.transaction(tid) as txn:
                txn.append(topic, [Record(value)])
        assert values(read_all(log, topic)) == [b"a", b"b"]

    # -- consumer groups --------------------------------------------------------------------------
    def test_commit_offsets_and_read_them_back(self, log: EventLog) -> None:
        topic = self.topic(log, 3)
        group = unique("group")
        assert log.committed(group, topic) == {}
        log.commit_offsets(group, {TopicPartition(topic, 0): 4, TopicPartition(topic, 2): 7})
        assert log.committed(group, topic) == {0: 4, 2: 7}
        log.commit_offsets(group, {TopicPartition(topic, 0): 9})
        assert log.committed(group, topic) == {0: 9, 2: 7}
        assert log.committed(unique("group"), topic) == {}

    def test_commit_offsets_rejects_bad_input(self, log: EventLog) -> None:
        topic = self.topic(log, 1)
        group = unique("group")
        with pytest.raises(InvalidInput):
            log.commit_offsets(group, {TopicPartition(topic, 0): -1})
        with pytest.raises(InvalidInput):
            log.commit_offsets(group, {TopicPartition(topic, 1): 0})
        with pytest.raises(TopicNotFound):
            log.commit_offsets(group, {TopicPartition(unique("missing"), 0): 0})
        assert log.committed(group, topic) == {}

    # -- the Consumer helper ----------------------------------------------------------------------
    def test_consumer_reads_every_partition_from_the_earliest(self, log: EventLog) -> None:
        topic = self.topic(log, 3)
        records = [Record(b"%d" % i, key=b"k%d" % i) for i in range(60)]
        log.append(topic, records)
        consumer = Consumer(log, unique("group"), [topic])
        got: list[StoredRecord] = []
        while batch := consumer.poll(max_records=7):
            assert len(batch) <= 7
            got += batch
        assert sorted(r.value or b"" for r in got) == sorted(r.value or b"" for r in records)
        assert consumer.positions() == {
            TopicPartition(topic, p): o for p, o in log.end_offsets(topic).items()
        }

    def test_consumer_resumes_from_the_committed_offsets(self, log: EventLog) -> None:
        topic = self.topic(log)
        group = unique("group")
        log.append(topic, [Record(b"%d" % i) for i in range(10)])
        first = Consumer(log, group, [topic])
        assert values(first.poll(max_records=4)) == [b"0", b"1", b"2", b"3"]
        first.commit()
        assert log.committed(group, topic) == {0: 4}
        second = Consumer(log, group, [topic])
        assert values(second.poll()) == [b"%d" % i for i in range(4, 10)]

    def test_consumer_latest_skips_existing_records(self, log: EventLog) -> None:
        topic = self.topic(log)
        log.append(topic, [Record(b"old")])
        consumer = Consumer(log, unique("group"), [topic], auto_offset_reset="latest")
        assert consumer.poll() == []
        log.append(topic, [Record(b"new")])
        assert values(consumer.poll()) == [b"new"]

    def test_consumer_commits_inside_a_transaction(self, log: EventLog) -> None:
        source, sink = self.topic(log), self.topic(log)
        group = unique("group")
        log.append(source, [Record(b"a"), Record(b"b")])
        consumer = Consumer(log, group, [source])
        with log.transaction(unique("txn")) as txn:
            txn.append(sink, [Record((r.value or b"").upper()) for r in consumer.poll()])
            consumer.commit(txn)
        assert values(read_all(log, sink)) == [b"A", b"B"]
        assert log.committed(group, source) == {0: 2}


class FolderEventLogContract(EventLogContract):
    """The contract for a log kept in a folder: the subclass says how to open it
    (``open_log``); ``log`` and ``reopen`` open it in the test's folder, and every log a test
    opened is closed after it, then ``check_folder`` runs."""

    def open_log(self, folder: Path) -> EventLog:
        raise NotImplementedError("the adapter's test class says how to open its log")

    def check_folder(self, folder: Path) -> None:
        """What must hold of the folder after a test, its logs closed (nothing by default)."""

    @pytest.fixture
    def log(self, tmp_path: Path) -> Iterator[EventLog]:
        self._opened: list[EventLog] = []
        log = self.open_log(tmp_path)
        self._opened.append(log)
        yield log
        for opened in self._opened:
            opened.close()
        self.check_folder(tmp_path)

    @pytest.fixture
    def reopen(self, tmp_path: Path) -> Reopen:
        def reopen(log: EventLog) -> EventLog:
            log.close()
            fresh = self.open_log(tmp_path)
            self._opened.append(fresh)
            return fresh

        return reopen
