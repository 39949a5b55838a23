"""On the real broker, after transactional appends a state topic ends in a commit marker: the
folds (core.fold.TopicFold) stop reading there until the end offset moves, and ApiKeys shares
catch-ups among concurrent callers. Freshness is what it was: a request arriving after another
instance's write sees it, at once (no time bound waited for)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import hub.bootstrap as bootstrap_module
from core.errors import Unauthenticated
from core.metrics import Metrics
from core.ports.eventlog import EventLog, StoredRecord
from governance.apikeys import PEPPER_FILE, ApiKeys, load_pepper
from governance.enrolment import TOPIC
from hub.bootstrap import Hub, bootstrap
from hub.settings import load_settings
from ingest.publish import EventReader, Publisher
from registry.service import SCHEMAS_TOPIC, SchemaRegistry
from tests.contract.test_eventlog_kafka import kafka_bootstrap

pytestmark = pytest.mark.integration

SCHEMA = '{"type": "record", "name": "T", "fields": [{"name": "a", "type": "string"}]}'


def _counting(log: EventLog) -> list[tuple[str, int]]:
    """Count ``log``'s reads per (topic, offset): the fold's reads of the second instance."""
    reads: list[tuple[str, int]] = []
    inner = log.read

    def read(topic: str, partition: int, offset: int, max_records: int = 1000) -> Any:
        reads.append((topic, offset))
        out: list[StoredRecord] = inner(topic, partition, offset, max_records)
        return out

    log.read = read  # type: ignore[method-assign]
    return reads


@pytest.fixture
def two(tmp_path: Path) -> Iterator[tuple[Hub, EventLog, SchemaRegistry, ApiKeys]]:
    """Instance A (a whole hub on Kafka) and instance B (its own log, registry and keyring on
    the same topics, as another ``hub serve`` process)."""
    settings = load_settings(
        environ={},
        data_dir=tmp_path / "data",
        event_log="kafka",
        kafka_bootstrap_servers=kafka_bootstrap(),
        kafka_topic_prefix=f"t{uuid.uuid4().hex[:10]}.",
    )
    a = bootstrap(settings)
    log_b = bootstrap_module.build_event_log(settings)
    try:
        registry_b = SchemaRegistry(log_b)
        keys_b = ApiKeys(
            log_b,
            EventReader(log_b, registry_b, redact=False),
            Publisher(log_b, registry_b, settings.max_record_bytes, Metrics()),
            load_pepper(settings.data_dir / "keys" / PEPPER_FILE),
        )
        yield a, log_b, registry_b, keys_b
    finally:
        log_b.close()
        a.close()


def _in_transaction(log: EventLog) -> Any:
    """An ``append`` for ``register`` that writes in a Kafka transaction, as the HTTP route
    does (the decision and the schema's record in one): the topic then ends in a marker."""

    def append(topic: str, records: Any) -> object:
        with log.transaction(f"t-reg-{uuid.uuid4().hex[:8]}") as txn:
            return txn.append(topic, records)

    return append


def test_registry_reads_no_more_past_a_commit_marker_and_sees_a_new_write_at_once(
    two: tuple[Hub, EventLog, SchemaRegistry, ApiKeys],
) -> None:
    a, log_b, registry_b, _ = two
    a.registry.register("one-value", SCHEMA, append=_in_transaction(a.log))
    assert "one-value" in registry_b.subjects()
    ((part, end),) = log_b.end_offsets(SCHEMAS_TOPIC).items()
    # the tail is a commit marker: the case this is about (else the test proves nothing)
    assert registry_b._fold.positions[part] < end
    reads = _counting(log_b)
    for _ in range(20):  # idle: the end offset has not moved
        assert "one-value" in registry_b.subjects()
    assert [r for r in reads if r[0] == SCHEMAS_TOPIC] == []  # before: 2 empty reads each
    a.registry.register("two-value", SCHEMA.replace('"T"', '"U"'), append=_in_transaction(a.log))
    assert "two-value" in registry_b.subjects()  # the very next request: no time bound waited


def test_a_key_revoked_by_another_instance_is_refused_by_the_next_request(
    two: tuple[Hub, EventLog, SchemaRegistry, ApiKeys],
) -> None:
    a, log_b, _, keys_b = two
    issued = a.keys.create(["analyst"], principal="ann")
    key_id, _, secret = issued.token.partition(":")
    assert keys_b.verify(key_id, secret).id
    reads = _counting(log_b)
    for _ in range(20):
        keys_b.verify(key_id, secret)
    idle_reads = [r for r in reads if r[0] == TOPIC]
    assert len(idle_reads) <= 2  # at most one catch-up's empty reads, not two per request
    a.keys.revoke(key_id, revoked_by="ops", reason="left")
    with pytest.raises(Unauthenticated, match="revoked"):
        keys_b.verify(key_id, secret)
