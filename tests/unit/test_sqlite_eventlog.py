"""SQLite-specific behaviour of SqliteEventLog beyond the EventLog contract.

Crash safety (SIGKILL after acknowledgement), several processes and threads on one file, lock
contention, the batch codec and its corruption check, and configuration errors.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import adapters.sqlite_log.log as mod
from adapters.sqlite_log import SqliteEventLog
from adapters.sqlite_log.batch import decode_batch, encode_batch
from core.errors import ConfigError, HubError, LogTampered, StorageBusy
from core.ports.eventlog import EncodedColumns, LogProblem, Record, TopicPartition

ROOT = Path(__file__).resolve().parents[2]


def child(code: str, *args: str) -> subprocess.Popen[str]:
    """A Python process running ``code`` with the repository importable."""
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "log.db"


def with_topic(path: Path, partitions: int = 1) -> Path:
    with SqliteEventLog(path) as log:
        log.create_topic("t", partitions)
    return path


# -- crash and multi-process ----------------------------------------------------------------------
APPENDER = """
    import sys
    from adapters.sqlite_log import SqliteEventLog
    from core.ports.eventlog import Record
    log = SqliteEventLog(sys.argv[1], synchronous=sys.argv[2])
    tag, batches, size = sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
    for i in range(batches):
        meta = log.append("t", [Record(b"%s:%d:%d" % (tag.encode(), i, j)) for j in range(size)])
        print("acked", i, meta[0].offset, flush=True)
