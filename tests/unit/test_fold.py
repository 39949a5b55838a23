"""``core.fold.TopicFold``: each record applied once, from the remembered position, on every
partition, thread-safe, re-entrant calls refused, topics that appear later."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from adapters.sqlite_log import SqliteEventLog
from core.errors import InvalidInput
from core.fold import TopicFold, decoded
from core.ports.eventlog import Record, StoredRecord


class CountingLog(SqliteEventLog):
    """The embedded log, remembering where every read started."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.reads: list[tuple[str, int, int]] = []

    def read(
        self, topic: str, partition: int, offset: int, max_records: int = 1000
    ) -> list[StoredRecord]:
        self.reads.append((topic, partition, offset))
        return super().read(topic, partition, offset, max_records)


@pytest.fixture
def log(tmp_path: Path) -> Iterator[CountingLog]:
    log = CountingLog(tmp_path / "log.db")
    yield log
    log.close()


def append(log: SqliteEventLog, topic: str, values: list[str], partition: int = 0) -> None:
    log.append(topic, [Record(v.encode(), partition=partition) for v in values])


def values(seen: list[StoredRecord]) -> list[tuple[int, str]]:
    return [(r.partition, (r.value or b"").decode()) for r in seen]


def test_folds_every_partition_in_offset_order_and_remembers_where_it_stopped(
    log: CountingLog,
) -> None:
    log.create_topic("t", 2)
    append(log, "t", ["a0", "a1"], 0)
    append(log, "t", ["b0"], 1)
    seen: list[StoredRecord] = []
    fold = TopicFold(log, "t", seen.append)
    assert fold.catch_up() is True
    assert values(seen) == [(0, "a0"), (0, "a1"), (1, "b0")]
    assert fold.positions == {0: 2, 1: 1}

    log.reads.clear()
    assert fold.catch_up() is False  # nothing new: nothing read, nothing applied
    assert log.reads == [] and len(seen) == 3

    append(log, "t", ["a2"], 0)
    append(log, "t", ["b1", "b2"], 1)
    assert fold.catch_up() is True
    assert values(seen)[3:] == [(0, "a2"), (1, "b1"), (1, "b2")]
    assert log.reads == [("t", 0, 2), ("t", 1, 1)]  # from the remembered offsets, never 0


def test_reads_in_batches(log: CountingLog) -> None:
    log.create_topic("t", 1)
    append(log, "t", [str(i) for i in range(25)])
    seen: list[StoredRecord] = []
    TopicFold(log, "t", seen.append, batch=10).catch_up()
    assert [int(r.value or b"") for r in seen] == list(range(25))
    assert [offset for _, _, offset in log.reads] == [0, 10, 20]


def test_a_topic_that_does_not_exist_yet_is_folded_once_it_does(log: CountingLog) -> None:
    seen: list[StoredRecord] = []
    fold = TopicFold(log, "later", seen.append)
    assert fold.catch_up() is False
    assert fold.positions == {}
    log.create_topic("later", 1)
    assert fold.catch_up() is False  # exists, empty
    append(log, "later", ["x"])
    assert fold.catch_up() is True
    assert values(seen) == [(0, "x")]


def test_an_apply_that_raises_is_retried_from_that_record_and_earlier_ones_stay_applied(
    log: CountingLog,
) -> None:
    log.create_topic("t", 1)
    append(log, "t", ["ok", "bad", "after"])
    seen: list[str] = []
    fail = {"bad"}

    def apply(rec: StoredRecord) -> None:
        v = (rec.value or b"").decode()
        if v in fail:
            raise ValueError(v)
        seen.append(v)

    fold = TopicFold(log, "t", apply)
    with pytest.raises(ValueError):
        fold.catch_up()
    assert seen == ["ok"] and fold.positions == {0: 1}
    fail.clear()
    assert fold.catch_up() is True
    assert seen == ["ok", "bad", "after"]  # "ok" not applied twice


def test_a_call_from_inside_apply_returns_at_once(log: CountingLog) -> None:
    log.create_topic("t", 1)
    append(log, "t", ["a", "b"])
    seen: list[str] = []
    inner: list[bool] = []
    fold: TopicFold

    def apply(rec: StoredRecord) -> None:
        inner.append(fold.catch_up())  # e.g. the registry parsing a schema with references
        seen.append((rec.value or b"").decode())

    fold = TopicFold(log, "t", apply)
    assert fold.catch_up() is True
    assert seen == ["a", "b"] and inner == [False, False]


