"""Someone with produce access to the Kafka broker but without the hub's key writes records
straight into hub topics (s15 red team, third pass).

Before: the Kafka log had no authentication at all. A record written by a plain producer into
``hub.principals`` (or ``hub.policies``, ``_schemas``, ``hub.decisions``) was read by the hub
exactly like its own, and a data record with ``ce_tenant: acme`` landed in acme's view. Now every
record the hub writes carries an HMAC (``__hub.mac``, adapters.kafka_log.auth): hub topics refuse
records without a valid one (``LogTampered``), data topics drop the tenant claim of a plain
producer's record (external producers stay supported), and a MAC'd record that was changed or
moved fails everywhere.
"""

from __future__ import annotations

import json
import uuid

import pytest
from confluent_kafka import Producer

from core.errors import LogTampered
from core.events import OutgoingEvent, tenant_of
from core.ports.eventlog import Record
from hub.bootstrap import Hub
from tests.adversarial._kafka_hub import raw_records

pytestmark = pytest.mark.integration


def _produce(
    kafka: str, topic: str, value: bytes, key: bytes | None, headers: list[tuple[str, bytes]]
) -> None:
    producer = Producer({"bootstrap.servers": kafka, "log_level": 0})
    producer.produce(topic, value=value, key=key, headers=list(headers) or None)
    assert producer.flush(30) == 0


def test_a_principal_written_straight_to_kafka_is_refused(
    kafka_hub: tuple[Hub, str], kafka: str
) -> None:
    h, prefix = kafka_hub
    h.keys.create(["analyst"], principal="ann")
    genuine = raw_records(kafka, prefix + "hub.principals")
    assert genuine and genuine[-1][2][-1][0] == "__hub.mac"
    before = len(h.log.read("hub.principals", 0, 0, 1000))
    value, key, headers = genuine[-1]
    forged_value = value.replace(b"analyst", b"admin")
    assert forged_value != value
    # 1. no MAC at all (what any plain producer writes)
    no_mac = [(k, v) for k, v in headers if k != "__hub.mac"]
    _produce(kafka, prefix + "hub.principals", forged_value, key, no_mac)
    with pytest.raises(LogTampered, match=r"'hub.principals' partition 0 offset .*no hub MAC"):
        h.log.read("hub.principals", 0, before, 1000)
    # the genuine records before it still read
    assert len(h.log.read("hub.principals", 0, 0, before)) == before


def test_a_copied_mac_on_a_changed_value_fails(kafka_hub: tuple[Hub, str], kafka: str) -> None:
    h, prefix = kafka_hub
    h.keys.create(["analyst"], principal="ann")
    value, key, headers = raw_records(kafka, prefix + "hub.principals")[-1]
    before = len(h.log.read("hub.principals", 0, 0, 1000))
    _produce(
        kafka,
        prefix + "hub.principals",
        value.replace(b"analyst", b"admin"),
        key,
        headers,
    )
    with pytest.raises(LogTampered, match="fails its hub MAC"):
        h.log.read("hub.principals", 0, before, 1000)
    # moved to another hub topic with its MAC: fails too (the MAC binds the topic)
    _produce(kafka, prefix + "hub.policies", value, key, headers)
    with pytest.raises(LogTampered, match=r"'hub\.policies'.*fails its hub MAC"):
        list(h.log.scan("hub.policies", 0))


def test_a_plain_producers_data_record_cannot_claim_a_tenant(
    kafka_hub: tuple[Hub, str], kafka: str
) -> None:
    h, prefix = kafka_hub
    topic = f"kt.orders.{uuid.uuid4().hex[:6]}"
    h.log.create_topic(topic, 1, {})
    h.log.append(topic, [Record(key=b"k", value=b"ours", headers=(("ce_tenant", b"acme"),))])
    _produce(kafka, prefix + topic, b"theirs", b"k", [("ce_tenant", b"acme")])
    # a bogus MAC header neither blocks the partition's readers nor buys a tenant
    bogus = [("ce_tenant", b"acme"), ("__hub.mac", b"\x00" * 32)]
    _produce(kafka, prefix + topic, b"bogus", b"k", bogus)
    h.log.append(topic, [Record(key=b"k", value=b"later", headers=(("ce_tenant", b"acme"),))])
    ours, theirs, fake, later = h.log.read(topic, 0, 0, 10)
    assert (fake.value, tenant_of(fake), tenant_of(later)) == (b"bogus", "default", "acme")
    assert tenant_of(ours) == "acme"  # the hub's own record keeps its tenant
    assert theirs.value == b"theirs"  # an external producer's record is still read ...
    assert tenant_of(theirs) == "default"  # ... but its tenant claim is not honoured
    assert all(name != "__hub.mac" for name, _ in ours.headers)  # the MAC is the adapter's


def test_the_hubs_own_publishes_read_back(kafka_hub: tuple[Hub, str]) -> None:
    h, _ = kafka_hub
    topic = f"kt.t.{uuid.uuid4().hex[:6]}"
    h.log.create_topic(topic, 2, {"hub.subject.strategy": "topic"})
    schema = {"type": "record", "name": "A", "fields": [{"name": "a", "type": "long"}]}
    h.registry.register(f"{topic}-value", json.dumps(schema))
    events = [OutgoingEvent(value={"a": i}) for i in range(5)]
    meta = h.publisher.publish(topic, events, producer="p")
    got = [r for p in range(2) for r in h.log.read(topic, p, 0, 100)]
    assert len(got) == len(meta) == 5
