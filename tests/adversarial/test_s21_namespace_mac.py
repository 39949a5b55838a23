"""The Kafka record MAC binds the namespace (session 21; s20-redteam-ha L1).

Before, the MAC bound a topic's name without the namespace prefix, so two namespaces that share
the hub's key (a staging hub cloned from production's data folder, a restore drill beside its
source) accepted each other's genuine records: a key issued in staging, copied into
production's ``hub.principals``, was production's. Now a prefixed namespace MACs under a key of
its own (``adapters.kafka_log.auth.namespace_key``); the records it wrote before stay readable
below its marker (``bind_namespace``), and copies of such records from elsewhere land above it.
Real Kafka (skipped without it).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

from adapters.kafka_log import KafkaEventLog
from adapters.kafka_log.auth import namespace_key
from core.errors import LogTampered
from core.ports.eventlog import Record
from tests.adversarial.test_s20_ha_kafka import _produce, _stored

pytestmark = pytest.mark.integration

KEY = os.urandom(32)  # one hub key, shared by every namespace of these tests
TOPIC = "hub.things"  # a hub topic: every record needs a valid MAC


def test_the_default_namespace_keeps_the_hubs_key() -> None:
    assert namespace_key(KEY, "") == KEY
    assert len({namespace_key(KEY, p) for p in ("", "a.", "b.", "a.b.")}) == 4


@pytest.fixture
def logs(kafka: str) -> Iterator[list[KafkaEventLog]]:
    opened: list[KafkaEventLog] = []
    yield opened
    for log in opened:
        log.close()


def _open(kafka: str, prefix: str, opened: list[KafkaEventLog]) -> KafkaEventLog:
    log = KafkaEventLog(kafka, topic_prefix=prefix, mac_key=KEY)
    opened.append(log)
    return log


def _copy_last(kafka: str, source: str, target: str) -> None:
    """The last record of ``source`` (a wire name) produced into ``target`` as it is: value,
    key, headers (the MAC among them) and timestamp."""
    value, key, headers, timestamp = _stored(kafka, source)[-1]
    _produce(kafka, target, value, key, headers, timestamp=timestamp)


def test_another_namespaces_genuine_record_under_the_same_key_is_refused(
    kafka: str, logs: list[KafkaEventLog]
) -> None:
    tag = uuid.uuid4().hex[:8]
    staging, production = f"s{tag}.", f"p{tag}."
    s, p = _open(kafka, staging, logs), _open(kafka, production, logs)
    for log in (s, p):
        log.bind_namespace()
        log.create_topic(TOPIC, 1, {})
    p.append(TOPIC, [Record(key=b"k", value=b"production's own")])
    s.append(TOPIC, [Record(key=b"k", value=b"grant: mallory is admin")])
    _copy_last(kafka, staging + TOPIC, production + TOPIC)
    assert [r.value for r in p.read(TOPIC, 0, 0, 1)] == [b"production's own"]
    with pytest.raises(LogTampered, match="fails its hub MAC"):
        p.read(TOPIC, 0, 1, 10)


def test_records_of_before_the_namespace_key_stay_readable_and_copies_of_them_do_not(
    kafka: str, logs: list[KafkaEventLog]
) -> None:
    tag = uuid.uuid4().hex[:8]
    old, other = f"o{tag}.", f"x{tag}."
    for prefix in (old, other):  # two namespaces written before: MACs under the hub's key
        before = _open(kafka, prefix, logs)
        before._mac_key = KEY  # as the code of before wrote them
        before.create_topic(TOPIC, 1, {})
        before.append(TOPIC, [Record(key=b"k", value=f"{prefix} of before".encode())])
    upgraded = _open(kafka, old, logs)
    assert upgraded.bind_namespace() == {(TOPIC, 0): 1}
    assert upgraded.read(TOPIC, 0, 0, 10)[0].value == f"{old} of before".encode()
    upgraded.append(TOPIC, [Record(key=b"k", value=b"after")])
    # a record of before from the other namespace, copied in now, lands above the marker
    _copy_last(kafka, other + TOPIC, old + TOPIC)
    assert [r.value for r in upgraded.read(TOPIC, 0, 0, 2)] == [
        f"{old} of before".encode(),
        b"after",
    ]
    with pytest.raises(LogTampered, match="fails its hub MAC"):
        upgraded.read(TOPIC, 0, 2, 10)
    # a later start keeps the first marker (it never widens)
    again = _open(kafka, old, logs)
    assert again.bind_namespace() == {(TOPIC, 0): 1}
    assert again.read(TOPIC, 0, 0, 1)[0].value == f"{old} of before".encode()
