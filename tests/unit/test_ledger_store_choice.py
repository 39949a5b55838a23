"""Which embedded ledger store a data folder opens: tiles by default for a new folder, and a
folder that already holds a ledger file keeps it (never a second, empty ledger beside it)."""

from __future__ import annotations

from pathlib import Path

import pytest

from adapters.sqlite_ledgerstore import SqliteLedgerStore
from adapters.tile_ledgerstore import TileLedgerStore
from core.errors import ConfigError
from hub.bootstrap import open_ledger_store
from hub.settings import load_settings


def opened(data: Path, **overrides: str) -> type:
    store = open_ledger_store(load_settings(environ={}, data_dir=data, **overrides))
    try:
        return type(store)
    finally:
        store.close()


def test_a_new_folder_gets_the_tile_store_by_default(tmp_path: Path) -> None:
    assert opened(tmp_path) is TileLedgerStore
    assert (tmp_path / "ledger-tiles.sqlite").exists()
    assert not (tmp_path / "ledger.sqlite").exists()
    (tmp_path / "rows").mkdir()
    assert opened(tmp_path / "rows", ledger_store="sqlite") is SqliteLedgerStore


def test_a_folder_keeps_the_ledger_it_has(tmp_path: Path) -> None:
    rows, tiles = tmp_path / "rows", tmp_path / "tiles"
    rows.mkdir()
    tiles.mkdir()
    SqliteLedgerStore(rows / "ledger.sqlite").close()
    TileLedgerStore(tiles / "ledger-tiles.sqlite").close()
    assert opened(rows) is SqliteLedgerStore  # the default (tiles) does not fork it
    assert not (rows / "ledger-tiles.sqlite").exists()
    assert opened(tiles, ledger_store="sqlite") is TileLedgerStore
    assert not (tiles / "ledger.sqlite").exists()


def test_a_folder_with_two_ledgers_is_refused_by_name(tmp_path: Path) -> None:
    SqliteLedgerStore(tmp_path / "ledger.sqlite").close()
    TileLedgerStore(tmp_path / "ledger-tiles.sqlite").close()
    with pytest.raises(ConfigError, match=r"ledger-tiles\.sqlite and ledger\.sqlite"):
        opened(tmp_path)
