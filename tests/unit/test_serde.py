"""JSON <-> Avro mapping and the Confluent wire format."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from core.avro import serde
from core.avro.schema import parse_schema
from core.errors import SerializationError
from domain.catalog import schema_text

TRADE = parse_schema(schema_text("hub.trading.TradeExecuted"))
ACCOUNT = parse_schema(schema_text("hub.accounts.AccountUpdated"))


def trade(**over: object) -> dict[str, object]:
    base = {
        "trade_id": "T",
        "account_id": "A",
        "instrument": "I",
        "side": "SELL",
        "quantity": "5",
        "price": Decimal("10.5"),
        "currency": "GBP",
        "executed_at": "2026-01-02T03:04:05.000006Z",
    }
    return {**base, **over}


def test_round_trip_keeps_money_exact() -> None:
    datum = serde.from_json(trade(), TRADE.parsed)
    wire = serde.encode(42, TRADE, datum)
    assert wire[0] == 0
    assert int.from_bytes(wire[1:5], "big") == 42
    back = serde.decode(wire, TRADE)
    assert back["price"] == Decimal("10.50000000")
    assert back["fees"] == Decimal("0.00")  # the default
    assert back["executed_at"] == datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=UTC)
    out = serde.to_json(back)
    assert out["price"] == "10.50000000"
    assert out["executed_at"] == "2026-01-02T03:04:05.000006Z"
    json.dumps(out)


@pytest.mark.parametrize(
    ("over", "needle"),
    [
        ({"price": "1.000000001"}, "decimal places"),
        ({"price": "12345678901.5"}, "significant digits"),
        ({"price": 0.1234567891}, "more than 8 decimal places"),
        ({"price": float("nan")}, "not a finite number"),
        ({"price": float("inf")}, "not a finite number"),
        ({"price": 1e12}, "significant digits"),
        ({"price": True}, "a decimal must be a number"),
        ({"price": "NaN"}, "finite"),
        ({"side": "LONG"}, "side"),
        ({"executed_at": "yesterday"}, "RFC 3339"),
        ({"surprise": 1}, "unknown field"),
        ({"quantity": None}, "quantity"),
    ],
)
def test_bad_values_name_the_field(over: dict[str, object], needle: str) -> None:
    with pytest.raises(SerializationError, match=needle):
        serde.from_json(trade(**over), TRADE.parsed)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (101.25, "101.25000000"),  # a float through its shortest repr, not its binary expansion
        (0.1, "0.10000000"),
        (1e-8, "0.00000001"),
        (-3.0, "-3.00000000"),
        (7, "7.00000000"),  # an int
        (Decimal("1.50000000000"), "1.50000000"),  # trailing zeros are not lost precision
    ],
)
def test_floats_and_ints_convert_to_decimals_exactly(value: object, expected: str) -> None:
    assert serde.from_json(trade(price=value), TRADE.parsed)["price"] == Decimal(expected)
    assert serde.from_json(trade(price=value), TRADE.parsed)["price"].as_tuple().exponent == -8


def test_file_rows_coerce_decimal_fields_exactly() -> None:
    fields = serde.decimal_fields(TRADE.parsed)
    assert {name for name, _ in fields} == {"price", "quantity", "fees"}
    row = {"price": 101.25, "quantity": 100, "fees": None}
    out = serde.coerce_decimals(row, fields)
    assert out == {"price": Decimal("101.25"), "quantity": Decimal("100"), "fees": None}
    assert serde.coerce_decimals(out, fields) is out  # nothing left to convert
    with pytest.raises(SerializationError, match=r"/price: 101\.123456789 has more than 8"):
        serde.coerce_decimals({"price": 101.123456789}, fields)


def test_missing_required_field() -> None:
    value = trade()
    del value["instrument"]
    with pytest.raises(SerializationError, match="/instrument: required"):
        serde.from_json(value, TRADE.parsed)


def test_unions_take_plain_or_tagged_values() -> None:
    base = {"account_id": "A", "updated_at": 1_700_000_000_000_000}
    assert serde.from_json({**base, "kyc_level": "ENHANCED"}, ACCOUNT.parsed)["kyc_level"] == (
        "ENHANCED"
    )
    tagged = {**base, "risk_rating": {"hub.accounts.RiskRating": "HIGH"}}
    assert serde.from_json(tagged, ACCOUNT.parsed)["risk_rating"] == "HIGH"
    with pytest.raises(SerializationError, match="no union branch"):
        serde.from_json({**base, "kyc_level": "PLATINUM"}, ACCOUNT.parsed)


def test_wire_format_errors() -> None:
    with pytest.raises(SerializationError, match="magic byte"):
        serde.split_wire(b"\x01\x00\x00\x00\x01abc")
    with pytest.raises(SerializationError, match="magic byte"):
        serde.split_wire(b"\x00\x00")
    wire = serde.encode(1, TRADE, serde.from_json(trade(), TRADE.parsed))
    with pytest.raises(SerializationError, match="Cannot decode"):
        serde.decode(wire[:12], TRADE)
