"""Red team s23 (parity of the footprints): a genuine record copied again into its partition.

Embedded, the log's MAC chain binds every batch to its offsets: a row copied again into the
SQLite log fails the chain (``LogTampered``) and ``hub ledger verify``. On Kafka, the record
MAC cannot bind the offset (the broker assigns it), so anyone with produce access to the broker
can copy a genuine record, its timestamp and MAC included, to a later offset of the same
partition: it read as acme's own, acme's ``latest_quotes`` counted the quote twice, and
``hub ledger verify`` passed (the ledger gave the copy a leaf like any record). Now verify's
step 5 on Kafka names the copy and the original's offset (``adapters.kafka_log.replays``), and
since s24 the readers skip the copy (``adapters.kafka_log.sequence``): the view counts it once.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from confluent_kafka import Consumer, Producer
from confluent_kafka import TopicPartition as KafkaTP

from core.events import OutgoingEvent, tenant_of
from core.ports.policy import Principal
from hub.bootstrap import Hub
from ledger.verify import verify_ledger
from tests.adversarial._api import QUOTE
from tests.adversarial._kafka_hub import partition_ended

pytestmark = pytest.mark.integration

AMY = Principal("amy", frozenset({"analyst"}), tenant="acme")


def _stored(kafka: str, topic: str, part: int) -> list[tuple[Any, ...]]:
    """A partition as the broker holds it: value, key, headers, timestamp (which the MAC binds:
    a replay keeps it)."""
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
    c.assign([KafkaTP(topic, part, 0)])
    out: list[tuple[Any, ...]] = []
    try:
        while msgs := c.consume(100, 5.0):
            out += [
                (m.value(), m.key(), list(m.headers() or []), m.timestamp()[1])
                for m in msgs
                if m.error() is None
            ]
            if any(partition_ended(m) for m in msgs):
                break
    finally:
        c.close()
    return out


def _replay_last(kafka: str, wire: str, part: int) -> None:
    value, key, headers, ts = _stored(kafka, wire, part)[-1]
    producer = Producer({"bootstrap.servers": kafka, "log_level": 0})
    producer.produce(wire, value=value, key=key, headers=headers, partition=part, timestamp=ts)
    assert producer.flush(30) == 0


def _acme_quote(h: Hub) -> int:
    """acme publishes one quote, folded into latest_quotes; its partition."""
    meta = h.publisher.publish(
        "quotes", [OutgoingEvent(value=dict(QUOTE), key="AAPL")], "p", "acme"
    )
    h.projections.runner("quotes").catch_up()
    return meta[0].partition


def _count(h: Hub) -> Any:
    return h.projections.query(h.policy, AMY, "SELECT quotes FROM latest_quotes").to_pylist()


def test_a_replayed_data_record_fails_ledger_verify_naming_the_copy(
    kafka_hub: tuple[Hub, str], kafka: str
) -> None:
    h, prefix = kafka_hub
    part = _acme_quote(h)
    h.ledger.sync()
    assert verify_ledger(h.ledger).ok
    _replay_last(kafka, prefix + "quotes", part)
    (original,) = h.log.read("quotes", part, 0, 10)  # the readers skip the copy (s24)
    assert tenant_of(original) == "acme"
    copy_at = h.log.end_offsets("quotes")[part] - 1
    h.ledger.sync()
    report = verify_ledger(h.ledger)
    assert not report.ok
    (problem,) = [p for p in report.problems if p.offset == copy_at]
    assert problem.topic == "quotes" and problem.partition == part
    assert f"same valid hub MAC as the record at offset {original.offset}" in problem.what


def test_a_replayed_principal_record_fails_ledger_verify(
    kafka_hub: tuple[Hub, str], kafka: str
) -> None:
    h, prefix = kafka_hub
    h.keys.create(["analyst"], principal="ann")
    h.ledger.sync()
    assert verify_ledger(h.ledger).ok
    _replay_last(kafka, prefix + "hub.principals", 0)
    h.ledger.sync()
    report = verify_ledger(h.ledger)
    assert not report.ok
    assert any(
        p.topic == "hub.principals" and "copied again into its partition" in p.what
        for p in report.problems
    ), [p.what for p in report.problems]


def test_a_replayed_quote_is_not_counted_twice_in_acmes_view(
    kafka_hub: tuple[Hub, str], kafka: str
) -> None:
    h, prefix = kafka_hub
    part = _acme_quote(h)
    assert _count(h) == [{"quotes": 1}]
    _replay_last(kafka, prefix + "quotes", part)
    h.ledger.sync()
    h.projections.runner("quotes").catch_up()
    assert _count(h) == [{"quotes": 1}]
