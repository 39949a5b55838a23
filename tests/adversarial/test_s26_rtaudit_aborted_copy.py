"""Red team s26 (rtaudit): a record of a Kafka transaction the hub aborted, copied into its
partition by a broker producer, must not pass ``hub ledger verify`` as the hub's own.

A transaction's records are on the broker, sealed (record MAC, tenant MAC, hub sequence), from
the moment they are appended; an abort only writes a marker that hides them from
``read_committed`` readers. Anyone who may read the topic ``read_uncommitted`` and produce to it
can copy such a record, timestamp and MACs kept, to the end of its partition. The hub sequence
(session 24) refuses copies of records the readers have read; the aborted record was never
read, so when its writer wrote nothing later in that partition its number is above the
writer's last: the copy read as a new genuine event (a quote of acme's that the hub refused
to commit, counted by acme's view), and verify said OK.
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

pytestmark = pytest.mark.integration

AMY = Principal("amy", frozenset({"analyst"}), tenant="acme")


def _stored(kafka: str, topic: str, part: int, isolation: str) -> list[tuple[Any, ...]]:
    """A partition as a consumer of ``isolation`` reads it: offset, value, key, headers, time."""
    c = Consumer(
        {
            "bootstrap.servers": kafka,
            "group.id": f"x-{uuid.uuid4().hex}",
            "isolation.level": isolation,
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
    finally:
        c.close()
    return out


def _aborted_quote(h: Hub, symbol: str) -> int:
    """A quote of acme's appended in a transaction that then aborts (as ingest's does when a
    later append of the same transaction fails); its partition."""
    records = h.publisher.prepare(
        "quotes", [OutgoingEvent(value={**QUOTE, "instrument": symbol}, key=symbol)], "p", "acme"
    )
    part = -1
    with pytest.raises(RuntimeError), h.log.transaction("ingest:s26") as txn:
        part = txn.append("quotes", records)[0].partition
        raise RuntimeError("a later step of the transaction failed")
    return part


def _quotes(h: Hub) -> Any:
    h.projections.runner("quotes").catch_up()
    return h.projections.query(
        h.policy, AMY, "SELECT instrument, quotes FROM latest_quotes ORDER BY instrument"
    ).to_pylist()


def test_a_copy_of_an_aborted_record_is_named_by_verify(
    kafka_hub: tuple[Hub, str], kafka: str
) -> None:
    h, prefix = kafka_hub
    wire = prefix + "quotes"
    h.publisher.publish(
        "quotes", [OutgoingEvent(value={**QUOTE, "instrument": "MSFT"}, key="MSFT")], "p", "acme"
    )
    part = _aborted_quote(h, "AAPL")
    assert all(r[2] != b"AAPL" for r in _stored(kafka, wire, part, "read_committed"))
    aborted = [r for r in _stored(kafka, wire, part, "read_uncommitted") if r[2] == b"AAPL"]
    assert len(aborted) == 1  # the attacker reads it read_uncommitted
    _, value, key, headers, ts = aborted[0]
    producer = Producer({"bootstrap.servers": kafka, "log_level": 0})
    producer.produce(wire, value=value, key=key, headers=headers, partition=part, timestamp=ts)
    assert producer.flush(30) == 0
    copy_at = _stored(kafka, wire, part, "read_committed")[-1][0]

    h.ledger.sync()
    report = verify_ledger(h.ledger)
    assert not report.ok
    named = [p for p in report.problems if p.topic == "quotes" and p.offset == copy_at]
    assert named, [p.what for p in report.problems]
    assert "aborted" in named[0].what
    assert f"offset {aborted[0][0]}" in named[0].what


def test_an_honest_aborted_transaction_is_not_named(kafka_hub: tuple[Hub, str], kafka: str) -> None:
    """The aborted records themselves, and the writer's later records in the partition, are
    not copies."""
    h, _ = kafka_hub
    part = _aborted_quote(h, "AAPL")
    for _ in range(3):
        h.publisher.publish(
            "quotes",
            [OutgoingEvent(value={**QUOTE, "instrument": "AAPL"}, key="AAPL")],
            "p",
            "acme",
        )
    assert _quotes(h) == [{"instrument": "AAPL", "quotes": 3}]
    assert part >= 0
    h.ledger.sync()
    report = verify_ledger(h.ledger)
    assert report.ok, [p.what for p in report.problems]