"""


def test_an_acknowledged_batch_survives_sigkill(path: Path) -> None:
    proc = child(APPENDER, str(with_topic(path)), "FULL", "crash", "1000000", "50")
    acked: list[tuple[int, int]] = []
    assert proc.stdout is not None
    for line in proc.stdout:
        _, i, offset = line.split()
        acked.append((int(i), int(offset)))
        if len(acked) >= 25:
            break
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    with SqliteEventLog(path) as log:
        end = log.end_offsets("t")[0]
        assert end % 50 == 0, "a batch was stored partially"
        assert end >= 50 * len(acked)
        records = list(log.scan("t", 0))
        assert [r.offset for r in records] == list(range(end))
        for i, offset in acked:
            batch = records[offset : offset + 50]
            assert [r.value for r in batch] == [b"crash:%d:%d" % (i, j) for j in range(50)]


def test_two_processes_appending_get_dense_unique_offsets(path: Path) -> None:
    db = str(with_topic(path))
    procs = [child(APPENDER, db, "NORMAL", tag, "60", "5") for tag in ("a", "b")]
    offsets: dict[str, list[int]] = {}
    for tag, proc in zip(("a", "b"), procs, strict=True):
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        offsets[tag] = [int(line.split()[2]) for line in out.splitlines()]
    with SqliteEventLog(path) as log:
        records = list(log.scan("t", 0))
    assert [r.offset for r in records] == list(range(600))
    assert len({r.value for r in records}) == 600
    for tag, starts in offsets.items():
        for i, start in enumerate(starts):  # each batch is contiguous at its acked offset
            assert [r.value for r in records[start : start + 5]] == [
                b"%s:%d:%d" % (tag.encode(), i, j) for j in range(5)
            ]


def test_storage_busy_when_another_process_holds_the_write_lock(path: Path) -> None:
    log = SqliteEventLog(path, busy_timeout_s=0.1)
    log.create_topic("t")
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(StorageBusy, match="retry"):
            log.append("t", [Record(b"a")])
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert log.append("t", [Record(b"a")])[0].offset == 0
    log.close()


# -- threads --------------------------------------------------------------------------------------
def test_reads_see_whole_batches_while_another_thread_appends(path: Path) -> None:
    log = SqliteEventLog(path, synchronous="NORMAL")
    log.create_topic("t")
    done = threading.Event()

    def append() -> None:
        try:
            for i in range(200):
                log.append("t", [Record(b"%d" % (i * 10 + j)) for j in range(10)])
        finally:
            done.set()

    writer = threading.Thread(target=append)
    writer.start()
    reads, last_end = 0, 0
    while not done.is_set() or reads == 0:
        end = log.end_offsets("t")[0]
        assert end >= last_end and end % 10 == 0
        last_end = end
        records = list(log.scan("t", 0))
        assert len(records) % 10 == 0
        assert all(r.value == b"%d" % r.offset for r in records)
        reads += 1
    writer.join()
    assert log.end_offsets("t") == {0: 2000}
    log.close()


def test_another_threads_append_waits_for_an_open_transaction(path: Path) -> None:
    log = SqliteEventLog(path)
    log.create_topic("t")
    order: list[str] = []
    with log.transaction("tx") as txn:
        txn.append("t", [Record(b"txn")])
        other = threading.Thread(target=lambda: order.append(str(log.append("t", [Record(b"x")]))))
        other.start()
        time.sleep(0.2)
        assert order == []  # still waiting for the write lock
    other.join(timeout=10)
    assert [r.value for r in log.read("t", 0, 0)] == [b"txn", b"x"]
    log.close()


def test_another_thread_gets_storage_busy_after_the_timeout(path: Path) -> None:
    log = SqliteEventLog(path, busy_timeout_s=0.1)
    log.create_topic("t")
    errors: list[BaseException] = []

    def append() -> None:
        try:
            log.append("t", [Record(b"x")])
        except BaseException as exc:
            errors.append(exc)

    with log.transaction("tx"):
        thread = threading.Thread(target=append)
        thread.start()
        thread.join(timeout=10)
    assert len(errors) == 1 and isinstance(errors[0], StorageBusy)
    log.close()


def test_writing_outside_ones_own_open_transaction_raises_instead_of_deadlocking(
    path: Path,
) -> None:
    log = SqliteEventLog(path)
    log.create_topic("t")
    with log.transaction("tx") as txn:
        with pytest.raises(HubError, match=r"txn\.append") as info:
            log.append("t", [Record(b"x")])
        assert info.value.code == "transaction_open"
        with pytest.raises(HubError):
            log.commit_offsets("g", {TopicPartition("t", 0): 1})
        with pytest.raises(HubError), log.transaction("nested"):
            pass
        txn.append("t", [Record(b"y")])
    assert [r.value for r in log.read("t", 0, 0)] == [b"y"]
    log.close()


# -- storage --------------------------------------------------------------------------------------
def test_large_appends_are_split_into_several_stored_batches(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(mod, "MAX_BATCH_RECORDS", 7)
    monkeypatch.setattr(mod, "MAX_BATCH_BYTES", 100)
    log = SqliteEventLog(path, cache_records=10)
    log.create_topic("t", 2)
    records = [Record(b"%03d" % i + b"." * (i % 40), key=b"k%d" % (i % 5)) for i in range(100)]
    meta = log.append("t", records)
    rows = sqlite3.connect(path).execute("SELECT count(*), sum(record_count) FROM batches")
    count, total = rows.fetchone()
    assert count > 100 // 7 and total == 100
    for r, m in zip(records, meta, strict=True):
        (stored,) = log.read("t", m.partition, m.offset, 1)
        assert stored.value == r.value
    for p in (0, 1):
        expected = [r.value for r, m in zip(records, meta, strict=True) if m.partition == p]
        assert [s.value for s in log.scan("t", p, batch=3)] == expected
    log.close()


def test_a_corrupted_batch_is_reported(path: Path) -> None:
    with SqliteEventLog(path) as log:
        log.create_topic("t")
        log.append("t", [Record(b"hello world")])
    raw = sqlite3.connect(path, isolation_level=None)
    (blob,) = raw.execute("SELECT data FROM batches").fetchone()
    raw.execute("UPDATE batches SET data = ?", (blob.replace(b"hello", b"jello"),))
    raw.close()
    with SqliteEventLog(path) as log, pytest.raises(HubError, match="corrupt") as info:
        log.read("t", 0, 0)
    assert info.value.code == "storage_corrupt"


def test_memory_database_works_for_unit_tests() -> None:
    with SqliteEventLog(":memory:") as log:
        log.create_topic("t", 2)
        meta = log.append("t", [Record(b"a", key=b"k")])
        with log.transaction("tx") as txn:
            txn.append("t", [Record(b"b", partition=meta[0].partition)])
        assert [r.value for r in log.read("t", meta[0].partition, 0)] == [b"a", b"b"]


def test_a_closed_log_refuses_use(path: Path) -> None:
    log = SqliteEventLog(path)
    log.create_topic("t")
    log.close()
    log.close()  # idempotent
    with pytest.raises(HubError, match="closed"):
        log.append("t", [Record(b"a")])
    with pytest.raises(HubError, match="closed"):
        log.end_offsets("t")


@pytest.mark.parametrize("level", ["full", "NORMAL", "OFF", "EXTRA"])
def test_synchronous_levels_are_accepted(path: Path, level: str) -> None:
    with SqliteEventLog(path, synchronous=level) as log:
        log.create_topic("t")


def test_bad_configuration_is_reported(path: Path) -> None:
    with pytest.raises(ConfigError, match="synchronous"):
        SqliteEventLog(path, synchronous="SOMETIMES")
    other = path.with_name("other.db")
    sqlite3.connect(other).execute("CREATE TABLE x (y)").connection.commit()
    with pytest.raises(ConfigError, match="not a hub event log"):
        SqliteEventLog(other)
    SqliteEventLog(path).close()
    raw = sqlite3.connect(path)
    raw.execute(f"PRAGMA user_version = {mod.SCHEMA_VERSION + 1}")
    raw.close()
    with pytest.raises(ConfigError, match="upgrade"):
        SqliteEventLog(path)


# -- the batch codec ------------------------------------------------------------------------------
optional_bytes = st.none() | st.binary(max_size=40)
headers = st.lists(st.tuples(st.text(max_size=8), st.binary(max_size=8)), max_size=4).map(tuple)
timestamps = st.integers(0, 2**40) | st.integers(0, (1 << 63) - 1)


@settings(max_examples=80, deadline=None)
@given(
    st.lists(
        st.tuples(optional_bytes, optional_bytes, headers, timestamps), min_size=1, max_size=30
    )
)
def test_the_batch_codec_round_trips(rows: list[tuple]) -> None:
    keys, values, hdrs, stamps = (list(c) for c in zip(*rows, strict=True))
    n, ts, k, v, h = decode_batch(encode_batch(keys, values, hdrs, stamps))
    assert (n, list(ts), k, v, [tuple(x) for x in h]) == (len(rows), stamps, keys, values, hdrs)


def test_the_batch_codec_handles_more_than_65535_distinct_header_pairs() -> None:
    n = 70_000
    hdrs = [(("id", b"%d" % i), ("type", b"same")) for i in range(n)]
    blob = encode_batch([None] * n, [b"v"] * n, hdrs, [7] * n)
    count, ts, keys, values, decoded = decode_batch(blob)
    assert count == n and list(decoded) == hdrs and set(ts) == {7}
    assert keys == [None] * n and values == [b"v"] * n


# -- authentication (MAC chain, seals) ---------------------------------------------------------
KEY = bytes(range(32))


def _tamper_value(path: Path, topic: str = "t") -> None:
    """Re-encode the first stored batch with one value byte changed and a valid CRC."""
    with sqlite3.connect(path) as db:
        bid, blob = db.execute("SELECT id, data FROM batches ORDER BY id LIMIT 1").fetchone()
        _n, ts, keys, values, headers = decode_batch(blob)
        values = list(values)
        values[0] = values[0][:-1] + bytes([values[0][-1] ^ 1])
        db.execute(
            "UPDATE batches SET data = ? WHERE id = ?",
            (encode_batch(keys, values, list(headers), list(ts)), bid),
        )


def test_check_records_refuses_a_reencoded_batch_naming_its_offset(tmp_path: Path) -> None:
    from core.errors import LogTampered

    path = tmp_path / "log.db"
    with SqliteEventLog(path, mac_key=KEY) as log:
        log.create_topic("t", 1)
        log.append("t", [Record(b"a%d" % i) for i in range(3)])
        log.append("t", [Record(b"b%d" % i) for i in range(3)])
        log.check_records("t", 0, 0, 6)
        assert log.integrity_problems() == []
    _tamper_value(path)
    with SqliteEventLog(path, mac_key=KEY) as log:
        assert log.read("t", 0, 0, 1)[0].value == b"a1"  # was b"a0": plain reads do not check
        with pytest.raises(LogTampered, match=r"t\[0\] at offset 0: .*fails its MAC"):
            log.check_records("t", 0, 0, 6)
        log.check_records("t", 0, 3, 6)  # the next batch still links to the stored MAC
        (problem,) = log.integrity_problems()
        assert (problem.topic, problem.partition, problem.offset) == ("t", 0, 0)
    with SqliteEventLog(path) as log:  # without the key nothing is checked
        assert log.integrity_problems() == []


def _tamper_sql(sql: str) -> Callable[[Path], None]:
    def tamper(path: Path) -> None:
        with sqlite3.connect(path) as db:
            db.execute(sql)

    return tamper


_MIDDLE = "(SELECT id FROM batches ORDER BY base_offset LIMIT 1 OFFSET 1)"
TAMPERS: dict[str, Callable[[Path], None]] = {
    "nothing": lambda path: None,
    "a value re-encoded": _tamper_value,
    "a batch removed from the middle": _tamper_sql(f"DELETE FROM batches WHERE id = {_MIDDLE}"),
    "the last batch removed": _tamper_sql(
        "DELETE FROM batches WHERE id = (SELECT max(id) FROM batches)"
    ),
    "a max timestamp changed": _tamper_sql(
        f"UPDATE batches SET max_timestamp = max_timestamp + 1 WHERE id = {_MIDDLE}"
    ),
    "a MAC changed": _tamper_sql(f"UPDATE batches SET mac = zeroblob(32) WHERE id = {_MIDDLE}"),
    "two batches' MACs swapped": _tamper_sql(
        "UPDATE batches SET mac = (SELECT mac FROM batches b2 WHERE b2.id != batches.id"
        " AND b2.id IN (1, 2)) WHERE id IN (1, 2)"
    ),
    "the seal changed": _tamper_sql("UPDATE partitions SET mac = zeroblob(32)"),
    "the end offset moved": _tamper_sql("UPDATE partitions SET next_offset = next_offset + 1"),
    "the seal removed": _tamper_sql("UPDATE partitions SET mac = NULL"),
}


def _reads(log: SqliteEventLog, start: int, end: int, k: int) -> list[EncodedColumns]:
    """``[start, end)`` of ``t[0]`` read as the ledger's sync reads it, ``k`` records a call."""
    out: list[EncodedColumns] = []
    pos = start
    while pos < end:
        enc = log.read_encoded("t", 0, pos, min(k, end - pos)).below(end)
        if not len(enc):
            break
        out.append(enc)
        pos = enc.next_offset()
    return out


