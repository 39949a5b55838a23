"""Group commit of the embedded log (``adapters/sqlite_log/groupcommit.py``): concurrent appends
share one transaction and fsync; each caller is answered only once its records are durable, a
failing batch fails only its own caller, offsets stay dense and in each caller's order, and
SIGKILL loses nothing acknowledged."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from adapters.sqlite_log import SqliteEventLog
from core.errors import HubError, OutOfOrderSequence
from core.ports.eventlog import IdempotenceKey, Record

ROOT = Path(__file__).resolve().parents[2]
KEY = b"k" * 32


def appenders(log: SqliteEventLog, threads: int, batches: int, size: int) -> dict[int, list[int]]:
    """Each thread appends ``batches`` batches; returns every thread's acknowledged offsets."""
    acked: dict[int, list[int]] = {}
    start = threading.Barrier(threads)

    def work(k: int) -> None:
        start.wait()
        mine = acked.setdefault(k, [])
        for i in range(batches):
            recs = [Record(b"%d:%d:%d" % (k, i, j), b"key-%d" % j) for j in range(size)]
            mine.extend(m.offset for m in log.append("t", recs))

    ts = [threading.Thread(target=work, args=(k,)) for k in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return acked


def test_concurrent_appends_share_commits_with_dense_offsets_in_order(tmp_path: Path) -> None:
    log = SqliteEventLog(tmp_path / "log.db", mac_key=KEY)
    log.create_topic("t")
    acked = appenders(log, threads=8, batches=30, size=3)
    group = log._group
    assert group.appends == 8 * 30
    assert group.commits < group.appends, "no two appends ever shared a commit"
    records = list(log.scan("t", 0))
    assert [r.offset for r in records] == list(range(8 * 30 * 3))
    for k, offsets in acked.items():
        assert offsets == sorted(offsets)  # a thread's batches land in its order
        for n, offset in enumerate(offsets):
            i, j = divmod(n, 3)
            assert records[offset].value == b"%d:%d:%d" % (k, i, j)
    assert log.integrity_problems() == []  # the MAC chain holds across grouped batches
    log.close()


def test_a_failing_batch_fails_only_its_own_caller(tmp_path: Path) -> None:
    """A good append, an out-of-order idempotent one and another good one queue while a leader
    waits for the write lock; the next leader commits the three together: only the bad one
    fails, with its own error."""
    log = SqliteEventLog(tmp_path / "log.db", mac_key=KEY)
    log.create_topic("t")
    log.append("t", [Record(b"first")], idempotence=IdempotenceKey("p", 0))
    results: dict[str, object] = {}

    def run(name: str, records: list[Record], key: IdempotenceKey | None) -> None:
        try:
            results[name] = [m.offset for m in log.append("t", records, idempotence=key)]
        except HubError as exc:
            results[name] = exc

    def queued(n: int) -> None:
        deadline = time.monotonic() + 10
        while log._group._groups.queued < n and time.monotonic() < deadline:
            time.sleep(0.001)

    log._lock.acquire()  # a long write elsewhere
    threads = [threading.Thread(target=run, args=("leader", [Record(b"lead")], None))]
    threads[0].start()
    while not log._group._groups.leading:  # it leads alone and waits for the lock
        time.sleep(0.001)
    calls = [
        ("good-a", [Record(b"a1"), Record(b"a2")], None),
        ("bad", [Record(b"x")], IdempotenceKey("p", 5)),  # next expected is 1
        ("good-b", [Record(b"b1")], None),
    ]
    for n, (name, records, key) in enumerate(calls, 1):
        threads.append(threading.Thread(target=run, args=(name, records, key)))
        threads[-1].start()
        queued(n)
    log._lock.release()
    for t in threads:
        t.join(10)
    assert log._group.commits == 3  # "first", the leader alone, then the three together
    assert isinstance(results["bad"], OutOfOrderSequence)
    assert "next expected is 1" in str(results["bad"])
    values = [r.value for r in log.scan("t", 0)]
    assert values == [b"first", b"lead", b"a1", b"a2", b"b1"]  # queue order, no gap
    assert (results["leader"], results["good-a"], results["good-b"]) == ([1], [2, 3], [4])
    assert log.integrity_problems() == []
    log.close()


def test_a_failed_commit_fails_every_caller_of_the_group_and_stores_nothing(
    tmp_path: Path,
) -> None:
    log = SqliteEventLog(tmp_path / "log.db", busy_timeout_s=0.2)
    log.create_topic("t")
    errors: list[BaseException] = []
    log._lock.acquire()  # held past the busy timeout: the leader cannot begin

    def run(k: int) -> None:
        try:
            log.append("t", [Record(b"%d" % k)])
        except HubError as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    log._lock.release()
    assert len(errors) == 4
    assert len({id(e) for e in errors}) == 4, "callers must not share one exception object"
    assert log.end_offsets("t") == {0: 0}
    assert log.append("t", [Record(b"after")])[0].offset == 0
    log.close()


GROUPED = """
    import sys, threading
    from adapters.sqlite_log import SqliteEventLog
    from core.ports.eventlog import Record
    log = SqliteEventLog(sys.argv[1], mac_key=b"k" * 32)
    out = threading.Lock()
    def work(k):
        for i in range(1_000_000):
            meta = log.append("t", [Record(b"%d:%d:%d" % (k, i, j)) for j in range(10)])
            with out:
                print(k, i, meta[0].offset, flush=True)
    for k in range(6):
        threading.Thread(target=work, args=(k,), daemon=True).start()
    threading.Event().wait()
"""


def test_acknowledged_grouped_appends_survive_sigkill(tmp_path: Path) -> None:
    path = tmp_path / "log.db"
    with SqliteEventLog(path, mac_key=KEY) as log:
        log.create_topic("t")
    proc = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(GROUPED), str(path)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    acked: list[tuple[int, int, int]] = []
    assert proc.stdout is not None
    for line in proc.stdout:
        k, i, offset = map(int, line.split())
        acked.append((k, i, offset))
        if len(acked) >= 120:
            break
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    assert proc.stderr is not None
    assert len(acked) >= 120, proc.stderr.read()
    with SqliteEventLog(path, mac_key=KEY) as log:
        end = log.end_offsets("t")[0]
        assert end % 10 == 0, "a batch was stored partially"
        records = list(log.scan("t", 0))
        assert [r.offset for r in records] == list(range(end))
        for k, i, offset in acked:
            batch = records[offset : offset + 10]
            assert [r.value for r in batch] == [b"%d:%d:%d" % (k, i, j) for j in range(10)]
        assert log.integrity_problems() == []


@pytest.mark.parametrize("memory", [True, False])
def test_a_lone_append_commits_alone(tmp_path: Path, memory: bool) -> None:
    log = SqliteEventLog(":memory:" if memory else tmp_path / "log.db")
    log.create_topic("t")
    for i in range(3):
        assert log.append("t", [Record(b"%d" % i)])[0].offset == i
    assert (log._group.commits, log._group.appends) == (3, 3)
    log.close()
