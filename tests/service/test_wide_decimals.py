"""Decimals wider than Python's default 28-digit context (Avro ``decimal(38, s)``) come back
digit-exact on every read path: a value of 38 digits must not be rounded to 28 by a ``scaleb``,
``quantize`` or sum under the default context."""

from __future__ import annotations

import base64
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
from fastapi.testclient import TestClient

from adapters.sqlalchemy_views import ExactDecimal
from core.avro import serde
from core.events import OutgoingEvent
from core.pii import encrypted_schema
from core.projection import Column, Table
from hub import pattern_alerts
from hub.api.app import create_app
from hub.bootstrap import Hub, bootstrap
from hub.console import live_bars
from hub.settings import load_settings
from projections import decode, pattern_batch, patterns, types
from projections.digest import canonical
from projections.flink import results

ROOT = Path(__file__).resolve().parents[2]
SRC = ("src_topic", "src_partition", "src_first", "src_last")
WIDE = "123456789012345678901234567890123456.78"  # 38 digits
SCHEMA = {
    "type": "record",
    "name": "Wide",
    "namespace": "t",
    "fields": [
        {"name": "id", "type": "string"},
        {
            "name": "amount",
            "type": {"type": "bytes", "logicalType": "decimal", "precision": 38, "scale": 2},
        },
    ],
}


def auth(token: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(token.encode()).decode()}


def test_a_wide_decimal_is_read_back_exactly_by_the_record_path_and_the_event_route(
    hub: Hub,
) -> None:
    hub.log.create_topic("t.wide", 1)
    hub.registry.register("t.wide-value", json.dumps(SCHEMA))
    hub.publisher.publish(
        "t.wide", [OutgoingEvent(value={"id": "a", "amount": WIDE})], producer="t"
    )
    (rec,) = hub.reader.read("t.wide", 0, 0, 10)
    assert str(rec["value"]["amount"]) == WIDE
    token = hub.keys.create(["admin"], principal="root").token
    with TestClient(create_app(hub)) as client:
        r = client.get("/v1/topics/t.wide/events", headers=auth(token))
        assert r.status_code == 200, r.text
        (got,) = r.json()["records"]
        assert str(got["value"]["amount"]) == WIDE, got


def test_a_wide_default_is_exact() -> None:
    t = {"type": "bytes", "logicalType": "decimal", "precision": 38, "scale": 2}
    unscaled = int(WIDE.replace(".", ""))
    raw = unscaled.to_bytes(16, "big", signed=True).decode("latin-1")
    assert str(serde._from_default(raw, t, {})) == WIDE
    assert serde._decimal_bytes(Decimal(WIDE), 38, 2) == unscaled.to_bytes(16, "big", signed=True)


def test_columns_of_unscaled_integers_convert_exactly() -> None:
    # the columnar decoders keep unscaled values within 64 bits: 19 digits at scale 18
    arr = pa.array([Decimal("9.123456789012345678")], pa.decimal128(38, 18))
    assert decode._py_column(arr, False) == [Decimal("9.123456789012345678")]
    assert pattern_batch._decimals(arr) == [Decimal("9.123456789012345678")]


def test_view_columns_keep_every_digit() -> None:
    col = types._decimal(pa.chunked_array([[WIDE, None]]), 2)
    assert col is not None and col.to_pylist() == [Decimal(WIDE), None]
    ex = ExactDecimal(2)

    class Dialect:
        name = "sqlite"

    stored = ex.process_bind_param(Decimal(WIDE), Dialect())  # type: ignore[arg-type]
    assert stored == WIDE
    assert str(ex.process_result_value(stored, Dialect())) == WIDE  # type: ignore[arg-type]
    assert canonical(Decimal(WIDE), 2) == WIDE
    assert str(live_bars._as(WIDE, pa.decimal128(38, 2))) == WIDE
    t = Table("w", "aggregate", (Column("amount", "decimal", "sum", scale=2),))
    assert str(results._physical(t, {"amount": WIDE, **dict.fromkeys(SRC, 0)})["amount"]) == WIDE


def test_sums_of_wide_decimals_are_exact() -> None:
    run = [(0, 0, i, Decimal(WIDE)) for i in range(2)]
    assert patterns.structuring_row(("t", "a"), run)["amount"] == Decimal(
        "246913578024691357802469135780246913.56"
    )


