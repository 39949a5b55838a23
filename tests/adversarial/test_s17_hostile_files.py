"""Session 17 hostile-input review: files an upstream system drops (docs/benchmarks/
s17-redteam-hostile.md). Each test is an attack that worked before its fix."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from hub.bootstrap import Hub, bootstrap
from hub.settings import load_settings
from ingest.files import FileUnreadable, publish_file

SCHEMA = {
    "type": "record",
    "name": "T",
    "fields": [
        {"name": "s", "type": "string"},
        {"name": "d", "type": {"type": "int", "logicalType": "date"}},
        {"name": "ts", "type": {"type": "long", "logicalType": "timestamp-micros"}},
    ],
}


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[Hub]:
    environ = {"HUB_PROJECTION_AUTOSTART": "false"}
    h = bootstrap(load_settings(environ=environ, data_dir=tmp_path / "data"))
    h.log.create_topic("times", 1)
    h.registry.register("times-value", json.dumps(SCHEMA))
    try:
        yield h
    finally:
        h.close()


def _parquet(path: Path, days: list[int], micros: list[int]) -> Path:
    table = pa.table(
        {
            "s": [f"r{i}" for i in range(len(days))],
            "d": pa.array(days, pa.int32()).cast(pa.date32()),
            "ts": pa.array(micros, pa.int64()).cast(pa.timestamp("us", tz="UTC")),
        }
    )
    pq.write_table(table, path)
    return path


@pytest.mark.parametrize(
    ("days", "micros", "column", "row"),
    [
        ([0, 2**31 - 1, 5], [0, 0, 0], "'d'", 1),  # year 5,881,580
        ([0, 0, 0, 0, 0], [0, 0, 0, 0, 2**62], "'ts'", 4),  # year 146,138 (second batch)
        ([-(2**31), 0], [0, 0], "'d'", 0),
    ],
)
def test_a_parquet_time_outside_python_is_refused_naming_column_and_row(
    hub: Hub, tmp_path: Path, days: list[int], micros: list[int], column: str, row: int
) -> None:
    """A Parquet date32 of 2**31-1 days (or a timestamp of 2**62 us) is valid Arrow; the
    columnar path sends the row to the per-record path, which converted it to Python
    (``to_pylist``) and raised ``OverflowError`` out of ``publish_file``: not the file refusal
    ``hub ingest watch`` handles. The file is now refused naming the column and its row, as an
    Arrow IPC body already was."""
    f = _parquet(tmp_path / "t.parquet", days, micros)
    with pytest.raises(FileUnreadable) as err:
        publish_file(hub.ingest, f, "times", batch_size=3)
    assert f"column {column} with a value outside years 1..9999 at row {row}" in err.value.message


def test_a_parquet_file_at_the_ends_of_the_range_is_taken(hub: Hub, tmp_path: Path) -> None:
    f = _parquet(
        tmp_path / "t.parquet",
        [-719_162, 2_932_896],
        [-62_135_596_800_000_000, 253_402_300_799_999_999],
    )
    result = publish_file(hub.ingest, f, "times")
    assert result.result.accepted == 2 and result.result.rejected == 0


def test_an_avro_file_with_an_unreadable_date_says_so(hub: Hub, tmp_path: Path) -> None:
    """fastavro writes a date of 2**31-1 days into a container file; reading it raised
    "signed integer is greater than maximum" and the file was refused as "corrupt", which
    sends its owner looking for a damaged file. The refusal now names the likely cause."""
    import fastavro

    f = tmp_path / "t.avro"
    with f.open("wb") as out:
        fastavro.writer(
            out,
            fastavro.parse_schema(SCHEMA),
            [{"s": "a", "d": 2**31 - 1, "ts": 0}, {"s": "b", "d": 5, "ts": 0}],
        )
    with pytest.raises(FileUnreadable) as err:
        publish_file(hub.ingest, f, "times")
    assert "a date or timestamp outside years 1..9999" in err.value.message
