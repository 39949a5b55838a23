"""The EventLog contract against the embedded SQLite adapter (file-backed, WAL)."""

from __future__ import annotations

from pathlib import Path

from adapters.sqlite_log import SqliteEventLog
from tests.contract.eventlog_contract import FolderEventLogContract


class TestSqliteEventLog(FolderEventLogContract):
    def open_log(self, folder: Path) -> SqliteEventLog:
        return SqliteEventLog(folder / "log.db")


class TestSqliteEventLogAuthenticated(FolderEventLogContract):
    """The same contract with a MAC key: every append, transaction and retention cut chains
    and seals, and after each test the whole log still authenticates (no false alarms)."""

    KEY = bytes(range(32))

    def open_log(self, folder: Path) -> SqliteEventLog:
        return SqliteEventLog(folder / "log.db", mac_key=self.KEY)

    def check_folder(self, folder: Path) -> None:
        check = self.open_log(folder)
        try:
            assert check.integrity_problems() == []
        finally:
            check.close()