def test_records_removed_by_retention_are_skipped(log: CountingLog) -> None:
    log.create_topic("t", 1)
    append(log, "t", ["old", "older", "kept"])
    log.delete_records_before("t", 0, 2)
    seen: list[StoredRecord] = []
    fold = TopicFold(log, "t", seen.append)
    fold.catch_up()
    assert values(seen) == [(0, "kept")]
    assert fold.positions == {0: 3}


def test_concurrent_callers_apply_each_record_exactly_once(log: CountingLog) -> None:
    log.create_topic("t", 2)
    counts: dict[tuple[int, int], int] = {}
    lock = threading.RLock()

    def apply(rec: StoredRecord) -> None:
        # Not atomic on purpose: two threads applying at once would lose or double counts.
        key = (rec.partition, rec.offset)
        n = counts.get(key, 0)
        counts[key] = n + 1

    fold = TopicFold(log, "t", apply, batch=7, lock=lock)
    stop = threading.Event()
    errors: list[BaseException] = []

    def follower() -> None:
        try:
            while not stop.is_set():
                fold.catch_up()
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=follower) for _ in range(4)]
    for t in threads:
        t.start()
    for i in range(40):
        append(log, "t", [f"v{i}-{j}" for j in range(5)], i % 2)
    stop.set()
    for t in threads:
        t.join()
    fold.catch_up()
    assert errors == []
    assert len(counts) == 200
    assert set(counts.values()) == {1}
    assert fold.positions == {0: 100, 1: 100}
    assert fold.lock is lock


def test_decoded_hands_apply_the_decoded_record(log: CountingLog) -> None:
    class Upper:
        def decode(self, rec: StoredRecord) -> dict[str, Any]:
            return {"offset": rec.offset, "value": (rec.value or b"").decode().upper()}

    log.create_topic("t", 1)
    append(log, "t", ["a", "b"])
    seen: list[dict[str, Any]] = []
    TopicFold(log, "t", decoded(Upper(), seen.append)).catch_up()
    assert seen == [{"offset": 0, "value": "A"}, {"offset": 1, "value": "B"}]


class EarlyLog(CountingLog):
    """Its first ``misses`` reads come back empty (a Kafka consumer not ready yet)."""

    misses = 0

    def read(
        self, topic: str, partition: int, offset: int, max_records: int = 1000
    ) -> list[StoredRecord]:
        if self.misses:
            self.misses -= 1
            self.reads.append((topic, partition, offset))
            return []
        return super().read(topic, partition, offset, max_records)


def test_an_empty_read_is_tried_again_and_then_left_for_the_next_call(tmp_path: Path) -> None:
    log = EarlyLog(tmp_path / "log.db")
    try:
        log.create_topic("t", 1)
        append(log, "t", ["a"])
        seen: list[StoredRecord] = []
        fold = TopicFold(log, "t", seen.append, recheck_after=0.3)
        log.misses = 1
        assert fold.catch_up() is True and values(seen) == [(0, "a")]  # the retry read it
        append(log, "t", ["b"])
        log.misses = 2
        assert fold.catch_up() is False and fold.positions == {0: 1}  # nothing lost ...
        log.reads.clear()
        # ... the end offset has not moved: the next calls skip the reads for a while ...
        assert fold.catch_up() is False and log.reads == []
        time.sleep(0.35)
        # ... and then read again: a read that came back early is not trusted for long
        assert fold.catch_up() is True and values(seen) == [(0, "a"), (0, "b")]
    finally:
        log.close()


