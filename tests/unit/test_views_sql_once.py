"""What the ClickHouse views SQL derives from a table object is made once and never served to
another table (``adapters.clickhouse_views._once``): tables built on the fly, one after the
other, each get their own columns, shared table and position rows."""

from __future__ import annotations

import gc

import pyarrow as pa

from adapters import clickhouse_views as cv
from core.ports.views import Checkpoint, Position, Target
from core.projection import Column, Table


def _table(extra: str, scale: int) -> Table:
    return Table(
        "t",
        "aggregate",
        (
            Column("tenant", "string", "key"),
            Column(extra, "decimal", "sum", scale=scale),
            Column("note", "string", "max", nullable=True),
        ),
    )


def test_each_table_object_gets_its_own_derived_values():
    target = Target("p")
    seen = []
    for i in range(50):  # dropped at once: ids would be reused if the cache did not hold them
        t = _table(f"amount_{i % 3}", 2 + i % 4)
        cols = cv.physical_columns(t)
        assert cols == cv._physical_columns(t)
        assert cv.shared_table(target, t) == cv._shared_name(target, t)
        assert cv.physical_columns(t) is cols  # made once
        seen.append((t.columns[1].name, t.columns[1].scale, cols[1]))
        del t
        gc.collect()
    for name, scale, col in seen:
        assert col == (name, f"Decimal(38, {scale})", pa.decimal128(38, scale))


def test_position_rows_are_the_same_with_the_neutral_columns_made_once():
    t = _table("amount", 2)
    cp = Checkpoint(7, {("trades", 0): Position(10, 99), ("trades", 1): Position(3)})
    first = cv._position_rows(t, cp)
    again = cv._position_rows(
        t, Checkpoint(8, {("trades", 0): Position(11), ("x", 2): Position(4)})
    )
    assert first.column_names == [
        cv.TAG,
        *(n for n, _, _ in cv.physical_columns(t)),
        cv.POS_WATERMARK,
    ]
    assert first.column(cv.TAG).to_pylist() == [cv.POSITIONS] * 2
    assert first.column("src_first").to_pylist() == [10, 3]
    assert first.column("batch_seq").to_pylist() == [7, 7]
    assert first.column(cv.POS_WATERMARK).to_pylist() == [99, None]
    assert first.column("note").to_pylist() == [None, None]
    assert first.column("tenant").to_pylist() == ["", ""]
    assert again.column("src_topic").to_pylist() == ["trades", "x"]
    assert again.column("src_first").to_pylist() == [11, 4]
    assert again.column("batch_seq").to_pylist() == [8, 8]
    assert again.schema == first.schema