@pytest.mark.parametrize("tamper", TAMPERS)
def test_check_records_on_the_bytes_read_finds_what_a_second_read_finds(
    tmp_path: Path, tamper: str
) -> None:
    """``check_records(..., read=...)`` checks the MAC chain on the batches the reads carry: the
    same answer (and message) as checking by reading the range again, for each tampering; and
    on an honest log the reads are what it checks (no second read)."""
    path = tmp_path / "log.db"
    with SqliteEventLog(path, mac_key=KEY) as log:
        log.create_topic("t", 1)
        for b in range(4):
            log.append("t", [Record(b"%d-%d" % (b, i)) for i in range(3)])
    TAMPERS[tamper](path)

    def outcome(log: SqliteEventLog, start: int, end: int, **kw: object) -> str | None:
        try:
            log.check_records("t", 0, start, end, **kw)  # type: ignore[arg-type]
        except LogTampered as exc:
            return exc.message
        return None

    with SqliteEventLog(path, mac_key=KEY) as log:
        for start, end in ((0, 12), (0, 6), (3, 12), (4, 7), (11, 12)):
            for k in (1, 2, 5, 100):
                try:
                    read = _reads(log, start, end, k)
                except HubError:
                    continue  # the tampering makes the read itself fail
                assert outcome(log, start, end, read=read) == outcome(log, start, end), (
                    start,
                    end,
                    k,
                )
                covered = mod._covering(read, "t", 0, start, end)
                if tamper == "nothing":
                    assert covered is not None and outcome(log, start, end, read=read) is None
        assert outcome(log, 0, 12, read=_reads(log, 0, 6, 100)) == outcome(log, 0, 12)
        assert (outcome(log, 0, 12) is None) == (tamper == "nothing")


