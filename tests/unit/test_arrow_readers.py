"""Arrow's JSON and CSV readers (``ingest.arrowread``) against the per-record reference.

For every row a batch does not send to the per-record path (``force``), the Arrow row must be
the datum the reference builds from the same bytes (``json.loads`` + ``serde.from_json``; for
CSV ``files.parse_csv_row`` + ``from_json``), compared as the Avro bytes fastavro writes for
each; and every row the reference refuses must be forced. The schema covers the field kinds the
trades schema lacks (int, long, double, float, boolean, date, nullable kinds with and without a
null default).
"""

from __future__ import annotations

import io
import json
import random
from decimal import Decimal
from typing import Any

import fastavro

from core.avro import serde
from ingest.arrowread import csv_batch, csv_layout, json_batch, layout
from ingest.files import csv_types, parse_csv_row

SCHEMA: dict[str, Any] = {
    "type": "record",
    "name": "Row",
    "namespace": "t",
    "fields": [
        {"name": "s", "type": "string"},
        {"name": "l", "type": "long"},
        {"name": "i", "type": "int"},
        {"name": "d", "type": "double"},
        {"name": "f", "type": "float"},
        {"name": "b", "type": "boolean"},
        {"name": "e", "type": {"type": "enum", "name": "Cur", "symbols": ["USD", "EUR"]}},
        {
            "name": "q",
            "type": {"type": "bytes", "logicalType": "decimal", "precision": 10, "scale": 2},
        },
        {"name": "ts", "type": {"type": "long", "logicalType": "timestamp-micros"}},
        {"name": "dt", "type": ["null", {"type": "int", "logicalType": "date"}], "default": None},
        {"name": "nl", "type": ["null", "long"]},
        {"name": "venue", "type": "string", "default": "XOFF"},
    ],
}
PARSED = fastavro.parse_schema(json.loads(json.dumps(SCHEMA)))
PARSED_DICT: dict[str, Any] = json.loads(json.dumps(SCHEMA))

POOLS: dict[str, list[Any]] = {
    "s": ["a", "", "é", "日本", None, 5, "x\\y"],
    "l": [0, -1, 2**62, 2**63, -(2**63), 1.0, "5", True, None, -0],
    "i": [0, 7, 2**31 - 1, 2**31, -(2**31), -(2**31) - 1, 1.5, None],
    "d": [0.1, 1, -0.0, 1e308, 123456789012345678901234567890, "1", None, 2.5e-310],
    "f": [0.1, 1, 3.4e38, 3.5e38, 1e-50, None, 16777217],
    "b": [True, False, 1, "true", None],
    "e": ["USD", "EUR", "usd", "", None, 3],
    "q": ["1.25", 1.25, 1, "1.255", "1e2", "+5", ".5", 12345678.9, 123456789.12, "x", None, True],
    "ts": [
        "2026-11-25T14:30:00Z",
        "2026-11-25T14:30:00.123456Z",
        "2026-11-25T14:30:00.5+02:00",
        "2026-11-25 14:30:00Z",
        "2026-11-25T14:30:00",
        "2026-02-30T10:00:00Z",
        "0001-01-01T00:00:00+01:00",
        1_795_600_000_000_000,
        None,
    ],
    "dt": ["2026-11-25", "2026-02-30", "20261125", None, 5],
    "nl": [1, None, "1"],
    "venue": ["XNAS", None, ""],
}
MISSING = object()


def encoded(datum: Any) -> bytes:
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, PARSED, datum)
    return buf.getvalue()


def reference_json(line: bytes) -> bytes | None:
    try:
        value = json.loads(line.decode("utf-8"), parse_float=Decimal)
        return encoded(serde.from_json(value, PARSED_DICT))
    except Exception:
        return None


def random_json_line(rnd: random.Random) -> bytes:
    row: dict[str, Any] = {}
    for name, pool in POOLS.items():
        if rnd.random() < 0.03:
            continue  # missing
        good = pool[0] if rnd.random() < 0.9 else rnd.choice(pool)
        row[name] = good
    return json.dumps(row, ensure_ascii=rnd.random() < 0.5).encode()


def test_json_rows_equal_the_reference_or_are_forced() -> None:
    rnd = random.Random(5)
    lay = layout(PARSED_DICT)
    assert lay is not None
    lines = [random_json_line(rnd) for _ in range(2000)]
    lines += [b"null", b"[1]", b'{"s": "a"} {"s": "b"}', b'{"s": "a", "s": "b"}', b"\xef\xbb\xbf{}"]
    rb, force = json_batch(lines, lay, 10**6)
    rows = rb.to_pylist()
    fast = 0
    for line, row, forced in zip(lines, rows, force.tolist(), strict=True):
        want = reference_json(line)
        if forced:
            continue
        fast += 1
        assert want is not None, line  # a row the reference refuses is never taken column-wise
        assert encoded(row) == want, line
    assert fast > 600  # most good-looking rows went column-wise


def test_csv_rows_equal_the_reference_or_are_forced() -> None:
    rnd = random.Random(6)
    lay = layout(PARSED_DICT)
    assert lay is not None
    header = ["s", "l", "i", "d", "f", "b", "e", "q", "ts", "dt", "nl"]  # venue: its default
    texts: dict[str, list[str]] = {
        "s": ["a", "", "é"],
        "l": ["5", "-0", "007", "+5", " 5", "1_000", "", "9223372036854775808", "٣"],
        "i": ["7", "2147483648", "-2147483649", ""],
        "d": ["0.1", "1e5", "1E-5", "inf", "nan", "", "1e400", "-0.0"],
        "f": ["0.1", "3.5e38", "1e-50"],
        "b": ["true", "FALSE", "1", "0", "yes", ""],
        "e": ["USD", "usd", ""],
        "q": ["1.25", "1.255", "1e2", ".5", "", "-0", "12345678.99", "123456789.1"],
        "ts": ["2026-11-25T14:30:00Z", "2026-02-30T10:00:00Z", "1795600000000000", ""],
        "dt": ["2026-11-25", "", "2026-13-01"],
        "nl": ["1", ""],
    }
    rows = [
        ",".join(t[0] if rnd.random() < 0.9 else rnd.choice(t) for t in texts.values()).encode()
        for _ in range(2000)
    ]
    types = csv_types(PARSED_DICT)
    cols = csv_layout(lay, header, PARSED_DICT["fields"])
    assert cols is not None
    nullable = {name for name, (_, null_ok) in types.items() if null_ok}
    rb, force = csv_batch(rows, header, cols, nullable, 10**6)
    fast = 0
    for raw, row, forced in zip(rows, rb.to_pylist(), force.tolist(), strict=True):
        try:
            want: bytes | None = encoded(
                serde.from_json(parse_csv_row(raw, header, types), PARSED_DICT)
            )
        except Exception:
            want = None
        if forced:
            continue
        fast += 1
        assert want is not None, raw
        assert encoded({**row, "venue": "XOFF"}) == want, raw
    assert fast > 200
