"""``hub_native.produce_columns`` (native/src/kafka_produce.rs) makes exactly the
``Producer.produce`` calls of its reference (``batch.produce_columns_py``): the same positional
arguments, header lists equal pair by pair, the reports on the first and last record only; it
produces nothing for a batch it does not take (the reference then runs) or whose columns do not
line up, and stops at the first exception ``produce`` raises. (The records these calls store on
a real broker: ``tests/contract/test_kafka_append_columns.py``.)"""

from __future__ import annotations

import random
from typing import Any

import pytest

from adapters.kafka_log import batch as kbatch
from core.ports.eventlog import ColumnBatch
from tests.unit.native_module import native_module


class Calls:
    """A stand-in for ``Producer.produce`` that records its arguments (the calls are what is
    compared; the real producer's stored records are the contract test's)."""

    def __init__(self, fail_at: int | None = None) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.fail_at = fail_at

    def __call__(self, *args: Any, **kwargs: Any) -> None:
        assert not kwargs, "produce_columns passes every argument positionally"
        if self.fail_at is not None and len(self.calls) == self.fail_at:
            raise BufferError("Local: Queue full")
        self.calls.append(args)


TS = 1_700_000_000_000


def first(err: object, msg: object) -> None: ...


def last(err: object, msg: object) -> None: ...


def _native(batch: ColumnBatch, ts: int = TS, **kw: Any) -> tuple[bool, Calls]:
    calls = Calls(**kw)
    taken = native_module().produce_columns(
        calls, "t.w", batch.keys, batch.values, batch.header_names, batch.header_columns, ts,
        first, last,
    )  # fmt: skip
    return taken, calls


def reference(batch: ColumnBatch, ts: int = TS) -> Calls:
    """The calls of the reference loop (``batch.produce_columns_py``) for ``batch``."""
    calls = Calls()
    kbatch.produce_columns_py(calls, "t.w", batch, ts, first, last)
    return calls


def _random_batch(rnd: random.Random, n: int) -> ColumnBatch:
    names: list[str] = []
    cols: list[Any] = []
    for j in range(rnd.randrange(0, 15)):
        names.append(rnd.choice(["ce_id", "caf\u00e9\U0001f600", "x", f"h{j}", ""]))
        cols.append(random_column(rnd, n))
    return random_batch(rnd, n, names, cols)


def random_column(rnd: random.Random, n: int) -> Any:
    """A header column: one value every record shares, or ``n`` values in a list or a tuple."""
    shape = rnd.randrange(3)
    if shape == 0:
        return rnd.randbytes(rnd.randrange(0, 40))  # shared by every record
    col = [rnd.randbytes(rnd.randrange(0, 40)) for _ in range(n)]
    return col if shape == 1 else tuple(col)


def random_batch(rnd: random.Random, n: int, names: list[str], cols: list[Any]) -> ColumnBatch:
    """A batch of ``n`` random keys and values (some None; lists or tuples) with these headers."""
    keys = [None if rnd.random() < 0.2 else rnd.randbytes(rnd.randrange(0, 20)) for _ in range(n)]
    values = [
        None if rnd.random() < 0.1 else rnd.randbytes(rnd.randrange(0, 300)) for _ in range(n)
    ]
    return ColumnBatch(
        keys if rnd.random() < 0.7 else tuple(keys),
        values if rnd.random() < 0.7 else tuple(values),
        tuple(names),
        tuple(cols),
        1,
    )


@pytest.mark.parametrize("n", [1, 2, 3, 17, 2000])
def test_the_calls_are_the_references(n: int) -> None:
    rnd = random.Random(n)
    for _ in range(20 if n < 100 else 3):
        batch = _random_batch(rnd, n)
        taken, native = _native(batch)
        assert taken
        want = reference(batch)
        assert native.calls == want.calls
        assert len(native.calls) == n
        # the reports: the first record to on_first, the last to on_last, no other
        reports = [c[4] for c in native.calls]
        assert reports[0] is first and (n == 1 or reports[-1] is last)
        assert all(r is None for r in reports[1:-1])
        assert all(c[3] == 0 and c[5] is None and c[6] == TS for c in native.calls)


