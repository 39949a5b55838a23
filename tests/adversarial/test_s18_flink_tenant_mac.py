"""The Flink jobs' tenant check on the Kafka footprint (``core.tenant_mac``).

Every hub write path to a data topic (a single record, a multi-partition batch in a
transaction, an idempotent batch, the column append with its native produce loop, a
transaction's records and columns, the publisher, an import of stored records) puts a
``__hub.tmac`` on each record that verifies for the job's function (``tenant_of``, run here on
the records exactly as a plain consumer sees them); the hub's topics get none; the hub's own
reader sees the headers as written. A broker producer's records (copies of acme's record
claiming globex, with or without the MACs, a changed event type) read as ``default`` for the
job, which is what the hub's reader makes of them (their claim dropped).
"""

from __future__ import annotations

import os
import uuid

import pytest
from confluent_kafka import Consumer, Producer
from confluent_kafka import TopicPartition as KafkaTP

from adapters.kafka_log.log import KafkaEventLog
from core.events import OutgoingEvent, tenant_of
from core.ports.eventlog import ColumnBatch, IdempotenceKey, Record, StoredRecord
from core.tenant_mac import TMAC_HEADER, JobTenant
from hub.bootstrap import Hub
from hub.flink import tenant_key

pytestmark = pytest.mark.integration

MAC, TKEY = os.urandom(32), os.urandom(32)


def raw(kafka: str, wire: str, partitions: int = 1) -> list[StoredRecord]:
    """Every committed record of ``wire`` as the broker holds it, headers and all."""
    consumer = Consumer(
        {
            "bootstrap.servers": kafka,
            "group.id": f"x-{uuid.uuid4().hex}",
            "isolation.level": "read_committed",
            "enable.partition.eof": True,
            "log_level": 0,
        }
    )
    consumer.assign([KafkaTP(wire, p, 0) for p in range(partitions)])
    out: list[StoredRecord] = []
    ended: set[int] = set()
    try:
        while len(ended) < partitions:
            msgs = consumer.consume(100, 5.0)
            if not msgs:
                break
            for m in msgs:
                if m.error() is not None:
                    ended.add(m.partition() or 0)
                    continue
                hs = tuple((k, v) for k, v in m.headers() or [])  # type: ignore[misc]
                out.append(
                    StoredRecord(
                        wire,
                        m.partition() or 0,
                        m.offset() or 0,
                        m.timestamp()[1],
                        m.key(),
                        m.value(),
                        hs,
                    )
                )
    finally:
        consumer.close()
    return out


def flink_tenant(key: bytes, prefix: str, topic: str, r: StoredRecord) -> str:
    """What the job's ``hub_tenant`` returns for a record of namespace ``prefix`` under the hub's
    tenant key ``key`` (its header map: the last of a name; the namespace's key derived from
    ``key`` since session 21, no legacy offsets)."""
    job = JobTenant({prefix: key})
    h = dict(r.headers)
    return job(h, r.key, r.value, r.partition, r.timestamp_ms, topic, prefix, r.offset, "")


def env(tenant: str, i: int) -> tuple[tuple[str, bytes], ...]:
    return (
        ("ce_type", b"hub.test.Thing"),
        ("ce_time", f"2026-12-05T00:00:0{i % 10}.000Z".encode()),
        ("ce_tenant", tenant.encode()),
        ("x-extra", b"kept"),
    )


