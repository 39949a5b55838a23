"""The write-target resolver both write paths use (``ingest/targets.py``): subject per strategy,
latest schema, record name, classification, plain form of PII schemas, and the record key; and
``Publisher`` and ``IngestPipeline`` resolving through that one resolver."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from adapters.sqlite_log import SqliteEventLog
from core.errors import InvalidInput, TopicNotFound
from core.events import KEY_FIELD_CONFIG, STRATEGY_CONFIG, OutgoingEvent
from core.metrics import Metrics
from core.pii import encrypted_schema
from ingest.publish import Publisher
from ingest.targets import TargetResolver, WriteTarget, record_key
from registry.service import SchemaRegistry


def _schema(name: str, *fields: dict[str, object]) -> str:
    return json.dumps({"type": "record", "name": name, "namespace": "com.hub", "fields": fields})


TRADE = _schema("Trade", {"name": "id", "type": "string"}, {"name": "qty", "type": "int"})
QUOTE = _schema("Quote", {"name": "id", "type": "string"}, {"name": "bid", "type": "double"})
ACCOUNT = _schema(
    "Account",
    {"name": "account_id", "type": "string", "hub.data_subject": True},
    {"name": "name", "type": "string", "classification": "pii"},
)


@pytest.fixture
def parts() -> Iterator[tuple[SqliteEventLog, SchemaRegistry, TargetResolver]]:
    log = SqliteEventLog(":memory:")
    registry = SchemaRegistry(log)
    log.create_topic("t.trades", 1, {KEY_FIELD_CONFIG: "id"})
    log.create_topic("t.mixed", 1, {STRATEGY_CONFIG: "topic_record"})
    log.create_topic("t.records", 1, {STRATEGY_CONFIG: "record"})
    log.create_topic("t.odd", 1, {STRATEGY_CONFIG: "by_weather"})
    registry.register("t.trades-value", TRADE)
    registry.register("t.mixed-com.hub.Trade", TRADE)
    registry.register("t.mixed-com.hub.Quote", QUOTE)
    registry.register("com.hub.Quote", QUOTE)
    yield log, registry, TargetResolver(log, registry)
    log.close()


def test_topic_strategy_resolves_the_topic_subject_and_its_latest_schema(
    parts: tuple[SqliteEventLog, SchemaRegistry, TargetResolver],
) -> None:
    _, registry, targets = parts
    t = targets.resolve("t.trades", None)
    assert (t.topic, t.subject, t.name) == ("t.trades", "t.trades-value", "com.hub.Trade")
    assert t.schema_id == registry.get_version("t.trades-value", "latest").id
    assert t.plain is t.schema and not t.encrypts
    assert t.classification == "internal"
    assert targets.resolve("t.trades", "com.hub.Trade").subject == "t.trades-value"
    # A new version is picked up: the latest, not the first seen.
    v2 = _schema(
        "Trade",
        {"name": "id", "type": "string"},
        {"name": "qty", "type": "int"},
        {"name": "venue", "type": "string", "default": "X"},
    )
    registry.register("t.trades-value", v2)
    assert (
        targets.resolve("t.trades", None).schema_id
        == registry.get_version("t.trades-value", "latest").id
        != t.schema_id
    )


def test_record_strategies_need_an_event_type_and_name_the_subject_by_it(
    parts: tuple[SqliteEventLog, SchemaRegistry, TargetResolver],
) -> None:
    _, _, targets = parts
    assert targets.resolve("t.mixed", "com.hub.Quote").subject == "t.mixed-com.hub.Quote"
    assert targets.resolve("t.mixed", "com.hub.Trade").name == "com.hub.Trade"
    assert targets.resolve("t.records", "com.hub.Quote").subject == "com.hub.Quote"
    with pytest.raises(InvalidInput, match="give each record an event_type") as err:
        targets.resolve("t.mixed", None)
    assert err.value.code == "event_type_required"


def test_unresolvable_targets_name_the_problem(
    parts: tuple[SqliteEventLog, SchemaRegistry, TargetResolver],
) -> None:
    log, _, targets = parts
    with pytest.raises(
        InvalidInput, match=r"No schema is registered for subject 't\.mixed-x\.Y'"
    ) as e:
        targets.resolve("t.mixed", "x.Y")
    assert e.value.code == "subject_not_registered"
    with pytest.raises(InvalidInput, match="does not match the schema of subject") as e:
        targets.resolve("t.trades", "com.hub.Quote")
    assert e.value.code == "event_type_mismatch"
    with pytest.raises(InvalidInput, match="unknown subject strategy 'by_weather'"):
        targets.resolve("t.odd", None)
    with pytest.raises(TopicNotFound):
        targets.resolve("t.nope", None)
    log.create_topic("t.empty", 1)
    with pytest.raises(InvalidInput, match=r"'t\.empty-value'"):
        targets.resolve("t.empty", None)


def test_a_pii_schema_resolves_to_its_plain_form_and_its_classification(
    parts: tuple[SqliteEventLog, SchemaRegistry, TargetResolver],
) -> None:
    log, registry, targets = parts
    log.create_topic("t.accounts", 1)
    registry.register("t.accounts-value", encrypted_schema(ACCOUNT))
    t = targets.resolve("t.accounts", None)
    assert t.encrypts and t.classification == "pii"
    fields: list[dict[str, object]] = json.loads(t.plain.text)["fields"]
    name = {f["name"]: f for f in fields}["name"]
    assert name["type"] == "string"  # the plain type datums are filled with
    assert targets.resolve("t.accounts", None).plain is t.plain  # cached per schema id


def test_the_record_key_is_the_given_key_else_the_key_field() -> None:
    assert record_key("k", "id", {"id": "x"}) == "k"
    assert record_key(None, "id", {"id": 7}) == "7"
    assert record_key(None, "id", {"id": None}) is None
    assert record_key(None, None, {"id": "x"}) is None
    assert record_key(None, "id", ["not", "a", "mapping"]) is None


def test_the_publisher_and_the_pipeline_share_one_resolver(
    parts: tuple[SqliteEventLog, SchemaRegistry, TargetResolver],
) -> None:
    from ingest.dedupe import Deduper
    from ingest.pipeline import IngestPipeline
    from ingest.positions import PositionStore
    from ingest.rules import RulesStore

    log, registry, _ = parts
    publisher = Publisher(log, registry, 1 << 20, Metrics())
    pipeline = IngestPipeline(
        log,
        registry,
        publisher,
        Metrics(),
        RulesStore(log, registry, publisher),
        PositionStore(log, registry, publisher),
        Deduper(log),
        1 << 20,
    )
    calls: list[tuple[str, str | None]] = []
    resolve = publisher.targets.resolve

    def spy(topic: str, event_type: str | None) -> WriteTarget:
        calls.append((topic, event_type))
        return resolve(topic, event_type)

    publisher.targets.resolve = spy  # type: ignore[method-assign]
    w = publisher.targets.resolve("t.mixed", "com.hub.Quote")
    t = pipeline.target("t.mixed", "com.hub.Quote")
    assert (t.subject, t.schema_id, t.name, t.plain) == (
        w.subject,
        w.schema_id,
        w.name,
        w.plain,
    )
    records = publisher.prepare("t.trades", [_event({"id": "a1", "qty": 2})], "p")
    assert records[0].key == b"a1"  # keyed by hub.key.field
    assert calls == [
        ("t.mixed", "com.hub.Quote"),
        ("t.mixed", "com.hub.Quote"),
        ("t.trades", None),
    ]


def _event(value: dict[str, object]) -> OutgoingEvent:
    return OutgoingEvent(value=value)