def _check_steps(path: Path, start: int, end: int) -> tuple[int, LogProblem | None]:
    """SQLite VM instructions (progress-handler ticks) of ``check_records``' own row check over
    ``[start, end)`` of ``t[0]`` (no reads given), and what it found."""
    with SqliteEventLog(path, mac_key=KEY) as log:
        t = log._topic("t")
        ticks = [0]

        def tick() -> int:
            ticks[0] += 1
            return 0

        with log._snapshot("test") as conn:
            conn.set_progress_handler(tick, 1)
            try:
                problem = log._check_partition(conn, KEY, t.id, "t", 0, start, end)
            finally:
                conn.set_progress_handler(None, 0)
        return ticks[0], problem


def test_check_records_reads_rows_from_the_batch_holding_start_not_the_first(
    tmp_path: Path,
) -> None:
    """The row query of ``check_records`` (no reads given) is bounded by the base-offset index:
    checking the last few batches costs the same over a partition ten times as long (it
    scanned every batch from the first before), and still starts at the batch that holds
    ``start`` (start inside it: a tampered batch there is found)."""
    steps = {}
    for n in (200, 2000):
        path = tmp_path / f"log{n}.db"
        with SqliteEventLog(path, mac_key=KEY) as log:
            log.create_topic("t", 1)
            for b in range(n):
                log.append("t", [Record(b"%d-%d" % (b, i)) for i in range(3)])
        end = 3 * n
        steps[n], problem = _check_steps(path, end - 7, end)  # inside the third batch from last
        assert problem is None
    assert steps[2000] < 2 * steps[200], steps  # before: 1476 vs 14076 (a scan from the first)
    with sqlite3.connect(tmp_path / "log2000.db") as db:  # the batch holding start (5991)
        db.execute("UPDATE batches SET mac = zeroblob(32) WHERE base_offset = 5991")
    _steps, problem = _check_steps(tmp_path / "log2000.db", 5993, 6000)
    assert problem is not None and problem.offset == 5991, problem