def test_every_log_write_path_to_a_data_topic_carries_a_verifying_tenant_mac(kafka: str) -> None:
    prefix = f"tm{uuid.uuid4().hex[:8]}."
    with KafkaEventLog(kafka, topic_prefix=prefix, mac_key=MAC, tenant_key=TKEY) as log:
        log.create_topic("one", 1)
        log.create_topic("three", 3)
        log.create_topic("hub.things", 1)
        written: dict[str, list[str]] = {"one": [], "three": [], "hub.things": []}

        def records(tenant: str, n: int, **kw: int) -> list[Record]:
            return [
                Record(f"v{tenant}{i}".encode(), f"k{i}".encode(), env(tenant, i), **kw)
                for i in range(n)
            ]

        log.append("one", records("acme", 1))  # one record
        written["one"] += ["acme"]
        log.append("one", records("globex", 3, timestamp_ms=1_700_000_000_001))
        written["one"] += ["globex"] * 3
        log.append("one", records("acme", 2), idempotence=IdempotenceKey("p", 0))
        written["one"] += ["acme"] * 2
        columns = ColumnBatch(
            [b"a", None, b"c"],
            [b"1", b"2", b"3"],
            ("ce_type", "ce_tenant", "x-extra"),
            (b"hub.test.Thing", [b"acme", b"globex", b"acme"], b"kept"),
        )
        log.append_columns("one", columns)  # the native produce loop
        written["one"] += ["acme", "globex", "acme"]
        no_tenant = ColumnBatch([b"d"], [b"4"], ("ce_type",), (b"hub.test.Thing",))
        log.append_columns("one", no_tenant)
        written["one"] += ["default"]
        with log.transaction("tx-1") as txn:
            txn.append("one", records("globex", 2))
            txn.append_columns("one", columns)
        written["one"] += ["globex"] * 2 + ["acme", "globex", "acme"]
        log.append("three", records("globex", 9))  # several partitions: one transaction
        written["three"] += ["globex"] * 9
        log.append("hub.things", records("acme", 1))
        written["hub.things"] += ["acme"]

        for topic, want in written.items():
            stored = raw(kafka, prefix + topic, 3 if topic == "three" else 1)
            assert len(stored) == len(want), topic
            mine = {(r.partition, r.offset): r for r in stored}
            read = [
                r for p in range(3 if topic == "three" else 1) for r in log.read(topic, p, 0, 99)
            ]
            for r in read:  # the hub's reader: the headers as written, no tenant MAC
                assert TMAC_HEADER not in dict(r.headers)
                assert r.headers[-1] == ("x-extra", b"kept") or r.headers[-1][0] == "ce_type"
                assert mine[(r.partition, r.offset)].headers[-1][0] == "__hub.mac"
            if topic.startswith("hub."):
                assert all(TMAC_HEADER not in dict(r.headers) for r in stored)
                continue
            assert all(r.headers[-2][0] == TMAC_HEADER for r in stored), topic
            got = sorted(flink_tenant(TKEY, prefix, topic, r) for r in stored)
            assert got == sorted(want), topic
            # under another hub's key (or the record MAC key) nothing verifies
            assert {flink_tenant(MAC, prefix, topic, r) for r in stored} == {"default"}
            # the reader agrees with the job record by record
            hub_tenants = {(r.partition, r.offset): tenant_of(r) for r in read}
            for r in stored:
                assert flink_tenant(TKEY, prefix, topic, r) == hub_tenants[(r.partition, r.offset)]


def test_the_publisher_and_a_broker_producers_copies(
    kafka_hub: tuple[Hub, str], kafka: str
) -> None:
    """The hub's own publish (column batches) verifies under the key its Flink jobs get
    (``hub.flink.tenant_key``); copies a broker producer makes of acme's record, claiming globex
    with or without the MACs, or changing its event type, read as ``default`` for the job, as
    for the hub's reader."""
    h, prefix = kafka_hub
    key = tenant_key(h.settings)
    topic = f"tm.things.{uuid.uuid4().hex[:6]}"
    h.log.create_topic(topic, 1)
    schema = (
        '{"type": "record", "name": "Thing", "namespace": "hub.test", '
        '"fields": [{"name": "id", "type": "string"}]}'
    )
    h.registry.register(f"{topic}-value", schema)
    for tenant in ("acme", "globex", "default"):
        h.publisher.publish(
            topic,
            [
                OutgoingEvent(value={"id": f"{tenant}-{i}"}, event_type="hub.test.Thing")
                for i in range(3)
            ],
            producer="tm",
            tenant=tenant,
        )
    stored = raw(kafka, prefix + topic)
    assert [flink_tenant(key, prefix, topic, r) for r in stored] == [
        t for t in ("acme", "globex", "default") for _ in range(3)
    ]
    own = stored[0]
    headers = list(own.headers)

    def changed(name: str, value: bytes, keep_macs: bool) -> list[tuple[str, bytes]]:
        out = [(k, value if k == name else v) for k, v in headers]
        return out if keep_macs else [(k, v) for k, v in out if not k.startswith("__hub.")]

    producer = Producer({"bootstrap.servers": kafka, "log_level": 0})
    copies = [
        changed("ce_tenant", b"globex", keep_macs=False),
        changed("ce_tenant", b"globex", keep_macs=True),  # acme's MACs on a changed claim
        changed("ce_type", b"hub.test.Other", keep_macs=True),
        [*headers, ("ce_tenant", b"globex")],  # a second claim after the MACs (the map's last)
        [*headers[:-1]],  # the tenant MAC kept, the record MAC dropped: the exact record again
    ]
    for hs in copies:
        producer.produce(
            prefix + topic, value=own.value, key=own.key, headers=hs, timestamp=own.timestamp_ms
        )
    assert producer.flush(30) == 0
    forged = raw(kafka, prefix + topic)[len(stored) :]
    assert [flink_tenant(key, prefix, topic, r) for r in forged] == [
        "default",
        "default",
        "default",
        "default",
        "acme",
    ]
    read = h.log.read(topic, 0, len(stored), 10)
    assert [tenant_of(r) for r in read][:4] == ["default"] * 4
    # a copy under another partition's or topic's name does not verify either
    assert flink_tenant(key, prefix, topic + "x", own) == "default"
