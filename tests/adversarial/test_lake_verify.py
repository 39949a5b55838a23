"""``hub lake verify``: the lake's ``raw.<topic>`` tables checked against the log and the ledger.

The lake lives in the object store, where anyone with write access there (or to the Iceberg
catalog) can change it without the hub noticing: before, an edited ``hub.next_offsets`` made
the next export skip records (or write them twice) silently, and a changed row reached Spark,
Trino and DuckDB readers as if the hub had written it. Each tampering below is now reported,
naming the first problem, with exit 1; and the export refuses to continue from a position the
log contradicts.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from click.testing import Result
from pyiceberg.expressions import And, EqualTo, GreaterThanOrEqual, Or

from hub.bootstrap import bootstrap
from hub.settings import load_settings
from storage.lake import NEXT_OFFSETS, open_catalog
from tests.cli_keys import admin_args
from tests.lake_accounts import publish, run


@pytest.fixture
def data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("HUB_OBJECT_STORE_DIR", str(tmp_path / "objects"))
    monkeypatch.delenv("HUB_OBJECT_STORE", raising=False)
    data = tmp_path / "hub"
    publish(data, 0, 30)
    r = export(data)
    assert r.exit_code == 0, r.output
    return data


def export(data: Path) -> Result:
    return run(*admin_args(data), "lake", "export", "--topic", "accounts", "--no-views")


def verify(data: Path, *tables: str) -> Result:
    return run(*admin_args(data), "lake", "verify", *tables)


def table(tmp_path: Path) -> Any:
    lake = tmp_path / "objects" / "lake"
    catalog = open_catalog(
        f"sqlite:///{lake / 'catalog.sqlite'}", (lake / "warehouse").resolve().as_uri()
    )
    return catalog.load_table("raw.accounts")


def data_files(t: Any) -> list[Path]:
    return [Path(task.file.file_path.removeprefix("file://")) for task in t.scan().plan_files()]


def rewrite(path: Path, change: Any) -> None:
    """Rewrite a Parquet data file in place (its Iceberg field ids kept), as someone with
    write access to the bucket would."""
    got = pq.read_table(path)
    pq.write_table(change(got), path)


def test_a_clean_lake_verifies_across_two_exports(data: Path, tmp_path: Path) -> None:
    publish(data, 30, 12)
    assert export(data).exit_code == 0
    r = verify(data, "raw.accounts")
    assert r.exit_code == 0, r.output
    (check,) = json.loads(r.stdout)["tables"]
    assert check["rows"] == 42
    assert check["against_log_and_ledger"] == 42
    assert verify(data).exit_code == 0  # every raw table by default


def test_rows_retention_removed_from_the_log_are_checked_against_the_ledger(
    data: Path, tmp_path: Path
) -> None:
    p, done = busiest(table(tmp_path))
    h = bootstrap(load_settings(data_dir=data))
    try:
        h.log.delete_records_before("accounts", p, done[str(p)])
    finally:
        h.close()
    r = verify(data)
    assert r.exit_code == 0, r.output
    (check,) = json.loads(r.stdout)["tables"]
    assert check["ledger_only"] >= 2
    assert check["ledger_only"] + check["against_log_and_ledger"] == 30
    # a changed timestamp on such a row is still found (the leaf commits to it)
    (path,) = data_files(table(tmp_path))

    def change(t: pa.Table) -> pa.Table:
        i = t.schema.get_field_index("timestamp")
        mine = pc.equal(t.column("partition"), p)
        moved = pc.if_else(
            mine, pc.add(t.column(i).cast(pa.int64()), 1), t.column(i).cast(pa.int64())
        )
        return t.set_column(i, t.schema.field(i), moved.cast(t.schema.field(i).type))

    rewrite(path, change)
    r = verify(data)
    assert r.exit_code == 1
    assert f"partition {p} offset 0: its timestamp differs from the leaf's" in r.stderr, r.stderr


def test_a_changed_row_is_found(data: Path, tmp_path: Path) -> None:
    (path,) = data_files(table(tmp_path))

    def change(t: pa.Table) -> pa.Table:
        values = t.column("value_json").to_pylist()
        values[7] = values[7].replace("GB", "FR")
        i = t.schema.get_field_index("value_json")
        return t.set_column(i, t.schema.field(i), pa.array(values, pa.string()))

    rewrite(path, change)
    r = verify(data)
    assert r.exit_code == 1
    assert "offset 7: its 'value_json' differs from the log record" in r.stderr, r.stderr


def test_a_changed_value_bytes_is_found(data: Path, tmp_path: Path) -> None:
    (path,) = data_files(table(tmp_path))

    def change(t: pa.Table) -> pa.Table:
        values = t.column("value").to_pylist()
        values[3] = values[3][:-1] + bytes([values[3][-1] ^ 1])
        i = t.schema.get_field_index("value")
        return t.set_column(i, t.schema.field(i), pa.array(values, pa.binary()))

    rewrite(path, change)
    r = verify(data)
    assert r.exit_code == 1
    assert "offset 3: its 'value' differs" in r.stderr, r.stderr


def busiest(t: Any) -> tuple[int, dict[str, int]]:
    """The partition holding most rows, and the table's ``hub.next_offsets``."""
    done = {k: int(v) for k, v in json.loads(t.properties[NEXT_OFFSETS]).items()}
    return int(max(done, key=lambda k: done[k])), done


