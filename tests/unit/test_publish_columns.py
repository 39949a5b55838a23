"""``Publisher._envelope_columns`` (the publish path's ``ColumnBatch``) holds exactly the records
``_column_records`` builds: the same keys, values and envelope headers in the same order, given
the same fresh event ids and receipt time; and ``publish`` stores them as before."""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator

import pytest

from adapters.sqlite_log import SqliteEventLog
from core.events import KEY_FIELD_CONFIG, STRATEGY_CONFIG, OutgoingEvent
from core.metrics import Metrics
from core.ports.eventlog import ColumnBatch
from ingest.publish import Publisher, _Shape
from registry.service import SchemaRegistry
from tests.unit.test_publish_batch import TRADE


@pytest.fixture
def publisher() -> Iterator[Publisher]:
    log = SqliteEventLog(":memory:")
    registry = SchemaRegistry(log)
    log.create_topic("t.cols", 1, {STRATEGY_CONFIG: "topic_record", KEY_FIELD_CONFIG: "id"})
    registry.register("t.cols-com.hub.Trade", TRADE)
    yield Publisher(log, registry, 4096, Metrics())
    log.close()


def _event(rng: random.Random, i: int, *, varied: bool) -> OutgoingEvent:
    value = {
        "id": rng.choice([f"T{i}", f"T{i}-é"]),
        "qty": i,
        "px": "1.5",
        "side": "BUY",
        "at": "2026-12-02T08:00:00Z",
    }
    if not varied:
        return OutgoingEvent(value=value, event_type="com.hub.Trade")
    return OutgoingEvent(
        value=value,
        event_type="com.hub.Trade",
        key=rng.choice([None, f"key-{i}", ""]),
        event_id=rng.choice([None, str(uuid.uuid4())]),
        occurred_at=rng.choice([None, "2026-01-02T10:00:00Z", "2026-03-01T01:02:03.5+02:00"]),
        correlation_id=rng.choice(["", f"corr-{i}"]),
        causation_id=rng.choice(["", f"cause-{i}", "same"]),
    )


@pytest.mark.parametrize("seed", range(8))
def test_envelope_columns_hold_the_records_of_column_records(
    publisher: Publisher, seed: int
) -> None:
    rng = random.Random(seed)
    varied = seed % 2 == 1
    events = [_event(rng, i, varied=varied) for i in range(rng.randrange(1, 200))]
    shape = _Shape(publisher.targets.resolve("t.cols", "com.hub.Trade"), "svc-ü", "acme")
    values = [rng.randbytes(rng.randrange(0, 40)) for _ in events]
    ids = [str(uuid.uuid4()).encode() for _ in events]
    now = b"2026-12-04T17:00:00.000001Z"
    key_field = publisher.targets.key_field("t.cols")
    records = publisher._column_records(events, values, shape, key_field, now, iter(ids))
    batch = publisher._envelope_columns(events, values, shape, key_field, now, iter(ids))
    assert isinstance(batch, ColumnBatch)
    batch.check("t.cols")
    assert batch.records() == records
    if not varied:  # what every record shares is held once, not per record
        shared = [c for c in batch.header_columns if isinstance(c, bytes)]
        assert len(shared) == len(batch.header_names) - 2  # all but the event id and correlation


def test_publish_appends_columns_and_stores_the_prepared_records(publisher: Publisher) -> None:
    rng = random.Random(7)
    events = [_event(rng, i, varied=True) for i in range(50)]
    log = publisher._log
    taken: list[int] = []
    append_columns = log.append_columns

    def spy(topic: str, batch: ColumnBatch) -> object:
        taken.append(len(batch))
        return append_columns(topic, batch)

    log.append_columns = spy  # type: ignore[method-assign,assignment]
    meta = publisher.publish("t.cols", events, producer="svc")
    assert taken == [50]
    assert [m.offset for m in meta] == list(range(50))
    stored = log.read("t.cols", 0, 0, 100)
    expected = publisher.prepare("t.cols", events, producer="svc")
    assert [(r.key, r.value) for r in stored] == [(r.key, r.value) for r in expected]
    for s, e in zip(stored, expected, strict=True):
        assert [k for k, _ in s.headers] == [k for k, _ in e.headers]
    # events that bring headers of their own go as records, headers included
    own = [OutgoingEvent(value=events[0].value, event_type="com.hub.Trade", headers={"x": "1"})]
    publisher.publish("t.cols", own, producer="svc")
    assert taken == [50]
    assert log.read("t.cols", 0, 50, 1)[0].headers[-1] == ("x", b"1")


@pytest.mark.parametrize("key_field", ["id", "qty", "note", None])
def test_uniform_batches_take_the_column_passes_with_the_same_records(
    publisher: Publisher, key_field: str | None
) -> None:
    """Events without a key, id or correlation of their own (the C-level passes of
    ``_envelope_columns``): the keys from a text, an int or an absent / null key field, or no
    key field at all, are exactly ``_column_records``'; a batch with one event of its own id,
    key or correlation goes event by event and is the same too."""
    rng = random.Random(3)
    events = [_event(rng, i, varied=False) for i in range(60)]
    for i in range(0, 60, 7):
        events[i].value["note"] = None if i % 2 else f"n{i}"
    shape = _Shape(publisher.targets.resolve("t.cols", "com.hub.Trade"), "svc", "acme")
    values = [rng.randbytes(8) for _ in events]
    ids = [str(uuid.uuid4()).encode() for _ in events]
    now = b"2026-12-04T17:00:00.000001Z"
    odd = OutgoingEvent(
        value=events[5].value, event_type="com.hub.Trade", event_id="e-5", correlation_id="c-5"
    )
    for batch_events in (events, [*events[:5], odd, *events[6:]]):
        left = ids[: sum(1 for ev in batch_events if not ev.event_id)]
        records = publisher._column_records(batch_events, values, shape, key_field, now, iter(left))
        batch = publisher._envelope_columns(batch_events, values, shape, key_field, now, iter(left))
        assert batch.records() == records
        if key_field == "qty":
            assert records[3].key == b"3"