def test_an_end_offset_reached_except_markers_is_not_read_again_until_it_moves(
    tmp_path: Path,
) -> None:
    """Kafka: after a transactional append the end offset is past a commit marker that no read
    returns. The fold stops reading there, and reads again as soon as the end offset moves."""
    log = EarlyLog(tmp_path / "log.db")
    try:
        log.create_topic("t", 2)
        append(log, "t", ["a"])
        seen: list[StoredRecord] = []
        fold = TopicFold(log, "t", seen.append)
        fold.catch_up()
        append(log, "t", ["marker"])  # stands for a commit marker: readable by no one
        log.misses = 2
        log.reads.clear()
        assert fold.catch_up() is False and len(log.reads) == 2
        for _ in range(5):  # no more empty reads while the end offset stays
            assert fold.catch_up() is False
        assert len(log.reads) == 2 and fold.positions == {0: 1}
        append(log, "t", ["b1"], 1)  # another partition is not held back by it
        assert fold.catch_up() is True and values(seen) == [(0, "a"), (1, "b1")]
        append(log, "t", ["c"])  # a new record moves the end offset: read at once
        assert fold.catch_up() is True
        assert values(seen)[2:] == [(0, "marker"), (0, "c")]
    finally:
        log.close()


def test_recheck_after_out_of_range_is_refused(log: CountingLog) -> None:
    with pytest.raises(InvalidInput, match="recheck_after=-1"):
        TopicFold(log, "t", lambda rec: None, recheck_after=-1)


def test_a_batch_below_one_is_refused(log: CountingLog) -> None:
    with pytest.raises(InvalidInput, match="batch=0"):
        TopicFold(log, "t", lambda rec: None, batch=0)


class WatchedLog(CountingLog):
    """The embedded log with a stand-in tail watcher (``tail_quiet``): it says what the test
    sets, and counts the end-offset queries a fold makes."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.quiet = True
        self.asked: list[str] = []
        self.watched: list[dict[int, int]] = []

    def end_offsets(self, topic: str) -> dict[int, int]:
        self.asked.append(topic)
        return super().end_offsets(topic)

    def tail_quiet(self, topic: str, positions: Any) -> bool:
        self.watched.append(dict(positions))
        return self.quiet


def test_a_watched_catch_up_skips_the_end_offsets_only_while_the_watcher_is_quiet_and_in_time(
    tmp_path: Path,
) -> None:
    log = WatchedLog(tmp_path / "log.db")
    try:
        log.create_topic("t", 1)
        append(log, "t", ["a"])
        seen: list[StoredRecord] = []
        fold = TopicFold(log, "t", seen.append, watch_s=0.3)
        assert fold.catch_up(recent=True) is True  # nothing asked yet: the log is asked
        assert log.asked == ["t"] and values(seen) == [(0, "a")]
        for _ in range(5):
            assert fold.catch_up(recent=True) is False
        assert log.asked == ["t"]  # quiet, in time, nothing written here: no query
        assert log.watched[-1] == {0: 1}  # the watcher is asked about what follows the fold
        fold.catch_up()  # not a watched one: asks as before
        assert log.asked == ["t", "t"]
        append(log, "t", ["b"])  # a write through this log: seen at once
        assert fold.catch_up(recent=True) is True and values(seen)[-1] == (0, "b")
        assert len(log.asked) == 3
        log.quiet = False  # the watcher learnt of a record (another writer's)
        fold.catch_up(recent=True)
        assert len(log.asked) == 4
        log.quiet = True
        fold.catch_up(recent=True)
        assert len(log.asked) == 4
        time.sleep(0.35)  # the bound: past it the log is asked whatever the watcher says
        fold.catch_up(recent=True)
        assert len(log.asked) == 5
    finally:
        log.close()


def test_without_watch_s_a_watched_catch_up_asks_the_log_every_time(tmp_path: Path) -> None:
    log = WatchedLog(tmp_path / "log.db")
    try:
        log.create_topic("t", 1)
        fold = TopicFold(log, "t", lambda rec: None)
        for _ in range(3):
            fold.catch_up(recent=True)
        assert log.asked == ["t"] * 3 and log.watched == []
        with pytest.raises(InvalidInput, match="watch_s"):
            TopicFold(log, "t", lambda rec: None, watch_s=-1)
    finally:
        log.close()


def test_a_watched_catch_up_of_a_topic_not_there_yet_asks_until_it_exists(
    tmp_path: Path,
) -> None:
    log = WatchedLog(tmp_path / "log.db")
    try:
        fold = TopicFold(log, "t", lambda rec: None, watch_s=30)
        fold.catch_up(recent=True)
        fold.catch_up(recent=True)
        assert log.asked == ["t", "t"] and log.watched == []
    finally:
        log.close()
