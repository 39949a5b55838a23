"""The Kafka log's reader stays assigned between reads (issue 13, s21): a read from the offset
after the last record the previous read returned goes on from the records the consumer
fetched meanwhile, without a new assignment (a fold's catch-up read 10 ms a time, 2 ms now).

What must not change (real broker, ``infra/kafka.sh``): every committed record read exactly
once, in offset order, none of an aborted transaction, whatever mix of plain appends,
committed and aborted transactions and reads of other topics comes between two reads; a read
whose range holds only commit markers returns nothing without waiting; records deleted by this
log (``delete_records_before``) are not served from what the reader fetched before.
"""

from __future__ import annotations

import contextlib
import random
import time
import uuid
from collections.abc import Iterator

import pytest

from adapters.kafka_log import KafkaEventLog
from core.ports.eventlog import Record
from tests.contract.test_eventlog_kafka import kafka_bootstrap

pytestmark = pytest.mark.integration


@pytest.fixture
def log() -> Iterator[KafkaEventLog]:
    kafka = KafkaEventLog(kafka_bootstrap(), topic_prefix=f"k{uuid.uuid4().hex[:10]}.")
    yield kafka
    kafka.close()


def test_fold_style_reads_see_every_committed_record_once(log: KafkaEventLog) -> None:
    rng = random.Random(13)
    for topic in ("a", "b"):
        log.create_topic(topic, 1)
    committed: dict[str, list[bytes]] = {"a": [], "b": []}
    got: dict[str, list[bytes]] = {"a": [], "b": []}
    position = {"a": 0, "b": 0}
    for step in range(60):
        topic = rng.choice("ab")
        kind = rng.randrange(3)
        values = [f"{topic}{step}.{i}".encode() for i in range(rng.randint(1, 3))]
        if kind == 0:
            log.append(topic, [Record(v) for v in values])
            committed[topic] += values
        else:
            with contextlib.suppress(RuntimeError), log.transaction(f"t{topic}") as txn:
                txn.append(topic, [Record(v) for v in values])
                if kind == 2:
                    raise RuntimeError("abort")
            if kind == 1:
                committed[topic] += values
        for t in rng.sample("ab", rng.randint(1, 2)):  # reads interleave across topics
            end = log.end_offsets(t)[0]
            while position[t] < end:
                chunk = log.read(t, 0, position[t], rng.choice((1, 2, 100)))
                if not chunk:
                    break  # only markers (or aborted records) left below the end
                got[t] += [r.value or b"" for r in chunk]
                position[t] = chunk[-1].offset + 1  # as ``TopicFold`` goes on
    for t in ("a", "b"):
        end = log.end_offsets(t)[0]
        while True:
            chunk = log.read(t, 0, position[t], 100)
            if not chunk:
                break
            got[t] += [r.value or b"" for r in chunk]
            position[t] = chunk[-1].offset + 1
        assert got[t] == committed[t], t
        assert position[t] <= end


def test_a_read_of_markers_only_returns_nothing_at_once(log: KafkaEventLog) -> None:
    log.create_topic("m", 1)
    with log.transaction("tm") as txn:
        txn.append("m", [Record(b"x")])
    (rec,) = log.read("m", 0, 0, 100)
    started = time.monotonic()
    assert log.read("m", 0, rec.offset + 1, 100) == []  # the commit marker only
    assert time.monotonic() - started < 5  # it waited for the read timeout before the fix


def test_records_deleted_by_this_log_are_not_served_from_the_kept_reader(
    log: KafkaEventLog,
) -> None:
    log.create_topic("d", 1)
    log.append("d", [Record(b"v%d" % i) for i in range(20)])
    first = log.read("d", 0, 0, 3)  # the reader fetched ahead and stays assigned
    assert [r.offset for r in first] == [0, 1, 2]
    log.delete_records_before("d", 0, 12)
    assert [r.offset for r in log.read("d", 0, 3, 100)] == list(range(12, 20))
