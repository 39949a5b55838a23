"""The hub on Apache Kafka (issue 7, part 3): the Schema Registry over Kafka, and Confluent clients.

Two hub instances (``event_log="kafka"``, one topic prefix per test, two data folders) share
the broker that ``infra/kafka.sh`` runs:

- a schema registered through one is visible, with the same id, through the other (the registry's
  state is the compacted ``_schemas`` topic in Kafka);
- confluent-kafka's ``AvroSerializer``, pointed at the hub's registry API (served by uvicorn,
  authenticated with a hub API key through ``basic.auth.user.info``), encodes records that a plain
  confluent-kafka ``Producer`` writes to the hub's Kafka topic; the hub's ``EventReader`` decodes
  them;
- records the hub publishes are read by a plain confluent-kafka ``Consumer`` and decoded by
  ``AvroDeserializer``.
"""

from __future__ import annotations

import json
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer
from confluent_kafka import TopicPartition as KafkaTP
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

from adapters.kafka_log import KafkaEventLog
from core.errors import InvalidInput
from core.events import OutgoingEvent
from core.ports.eventlog import EventLog, Record
from hub.api.app import create_app
from hub.bootstrap import Hub, bootstrap
from hub.settings import load_settings
from registry.service import SCHEMAS_TOPIC
from tests.contract import test_eventlog_kafka as kafka_contract
from tests.contract.eventlog_contract import Reopen
from tests.contract.test_eventlog_kafka import kafka_bootstrap
from tests.service.conftest import _serve

pytestmark = pytest.mark.integration

ORDER = {
    "type": "record",
    "name": "Order",
    "namespace": "kt.test",
    "fields": [
        {"name": "order_id", "type": "string"},
        {"name": "qty", "type": "long"},
        {"name": "note", "type": ["null", "string"], "default": None},
    ],
}


@pytest.fixture(scope="module")
def kafka() -> str:
    return kafka_bootstrap()


@pytest.fixture
def hubs(kafka: str, tmp_path: Path) -> Iterator[tuple[Hub, Hub, str]]:
    prefix = f"t{uuid.uuid4().hex[:10]}."

    def make(name: str) -> Hub:
        return bootstrap(
            load_settings(
                environ={},
                data_dir=tmp_path / name,
                event_log="kafka",
                kafka_bootstrap_servers=kafka,
                kafka_topic_prefix=prefix,
            )
        )

    a = make("a")
    try:
        # Two hubs on one namespace are one hub's processes: they share its keys (HA replicas
        # mount one data folder), and Kafka records carry a MAC under keys/log.mac.
        (tmp_path / "b" / "keys").mkdir(parents=True, mode=0o700)
        shutil.copy2(tmp_path / "a" / "keys" / "log.mac", tmp_path / "b" / "keys" / "log.mac")
        b = make("b")
    except BaseException:
        a.close()
        raise
    yield a, b, prefix
    b.close()
    a.close()


def test_the_registry_lives_in_kafka_and_two_hubs_agree(
    hubs: tuple[Hub, Hub, str], kafka: str
) -> None:
    a, b, prefix = hubs
    subject = f"kt.orders.{uuid.uuid4().hex[:6]}-value"
    schema_id = a.registry.register(subject, json.dumps(ORDER)).id
    seen = b.registry.get_version(subject, "latest")
    assert (seen.id, seen.version) == (schema_id, 1)
    assert b.registry.get_by_id(schema_id).text == a.registry.get_by_id(schema_id).text
    # ... and the other way round: an evolution registered through b is seen by a.
    evolved = {
        **ORDER,
        "fields": [*ORDER["fields"], {"name": "px", "type": "double", "default": 0}],
    }
    second = b.registry.register(subject, json.dumps(evolved)).id
    assert second != schema_id
    assert a.registry.get_version(subject, 2).id == second
    # Both hubs' shipped schemas got the same ids (the second hub found them registered).
    assert a.registry.schema_ids() == b.registry.schema_ids()

    # The state is a compacted Kafka topic under the namespace's prefix, in Confluent's format.
    info = a.log.topic(SCHEMAS_TOPIC)
    assert info.config.get("cleanup.policy") == "compact"
    wire = prefix + SCHEMAS_TOPIC
    consumer = Consumer(
        {"bootstrap.servers": kafka, "group.id": f"kt-{uuid.uuid4().hex}", "log_level": 0}
    )
    try:
        consumer.assign([KafkaTP(wire, 0, 0)])
        keys = []
        while True:
            msg = consumer.poll(5)
            if msg is None:
                break
            assert msg.error() is None, msg.error()
            keys.append(json.loads(msg.key() or b"{}"))
            if any(k.get("subject") == subject and k.get("version") == 2 for k in keys):
                break
    finally:
        consumer.close()
    assert {"keytype": "SCHEMA", "subject": subject, "version": 2, "magic": 1} in keys


