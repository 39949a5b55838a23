"""Red team s24 (kafkareplay24): a genuine Kafka record copied again into its partition is
never counted by the hub's readers.

Session 23 left it open: the record MAC cannot bind the broker-assigned offset, so a broker
producer's copy of a genuine record (timestamp and MAC kept) read as the hub's own and the
views folded it until `hub ledger verify` ran. Now every record the hub writes carries a hub
sequence under its MAC (writer, number; ``adapters.kafka_log.sequence``) and the readers skip a
record whose number is not above its writer's last in that partition: views, the ledger's sync
and everything else that reads through the adapter. The copy is counted
(``hub_log_replays_skipped_total``) and verify still names it.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer
from confluent_kafka import TopicPartition as KafkaTP

from core.events import OutgoingEvent
from core.ports.policy import Principal
from hub.bootstrap import Hub
from ledger.verify import verify_ledger
from tests.adversarial._api import QUOTE
from tests.adversarial._kafka_hub import partition_ended

pytestmark = pytest.mark.integration

AMY = Principal("amy", frozenset({"analyst"}), tenant="acme")


def _stored(kafka: str, topic: str, part: int) -> list[tuple[Any, ...]]:
    """A partition as the broker holds it: offset, value, key, headers, timestamp."""
    c = Consumer(
        {
            "bootstrap.servers": kafka,
            "group.id": f"x-{uuid.uuid4().hex}",
            "isolation.level": "read_committed",
            # the end of the partition (its last stable offset) ends the read: every record
            # wanted was acknowledged, and is readable, before it starts
            "enable.partition.eof": True,
            "log_level": 0,
        }
    )
    c.assign([KafkaTP(topic, part, OFFSET_BEGINNING)])
    out: list[tuple[Any, ...]] = []
    try:
        while msgs := c.consume(100, 5.0):
            out += [
                (m.offset(), m.value(), m.key(), list(m.headers() or []), m.timestamp()[1])
                for m in msgs
                if m.error() is None
            ]
            if any(partition_ended(m) for m in msgs):
                break
    finally:
        c.close()
    return out


def _copy(kafka: str, wire: str, record: tuple[Any, ...], part: int) -> None:
    """A broker producer copies ``record`` (as ``_stored`` gives it) into ``part``."""
    _, value, key, headers, ts = record
    producer = Producer({"bootstrap.servers": kafka, "log_level": 0})
    producer.produce(wire, value=value, key=key, headers=headers, partition=part, timestamp=ts)
    assert producer.flush(30) == 0


def _quote(h: Hub, symbol: str = "AAPL") -> int:
    meta = h.publisher.publish(
        "quotes", [OutgoingEvent(value={**QUOTE, "instrument": symbol}, key=symbol)], "p", "acme"
    )
    return meta[0].partition


def _quotes(h: Hub) -> Any:
    h.projections.runner("quotes").catch_up()
    return h.projections.query(
        h.policy, AMY, "SELECT instrument, quotes FROM latest_quotes ORDER BY instrument"
    ).to_pylist()


def _skipped(h: Hub, topic: str) -> float:
    value = h.metrics.registry.get_sample_value("hub_log_replays_skipped_total", {"topic": topic})
    return value or 0.0


def _named_in_verify(h: Hub, topic: str, part: int, offset: int) -> bool:
    h.ledger.sync()
    report = verify_ledger(h.ledger)
    return not report.ok and any(
        p.topic == topic
        and p.partition == part
        and p.offset == offset
        and "copied again into its partition" in p.what
        for p in report.problems
    )


def test_a_replay_of_an_older_quote_much_later_is_not_counted(
    kafka_hub: tuple[Hub, str], kafka: str
) -> None:
    h, prefix = kafka_hub
    wire = prefix + "quotes"
    part = _quote(h, "AAPL")
    first = _stored(kafka, wire, part)[-1]
    for _ in range(30):  # much later: the partition went on
        assert _quote(h, "AAPL") == part
    assert _quotes(h) == [{"instrument": "AAPL", "quotes": 31}]
    _copy(kafka, wire, first, part)
    assert _quotes(h) == [{"instrument": "AAPL", "quotes": 31}]
    assert _skipped(h, "quotes") == 1
    copy_at = _stored(kafka, wire, part)[-1][0]
    assert _named_in_verify(h, "quotes", part, copy_at)


def test_a_replay_read_by_a_reader_that_starts_past_the_original_is_skipped(
    kafka_hub: tuple[Hub, str], kafka: str
) -> None:
    """A reader that begins after the original (a projection resuming from its offsets, a new
    process) learns the partition's sequences below its start first."""
    h, prefix = kafka_hub
    wire = prefix + "quotes"
    part = _quote(h)
    original = _stored(kafka, wire, part)[-1]
    _quote(h)
    _copy(kafka, wire, original, part)
    start = original[0] + 1
    read = h.log.read("quotes", part, start, 100)
    assert [r.offset for r in read] == [start]  # the second quote; not the copy
    assert all(name != "__hub.seq" for r in read for name, _ in r.headers)


