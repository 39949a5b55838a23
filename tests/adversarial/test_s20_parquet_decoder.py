"""Session 20: the Parquet decoder child (``ingest.parquet_pool``), bounded in time and memory
and reused across files.

Findings (session 19 left them open, docs/benchmarks/s20-parquet20.md):
- high: no bound on time. A decoder that stalls (or loops) hung the publish, and the watched
  folder behind it, for ever: the parent read its stream with no deadline. Now the time the hub
  waits on the decoder for one file is bounded (HUB_PARQUET_DECODE_SECONDS plus a share per MiB);
  past it the child is killed and the file refused, the batches already published kept.
- high: no memory cap on the child: a file that makes pyarrow allocate without end made the
  host swap. Now each child's data segment is capped (RLIMIT_DATA, HUB_PARQUET_DECODER_MEMORY_MIB)
  and an allocation past it is a refusal naming the cap.
- speed: one process start (Python and pyarrow's import, ~0.4 s) per file. Now at most
  HUB_PARQUET_DECODERS children, reused, each file on a pipe of its own.
The stall is a real one: the test stops the decoder process (SIGSTOP)."""

from __future__ import annotations

import io
import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hub.bootstrap import Hub
from ingest.files import FileUnreadable, parquet_batches, publish_file
from ingest.parquet_child import read_batches
from ingest.parquet_pool import DecoderLimits, ParquetDecoders
from tests.adversarial._topics_hub import hub_with_topics
from tests.adversarial.test_s19_hostile_parquet import SCHEMA, _two_groups

MIB = 1 << 20


@pytest.fixture
def pool() -> Iterator[ParquetDecoders]:
    p = ParquetDecoders(DecoderLimits(size=1, seconds=2.0, seconds_per_mib=0.0))
    yield p
    p.close()


def _table(n: int, tag: str = "") -> pa.Table:
    return pa.table({"n": list(range(n)), "s": [f"{tag}{i}" for i in range(n)]})


def _write(path: Path, table: pa.Table, **kw: object) -> Path:
    pq.write_table(table, path, **kw)  # type: ignore[arg-type]
    return path


def _read(path: Path, pool: ParquetDecoders, batch_size: int = 100) -> pa.Table:
    batches = list(parquet_batches(path, batch_size, MIB, pool))
    return pa.Table.from_batches(batches)


def _gone(pid: int) -> bool:
    return not Path(f"/proc/{pid}").exists()


def test_a_stalled_decoder_is_killed_at_its_bound(pool: ParquetDecoders, tmp_path: Path) -> None:
    good = _write(tmp_path / "good.parquet", _table(300))
    assert _read(good, pool).equals(_table(300))
    (pid,) = pool.pids()
    os.kill(pid, signal.SIGSTOP)  # the decoder stalls: it never writes another byte
    start = time.monotonic()
    with pytest.raises(FileUnreadable) as err:
        _read(good, pool)
    took = time.monotonic() - start
    assert err.value.message.startswith(
        "Parquet file 'good.parquet': the Parquet decoder took more than 2.0 s on this file"
    ), err.value.message
    assert "HUB_PARQUET_DECODE_SECONDS" in err.value.message
    assert 1.9 < took < 30, took
    assert _gone(pid)  # killed, not left stopped
    assert _read(good, pool).equals(_table(300))  # a fresh child takes the next file
    assert pool.starts == 2


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[Hub]:
    with hub_with_topics(tmp_path / "data", {"t": SCHEMA}) as h:
        yield h


def test_a_stall_mid_file_keeps_the_batches_already_published(hub: Hub, tmp_path: Path) -> None:
    """Through a publish: the decoder stalls after the first batch (stopped from the batch
    callback); the file is refused at the bound, the first batch stays published (the
    partial-file rule of ``ingest.files``) and the hub goes on with the next file."""
    assert hub.ingest.parquet is not None
    assert hub.ingest.parquet.limits.memory_mib == 2048  # the settings' default, wired
    hub.ingest.parquet.close()
    hub.ingest.parquet = ParquetDecoders(DecoderLimits(size=1, seconds=2.0, seconds_per_mib=0))
    rows = 20_000  # a stream much longer than a pipe holds: the child blocks on it
    table = pa.table(
        {**{f"s{i}": [f"{i}-{j:050d}" for j in range(rows)] for i in range(3)}, "n": range(rows)}
    )
    f = _write(tmp_path / "slow.parquet", table)
    stopped: list[int] = []

    def stall(_n: int, _result: object) -> None:
        if not stopped:
            assert hub.ingest.parquet is not None
            stopped.extend(hub.ingest.parquet.pids())
            os.kill(stopped[0], signal.SIGSTOP)

    with pytest.raises(FileUnreadable) as err:
        publish_file(hub.ingest, f, "t", batch_size=1000, on_batch=stall)
    assert "the Parquet decoder took more than 2.0 s" in err.value.message
    assert _gone(stopped[0])
    kept = sum(hub.log.end_offsets("t").values())
    assert 1000 <= kept < rows  # the batches committed before the stall, not the file
    good = tmp_path / "good.parquet"
    good.write_bytes(_two_groups())
    assert publish_file(hub.ingest, good, "t").result.accepted == 200
    assert sum(hub.log.end_offsets("t").values()) >= kept + 200


