"""``KafkaEventLog.append_columns`` on a one-partition topic (every hub publish): the batch is
produced from its columns as ONE record batch, and stores exactly what ``append`` of its
records stores (keys, values, headers, timestamps, offsets, metadata); what ``append`` refuses
it refuses, with nothing stored. Runs against the broker of ``infra/kafka.sh``."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from adapters.kafka_log import KafkaEventLog
from core.errors import DuplicateEnvelopeHeader, InvalidInput, PayloadTooLarge
from core.ports.eventlog import AppendedMetadata, ColumnBatch, StoredRecord
from tests.contract.test_eventlog_kafka import kafka_bootstrap
from tests.unit.native_module import native_module

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def log() -> Iterator[KafkaEventLog]:
    with KafkaEventLog(kafka_bootstrap(), topic_prefix=f"c{uuid.uuid4().hex[:8]}.") as kafka:
        yield kafka


def _batch(n: int, timestamp_ms: int | None) -> ColumnBatch:
    return ColumnBatch(
        [None if i % 7 == 3 else b"acct-%d" % (i % 11) for i in range(n)],
        [None if i == 5 else b"value-%d" % i for i in range(n)],
        ("ce_type", "ce_id", "x", "same", "x"),
        (b"trade", [b"id-%d" % i for i in range(n)], b"1", [b"s"] * n, b"2"),
        timestamp_ms,
    )


def _stored(log: KafkaEventLog, topic: str) -> list[StoredRecord]:
    return list(log.scan(topic, 0))


def _columns_only(log: KafkaEventLog, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("append_columns went through append")

    monkeypatch.setattr(log, "append", refuse)


@pytest.mark.parametrize("timestamp_ms", [1_700_000_000_123, None])
def test_a_column_batch_is_stored_as_append_stores_its_records(
    log: KafkaEventLog, monkeypatch: pytest.MonkeyPatch, timestamp_ms: int | None
) -> None:
    by_records, by_columns = (f"t{uuid.uuid4().hex[:8]}" for _ in range(2))
    for topic in (by_records, by_columns):
        log.create_topic(topic, 1)
    log.append(by_records, [_batch(3, 1).records()[0]])  # both start past offset 0
    log.append(by_columns, [_batch(3, 1).records()[0]])
    batch = _batch(300, timestamp_ms)
    meta = log.append(by_records, batch.records())
    with monkeypatch.context() as m:
        _columns_only(log, m)
        got = log.append_columns(by_columns, batch)
    assert [(m.topic, m.partition, m.offset) for m in got] == [
        (by_columns, 0, i) for i in range(1, 301)
    ]
    a, b = _stored(log, by_records), _stored(log, by_columns)
    assert [(r.offset, r.key, r.value, r.headers) for r in b] == [
        (r.offset, r.key, r.value, r.headers) for r in a
    ]
    assert [m.timestamp_ms for m in got] == [r.timestamp_ms for r in b[1:]]
    if timestamp_ms is not None:
        assert [m.timestamp_ms for m in got] == [m.timestamp_ms for m in meta]
        assert {r.timestamp_ms for r in b[1:]} == {timestamp_ms}
    else:  # the append's time, one for the whole batch, as append stamps its records
        assert len({r.timestamp_ms for r in b[1:]}) == 1


def test_a_batch_without_headers_and_an_empty_one(
    log: KafkaEventLog, monkeypatch: pytest.MonkeyPatch
) -> None:
    topic = f"t{uuid.uuid4().hex[:8]}"
    log.create_topic(topic, 1)
    assert log.append_columns(topic, ColumnBatch([], [])) == []
    with monkeypatch.context() as m:
        _columns_only(log, m)
        log.append_columns(topic, ColumnBatch([b"k", None], [b"a", b"b"]))
    assert [(r.key, r.value, r.headers) for r in _stored(log, topic)] == [
        (b"k", b"a", ()),
        (None, b"b", ()),
    ]


def test_what_append_refuses_is_refused_and_nothing_is_stored(log: KafkaEventLog) -> None:
    topic = f"t{uuid.uuid4().hex[:8]}"
    log.create_topic(topic, 1)
    twice = ColumnBatch([None], [b"v"], ("ce_tenant", "ce_tenant"), (b"acme", b"globex"))
    with pytest.raises(DuplicateEnvelopeHeader):
        log.append_columns(topic, twice)
    reserved = ColumnBatch([None], [b"v"], ("__hub.idem",), (b"0:me",))
    with pytest.raises(InvalidInput, match="reserved"):
        log.append_columns(topic, reserved)
    text = ColumnBatch([None, None], [b"v", "text"])  # type: ignore[list-item]
    with pytest.raises(InvalidInput, match="Record 1"):
        log.append_columns(topic, text)
    with pytest.raises(InvalidInput, match="ColumnBatch"):
        log.append_columns(topic, [b"v"])  # type: ignore[arg-type]
    assert log.end_offsets(topic) == {0: 0}


class _Fickle(list):  # type: ignore[type-arg]
    """A key column that answers bytes when read first and text afterwards."""

    def __init__(self, items: list[bytes]) -> None:
        super().__init__(items)
        self.reads = 0

    def __iter__(self):
        self.reads += 1
        if self.reads == 1:
            return super().__iter__()
        return iter([b.decode() + "-changed" for b in list.__iter__(self)])


def test_what_is_checked_is_what_is_produced(log: KafkaEventLog) -> None:
    topic = f"t{uuid.uuid4().hex[:8]}"
    log.create_topic(topic, 1)
    keys = _Fickle([b"a", b"b"])
    log.append_columns(topic, ColumnBatch(keys, [b"1", b"2"]))
    assert [r.key for r in _stored(log, topic)] == [b"a", b"b"]


class _FailsAt:
    """The log's real producer, whose ``produce`` refuses the ``at``-th record as librdkafka
    does when its local queue is full (``BufferError``): a failure midway through a batch."""

    def __init__(self, producer: Any, at: int) -> None:
        self._producer, self._at, self.calls = producer, at, 0

    def produce(self, *args: Any, **kwargs: Any) -> None:
        self.calls += 1
        if self.calls == self._at:
            raise BufferError("Local: Queue full")
        self._producer.produce(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._producer, name)

    def __len__(self) -> int:
        return len(self._producer)


@pytest.mark.parametrize("via", ["columns", "records"])
def test_a_produce_failure_midway_fails_the_whole_batch_and_queues_nothing(
    log: KafkaEventLog, monkeypatch: pytest.MonkeyPatch, via: str
) -> None:
    """Only the first and last record of a batch carry a delivery report: a batch refused
    midway must still raise and leave none of its records to leave with a later flush."""
    topic = f"t{uuid.uuid4().hex[:8]}"
    log.create_topic(topic, 1)
    batch = _batch(2000, 1_700_000_000_123)
    real = log._plain_producer()
    failing = _FailsAt(real, at=1000)
    with monkeypatch.context() as m:
        m.setattr(log, "_plain_producer", lambda: failing)
        with pytest.raises(PayloadTooLarge, match="2000 records"):
            if via == "columns":
                log.append_columns(topic, batch)
            else:
                log.append(topic, batch.records())
    assert failing.calls == 1000
    # purged: a later flush of that producer sends none of the refused batch's records
    real.flush(10)
    assert len(real) == 0
    assert log.end_offsets(topic) == {0: 0}
    after = log.append_columns(topic, _batch(3, 1_700_000_000_456))  # a fresh producer
    assert [m.offset for m in after] == [0, 1, 2]
    assert [r.value for r in _stored(log, topic)] == [b"value-0", b"value-1", b"value-2"]


@pytest.mark.parametrize("n", [1, 2, 3, 2000])
def test_reports_of_first_and_last_give_every_records_metadata(log: KafkaEventLog, n: int) -> None:
    topic = f"t{uuid.uuid4().hex[:8]}"
    log.create_topic(topic, 1)
    log.append_columns(topic, _batch(2, 1_700_000_000_001))
    got = log.append_columns(topic, _batch(n, 1_700_000_000_123))
    assert [(m.partition, m.offset, m.timestamp_ms) for m in got] == [
        (0, 2 + i, 1_700_000_000_123) for i in range(n)
    ]
    stored = _stored(log, topic)[2:]
    assert [(r.offset, r.value) for r in stored] == [
        (2 + i, None if i == 5 else b"value-%d" % i) for i in range(n)
    ]


def test_the_answer_is_columns_that_build_the_stored_records_metadata(
    log: KafkaEventLog,
) -> None:
    """The answer is where the records landed, as columns (no ``RecordMetadata`` per record
    until one is read); what it builds is what the broker stored."""
    topic = f"t{uuid.uuid4().hex[:8]}"
    log.create_topic(topic, 1)
    log.append_columns(topic, _batch(3, 1_700_000_000_001))
    got = log.append_columns(topic, _batch(500, 1_700_000_000_777))
    assert isinstance(got, AppendedMetadata) and got.parts == ((0, 3, None),)
    assert len(got) == 500 and got.timestamps == [1_700_000_000_777] * 500
    stored = _stored(log, topic)[3:]
    assert [(m.topic, m.partition, m.offset, m.timestamp_ms) for m in got] == [
        (topic, 0, r.offset, r.timestamp_ms) for r in stored
    ]
    assert got == AppendedMetadata(topic, got.timestamps, got.parts).as_list()  # the reference


@pytest.mark.parametrize("n", [1, 2, 300])
def test_the_native_produce_loop_stores_what_the_reference_stores(
    monkeypatch: pytest.MonkeyPatch, n: int
) -> None:
    # record MACs on (every hub log): the same keys, values and headers byte for byte, and a
    # valid MAC last (it binds the topic, so the two topics' MACs differ), whether
    # hub_native.produce_columns or batch.produce_columns_py produced them
    from adapters.kafka_log import batch as kbatch

    native_module().produce_columns  # noqa: B018 - skips loudly where it is not built
    stored = []
    with KafkaEventLog(
        kafka_bootstrap(), topic_prefix=f"c{uuid.uuid4().hex[:8]}.", mac_key=b"k" * 32
    ) as log:
        for native in (True, False):
            topic = f"t{uuid.uuid4().hex[:8]}"
            log.create_topic(topic, 1)
            with monkeypatch.context() as m:
                _columns_only(log, m)
                if not native:
                    m.setattr(kbatch, "_produce_columns", None)
                    m.setattr(kbatch, "_produce_columns_dict", None)
                log.append_columns(topic, _batch(n, 1_700_000_000_123))
            raw = list(log.scan_stored(topic, 0))  # as stored: the MAC header still on
            assert all(log.has_valid_mac(r) for r in raw)
            assert all(r.headers[-1][0] == "__hub.mac" for r in raw)
            stored.append([(r.offset, r.timestamp_ms, r.key, r.value, r.headers[:-2]) for r in raw])
    assert len(stored[0]) == n
    assert stored[0] == stored[1]


@pytest.mark.parametrize("n", [1, 2, 300])
def test_the_dict_loop_stores_what_the_list_loop_and_the_reference_store(
    monkeypatch: pytest.MonkeyPatch, n: int
) -> None:
    # distinct header names (every hub batch) on a data topic with the record MAC and the
    # tenant MAC on: the reused-dict loop, the list loop and batch.produce_columns_py store the
    # same records, all headers included but the record MAC and the tenant MAC (both bind the
    # namespace prefix since session 21, and each loop writes under its own), and both MACs
    # verify (the hub's reader, the Flink jobs' function)
    from adapters.kafka_log import batch as kbatch
    from core.tenant_mac import TMAC_HEADER, JobTenant

    native_module().produce_columns_dict  # noqa: B018 - skips loudly where it is not built
    ts = 1_700_000_000_123
    batch = ColumnBatch(
        [None if i % 7 == 3 else b"acct-%d" % (i % 11) for i in range(n)],
        [None if i == 5 else b"value-%d" % i for i in range(n)],
        ("ce_type", "ce_id", "x", "empty", "ce_tenant"),
        (
            b"trade",
            [b"id-%d" % i for i in range(n)],
            b"1",
            [b""] * n,
            [b"acme" if i % 2 else b"globex" for i in range(n)],
        ),
        ts,
    )
    topic = f"t{uuid.uuid4().hex[:8]}"  # one topic name, under three namespaces
    stored = []
    for loop in ("dict", "list", "reference"):
        prefix = f"c{uuid.uuid4().hex[:8]}."
        with KafkaEventLog(
            kafka_bootstrap(),
            topic_prefix=prefix,
            mac_key=b"k" * 32,
            tenant_key=b"t" * 32,
        ) as log:
            log.create_topic(topic, 1)
            with monkeypatch.context() as m:
                _columns_only(log, m)
                if loop != "dict":
                    m.setattr(kbatch, "_produce_columns_dict", None)
                if loop == "reference":
                    m.setattr(kbatch, "_produce_columns", None)
                log.append_columns(topic, batch)
            raw = list(log.scan_stored(topic, 0))
            assert all(log.has_valid_mac(r) for r in raw)
            assert [r.headers[-2][0] for r in raw] == [TMAC_HEADER] * n
            job = JobTenant({prefix: b"t" * 32})
            tenants = [
                job(dict(r.headers), r.key, r.value, 0, ts, topic, prefix, r.offset, "")
                for r in raw
            ]
            assert tenants == [("acme" if i % 2 else "globex") for i in range(n)]
            # each log's writer numbers its records (adapters.kafka_log.sequence) under the MACs
            assert [r.headers[-3][0] for r in raw] == ["__hub.seq"] * n
        stored.append([(r.offset, r.timestamp_ms, r.key, r.value, r.headers[:-3]) for r in raw])
    assert len(stored[0]) == n
    assert stored[0] == stored[1] == stored[2]
