"""The EventLog contract against the tiered log (``storage.tiering.TieredEventLog``): the
embedded SQLite log as the hot tier, a local folder as the cold tier. Plus ``read_columns``
across the boundary, after a segment was offloaded and cut from the hot log."""

from __future__ import annotations

from pathlib import Path

from adapters.local_objectstore import LocalObjectStore
from adapters.sqlite_log import SqliteEventLog
from core.ports.eventlog import EventLog, Record
from storage.tiering import ColdTier, TieredEventLog
from tests.contract.eventlog_contract import (
    FolderEventLogContract,
    check_columns,
    columns_all,
    read_all,
)


def _tiered(path: Path) -> TieredEventLog:
    cold = ColdTier(LocalObjectStore(path / "cold", write_once=False))
    return TieredEventLog(SqliteEventLog(path / "log.db"), cold)


class TestTieredEventLog(FolderEventLogContract):
    def open_log(self, folder: Path) -> TieredEventLog:
        return _tiered(folder)

    def test_read_columns_across_the_cold_boundary(self, log: EventLog) -> None:
        assert isinstance(log, TieredEventLog)
        topic = self.topic(log)
        for i in range(4):
            log.append(
                topic, [Record(b"%d" % j, key=b"k", headers=(("n", b"%d" % i),)) for j in range(5)]
            )
        made = log.cold.offload(
            log.hot, topic, 0, segment_records=10, leaf_of=lambda _t, _p, off: off
        )
        assert [s.base for s in made] == [0, 10]
        log.hot.delete_records_before(topic, 0, 10)  # 0..9 now only in the cold tier
        expected = read_all(log, topic)
        assert [r.offset for r in expected] == list(range(20))
        for start, limit in [(0, 1000), (0, 3), (7, 6), (12, 1000)]:
            chunks = columns_all(log, topic, 0, start=start, limit=limit)
            for c in chunks:
                check_columns(c, topic, 0)
            assert [r for c in chunks for r in c.records()] == expected[start:]
