"""The vectorised Avro encoder writes byte for byte what fastavro writes, or flags the row."""

from __future__ import annotations

import io
from datetime import UTC, date, datetime
from decimal import Context, Decimal
from typing import Any

import fastavro
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.avro.serde import _from_default
from core.avro.vector import plan

SYMBOLS = ["USD", "EUR", "GBP", "XXX"]
SCHEMA: dict[str, Any] = {
    "type": "record",
    "name": "Row",
    "namespace": "t",
    "fields": [
        {"name": "s", "type": "string"},
        {"name": "ns", "type": ["null", "string"], "default": None},
        {"name": "sn", "type": ["string", "null"]},
        {"name": "l", "type": "long"},
        {"name": "i", "type": "int"},
        {"name": "nl", "type": ["null", "long"]},
        {"name": "b", "type": "boolean"},
        {"name": "d", "type": "double"},
        {"name": "e", "type": {"type": "enum", "name": "Cur", "symbols": SYMBOLS}},
        {"name": "ne", "type": ["null", "t.Cur"]},
        {
            "name": "q",
            "type": {"type": "bytes", "logicalType": "decimal", "precision": 18, "scale": 4},
        },
        {
            "name": "p",
            "type": {"type": "bytes", "logicalType": "decimal", "precision": 38, "scale": 8},
        },
        {
            "name": "up",
            "type": {"type": "bytes", "logicalType": "decimal", "precision": 18, "scale": 6},
        },
        {
            "name": "nq",
            "type": [
                "null",
                {"type": "bytes", "logicalType": "decimal", "precision": 10, "scale": 2},
            ],
        },
        {"name": "ts", "type": {"type": "long", "logicalType": "timestamp-micros"}},
        {"name": "tsm", "type": {"type": "long", "logicalType": "timestamp-micros"}},
        {"name": "dt", "type": ["null", {"type": "int", "logicalType": "date"}]},
        {"name": "raw", "type": "bytes"},
        {"name": "venue", "type": "string", "default": "XOFF"},
        {
            "name": "fees",
            "type": {"type": "bytes", "logicalType": "decimal", "precision": 18, "scale": 2},
            "default": "\u0000",
        },
    ],
}
ARROW = pa.schema(
    [
        ("s", pa.string()),
        ("ns", pa.string()),
        ("sn", pa.large_string()),
        ("l", pa.int64()),
        ("i", pa.int32()),
        ("nl", pa.int64()),
        ("b", pa.bool_()),
        ("d", pa.float64()),
        ("e", pa.string()),
        ("ne", pa.string()),
        ("q", pa.decimal128(18, 4)),
        ("p", pa.decimal128(38, 8)),
        ("up", pa.decimal128(12, 2)),  # scaled up by 10**4 on the way
        ("nq", pa.decimal128(10, 2)),
        ("ts", pa.timestamp("us", tz="UTC")),
        ("tsm", pa.timestamp("ms")),
        ("dt", pa.date32()),
        ("raw", pa.binary()),
        ("extra", pa.int64()),  # not in the schema: ignored, as fastavro ignores extra keys
    ]
)
PARSED = fastavro.parse_schema(SCHEMA)
text = st.text(st.characters(codec="utf-8", categories=("L", "N", "P", "S", "Z", "M")), max_size=12)
I64 = st.integers(-(2**63), 2**63 - 1)


def dec(digits: int, scale: int) -> st.SearchStrategy[Decimal]:
    top = 10**digits - 1
    edges = st.sampled_from([0, 1, -1, top, -top, 127, -128, 128, -129, 255, 256, -256, 32768])
    exact = Context(prec=100)
    return st.one_of(edges, st.integers(-top, top)).map(
        lambda u: Decimal(u).scaleb(-scale, context=exact)
    )


