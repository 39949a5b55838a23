"""The generated per-schema Avro encoder (``serde.encoder``) writes arrays, maps and int
timestamps byte for byte as fastavro does, and gives fastavro's own error for what fastavro
refuses (the policy-decision records take this path: roles, mask, row_filter, decided_at)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.avro import serde
from core.avro.schema import ParsedSchema, parse_schema
from core.errors import SerializationError

SCHEMA: dict[str, Any] = {
    "type": "record",
    "name": "C",
    "namespace": "t",
    "fields": [
        {"name": "tags", "type": {"type": "array", "items": "string"}},
        {"name": "attrs", "type": {"type": "map", "values": "string"}},
        {"name": "nums", "type": ["null", {"type": "array", "items": ["null", "long"]}]},
        {"name": "grid", "type": {"type": "array", "items": {"type": "array", "items": "int"}}},
        {"name": "at", "type": {"type": "long", "logicalType": "timestamp-micros"}},
        {"name": "nested", "type": {"type": "map", "values": {"type": "map", "values": "long"}}},
    ],
}

text = st.text(max_size=80)  # lengths across the one- and two-byte varints
longs = st.integers(-(2**63), 2**63 - 1)
datum = st.fixed_dictionaries(
    {
        "tags": st.lists(st.text(max_size=2), max_size=70),  # counts past 63: two bytes
        "attrs": st.dictionaries(text, text, max_size=3),
        "nums": st.none() | st.lists(st.none() | longs, max_size=5),
        "grid": st.lists(st.lists(st.integers(-(2**31), 2**31 - 1), max_size=3), max_size=3),
        "at": longs
        | st.datetimes(timezones=st.just(UTC), min_value=datetime(1900, 1, 1).replace()),
        "nested": st.dictionaries(text, st.dictionaries(text, longs, max_size=2), max_size=2),
    }
)
ODD = st.sampled_from([("a", "b"), ["a", 1], {1: "x"}, {"k": 1}, 2**64, 1.5, None, "x", [[1.5]]])


def _schema() -> ParsedSchema:
    return parse_schema(json.dumps(SCHEMA))


def test_the_collections_schema_is_generated_not_left_to_fastavro() -> None:
    assert serde._generate(_schema()) is not None


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(datum, st.dictionaries(st.sampled_from([f["name"] for f in SCHEMA["fields"]]), ODD))
def test_generated_collections_equal_fastavro(d: dict[str, Any], odd: dict[str, Any]) -> None:
    ps = _schema()
    enc = serde.encoder(43, ps)
    for case in (d, {**d, **odd}):
        try:
            want: bytes | str = serde.encode(43, ps, case)
        except SerializationError as exc:
            want = exc.message
        try:
            got: bytes | str = enc(case)
        except SerializationError as exc:
            got = exc.message
        assert got == want
