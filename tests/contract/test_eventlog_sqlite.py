"""The EventLog contract against the embedded SQLite adapter (file-backed, WAL)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from adapters.sqlite_log import SqliteEventLog
from core.ports.eventlog import EventLog
from tests.contract.eventlog_contract import EventLogContract, Reopen


class TestSqliteEventLog(EventLogContract):
    @pytest.fixture
    def log(self, tmp_path: Path) -> Iterator[EventLog]:
        self._opened: list[EventLog] = []
        log = SqliteEventLog(tmp_path / "log.db")
        self._opened.append(log)
        yield log
        for opened in self._opened:
            opened.close()

    @pytest.fixture
    def reopen(self, tmp_path: Path) -> Reopen:
        def reopen(log: EventLog) -> EventLog:
            log.close()
            fresh = SqliteEventLog(tmp_path / "log.db")
            self._opened.append(fresh)
            return fresh

        return reopen


class TestSqliteEventLogAuthenticated(EventLogContract):
    """The same contract with a MAC key: every append, transaction and retention cut chains
    and seals, and after each test the whole log still authenticates (no false alarms)."""

    KEY = bytes(range(32))

    @pytest.fixture
    def log(self, tmp_path: Path) -> Iterator[EventLog]:
        self._opened: list[SqliteEventLog] = []
        log = SqliteEventLog(tmp_path / "log.db", mac_key=self.KEY)
        self._opened.append(log)
        yield log
        for opened in self._opened:
            opened.close()
        check = SqliteEventLog(tmp_path / "log.db", mac_key=self.KEY)
        try:
            assert check.integrity_problems() == []
        finally:
            check.close()

    @pytest.fixture
    def reopen(self, tmp_path: Path) -> Reopen:
        def reopen(log: EventLog) -> EventLog:
            log.close()
            fresh = SqliteEventLog(tmp_path / "log.db", mac_key=self.KEY)
            self._opened.append(fresh)
            return fresh

        return reopen