row = st.fixed_dictionaries(
    {
        "s": text,
        "ns": st.none() | text,
        "sn": st.none() | text,
        "l": I64,
        "i": st.integers(-(2**31), 2**31 - 1),
        "nl": st.none() | I64,
        "b": st.booleans(),
        "d": st.floats(allow_nan=False),
        "e": st.sampled_from(SYMBOLS),
        "ne": st.none() | st.sampled_from(SYMBOLS),
        "q": dec(18, 4),
        "p": dec(18, 8),  # in a decimal128(38, 8) column: wider values are flagged, see below
        "up": dec(12, 2),
        "nq": st.none() | dec(10, 2),
        "ts": st.integers(-(10**16), 10**17).map(
            lambda us: pa.scalar(us, pa.timestamp("us", tz="UTC")).as_py()
        ),
        "tsm": st.integers(-(10**13), 10**14).map(
            lambda ms: pa.scalar(ms, pa.timestamp("ms")).as_py()
        ),
        "dt": st.none() | st.dates(date(1, 1, 2), date(9999, 12, 30)),
        "raw": st.binary(max_size=20),
        "extra": I64,
    }
)


def fastavro_value(datum: dict[str, Any]) -> bytes:
    full = dict(datum)
    named = PARSED["__named_schemas"]
    for f in SCHEMA["fields"]:
        if f["name"] not in full:
            full[f["name"]] = _from_default(f["default"], f["type"], named)
    buf = io.BytesIO()
    buf.write(b"\x00\x00\x00\x00\x2a")
    fastavro.schemaless_writer(buf, PARSED, full)
    return buf.getvalue()


def check(rows: list[dict[str, Any]]) -> None:
    rb = pa.RecordBatch.from_pylist(rows, schema=ARROW)
    enc = plan(PARSED, rb.schema)
    assert enc is not None
    assert not enc.bad_rows(rb).any()
    got = enc.encode(rb, b"\x00\x00\x00\x00\x2a")
    want = [fastavro_value(r) for r in rb.to_pylist()]
    assert got == want
    # a slice (non-zero Arrow offsets) encodes the same rows the same way
    if len(rows) > 2:
        assert enc.encode(rb.slice(1, len(rows) - 2), b"\x00\x00\x00\x00\x2a") == want[1:-1]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(row, min_size=1, max_size=40))
def test_equal_to_fastavro_byte_for_byte(rows: list[dict[str, Any]]) -> None:
    check(rows)


def test_edge_values() -> None:
    base = {
        "s": "",
        "ns": None,
        "sn": None,
        "l": 0,
        "i": 0,
        "nl": None,
        "b": False,
        "d": -0.0,
        "e": "USD",
        "ne": None,
        "q": Decimal("0.0000"),
        "p": Decimal("-0.00000001"),
        "up": Decimal("0.00"),
        "nq": None,
        "ts": datetime(1970, 1, 1, tzinfo=UTC),
        "tsm": datetime(1969, 12, 31, 23, 59, 59, 999000),
        "dt": None,
        "raw": b"",
        "extra": 0,
    }
    rows = [
        base,
        {**base, "s": "é中\U0001f600", "ns": "", "sn": "ü", "l": 2**63 - 1, "i": -(2**31)},
        {**base, "l": -(2**63), "nl": -1, "q": Decimal("99999999999999.9999")},
        {
            **base,
            "q": Decimal("-99999999999999.9999"),
            "p": Decimal("-128"),
            "nq": Decimal("-1.28"),
        },
        {**base, "up": Decimal("9999999999.99"), "dt": date(2026, 11, 25), "raw": b"\x00\xff"},
        {**base, "p": Decimal("92233720368.54775807"), "b": True, "ne": "XXX"},
    ]
    check(rows)