def test_a_replay_into_another_partition_opens_nothing_for_acme(
    kafka_hub: tuple[Hub, str], kafka: str
) -> None:
    """Already refused before sequences: the MAC binds the partition, so the copy reads as a
    plain producer's record (tenant ``default``), not acme's."""
    h, prefix = kafka_hub
    wire = prefix + "quotes"
    part = _quote(h)
    assert _quotes(h) == [{"instrument": "AAPL", "quotes": 1}]
    other = (part + 1) % h.log.topic("quotes").partitions
    assert other != part
    _copy(kafka, wire, _stored(kafka, wire, part)[-1], other)
    assert _quotes(h) == [{"instrument": "AAPL", "quotes": 1}]


def test_a_replay_after_retention_cut_the_original_is_not_counted(
    kafka_hub: tuple[Hub, str], kafka: str
) -> None:
    h, prefix = kafka_hub
    wire = prefix + "quotes"
    part = _quote(h)
    original = _stored(kafka, wire, part)[-1]
    assert _quote(h) == part  # same key, same partition
    assert _quotes(h) == [{"instrument": "AAPL", "quotes": 2}]
    h.log.delete_records_before("quotes", part, original[0] + 1)  # retention cuts the head
    _copy(kafka, wire, original, part)
    assert _quotes(h) == [{"instrument": "AAPL", "quotes": 2}]
    # a reader of the partition from its new start skips it too: the writer's later record
    # is still there (and so is what this process read before the cut)
    assert [r.value for r in h.log.read("quotes", part, 0, 100)] == [
        _stored(kafka, wire, part)[0][1]
    ]
    assert _skipped(h, "quotes") >= 1


def test_a_replayed_hub_record_is_not_read_again(kafka_hub: tuple[Hub, str], kafka: str) -> None:
    """The hub's own topics too: a copy of a ``hub.principals`` record is skipped."""
    h, prefix = kafka_hub
    wire = prefix + "hub.principals"
    h.keys.create(["analyst"], principal="ann")
    before = h.log.read("hub.principals", 0, 0, 1000)
    _copy(kafka, wire, _stored(kafka, wire, 0)[-1], 0)
    after = h.log.read("hub.principals", 0, 0, 1000)
    assert [r.offset for r in after] == [r.offset for r in before]
    assert _skipped(h, "hub.principals") == 1


def test_a_forged_sequence_does_not_hide_the_hubs_later_records(
    kafka_hub: tuple[Hub, str], kafka: str
) -> None:
    """A broker producer cannot spend the hub's sequence numbers: a record with the hub's
    writer and a huge number, but no valid MAC, changes no reader's state, and the hub's next
    quote counts."""
    h, prefix = kafka_hub
    wire = prefix + "quotes"
    part = _quote(h)
    offset, value, key, headers, ts = _stored(kafka, wire, part)[-1]
    names = [n for n, _ in headers]
    seq = dict(headers)["__hub.seq"]
    forged = seq[:16] + (2**62).to_bytes(8, "big")
    bad = [(n, forged if n == "__hub.seq" else v) for n, v in headers]  # its MAC now fails
    assert names[-1] == "__hub.mac"
    _copy(kafka, wire, (offset, value, key, bad, ts), part)
    assert _quote(h) == part
    assert _quotes(h) == [{"instrument": "AAPL", "quotes": 2}]
    assert _skipped(h, "quotes") == 0
