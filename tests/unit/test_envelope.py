from __future__ import annotations

import itertools
import json
from datetime import UTC, datetime

import fastavro
import pytest

from domain.catalog import TOPICS, all_event_types, classified_fields, schema_text
from domain.envelope import Envelope, uuid7


def test_uuid7_is_time_ordered_and_versioned() -> None:
    ids = [uuid7() for _ in range(5000)]
    assert all(a < b for a, b in itertools.pairwise(ids))
    assert {u.version for u in ids} == {7}
    ms = int.from_bytes(ids[0].bytes[:6], "big")
    assert abs(ms - datetime.now(UTC).timestamp() * 1000) < 60_000


def test_envelope_round_trips_through_headers() -> None:
    env = Envelope(
        "hub.trading.TradeExecuted",
        "desk-7",
        tenant="acme",
        classification="confidential",
        causation_id="c-1",
    )
    back = Envelope.from_headers(env.to_headers())
    assert back == env
    names = [k for k, _ in env.to_headers()]
    assert names[:2] == ["ce_specversion", "ce_id"]
    assert env.correlation_id == env.event_id  # a new flow correlates to itself


def test_envelope_rejects_unknown_classification() -> None:
    with pytest.raises(ValueError, match="classification"):
        Envelope("x", "y", classification="secretish")


# Unitless probabilities and shares in [0, 1] (a model's score, its decision threshold, a traffic
# share): doubles, as the model computes them. Every amount of money stays a decimal.
PROBABILITIES = {
    "hub.ModelPromoted.share",
    "hub.ModelRegistered.threshold",
    "hub.PredictionRecorded.score",
}


@pytest.mark.parametrize("event_type", all_event_types())
def test_shipped_schemas_parse_and_use_decimals_for_money(event_type: str) -> None:
    schema = json.loads(schema_text(event_type))
    assert f"{schema['namespace']}.{schema['name']}" == event_type
    fastavro.parse_schema(schema)
    for f in schema["fields"]:
        t = f["type"]
        if f"{event_type}.{f['name']}" not in PROBABILITIES:
            assert t not in ("float", "double"), f"{event_type}.{f['name']} must not be a float"
        if isinstance(t, dict) and t.get("type") == "enum":
            assert t.get("default") in t["symbols"], f"enum {t['name']} needs a default"
        if f["name"].endswith("_at"):
            inner = t if isinstance(t, dict) else next(x for x in t if x != "null")
            assert inner.get("logicalType") == "timestamp-micros"


def test_pii_is_classified_in_the_schemas() -> None:
    assert classified_fields("hub.accounts.AccountOpened")["email"] == "pii"
    assert classified_fields("hub.payments.PaymentInitiated")["counterparty_iban"] == "pii"
    assert {t.name for t in TOPICS} >= {"trades", "quotes", "payments", "accounts", "hub.config"}
