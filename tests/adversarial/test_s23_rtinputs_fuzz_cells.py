"""Session 23 hostile inputs, property form (docs/benchmarks/s23-redteam-inputs23.md): a CSV
cell, converted as the per-record reference converts it (``files.parse_csv_row`` then
``serde.from_json``), is either refused or read as exactly what a strict reading of its text
says. The cells are drawn from the characters that made values change (digits of other
scripts, '_', signs, exponents, zone marks, long fractions). Fixed seed: the same cells in CI."""

from __future__ import annotations

import re
from datetime import datetime
from decimal import Decimal
from typing import Any

import fastavro
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.avro import serde
from core.errors import HubError
from ingest.files import csv_types, parse_csv_row

SCHEMA: dict[str, Any] = {
    "type": "record",
    "name": "Cell",
    "fields": [
        {"name": "q", "type": "long"},
        {"name": "px", "type": "double"},
        {"name": "f", "type": "float"},
        {
            "name": "amt",
            "type": {"type": "bytes", "logicalType": "decimal", "precision": 18, "scale": 4},
        },
        {"name": "at", "type": {"type": "long", "logicalType": "timestamp-millis"}},
    ],
}
PARSED = fastavro.parse_schema(SCHEMA)
TYPES = csv_types(SCHEMA)
HEADER = ["q", "px", "f", "amt", "at"]
GOOD = {"q": "1", "px": "1", "f": "1", "amt": "1", "at": "2026-01-01T00:00:00Z"}

_INT = re.compile(r"[ \t]*[+-]?[0-9]+[ \t]*")
_NUM = re.compile(r"[ \t]*[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?[ \t]*")
_TS = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.([0-9]{1,3})0*)?)?"
    r"(Z|[+-][0-9]{2}:?[0-9]{2}(:[0-9]{2}(\.[0-9]+)?)?)"
)

ALPHABET = "0123456789_+-.eE:TZ ٣５１"
numberish = st.text(alphabet=ALPHABET, min_size=1, max_size=14)
times = st.builds(
    lambda d, frac, zone: f"2026-01-0{d}T10:00:00{frac}{zone}",
    st.integers(1, 9),
    st.sampled_from(["", ".5", ".123", ".1234", ".123000", ".999999", ".123456789"]),
    st.sampled_from(["", "Z", "+01:00", "-05:30", "+0100"]),
)


def _read(column: str, text: str) -> Any:
    cells = dict(GOOD, **{column: text})
    row = ",".join(cells[h] for h in HEADER).encode()
    try:
        value = parse_csv_row(row, HEADER, TYPES)
        return serde.from_json(value, PARSED)[column]
    except (ValueError, HubError):
        return None  # refused: the reference quarantines the row with its bytes


@settings(
    derandomize=True, max_examples=400, deadline=None, suppress_health_check=list(HealthCheck)
)
@given(text=numberish, column=st.sampled_from(["q", "px", "f", "amt"]))
def test_a_number_cell_is_refused_or_read_as_its_text_says(text: str, column: str) -> None:
    got = _read(column, text)
    if got is None or "," in text:
        return
    if column == "q":
        assert _INT.fullmatch(text), (text, got)
        assert got == int(text)
        return
    assert _NUM.fullmatch(text), (text, got)
    exact = Decimal(text.strip())
    if column == "amt":
        assert got == exact, (text, got)
        return
    assert got == float(exact), (text, got)
    assert got != 0 or exact == 0, (text, got)  # nothing non-zero stored as 0


@settings(
    derandomize=True, max_examples=200, deadline=None, suppress_health_check=list(HealthCheck)
)
@given(text=times)
def test_a_time_cell_is_refused_or_read_as_the_instant_it_names(text: str) -> None:
    got = _read("at", text)
    if got is None:
        return
    assert isinstance(got, datetime) and got.tzinfo is not None, (text, got)
    assert _TS.fullmatch(text), (text, got)  # an offset, at most millisecond digits
    assert got == datetime.fromisoformat(text.replace("Z", "+00:00"))
