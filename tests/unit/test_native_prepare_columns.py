"""The native column-append preparation (native/src/prepare_columns.rs) against the Python
reference in ``SqliteEventLog._prepare_columns``: the same partitions (Kafka's murmur2), record
positions per partition, cuts into stored batches and stored bytes, compared with the native
stored-batch writer off as well (the whole reference in Python); and None, so the reference
decides and raises, for anything but the plain case."""

from __future__ import annotations

import random
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from adapters.sqlite_log import batch as stored
from adapters.sqlite_log import log as log_mod
from adapters.sqlite_log.batch import PreparedAppend
from adapters.sqlite_log.log import SqliteEventLog
from core.partitioner import default_partition
from core.ports.eventlog import ColumnBatch
from tests.unit.test_column_append import random_batch

native = log_mod.native_prepare
needs_native = pytest.mark.skipif(native is None, reason="hub_native not built")
_TS = 1_700_000_000_000


def _shape(p: PreparedAppend) -> tuple[Any, ...]:
    groups = [(g.partition, g.indexes, g.count, g.chunks) for g in p.groups]
    return p.count, p.timestamps, p.size, groups


def _prepared_both(
    log: SqliteEventLog, topic: str, batch: ColumnBatch, monkeypatch: pytest.MonkeyPatch
) -> tuple[tuple[Any, ...], tuple[Any, ...]]:
    got = _shape(log._prepare_columns(topic, batch))
    with monkeypatch.context() as m:  # the reference: every step in Python
        m.setattr(log_mod, "native_prepare", None)
        m.setattr(stored, "native_stored_columns", None)
        expected = _shape(log._prepare_columns(topic, batch))
    return got, expected


