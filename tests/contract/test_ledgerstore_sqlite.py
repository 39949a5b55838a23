"""The LedgerStore contract against the embedded SQLite file (``adapters/sqlite_ledgerstore.py``),
plus what only it has: a file of another kind is refused."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from adapters.sqlite_ledgerstore import SqliteLedgerStore
from core.errors import HubError
from tests.contract.ledgerstore_contract import FileLedgerStoreContract


class TestSqliteLedgerStore(FileLedgerStoreContract):
    def open_store(self, folder: Path) -> SqliteLedgerStore:
        return SqliteLedgerStore(folder / "ledger.sqlite")


def test_a_file_that_is_not_a_ledger_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "other.sqlite"
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA user_version=7")
    conn.close()
    with pytest.raises(HubError, match="is not a version-1 hub ledger"):
        SqliteLedgerStore(path)
