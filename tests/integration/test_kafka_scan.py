"""Reads and scans on Kafka from offsets that retention deleted (real broker, ``infra/kafka.sh``).

A read below a partition's start used to rely on librdkafka's own offset reset ("Offset out of
range", then ``auto.offset.reset``), which moves the position without telling the caller; the
retention differential saw such scans come back short. The reader now never lets librdkafka
move it (``auto.offset.reset=error``): the adapter restarts the read at the partition's start
itself, and a scan goes by the position each read reached, so it never ends before the end
offset (or the end of what is committed).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator

import pytest

from adapters.kafka_log import KafkaEventLog
from core.ports.eventlog import Record
from tests.contract.test_eventlog_kafka import kafka_bootstrap

pytestmark = pytest.mark.integration


@pytest.fixture
def log() -> Iterator[KafkaEventLog]:
    kafka = KafkaEventLog(kafka_bootstrap(), topic_prefix=f"s{uuid.uuid4().hex[:10]}.")
    yield kafka
    kafka.close()


def _fill(log: KafkaEventLog, topic: str, n: int = 10) -> None:
    log.create_topic(topic, 2)
    for p in (0, 1):
        log.append(topic, [Record(b"v%d" % i, partition=p) for i in range(n)])


def test_reads_and_scans_below_the_start_begin_at_the_start_without_a_silent_reset(
    log: KafkaEventLog, caplog: pytest.LogCaptureFixture
) -> None:
    _fill(log, "t.raw")
    # Warm the shared reader on both partitions (fetch positions, cached log starts), as a
    # follower does before retention runs.
    for p in (0, 1):
        assert [r.offset for r in log.read("t.raw", p, 0, 3)] == [0, 1, 2]
        assert [r.offset for r in log.read("t.raw", p, 8, 1)] == [8]
    assert log.delete_records_before("t.raw", 0, 6) == 6
    assert log.delete_records_before("t.raw", 1, 4) == 4
    caplog.set_level(logging.DEBUG, logger="hub.kafka")
    for p, first in ((0, 6), (1, 4)):
        for start in (0, 2, first - 1, first):
            assert [r.offset for r in log.scan("t.raw", p, start)] == list(range(first, 10))
            assert [r.offset for r in log.read("t.raw", p, start, 100)] == list(range(first, 10))
            assert [r.value for r in log.read("t.raw", p, start, 2)] == [
                b"v%d" % first,
                b"v%d" % (first + 1),
            ]
        assert [r.offset for r in log.scan("t.raw", p, 0, batch=1)] == list(range(first, 10))
    # librdkafka logs every position it moves by itself ("offset reset ... Offset out of range");
    # the adapter must not leave that to it.
    resets = [r.getMessage() for r in caplog.records if "offset reset" in r.getMessage()]
    assert resets == []


def test_a_scan_goes_on_when_records_are_deleted_under_it(log: KafkaEventLog) -> None:
    _fill(log, "t.raw", 20)
    scan = log.scan("t.raw", 0, 0, batch=3)
    got = [next(scan).offset for _ in range(3)]  # the first read: offsets 0..2
    log.delete_records_before("t.raw", 0, 12)  # the scan's next offset (3) is gone
    got += [r.offset for r in scan]
    assert got == [0, 1, 2, *range(12, 20)]


def test_a_scan_reads_past_offsets_taken_by_markers_and_aborted_records(
    log: KafkaEventLog,
) -> None:
    log.create_topic("t.raw", 2)
    log.append("t.raw", [Record(b"a", partition=0)])
    with pytest.raises(RuntimeError), log.transaction("tx-aborted") as txn:
        txn.append("t.raw", [Record(b"x%d" % i, partition=0) for i in range(50)])
        raise RuntimeError("abort")
    # Several partitions: one Kafka transaction, so a commit marker takes an offset too.
    log.append("t.raw", [Record(b"b", partition=0), Record(b"c", partition=1)])
    log.append("t.raw", [Record(b"d", partition=0)])
    values = [r.value for r in log.scan("t.raw", 0, 0, batch=1)]
    assert values == [b"a", b"b", b"d"]
    # From inside the aborted records: the read finds nothing there and goes on.
    assert [r.value for r in log.scan("t.raw", 0, 5, batch=2)] == [b"b", b"d"]
    assert log.read("t.raw", 0, 5, 1)[0].value == b"b"


def test_bad_scan_arguments_are_refused_before_any_read(log: KafkaEventLog) -> None:
    from core.errors import InvalidInput, TopicNotFound

    log.create_topic("t.raw", 1)
    with pytest.raises(InvalidInput, match="Partition 3 is out of range"):
        log.scan("t.raw", 3)
    with pytest.raises(InvalidInput, match="batch=0 is invalid"):
        log.scan("t.raw", 0, 0, batch=0)
    with pytest.raises(TopicNotFound):
        log.scan("t.nope", 0)
