"""``hub lake verify`` never checked the ``views.<projection>__<table>`` lake tables (session 17,
open item of the store red team): whoever could write the object store edited a view's rows, or
put a value into a PII column the export writes NULL, and verify answered ok (it listed
``raw.*`` only). A view table cannot be re-derived from the log later (the projection moved
on), so the export records each view table's digest and row count on its ``lake.export``
ledger entry, and verify recomputes them over the table the catalog serves."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from projections.catalog import PROJECTIONS
from storage.lake import open_catalog
from tests.adversarial.test_lake_verify import admin_args, data, data_files, rewrite, run, verify

__all__ = ["data"]  # the fixture, re-used


def _export(data: Path) -> None:
    r = run(*admin_args(data), "lake", "export", "--topic", "accounts")
    assert r.exit_code == 0, r.output


def _catalog(tmp_path: Path) -> Any:
    lake = tmp_path / "objects" / "lake"
    return open_catalog(
        f"sqlite:///{lake / 'catalog.sqlite'}", (lake / "warehouse").resolve().as_uri()
    )


def _view_with_rows(data: Path, tmp_path: Path, *, pii: bool) -> tuple[str, str]:
    """(table ident, column) of an exported view table with rows: a PII column or a text one."""
    r = verify(data)
    assert r.exit_code == 0, r.output
    rows = {t["table"]: t["rows"] for t in json.loads(r.stdout)["tables"]}
    for p in PROJECTIONS:
        for t in p.tables:
            ident = f"views.{p.name}__{t.name}"
            if not rows.get(ident):
                continue
            for c in t.columns:
                if c.agg != "derived" and c.pii == pii and (pii or c.type == "string"):
                    return ident, c.name
    raise AssertionError(f"no exported view with rows and such a column: {rows}")


def test_views_are_verified_and_a_changed_view_row_is_found(data: Path, tmp_path: Path) -> None:
    _export(data)
    ident, col = _view_with_rows(data, tmp_path, pii=False)
    (path,) = data_files(_catalog(tmp_path).load_table(ident))

    def change(t: pa.Table) -> pa.Table:
        values = t.column(col).to_pylist()
        values[0] = "forged"
        i = t.schema.get_field_index(col)
        return t.set_column(i, t.schema.field(i), pa.array(values, t.schema.field(i).type))

    rewrite(path, change)
    r = verify(data)
    assert r.exit_code == 1, r.output
    assert ident in r.output and "lake.export" in r.output, r.output


def test_a_value_in_a_view_pii_column_is_found(data: Path, tmp_path: Path) -> None:
    _export(data)
    ident, col = _view_with_rows(data, tmp_path, pii=True)
    (path,) = data_files(_catalog(tmp_path).load_table(ident))

    def leak(t: pa.Table) -> pa.Table:
        i = t.schema.get_field_index(col)
        field = t.schema.field(i)
        filled = pc.fill_null(t.column(col), pa.scalar("alice@example.com", field.type))
        return t.set_column(i, field, filled)

    rewrite(path, leak)
    r = verify(data, ident)
    assert r.exit_code == 1, r.output
    assert ident in r.output and "PII" in r.output, r.output


def test_a_view_table_no_export_recorded_is_refused(data: Path, tmp_path: Path) -> None:
    catalog = _catalog(tmp_path)
    catalog.create_table("views.planted__t", schema=pa.schema([pa.field("x", pa.int64())]))
    r = verify(data)
    assert r.exit_code == 1, r.output
    assert "views.planted__t" in r.output and "planted" in r.output, r.output