def test_confluent_serializer_to_hub_and_hub_to_confluent_deserializer(
    hubs: tuple[Hub, Hub, str], kafka: str
) -> None:
    a, b, prefix = hubs
    topic = f"kt.orders.{uuid.uuid4().hex[:6]}"
    a.log.create_topic(topic, 2, {"hub.subject.strategy": "topic", "hub.key.field": "order_id"})
    url, stop = _serve(create_app(a))
    try:
        token = a.keys.create(["admin"], principal="test-admin").token
        client = SchemaRegistryClient({"url": url, "basic.auth.user.info": token, "max.retries": 0})
        ctx = SerializationContext(topic, MessageField.VALUE)  # subject <topic>-value

        # 1. Confluent's serializer (auto-registering through the hub's API) -> the hub's reader.
        serializer = AvroSerializer(client, json.dumps(ORDER))
        sent = [{"order_id": f"o{i}", "qty": i, "note": None if i % 2 else "x"} for i in range(20)]
        producer = Producer({"bootstrap.servers": kafka, "enable.idempotence": True})
        for v in sent:
            producer.produce(prefix + topic, value=serializer(v, ctx), key=v["order_id"].encode())
        assert producer.flush(30) == 0
        schema_id = b.registry.get_version(f"{topic}-value", "latest").id  # the other hub sees it
        decoded = [b.reader.decode(r) for p in range(2) for r in b.log.read(topic, p, 0, 100)]
        assert sorted((d["value"] for d in decoded), key=lambda v: v["qty"]) == sent
        assert {d["schema_id"] for d in decoded} == {schema_id}

        # 2. The hub's publisher -> a plain Consumer and Confluent's deserializer.
        ours = [{"order_id": f"h{i}", "qty": 100 + i, "note": "hub"} for i in range(10)]
        meta = a.publisher.publish(topic, [OutgoingEvent(value=v) for v in ours], producer="kt")
        deserializer = AvroDeserializer(
            SchemaRegistryClient({"url": url, "basic.auth.user.info": token, "max.retries": 0})
        )
        consumer = Consumer(
            {
                "bootstrap.servers": kafka,
                "group.id": f"kt-{uuid.uuid4().hex}",
                "isolation.level": "read_committed",
                "log_level": 0,
            }
        )
        got: dict[tuple[int, int], dict[str, object]] = {}
        headers: dict[tuple[int, int], dict[str, bytes]] = {}
        try:
            first: dict[int, int] = {}
            for m in meta:
                first[m.partition] = min(first.get(m.partition, m.offset), m.offset)
            consumer.assign([KafkaTP(prefix + topic, p, o) for p, o in first.items()])
            wanted = {(m.partition, m.offset) for m in meta}
            for _ in range(200):
                if wanted <= set(got):
                    break
                msg = consumer.poll(0.2)
                if msg is None:
                    continue
                assert msg.error() is None, msg.error()
                where = (msg.partition() or 0, msg.offset() or 0)
                if where in wanted:
                    got[where] = deserializer(msg.value(), ctx)
                    headers[where] = dict(msg.headers() or [])
        finally:
            consumer.close()
        assert [got.get((m.partition, m.offset)) for m in meta] == ours
        # The hub's envelope (CloudEvents Kafka binding) travels as headers any client reads.
        assert all(h.get("ce_type") == b"kt.test.Order" for h in headers.values()), headers
    finally:
        stop()