def _hungry(path: Path) -> Path:
    """10,000 rows of 20 KB strings, plain-encoded and compressed (a 0.1 MB file): one batch of
    them decodes to 200 MB, within the expansion bound but not within a 300 MiB cap."""
    part = pa.table({"s": ["x" * 20_000 + str(i) for i in range(500)]})
    with pq.ParquetWriter(path, part.schema, use_dictionary=False, compression="zstd") as w:
        for _ in range(20):
            w.write_table(part)
    return path


def test_a_memory_hungry_file_is_refused_under_the_cap(tmp_path: Path) -> None:
    pool = ParquetDecoders(DecoderLimits(size=1, memory_mib=300))
    try:
        with pytest.raises(FileUnreadable) as err:
            for _ in parquet_batches(_hungry(tmp_path / "hungry.parquet"), 10_000, None, pool):
                pass
        assert err.value.message.startswith(
            "Parquet file 'hungry.parquet': the Parquet decoder ran out of its 300 MiB "
            "(HUB_PARQUET_DECODER_MEMORY_MIB) on this file"
        ), err.value.message
        good = _write(tmp_path / "good.parquet", _table(50))
        assert _read(good, pool).equals(_table(50))  # the next file, in a fresh child
        assert pool.starts == 2
    finally:
        pool.close()


def test_fifty_small_files_reuse_one_child(pool: ParquetDecoders, tmp_path: Path) -> None:
    for i in range(50):
        table = _table(10 + i, tag=f"f{i}-")
        assert _read(_write(tmp_path / f"{i}.parquet", table), pool).equals(table)
    assert pool.starts == 1
    assert len(pool.pids()) == 1


def test_a_child_is_replaced_after_its_files(tmp_path: Path) -> None:
    pool = ParquetDecoders(DecoderLimits(size=1, max_files=3))
    try:
        f = _write(tmp_path / "x.parquet", _table(20))
        pids = set()
        for _ in range(7):
            assert _read(f, pool).equals(_table(20))
            pids.update(pool.pids())
        assert pool.starts == 3  # files 1-3, 4-6, 7
        ended = pids - set(pool.pids())
        assert len(pids) == 3 and len(ended) == 2  # the third child is idle, two were ended
        assert all(_gone(pid) for pid in ended)
    finally:
        pool.close()