def test_rows_fastavro_would_refuse_are_flagged() -> None:
    schema = {
        "type": "record",
        "name": "R",
        "fields": [
            {"name": "s", "type": "string"},
            {"name": "e", "type": {"type": "enum", "name": "E", "symbols": ["A", "B"]}},
            {
                "name": "q",
                "type": {"type": "bytes", "logicalType": "decimal", "precision": 4, "scale": 2},
            },
            {
                "name": "w",
                "type": {"type": "bytes", "logicalType": "decimal", "precision": 38, "scale": 0},
            },
        ],
    }
    parsed = fastavro.parse_schema(schema)
    rows = [
        {"s": "ok", "e": "A", "q": Decimal("12.34"), "w": Decimal(1)},
        {"s": None, "e": "A", "q": Decimal("1.00"), "w": Decimal(1)},  # null in a non-null field
        {"s": "x", "e": "C", "q": Decimal("1.00"), "w": Decimal(1)},  # not a symbol
        {"s": "x", "e": "B", "q": Decimal("123.45"), "w": Decimal(1)},  # over precision 4
        {"s": "x", "e": "B", "q": Decimal("1.00"), "w": Decimal(2**70)},  # over 64 bits
    ]
    rb = pa.RecordBatch.from_pylist(
        rows,
        schema=pa.schema(
            [
                ("s", pa.string()),
                ("e", pa.string()),
                ("q", pa.decimal128(6, 2)),
                ("w", pa.decimal128(38, 0)),
            ]
        ),
    )
    enc = plan(parsed, rb.schema)
    assert enc is not None
    assert enc.bad_rows(rb).tolist() == [False, True, True, True, True]
    for r in rows[1:4]:  # fastavro refuses these; the per-record path quarantines them
        with pytest.raises((ValueError, TypeError, KeyError, AttributeError)):
            fastavro.schemaless_writer(io.BytesIO(), parsed, r)
    # a scale finer than the schema's: fastavro refuses every row, so every row is flagged
    finer = pa.RecordBatch.from_pylist(
        [{"s": "x", "e": "A", "q": Decimal("1.000"), "w": Decimal(1)}],
        schema=pa.schema(
            [
                ("s", pa.string()),
                ("e", pa.string()),
                ("q", pa.decimal128(6, 3)),
                ("w", pa.decimal128(38, 0)),
            ]
        ),
    )
    enc2 = plan(parsed, finer.schema)
    assert enc2 is not None and enc2.bad_rows(finer).all()


def test_unsupported_layouts_have_no_plan() -> None:
    assert plan(PARSED, pa.schema([("s", pa.int64())])) is None  # wrong type
    nested = {
        "type": "record",
        "name": "N",
        "fields": [{"name": "a", "type": {"type": "array", "items": "int"}}],
    }
    assert plan(fastavro.parse_schema(nested), pa.schema([("a", pa.list_(pa.int32()))])) is None
    no_default = {"type": "record", "name": "M", "fields": [{"name": "x", "type": "string"}]}
    assert plan(fastavro.parse_schema(no_default), pa.schema([("y", pa.string())])) is None


# -- the generated per-schema encoder (hub.serde.encoder), used by the per-record path -------------
def _parsed_schema() -> Any:
    import json

    from core.avro.schema import parse_schema

    return parse_schema(json.dumps(SCHEMA))


ODD = st.sampled_from(
    [
        1,
        "x",
        1.5,
        True,
        None,
        Decimal("NaN"),
        Decimal("1.00001"),
        2**64,
        -(2**70),
        b"x",
        date(2020, 1, 1),
    ]
)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(row, st.dictionaries(st.sampled_from(sorted(ARROW.names)), ODD, max_size=2), st.booleans())
def test_generated_encoder_equals_fastavro(
    datum: dict[str, Any], odd: dict[str, Any], drop: bool
) -> None:
    from core.avro import serde
    from core.errors import SerializationError

    ps = _parsed_schema()
    enc = serde.encoder(42, ps)
    datum = {**datum, "venue": "V", "fees": Decimal("1.50")}
    for case in (
        datum,
        {**datum, **odd},
        {k: v for k, v in datum.items() if k != "s"} if drop else datum,
    ):
        try:
            want: bytes | str = serde.encode(42, ps, case)
        except SerializationError as exc:
            want = exc.message
        try:
            got: bytes | str = enc(case)
        except SerializationError as exc:
            got = exc.message
        assert got == want
