"""Session 18 red team (new surfaces): ``hub lake verify`` checked only the tables the catalog
lists. Whoever could write the catalog (it lives in the object store) dropped a whole table,
``raw.accounts`` or a ``views.*`` one, and verify answered ``ok`` over what was left: the rows
the hub exported were gone and nothing said so, though the ledger's ``lake.export`` entries
name every table the hub exported. A table the ledger says was exported and the catalog no
longer has is now reported, naming it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from storage.lake import open_catalog
from tests.adversarial.test_lake_verify import admin_args, data, run, verify

__all__ = ["data"]  # the fixture, re-used


def _catalog(tmp_path: Path) -> Any:
    lake = tmp_path / "objects" / "lake"
    return open_catalog(
        f"sqlite:///{lake / 'catalog.sqlite'}", (lake / "warehouse").resolve().as_uri()
    )


def test_a_dropped_raw_table_fails_verify(data: Path, tmp_path: Path) -> None:
    assert verify(data).exit_code == 0
    _catalog(tmp_path).drop_table("raw.accounts")  # the catalog writer's one change
    r = verify(data)
    assert r.exit_code == 1, r.output
    assert "raw.accounts" in r.output and "lake.export" in r.output, r.output


def test_a_dropped_view_table_fails_verify(data: Path, tmp_path: Path) -> None:
    r = run(*admin_args(data), "lake", "export", "--topic", "accounts")
    assert r.exit_code == 0, r.output
    r = verify(data)
    assert r.exit_code == 0, r.output
    views = [t["table"] for t in json.loads(r.stdout)["tables"] if t["table"].startswith("views.")]
    assert views
    _catalog(tmp_path).drop_table(views[0])
    r = verify(data)
    assert r.exit_code == 1, r.output
    assert views[0] in r.output and "lake.export" in r.output, r.output


def test_naming_the_tables_still_checks_only_those(data: Path, tmp_path: Path) -> None:
    """An operator who names tables asks about those: a table dropped elsewhere is not theirs."""
    r = run(*admin_args(data), "lake", "export", "--topic", "accounts")
    assert r.exit_code == 0, r.output
    views = sorted(f"views.{n}" for _, n in _catalog(tmp_path).list_tables("views"))
    _catalog(tmp_path).drop_table(views[0])
    assert verify(data, "raw.accounts").exit_code == 0