def test_a_forked_process_starts_its_own_child(pool: ParquetDecoders, tmp_path: Path) -> None:
    """A hub forked after its pool started (a pre-forking server) must not share the parent's
    child: the two processes' requests and replies would interleave on one socket."""
    f = _write(tmp_path / "x.parquet", _table(30))
    assert _read(f, pool).equals(_table(30))
    (theirs,) = pool.pids()
    pid = os.fork()
    if pid == 0:  # the forked copy
        ok = _read(f, pool).equals(_table(30)) and theirs not in pool.pids()
        os._exit(0 if ok and pool.starts == 2 else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert pool.pids() == [theirs]
    assert _read(f, pool).equals(_table(30))


def test_a_crash_mid_file_then_the_next_file_decodes(pool: ParquetDecoders, tmp_path: Path) -> None:
    raw = bytearray(_two_groups())
    raw[1550] = 46  # the flip that crashes Arrow in row group 1 (test_s19_hostile_parquet)
    crash = tmp_path / "late.parquet"
    crash.write_bytes(bytes(raw))
    good = tmp_path / "good.parquet"
    good.write_bytes(_two_groups())
    want = pq.read_table(io.BytesIO(_two_groups()))
    assert _read(good, pool).equals(want)
    got: list[pa.RecordBatch] = []
    with pytest.raises(FileUnreadable) as err:
        got.extend(parquet_batches(crash, 100, MIB, pool))
    assert "the Parquet decoder crashed on this file (signal" in err.value.message
    assert 100 <= sum(rb.num_rows for rb in got) < 200  # row group 0, before the crash
    assert _read(good, pool).equals(want)
    assert pool.starts == 2


def test_a_decoder_killed_from_outside_is_a_refusal_naming_it(
    pool: ParquetDecoders, tmp_path: Path
) -> None:
    """The host's out-of-memory killer (here: SIGKILL from the test) mid-file: the file is
    refused saying so, after the batches already given, and the next file decodes."""
    rows = 40_000  # a stream longer than the pipe holds: the child is still at work
    table = pa.table({"s": [f"{j:0100d}" for j in range(rows)]})
    f = _write(tmp_path / "long.parquet", table)
    it = parquet_batches(f, 1000, MIB, pool)
    seen = next(it).num_rows
    (pid,) = pool.pids()
    os.kill(pid, signal.SIGKILL)
    with pytest.raises(FileUnreadable) as err:
        for rb in it:
            seen += rb.num_rows
    assert err.value.message.startswith(
        "Parquet file 'long.parquet': the Parquet decoder was killed while decoding this file "
        "(signal 9: the host ran out of memory"
    ), err.value.message
    assert 1000 <= seen < rows
    assert _read(f, pool, batch_size=5000).equals(table)
    assert pool.starts == 2


def test_a_consumer_stopping_early_leaves_nothing_for_the_next_file(
    pool: ParquetDecoders, tmp_path: Path
) -> None:
    """A publish that stops after the first batch (its consumer failed) ends its child, whose
    rest of that stream must not reach the next file."""
    first = _write(tmp_path / "a.parquet", _table(1000, "a"))
    it = parquet_batches(first, 10, MIB, pool)
    assert next(it).num_rows == 10
    it.close()
    second = _write(tmp_path / "b.parquet", _table(500, "b"))
    assert _read(second, pool).equals(_table(500, "b"))
    assert pool.starts == 2


def test_concurrent_files_never_mix(tmp_path: Path) -> None:
    pool = ParquetDecoders(DecoderLimits(size=2))
    tables = {i: _table(200 + i, tag=f"t{i}-") for i in range(24)}
    paths = {i: _write(tmp_path / f"{i}.parquet", t) for i, t in tables.items()}
    wrong: list[int] = []

    def work(ids: range) -> None:
        for i in ids:
            if not _read(paths[i], pool, batch_size=16).equals(tables[i]):
                wrong.append(i)

    try:
        threads = [threading.Thread(target=work, args=(range(k, 24, 4),)) for k in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert wrong == []
        assert pool.starts <= 2
    finally:
        pool.close()


_shared_pool = ParquetDecoders(DecoderLimits(size=1))


@settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    rows=st.lists(
        st.tuples(st.integers(-(2**40), 2**40), st.text(max_size=30), st.booleans()),
        max_size=300,
    ),
    batch=st.integers(1, 64),
    group=st.integers(1, 100),
)
def test_the_pool_gives_the_batches_of_the_in_process_reader(
    rows: list[tuple[int, str, bool]], batch: int, group: int
) -> None:
    """The same batches, cut the same way, as ``read_batches`` run in this process."""
    table = pa.table(
        {
            "n": pa.array([r[0] for r in rows], pa.int64()),
            "s": pa.array([r[1] for r in rows], pa.string()),
            "b": pa.array([r[2] for r in rows], pa.bool_()),
        }
    )
    out = io.BytesIO()
    pq.write_table(table, out, row_group_size=group)
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        f = Path(tmp) / "r.parquet"
        f.write_bytes(out.getvalue())
        got = list(parquet_batches(f, batch, MIB, _shared_pool))
        with f.open("rb") as fh:
            want = list(read_batches(fh, f.name, batch, MIB))
    assert [rb.num_rows for rb in got] == [rb.num_rows for rb in want]
    assert all(a.equals(b) for a, b in zip(got, want, strict=True))
    assert _shared_pool.starts == 1


def test_a_decoder_pipe_numbered_past_1024_is_read(tmp_path: Path) -> None:
    """A long-running hub (or a test process) holds many descriptors: the pipe of a file then
    gets a number past 1,024, which ``select()`` refuses ("filedescriptor out of range in
    select()": every Parquet publish of the process failed, clean-clone trial of session 20).
    The wait uses ``poll``, which takes any descriptor."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 1400
    if soft < want:
        assert hard == resource.RLIM_INFINITY or hard >= want, f"hard descriptor limit {hard}"
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    held: list[int] = []
    pool = ParquetDecoders(DecoderLimits(size=1, seconds=30.0))
    try:
        while not held or held[-1] < 1100:
            held.append(os.open(os.devnull, os.O_RDONLY))
        table = _table(50_000)
        f = _write(tmp_path / "x.parquet", table)
        for _ in range(3):  # the first read of each file waits for the child (the pipe is empty)
            assert _read(f, pool, batch_size=5_000).equals(table)
    finally:
        pool.close()
        for fd in held:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_a_child_started_early_serves_the_first_file(tmp_path: Path) -> None:
    """Session 25: ``hub serve`` / ``hub watch`` start one decoder child at start-up
    (``start_early``); the first file is decoded by it (no second start), a second call
    while it runs starts nothing, and a pool closed while it starts ends it."""
    pool = ParquetDecoders(DecoderLimits(size=2, seconds=10.0))
    try:
        started = pool.start_early()
        assert started is not None and pool.start_early() is None  # one at a time
        started.join(30)
        assert pool.starts == 1 and len(pool.pids()) == 1
        good = _write(tmp_path / "good.parquet", _table(300))
        assert _read(good, pool).equals(_table(300))
        assert pool.starts == 1
    finally:
        pool.close()
    assert pool.start_early() is None  # closed
    closing = ParquetDecoders(DecoderLimits(size=1, seconds=10.0))
    started = closing.start_early()
    assert started is not None
    closing.close()  # while the child starts: it must not outlive the pool
    started.join(30)
    assert closing.pids() == [] and closing.starts in (0, 1)
