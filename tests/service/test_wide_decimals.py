"""Decimals wider than Python's default 28-digit context (Avro ``decimal(38, s)``) come back
digit-exact on every read path: a value of 38 digits must not be rounded to 28 by a ``scaleb``,
``quantize`` or sum under the default context."""

from __future__ import annotations

import base64
import json
from decimal import Decimal

import pyarrow as pa
from fastapi.testclient import TestClient

from adapters.sqlalchemy_views import ExactDecimal
from core.avro import serde
from core.projection import Column, Table
from hub.api.app import create_app
from hub.bootstrap import Hub
from hub.console import live_bars
from projections import decode, pattern_batch, patterns, types
from projections.digest import canonical
from projections.flink import results

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
    from core.events import OutgoingEvent

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