def test_a_wide_decimal_is_exact_in_views_their_sums_and_exports(tmp_path: Path) -> None:
    """The payments schema widened to decimal(38, 2) (a BACKWARD-compatible change): the
    SQLite view (``payment_status``), the chDB aggregate (``aml_daily``, a sum of two wide
    values) and their CSV exports keep every digit."""
    h = bootstrap(load_settings(environ={}, data_dir=tmp_path / "data", projection_autostart=False))
    try:
        subject = "hub.payments.PaymentInitiated"
        s = json.loads((ROOT / "domain/schemas/PaymentInitiated.avsc").read_text())
        for f in s["fields"]:
            if f["name"] == "amount":
                f["type"]["precision"] = 38
        # The subject holds the log's form (PII fields stored encrypted): a new version keeps
        # that protection, or the registry refuses it as a declassification.
        h.registry.register(subject, encrypted_schema(s))
        events = [
            OutgoingEvent(
                event_type=subject,
                key="A1",
                value={
                    "payment_id": f"P{i}",
                    "account_id": "A1",
                    "amount": WIDE if i < 2 else "1.00",
                    "currency": "EUR",
                    "counterparty_name": "x",
                    "counterparty_iban": "y",
                    "counterparty_country": "DE",
                    "initiated_at": "2026-01-01T10:00:00Z",
                },
            )
            for i in range(3)
        ]
        h.publisher.publish("payments", events, producer="t", tenant="acme")
        h.projections.run(["payments", "payment_aggregates"])
        token = h.keys.create(["admin"], principal="root").token
        with TestClient(create_app(h)) as client:

            def query(sql: str, **kw: str) -> Any:
                r = client.post("/v1/query", json={"sql": sql, **kw}, headers=auth(token))
                assert r.status_code == 200, r.text
                return r

            sql = "SELECT amount FROM payment_status ORDER BY payment_id"
            rows = query(sql, store="transactional").json()["rows"]
            assert [r["amount"] for r in rows] == [WIDE, WIDE, "1.00"]
            csv = query(sql, store="transactional", format="csv").text.splitlines()
            assert csv[1:] == [f'"{WIDE}"', f'"{WIDE}"', '"1.00"']
            total = "246913578024691357802469135780246914.56"  # 2 x WIDE + 1.00
            (row,) = query("SELECT amount FROM aml_daily").json()["rows"]
            assert row["amount"] == total
            csv = query("SELECT amount FROM aml_daily", format="csv").text.splitlines()
            assert csv[1:] == [f'"{total}"']
    finally:
        h.close()


def test_a_wide_decimal_is_exact_on_the_column_ingest_route(hub: Hub) -> None:
    hub.log.create_topic("t.wide", 1)
    hub.registry.register("t.wide-value", json.dumps(SCHEMA))
    token = hub.keys.create(["admin"], principal="root").token
    body = json.dumps({"events": [{"id": f"i{i}", "amount": WIDE} for i in range(50)]})
    with TestClient(create_app(hub)) as client:
        r = client.post("/v1/ingest/t.wide", content=body.encode(), headers=auth(token))
        assert r.status_code == 200, r.text
        assert r.json()["accepted"] == 50, r.json()
    records = hub.reader.read("t.wide", 0, 0, 100)
    assert [str(r["value"]["amount"]) for r in records] == [WIDE] * 50


def test_a_pattern_alert_states_a_wide_amount_exactly() -> None:
    row = {
        "tenant": "t",
        "account_id": "a",
        "first_partition": 0,
        "first_offset": 0,
        "last_offset": 1,
        "first_at": 0,
        "last_at": 1,
        "payments": 2,
        "amount": Decimal(WIDE),
    }
    got = pattern_alerts.alert_value("embedded", patterns.Structuring(), row)
    assert got["value"] == WIDE
    spike = {"instrument": "X", "trade_partition": 0, "trade_offset": 0, "tenant": "t"}
    spike |= {"trade_id": "t1", "price": WIDE, "ask": WIDE}
    got = pattern_alerts.alert_value("embedded", patterns.PriceSpike(), spike)
    assert got["threshold"] == "129629628462962962846296296284629629.619"  # WIDE x 1.05