def test_headers_hold_each_records_values_in_name_order() -> None:
    batch = ColumnBatch(
        [b"k0", None],
        [b"v0", b"v1"],
        ("ce_type", "ce_id", "hub_mac"),
        (b"trade", [b"id-0", b"id-1"], (b"m0", b"m1")),
    )
    taken, calls = _native(batch, ts=5)
    assert taken
    h0 = [("ce_type", b"trade"), ("ce_id", b"id-0"), ("hub_mac", b"m0")]
    h1 = [("ce_type", b"trade"), ("ce_id", b"id-1"), ("hub_mac", b"m1")]
    assert calls.calls == [
        ("t.w", b"v0", b"k0", 0, first, None, 5, h0),
        ("t.w", b"v1", None, 0, last, None, 5, h1),
    ]


def test_no_header_names_passes_none() -> None:
    taken, calls = _native(ColumnBatch([b"k"], [b"v"]))
    assert taken and calls.calls == [("t.w", b"v", b"k", 0, first, None, TS, None)]


@pytest.mark.parametrize(
    "batch",
    [
        ColumnBatch(iter([b"k"]), [b"v"]),  # type: ignore[arg-type]
        ColumnBatch([b"k"], range(1)),  # type: ignore[arg-type]
        ColumnBatch([b"k"], [b"v"], ("a",), ({b"x"},)),  # type: ignore[arg-type]
        ColumnBatch([b"k"], [b"v"], ["a"], (b"x",)),  # type: ignore[arg-type]
        ColumnBatch([b"k"], [b"v"], (b"a",), (b"x",)),  # type: ignore[arg-type]
        ColumnBatch([b"k"], [b"v"], ("a",), [b"x"]),  # type: ignore[arg-type]
    ],
)
def test_what_it_does_not_take_it_leaves_unproduced(batch: ColumnBatch) -> None:
    taken, calls = _native(batch)
    assert taken is False and calls.calls == []


@pytest.mark.parametrize(
    ("batch", "problem"),
    [
        (ColumnBatch([b"k"], [b"v", b"w"]), "1 keys for 2 values"),
        (ColumnBatch([b"k"], [b"v"], ("a", "b"), (b"x",)), "2 header names for 1 header columns"),
        (ColumnBatch([b"k", None], [b"v", b"w"], ("a",), ([b"x"],)), "holds 1 values, not 2"),
    ],
)
def test_columns_that_do_not_line_up_raise_before_any_produce(
    batch: ColumnBatch, problem: str
) -> None:
    calls = Calls()
    with pytest.raises(ValueError, match=problem):
        native_module().produce_columns(
            calls, "t", batch.keys, batch.values, batch.header_names, batch.header_columns, 1,
            first, last,
        )  # fmt: skip
    assert calls.calls == []


def test_a_full_queue_stops_the_loop_and_propagates() -> None:
    batch = _random_batch(random.Random(3), 50)
    with pytest.raises(BufferError, match="Queue full"):
        _native(batch, fail_at=20)
    calls = Calls(fail_at=20)
    with pytest.raises(BufferError):
        native_module().produce_columns(
            calls, "t.w", batch.keys, batch.values, batch.header_names, batch.header_columns,
            1, first, last,
        )  # fmt: skip
    assert calls.calls == reference(batch, ts=1).calls[:20]


def test_the_adapter_falls_back_to_thereference() -> None:
    # a column the native loop does not take (a range): the reference produces the records
    batch = ColumnBatch([b"a", b"b"], [b"1", b"2"], ("n",), (range(2),))  # type: ignore[arg-type]
    assert _native(batch)[0] is False
    calls = Calls()
    kbatch.produce_columns(calls, "t.w", batch, TS, first, last)
    assert calls.calls == reference(batch).calls
    assert [c[7] for c in calls.calls] == [[("n", 0)], [("n", 1)]]