# -- the namespace (topic prefix) ------------------------------------------------------------------
def test_a_topic_prefix_keeps_namespaces_apart_on_the_wire(kafka: str) -> None:
    one, two = (KafkaEventLog(kafka, topic_prefix=f"n{uuid.uuid4().hex[:8]}.") for _ in "12")
    plain = KafkaEventLog(kafka)
    try:
        one.create_topic("same", 2, {"hub.subject.strategy": "record"})
        two.create_topic("same", 1)
        one.append("same", [Record(b"1", partition=1)])
        assert [t.name for t in one.topics()] == ["same"]  # internal topics hidden, prefix off
        assert [(t.name, t.partitions) for t in two.topics()] == [("same", 1)]
        assert one.topic("same").config == {"hub.subject.strategy": "record"}
        assert two.topic("same").config == {}
        assert one.end_offsets("same") == {0: 0, 1: 1} and two.end_offsets("same") == {0: 0}
        wire = {t.name for t in plain.topics()}
        assert {one._prefix + "same", two._prefix + "same"} <= wire
        assert "same" not in wire
        # The internal topics are namespaced too (the plain log hides them as internal).
        names = set(plain._admin.list_topics(timeout=10).topics)
        assert {one._prefix + "_hub_topics", two._prefix + "_hub_topics"} <= names
    finally:
        for log in (one, two, plain):
            log.close()


def test_the_broker_deletes_nothing_on_its_own(kafka: str) -> None:
    """Topics the hub creates carry retention.ms=-1 and retention.bytes=-1 on the broker (records
    stamped in 1970 would otherwise go at the broker's next retention check, with no
    retention.delete event on the ledger); a retention the caller sets explicitly is kept, and
    the hub's default is not reported as the topic's config."""
    from confluent_kafka.admin import AdminClient, ConfigResource

    log = KafkaEventLog(kafka, topic_prefix=f"r{uuid.uuid4().hex[:8]}.")
    try:
        log.create_topic("kept", 1)
        log.create_topic("timed", 1, {"retention.ms": "86400000"})
        admin = AdminClient({"bootstrap.servers": kafka})
        resources = [
            ConfigResource(ConfigResource.Type.TOPIC, log._wire(n)) for n in ("kept", "timed")
        ]
        got = {
            res.name: {k: e.value for k, e in f.result(timeout=30).items()}
            for res, f in admin.describe_configs(resources).items()
        }
        kept, timed = got[log._wire("kept")], got[log._wire("timed")]
        assert kept["retention.ms"] == "-1" and kept["retention.bytes"] == "-1"
        assert timed["retention.ms"] == "86400000" and timed["retention.bytes"] == "-1"
        assert log.topic("kept").config == {}
        assert log.topic("timed").config == {"retention.ms": "86400000"}
    finally:
        log.close()


@pytest.fixture(scope="module")
def prefixed(kafka: str) -> Iterator[dict[str, EventLog]]:
    prefix = f"c{uuid.uuid4().hex[:8]}."
    holder: dict[str, EventLog] = {"log": KafkaEventLog(kafka, topic_prefix=prefix)}
    holder["prefix"] = prefix  # type: ignore[assignment]
    yield holder
    holder["log"].close()


class TestKafkaEventLogWithPrefix(kafka_contract.TestKafkaEventLog):
    """The whole EventLog contract again, inside a namespace."""

    @pytest.mark.xfail(
        strict=True,
        raises=InvalidInput,
        reason="Kafka's 249-character limit applies to the name on the wire: inside a namespace "
        "topic names can have at most 249 - len(prefix) characters (a documented limit).",
    )
    def test_legal_topic_name_characters_are_accepted(self, log: EventLog) -> None:
        super().test_legal_topic_name_characters_are_accepted(log)

    @pytest.fixture
    def log(self, prefixed: dict[str, EventLog]) -> Iterator[EventLog]:
        yield prefixed["log"]

    @pytest.fixture
    def reopen(self, prefixed: dict[str, EventLog], kafka: str) -> Reopen:
        def reopen(log: EventLog) -> EventLog:
            log.close()
            fresh = KafkaEventLog(kafka, topic_prefix=str(prefixed["prefix"]))
            prefixed["log"] = fresh
            return fresh

        return reopen
