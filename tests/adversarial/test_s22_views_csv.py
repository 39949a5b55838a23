"""Session 22, views-start red team: an analytics view with a list column in CSV.

``SELECT * FROM ohlcv_1h`` with ``format: csv`` answered 500 internal_error ("ArrowInvalid:
Unsupported Type: list<...>"): Arrow's CSV writer has no nested types, and the bars'
``src_offsets`` is an array of tuples in chDB. Each nested cell is now its JSON text."""

from __future__ import annotations

import csv
import io
import json
from decimal import Decimal

import pyarrow as pa

from projections.types import render


def test_a_list_of_tuples_column_is_written_to_csv_as_json_text() -> None:
    offsets = pa.array(
        [[{"1": "trades", "2": 0, "3": 4}], None, [{"1": "=cmd", "2": 1, "3": 2}]],
        pa.list_(pa.struct([("1", pa.string()), ("2", pa.int64()), ("3", pa.int64())])),
    )
    table = pa.table(
        {
            "close": pa.array([Decimal("1.50"), None, Decimal(2)], pa.decimal128(38, 2)),
            "src_offsets": offsets,
        }
    )
    body, media = render(table, "csv")
    rows = list(csv.DictReader(io.StringIO(body.decode())))
    assert media == "text/csv" and [r["close"] for r in rows] == ["1.50", "", "2.00"]
    assert json.loads(rows[0]["src_offsets"]) == [{"1": "trades", "2": 0, "3": 4}]
    assert rows[1]["src_offsets"] == ""
    assert json.loads(rows[2]["src_offsets"]) == [{"1": "=cmd", "2": 1, "3": 2}]
    # the JSON answer of the same rows carries the same values
    answer = json.loads(render(table, "json")[0])
    assert answer["rows"][0]["src_offsets"] == json.loads(rows[0]["src_offsets"])
