"""Red team s20 (HA / Kafka footprint): a broker producer replaying genuine hub records.

Held attacks, kept as regression tests (real Kafka): a genuine issuance record of a key copied
again into ``hub.principals`` after the key was revoked (a same-partition replay, which the
record MAC cannot see: the folds' id checks must), a genuine record of ANOTHER hub on the same
cluster (its own namespace and key) copied into this hub's topic with its MAC, and a genuine
tenant-``acme`` data record copied to another partition.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, Producer
from confluent_kafka import TopicPartition as KafkaTP

from core.errors import AuthError, LogTampered
from core.events import tenant_of
from core.ports.eventlog import Record
from hub.bootstrap import Hub, bootstrap
from hub.settings import load_settings
from tests.adversarial._kafka_hub import partition_ended, raw_records

pytestmark = pytest.mark.integration


def _produce(
    kafka: str,
    topic: str,
    value: bytes,
    key: bytes | None,
    headers: list[tuple[str, bytes]],
    partition: int = 0,
    timestamp: int = 0,
) -> None:
    producer = Producer({"bootstrap.servers": kafka, "log_level": 0})
    producer.produce(
        topic,
        value=value,
        key=key,
        headers=list(headers) or None,
        partition=partition,
        timestamp=timestamp,
    )
    assert producer.flush(30) == 0


def _stored(kafka: str, topic: str) -> list[tuple[bytes, bytes | None, list[Any], int]]:
    """Partition 0 of ``topic`` as the broker holds it, with each record's timestamp (which
    the MAC binds: a replay keeps it)."""
    consumer = Consumer(
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
    consumer.assign([KafkaTP(topic, 0, 0)])
    out = []
    try:
        while msgs := consumer.consume(100, 5.0):
            out += [
                (m.value() or b"", m.key(), list(m.headers() or []), m.timestamp()[1])
                for m in msgs
                if m.error() is None
            ]
            if any(partition_ended(m) for m in msgs):
                break
    finally:
        consumer.close()
    return out


def test_a_revoked_keys_issuance_replayed_does_not_bring_it_back(
    kafka_hub: tuple[Hub, str], kafka: str
) -> None:
    h, prefix = kafka_hub
    issued = h.keys.create(["admin"], principal="mallory")
    assert h.keys.verify(issued.key_id, issued.secret)
    genuine = [
        r for r in _stored(kafka, prefix + "hub.principals") if issued.key_id.encode() in r[0]
    ]
    h.keys.revoke(issued.key_id, revoked_by="sec-admin", reason="leaked")
    with pytest.raises(AuthError):
        h.keys.verify(issued.key_id, issued.secret)
    assert genuine
    for value, key, headers, ts in genuine:  # the issuance again, MAC and time intact
        _produce(kafka, prefix + "hub.principals", value, key, headers, timestamp=ts)
    h.keys.create(["analyst"], principal="later")  # the fold reads past the replay
    with pytest.raises(AuthError):
        h.keys.verify(issued.key_id, issued.secret)


def test_another_hubs_genuine_record_is_refused_here(
    kafka_hub: tuple[Hub, str], kafka: str, tmp_path: Path
) -> None:
    h, prefix = kafka_hub
    other_prefix = f"o{uuid.uuid4().hex[:10]}."
    other = bootstrap(
        load_settings(
            environ={},
            data_dir=tmp_path / "other",
            event_log="kafka",
            kafka_bootstrap_servers=kafka,
            kafka_topic_prefix=other_prefix,
        )
    )
    try:
        other.keys.create(["admin"], principal="eve")
        value, key, headers = raw_records(kafka, other_prefix + "hub.principals")[-1]
    finally:
        other.close()
    before = len(h.log.read("hub.principals", 0, 0, 1000))
    _produce(kafka, prefix + "hub.principals", value, key, headers)
    with pytest.raises(LogTampered, match="fails its hub MAC"):
        h.log.read("hub.principals", 0, before, 1000)


def test_a_tenant_record_copied_to_another_partition_loses_its_tenant(
    kafka_hub: tuple[Hub, str], kafka: str
) -> None:
    h, prefix = kafka_hub
    topic = f"kt.orders.{uuid.uuid4().hex[:6]}"
    h.log.create_topic(topic, 2, {})
    h.log.append(topic, [Record(key=b"k", value=b"acme-order", headers=(("ce_tenant", b"acme"),))])
    raw = [r for r in _stored(kafka, prefix + topic) if r[0] == b"acme-order"]
    if not raw:  # _stored reads partition 0 only
        pytest.skip("the record landed on partition 1")
    value, key, headers, ts = raw[0]
    _produce(kafka, prefix + topic, value, key, headers, partition=1, timestamp=ts)
    (moved,) = h.log.read(topic, 1, 0, 10)
    assert moved.value == b"acme-order"
    assert tenant_of(moved) == "default"  # the MAC binds the partition: read as external
