"""projections.types: one representation per logical type, whatever the store returned."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal as D

import pyarrow as pa

from projections.catalog import by_name
from projections.types import TIMESTAMP, canonical, render, row_json

AT = datetime(2026, 11, 24, 10, 0, 0, 250000, tzinfo=UTC)
AT_US = 1_795_514_400_250_000


def test_sqlite_shapes_become_the_catalog_types():
    # SQLite: integer µs, decimal strings, and an all-NULL column with no type at all
    t = pa.table(
        {
            "initiated_at": pa.array([AT_US, None], pa.int64()),
            "amount": pa.array(["100.5", None], pa.string()),
            "failed_at": pa.array([None, None], pa.null()),
            "payments": pa.array([1, 2], pa.int32()),
            "free": pa.array([1.5, 2.5]),
        }
    )
    got = canonical(t)
    assert got.schema == pa.schema(
        [
            ("initiated_at", TIMESTAMP),
            ("amount", pa.decimal128(38, 2)),
            ("failed_at", TIMESTAMP),
            ("payments", pa.int64()),
            ("free", pa.float64()),  # not a view column: left as the engine typed it
        ]
    )
    assert got.column("initiated_at").to_pylist() == [AT, None]
    assert got.column("amount").to_pylist() == [D("100.50"), None]


def test_engine_decimals_and_naive_timestamps_are_normalised():
    t = pa.table(
        {
            "amount": pa.array([D("1.50")], pa.decimal128(10, 2)),  # PostgreSQL numeric
            "window_start": pa.array([datetime(2026, 11, 24)], pa.timestamp("ms")),
            "avg_cost": pa.array([0.5]),  # a float computed under a view column's name: kept
        }
    )
    got = canonical(t)
    assert got.schema.field("amount").type == pa.decimal128(38, 2)
    assert got.schema.field("window_start").type == TIMESTAMP
    assert got.column("window_start").to_pylist() == [datetime(2026, 11, 24, tzinfo=UTC)]
    assert got.schema.field("avg_cost").type == pa.float64()


def test_text_formats_use_iso_8601_and_exact_decimals():
    t = canonical(
        pa.table(
            {
                "settled_at": pa.array([AT_US], pa.int64()),
                "realised_pnl": pa.array([D(0)], pa.decimal128(38, 12)),
            }
        )
    )
    body = json.loads(render(t, "json")[0])
    assert body["rows"] == [
        {"settled_at": "2026-11-24T10:00:00.250000Z", "realised_pnl": "0.000000000000"}
    ]
    csv = render(t, "csv")[0].decode().splitlines()
    assert csv[1] == '"2026-11-24T10:00:00.250000Z","0.000000000000"'


def test_view_rows_render_like_query_results():
    table = by_name("positions").table("positions")
    row = {"last_trade_at": AT_US, "quantity": D("20.0000"), "trades": 2, "src_offsets": []}
    assert row_json(table, row) == {
        "last_trade_at": "2026-11-24T10:00:00.250000Z",
        "quantity": "20.0000",
        "trades": 2,
        "src_offsets": [],
    }