@needs_native
def test_same_groups_cuts_and_bytes_as_the_reference_on_random_batches(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """1-12 partitions, keys and values null, mixed or not, shared and varying header
    columns (one list under two names), record and byte limits small enough to cut often."""
    rng = random.Random(17)
    log = SqliteEventLog(tmp_path / "log.db")
    counts = (1, 2, 3, 8, 12)
    for parts in counts:
        log.create_topic(f"p{parts}", parts)
    cut = 0
    for trial in range(300):
        n = rng.choice([1, 2, 3, 17, 200, 1000])
        batch = random_batch(rng, n, _TS + trial)
        if trial % 3 == 0:  # limits that cut a partition into several stored batches
            monkeypatch.setattr(log_mod, "MAX_BATCH_RECORDS", rng.choice([1, 7, 64]))
            monkeypatch.setattr(log_mod, "MAX_BATCH_BYTES", rng.choice([1, 50, 900]))
        else:
            monkeypatch.setattr(log_mod, "MAX_BATCH_RECORDS", 4096)
            monkeypatch.setattr(log_mod, "MAX_BATCH_BYTES", 8 << 20)
        topic = f"p{rng.choice(counts)}"
        got, expected = _prepared_both(log, topic, batch, monkeypatch)
        assert got == expected, (trial, topic, n)
        cut += any(len(g[3]) > 1 for g in got[3])
    assert cut > 50  # the halving and the record limit were exercised
    log.close()


@needs_native
def test_partitions_are_kafkas_for_keys_of_every_length() -> None:
    """murmur2's tails (0-3 bytes past a multiple of 4), long keys, high bytes."""
    rng = random.Random(4)
    keys = [bytes(rng.randrange(256) for _ in range(rng.randrange(40))) for _ in range(3000)]
    keys += [b"", b"\xff" * 4097]
    for nparts in (2, 7, 12, 1000):
        assert native is not None
        got = native(keys, [b"v"] * len(keys), [], [], _TS, nparts, 1 << 20, 1 << 40)
        assert got is not None
        placed = {i: p for p, idx, _, _ in got[1] for i in (idx or range(len(keys)))}
        assert placed == {i: default_partition(k, nparts) for i, k in enumerate(keys)}


@needs_native
@pytest.mark.parametrize(
    "args",
    [
        ([b"k", "k"], [b"v", b"v"], [], []),  # a str key
        ([b"k", b"k"], [b"v", bytearray(b"v")], [], []),  # a bytearray value
        ([b"k", 3], [b"v", b"v"], [], []),  # an int key
        ([b"k", b"k"], [b"v", b"v"], [b"h"], [["a", "b"]]),  # str header values
        ([b"k", b"k"], [b"v", b"v"], [b"h"], [[b"a"]]),  # a column too short
        ([b"k", b"k"], [b"v", b"v"], [b"h"], [range(2)]),  # not a list
        (iter([b"k"]), [b"v"], [], []),  # keys not a list
        ([], [], [], []),  # nothing to store
        ([b"k"], [b"v", b"v"], [], []),  # columns that do not line up
    ],
)
def test_anything_but_the_plain_case_is_left_to_the_reference(args: tuple[Any, ...]) -> None:
    assert native is not None
    assert native(*args, _TS, 4, 4096, 8 << 20) is None


@needs_native
def test_no_partitions_is_left_to_the_reference() -> None:
    assert native is not None
    assert native([b"k"], [b"v"], [], [], _TS, 0, 4096, 8 << 20) is None


@needs_native
def test_appended_rows_and_offsets_match_with_the_native_path_off(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The stored rows (MACs included) and the record metadata of column appends, native on
    and off, into two logs with a MAC key."""
    rng = random.Random(5)
    batches = [random_batch(rng, n, _TS + n) for n in (1, 300, 5000, 9000)]
    out: dict[str, Any] = {}
    for mode in ("native", "reference"):
        with monkeypatch.context() as m:
            if mode == "reference":
                m.setattr(log_mod, "native_prepare", None)
                m.setattr(stored, "native_stored_columns", None)
            log = SqliteEventLog(tmp_path / f"{mode}.db", mac_key=b"k" * 32)
            log.create_topic("four", 4)
            metas = [list(log.append_columns("four", b)) for b in batches]
            assert log.integrity_problems() == []
            log.close()
        out[mode] = metas
    assert out["native"] == out["reference"]
    from tests.unit.test_column_append import _rows

    assert _rows(tmp_path / "native.db") == _rows(tmp_path / "reference.db")


@needs_native
def test_lists_and_tuples_give_the_same_answer_and_every_object_is_released() -> None:
    """The inputs are frozen into tuples held for the encode without the GIL: a list and a
    tuple of the same items give the same bytes, the caller's lists are left as they were,
    and every key, value and header value is released after (no reference kept or lost)."""
    assert native is not None
    rng = random.Random(9)
    n = 5000
    keys = [bytes(rng.randrange(256) for _ in range(8)) for _ in range(n)]
    values = [bytes(rng.randrange(256) for _ in range(30)) for _ in range(n)]
    each = [f"h{i % 7}".encode() for i in range(n)]
    shared = b"shared"
    names = [b"each", b"shared"]
    held = [*keys[:50], *values[:50], *each[:7], shared, *names]
    before = [sys.getrefcount(o) for o in held]
    copies = (list(keys), list(values), list(each))
    as_lists = native(keys, values, names, [each, shared], _TS, 4, 700, 1 << 16)
    as_tuples = native(
        tuple(keys), tuple(values), tuple(names), (tuple(each), shared), _TS, 4, 700, 1 << 16
    )
    assert as_lists is not None and as_lists == as_tuples
    assert (keys, values, each) == copies
    del as_lists, as_tuples, copies
    assert [sys.getrefcount(o) for o in held] == before


@needs_native
def test_a_list_changed_by_another_thread_during_the_call_changes_nothing() -> None:
    """The encode runs without the GIL: another thread replacing the lists' items meanwhile
    (equal bytes in new objects, the old ones freed) must neither crash the call nor change
    its bytes, because the call reads tuples it froze and holds."""
    assert native is not None
    rng = random.Random(3)
    n = 20_000
    keys = [f"acct-{rng.randrange(500)}".encode() for _ in range(n)]
    values = [rng.randbytes(120) for _ in range(n)]
    each = [rng.randbytes(8) for _ in range(n)]
    expected = native(tuple(keys), tuple(values), [b"h"], [tuple(each)], _TS, 6, 900, 1 << 16)
    assert expected is not None
    stop = threading.Event()

    def replace() -> None:
        while not stop.is_set():
            for col in (keys, values, each):
                for i in range(0, n, 7):
                    col[i] = bytes(bytearray(col[i]))  # equal bytes, a new object

    t = threading.Thread(target=replace)
    t.start()
    try:
        for _ in range(10):
            assert native(keys, values, [b"h"], [each], _TS, 6, 900, 1 << 16) == expected
    finally:
        stop.set()
        t.join()
