"""A lake table rolled back to an older metadata file MUST fail ``hub lake verify``.

Iceberg keeps every metadata file of a table in the warehouse, and the SQL catalog holds one
pointer per table (``iceberg_tables.metadata_location``). Whoever can write the object store
(where the catalog and warehouse live) pointed ``raw.accounts`` back at the metadata of the
previous export: the table then held the older rows with the older ``hub.next_offsets``, a
consistent shorter table, so every row check passed and ``hub lake verify`` answered ok while
Spark, Trino and DuckDB readers missed the newest export's records (until the next export
refilled them; the attacker can roll back again after each). The ledger's ``lake.export``
entry now records where each raw table's export reached, and verify compares."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from tests.adversarial.test_lake_verify import data, export, publish, verify  # noqa: F401


def _metadata(tmp_path: Path) -> tuple[sqlite3.Connection, list[Path]]:
    lake = tmp_path / "objects" / "lake"
    files = sorted((lake / "warehouse" / "raw.db" / "accounts" / "metadata").glob("*.json"))
    return sqlite3.connect(lake / "catalog.sqlite"), files


def _point_at(db: sqlite3.Connection, meta: Path) -> None:
    with db:
        db.execute(
            "UPDATE iceberg_tables SET metadata_location = ? WHERE table_name = 'accounts'",
            (meta.resolve().as_uri(),),
        )


def _offsets(meta: Path) -> dict[str, int]:
    return json.loads(json.loads(meta.read_text())["properties"].get("hub.next_offsets", "{}"))


def test_a_table_pointed_at_the_previous_exports_metadata_fails_verify(
    data: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    db, before = _metadata(tmp_path)
    first = [m for m in before if _offsets(m)][-1]  # the first export's final metadata
    publish(data, 30, 12)
    assert export(data).exit_code == 0
    ok = verify(data, "raw.accounts")
    assert ok.exit_code == 0 and json.loads(ok.stdout)["tables"][0]["rows"] == 42, ok.output
    _point_at(db, first)  # the rollback: one UPDATE of the catalog, no data file touched
    r = verify(data, "raw.accounts")
    assert r.exit_code == 1, r.output
    assert "rolled back" in r.output and "raw.accounts" in r.output, r.output
    # the next export refills the table from the older position; verify agrees again
    assert export(data).exit_code == 0
    assert verify(data, "raw.accounts").exit_code == 0


def test_an_untouched_lake_across_exports_still_verifies(
    data: Path,  # noqa: F811
) -> None:
    for first in (30, 35):
        publish(data, first, 5)
        assert export(data).exit_code == 0
        r = verify(data)
        assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["tables"][0]["rows"] == 40
