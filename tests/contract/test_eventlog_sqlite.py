"""The EventLog contract against the embedded SQLite adapter (file-backed, WAL)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from adapters.sqlite_eventlog import SqliteEventLog
from hub.ports.eventlog import EventLog
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
