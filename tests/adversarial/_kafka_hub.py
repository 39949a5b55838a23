"""Fixtures for adversarial tests on the Kafka footprint: the broker (started by the contract
fixture, or skipped with its reason) and a hub on it with topics of its own.

Both are fixtures of every adversarial test (conftest.py):
``kafka_hub`` yields ``(Hub, topic prefix)``; the prefix is fresh per test, so tests never see each
other's records on the shared broker.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import Consumer, KafkaError, Message
from confluent_kafka import TopicPartition as KafkaTP

from hub.bootstrap import Hub, bootstrap
from hub.settings import load_settings
from tests.contract.test_eventlog_kafka import kafka_bootstrap


@pytest.fixture(scope="module")
def kafka() -> str:
    return kafka_bootstrap()


@pytest.fixture
def kafka_hub(kafka: str, tmp_path: Path) -> Iterator[tuple[Hub, str]]:
    prefix = f"t{uuid.uuid4().hex[:10]}."
    h = bootstrap(
        load_settings(
            environ={},
            data_dir=tmp_path / "data",
            event_log="kafka",
            kafka_bootstrap_servers=kafka,
            kafka_topic_prefix=prefix,
        )
    )
    yield h, prefix
    h.close()


Raw = tuple[bytes, bytes | None, list[tuple[str, bytes]]]  # value, key, headers


def partition_ended(m: Message) -> bool:
    """Whether ``m`` is the end-of-partition event of a consumer with
    ``enable.partition.eof`` (its read position reached the last stable offset)."""
    error = m.error()
    return error is not None and error.code() == KafkaError._PARTITION_EOF


def raw_records(kafka: str, wire_topic: str) -> list[Raw]:
    """Every committed record of partition 0 of ``wire_topic`` as the broker holds it (what a
    consumer without the hub sees): value, key, headers."""
    consumer = Consumer(
        {
            "bootstrap.servers": kafka,
            "group.id": f"x-{uuid.uuid4().hex}",
            "isolation.level": "read_committed",
            "enable.partition.eof": True,
            "log_level": 0,
        }
    )
    consumer.assign([KafkaTP(wire_topic, 0, 0)])
    out: list[Raw] = []
    try:
        while True:
            msgs = consumer.consume(100, 5.0)
            if not msgs:
                break
            out += [
                (m.value() or b"", m.key(), [(k, v or b"") for k, v in m.headers() or []])  # type: ignore[misc,str-unpack]
                for m in msgs
                if m.error() is None
            ]
            if any(m.error() is not None for m in msgs):
                break
    finally:
        consumer.close()
    return out