def test_rows_deleted_through_iceberg_are_a_gap(data: Path, tmp_path: Path) -> None:
    t = table(tmp_path)
    p, _ = busiest(t)
    t.delete(And(EqualTo("partition", p), EqualTo("offset", 0)))
    r = verify(data)
    assert r.exit_code == 1
    assert f"partition {p} offset 0 is not in the lake (a data file or row was deleted)" in (
        r.stderr
    ), r.stderr


def test_a_deleted_data_file_is_found(data: Path, tmp_path: Path) -> None:
    _, before = busiest(table(tmp_path))
    publish(data, 30, 5)
    assert export(data).exit_code == 0
    t = table(tmp_path)
    # the second export's data file dropped from the table's metadata, as a catalog writer would
    t.delete(
        Or(*[
            And(EqualTo("partition", int(p)), GreaterThanOrEqual("offset", o))
            for p, o in before.items()
        ])
    )  # fmt: skip
    assert len(data_files(table(tmp_path))) == 1
    r = verify(data)
    assert r.exit_code == 1
    assert "is not in the lake" in r.stderr, r.stderr
    assert "the property was raised (the next export skipped records) or the last rows" in (
        r.stderr
    )
    # the remaining file removed from the bucket under the catalog
    (first,) = data_files(table(tmp_path))
    first.unlink()
    r = verify(data)
    assert r.exit_code == 1
    assert "could not be read" in r.stderr and "No such file" in r.stderr, r.stderr


def set_next(t: Any, done: dict[str, int]) -> None:
    with t.transaction() as tx:
        tx.set_properties({NEXT_OFFSETS: json.dumps(done)})


def log_ends(data: Path) -> dict[int, int]:
    h = bootstrap(load_settings(data_dir=data))
    try:
        return h.log.end_offsets("accounts")
    finally:
        h.close()


def test_a_raised_next_offsets_is_found_and_the_export_refuses(data: Path, tmp_path: Path) -> None:
    publish(data, 30, 40)
    t = table(tmp_path)
    ends = log_ends(data)
    done = {k: int(v) for k, v in json.loads(t.properties[NEXT_OFFSETS]).items()}
    p = max(ends, key=lambda q: ends[q] - done[str(q)])
    was = done[str(p)]
    assert ends[p] - was >= 2
    set_next(t, {**done, str(p): ends[p]})  # the next export would skip these records
    r = verify(data)
    assert r.exit_code == 1
    assert f"partition {p} offset {was} is not in the lake" in r.stderr, r.stderr
    assert "the property was raised" in r.stderr
    r = export(data)
    assert r.exit_code == 1
    assert re.search(r"log's record at offset \d+ is not in the lake", r.stderr), r.stderr
    assert table(tmp_path).scan().to_arrow().num_rows == 30  # nothing was skipped or written


def test_a_lowered_next_offsets_is_found_and_the_export_refuses(data: Path, tmp_path: Path) -> None:
    t = table(tmp_path)
    p, done = busiest(t)
    rows = t.scan(row_filter=EqualTo("partition", p), selected_fields=("offset",)).to_arrow()
    at = pc.max(rows.column("offset")).as_py()  # done - 1 may be a marker, not a record
    set_next(t, {**done, str(p): at})  # the next export would write the last row again
    r = verify(data)
    assert r.exit_code == 1
    assert f"offset {at} is at or beyond hub.next_offsets ({at})" in r.stderr, r.stderr
    r = export(data)
    assert r.exit_code == 1
    assert f"partition {p} offset {at} is in the lake, at or past" in r.stderr, r.stderr
    assert table(tmp_path).scan().to_arrow().num_rows == 30


def test_a_next_offsets_past_the_log_is_refused(data: Path, tmp_path: Path) -> None:
    t = table(tmp_path)
    p, done = busiest(t)
    set_next(t, {**done, str(p): 10_000})
    for r in (verify(data), export(data)):
        assert r.exit_code == 1
        assert f"partition {p} was exported up to offset 10000, but the log's partition ends" in (
            r.stderr
        ), r.stderr


def test_an_extra_row_is_found(data: Path, tmp_path: Path) -> None:
    t = table(tmp_path)
    row = t.scan(limit=1).to_arrow()
    t.append(row)  # a copy of a real row: the reader would count it twice
    r = verify(data)
    assert r.exit_code == 1
    p, o = row.column("partition")[0].as_py(), row.column("offset")[0].as_py()
    assert f"partition {p} offset {o} is in the lake twice" in r.stderr, r.stderr


def test_a_planted_row_past_the_export_is_found(data: Path, tmp_path: Path) -> None:
    t = table(tmp_path)
    row = t.scan(limit=1).to_arrow()
    offsets = pc.add(row.column("offset"), 100)
    i = row.schema.get_field_index("offset")
    t.append(row.set_column(i, row.schema.field(i), offsets))
    r = verify(data)
    assert r.exit_code == 1
    assert f"offset {offsets[0].as_py()} is at or beyond hub.next_offsets" in r.stderr, r.stderr


def test_a_table_that_is_not_there_is_named(data: Path) -> None:
    r = verify(data, "raw.payments")
    assert r.exit_code == 1
    assert "The lake has no table raw.payments" in r.stderr, r.stderr
    r = verify(data, "raw.no_such_topic")
    assert r.exit_code == 1
    assert "No topic of the log matches the lake table 'raw.no_such_topic'" in r.stderr