def test_a_v1_log_is_sealed_as_found_only_when_asked(tmp_path: Path) -> None:
    path = tmp_path / "log.db"
    with SqliteEventLog(path) as log:
        log.create_topic("t", 2)
        log.append("t", [Record(b"x", key=b"k%d" % i) for i in range(20)])
        log.delete_records_before("t", 0, 1)
    with sqlite3.connect(path) as db:  # back to the v1 schema
        for table, column in (
            ("topics", "mac"),
            ("partitions", "anchor"),
            ("partitions", "head"),
            ("partitions", "mac"),
            ("batches", "mac"),
        ):
            db.execute(f"ALTER TABLE {table} DROP COLUMN {column}")
        db.execute("PRAGMA user_version = 1")
    # not sealed unless asked: a downgrade needs no key (test_s19_rtb_log_downgrade)
    with pytest.raises(LogTampered, match="schema version 1"):
        SqliteEventLog(path, mac_key=KEY)
    with SqliteEventLog(path, mac_key=KEY, seal_v1=True) as log:
        assert log.integrity_problems() == []
        log.append("t", [Record(b"y", partition=1)])
        assert log.integrity_problems() == []
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == 2


def test_batches_written_without_the_key_fail_when_the_key_is_expected(tmp_path: Path) -> None:
    path = tmp_path / "log.db"
    with SqliteEventLog(path) as log:
        log.create_topic("t", 1)
        log.append("t", [Record(b"x")])
    with SqliteEventLog(path, mac_key=KEY) as log:
        problems = log.integrity_problems()
        assert problems and "MAC" in problems[0].what


def test_a_short_mac_key_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="at least 16 random bytes"):
        SqliteEventLog(tmp_path / "log.db", mac_key=b"short")
