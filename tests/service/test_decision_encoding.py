"""The batch encoder of policy decisions gives the bytes ``Publisher.prepare`` gives (the
reference path), and what it stores reads back as the decision."""

from __future__ import annotations

from datetime import datetime

import pytest

from core.errors import PayloadTooLarge
from governance.decisions import (
    DECISIONS_TOPIC,
    DecisionEncoder,
    DecisionRecord,
    LogDecisionSink,
    decision_event,
    new_decision_id,
)
from hub.bootstrap import Hub
from ingest.publish import EventReader

RECORDS = [
    DecisionRecord(
        new_decision_id(),
        "root",
        "default",
        ("admin",),
        "event.read",
        "topics/t1",
        True,
        "Allowed: admin may read.",
        "v" * 64,
        "a" * 64,
        1_764_640_000_123_456,
    ),
    DecisionRecord(
        new_decision_id(),
        "ann",
        "acme",
        ("analyst", "auditor"),
        "event.read",
        "topics/pay/ü",
        False,
        "Denied: no role grants event.read on topics/pay/ü.",
        "v" * 64,
        "b" * 64,
        1_764_640_000_000_001,
        mask=("iban", "name"),
        row_filter={"tenant": "acme", "x": "é"},
        purpose="fraud-review",
        case_id="case-7",
    ),
    DecisionRecord(
        new_decision_id(),
        "svc",
        "globex",
        (),
        "schema.read",
        "",
        True,
        "",
        "",
        "",
        0,
    ),
]


def test_batch_encoding_is_byte_identical_to_the_publisher(hub: Hub) -> None:
    sink = LogDecisionSink(hub.log, hub.registry, hub.publisher)
    sink.append(RECORDS[:1])  # creates the topic and registers the schema
    encoder = DecisionEncoder(hub.publisher)
    assert encoder.direct, "the decision schema holds no PII: the direct path must be taken"
    fast = encoder.encode(RECORDS)
    for r, got in zip(RECORDS, fast, strict=True):
        (ref,) = hub.publisher.prepare(
            DECISIONS_TOPIC, [decision_event(r)], producer=r.principal, tenant=r.tenant
        )
        assert got.value == ref.value
        assert got.key == ref.key
        assert got.headers == ref.headers


def test_stored_decisions_read_back_as_recorded(hub: Hub) -> None:
    sink = LogDecisionSink(hub.log, hub.registry, hub.publisher)
    sink.append(RECORDS)
    reader = EventReader(hub.log, hub.registry)
    stored = [reader.decode(rec) for rec in hub.log.read(DECISIONS_TOPIC, 0, 0, 100)]
    by_id = {s["value"]["decision_id"]: s for s in stored}
    for r in RECORDS:
        got = by_id[r.decision_id]
        want = r.value()
        assert {**got["value"], "decided_at": None} == {**want, "decided_at": None}
        assert datetime.fromisoformat(got["value"]["decided_at"]) == datetime.fromisoformat(
            want["decided_at"]
        )
        assert got["headers"]["hub_action"] == r.action
        assert got["headers"]["ce_id"] == r.decision_id


def test_an_oversized_decision_is_refused_naming_it(hub: Hub) -> None:
    sink = LogDecisionSink(hub.log, hub.registry, hub.publisher)
    big = DecisionRecord(
        new_decision_id(),
        "root",
        "default",
        (),
        "event.read",
        "r" * (hub.publisher.max_record_bytes + 1),
        True,
        "",
        "",
        "",
        0,
    )
    with pytest.raises(PayloadTooLarge, match=big.decision_id):
        sink.append([big])
