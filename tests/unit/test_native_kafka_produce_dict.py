"""``hub_native.produce_columns_dict`` (native/src/kafka_produce_dict.rs: the column append's
produce loop with one header dict reused from record to record) makes the ``Producer.produce``
calls of its reference (``batch.produce_columns_py``) with each call's headers, as the call saw
them, the reference's pairs in the reference's order; what a ``produce`` keeps never changes
after its call; it takes no batch a dict cannot carry (a repeated header name, no headers) and
produces nothing then. (What the calls store on a real broker, MACs included:
``tests/contract/test_kafka_append_columns.py``.)"""

from __future__ import annotations

import random
from typing import Any

import pytest

from adapters.kafka_log import batch as kbatch
from core.ports.eventlog import ColumnBatch
from tests.unit.native_module import native_module
from tests.unit.test_native_kafka_produce import (
    TS,
    Calls,
    first,
    last,
    random_batch,
    random_column,
    reference,
)


class Seen(Calls):
    """Records each call with its headers as ``(name, value)`` pairs at call time, and keeps
    the header object itself (so the loop must not reuse it) unless ``keep`` is False."""

    def __init__(self, fail_at: int | None = None, keep: bool = True) -> None:
        super().__init__(fail_at)
        self.keep = keep
        self.objects: list[Any] = []
        self.ids: list[int] = []

    def __call__(self, *args: Any, **kwargs: Any) -> None:
        headers = args[7]
        self.ids.append(id(headers))
        if self.keep:
            self.objects.append(headers)
        pairs = list(headers.items()) if isinstance(headers, dict) else headers
        super().__call__(*args[:7], pairs, **kwargs)


def _dict(batch: ColumnBatch, ts: int = TS, **kw: Any) -> tuple[bool, Seen]:
    calls = Seen(**kw)
    taken = native_module().produce_columns_dict(
        calls, "t.w", batch.keys, batch.values, batch.header_names, batch.header_columns, ts,
        first, last,
    )  # fmt: skip
    return taken, calls


def _random_batch(rnd: random.Random, n: int) -> ColumnBatch:
    pool = ["ce_id", "ce_type", "caf\u00e9\U0001f600", "x", "", "__hub.tmac", "__hub.mac"]
    names = rnd.sample(pool + [f"h{j}" for j in range(12)], rnd.randrange(1, 15))  # distinct
    return random_batch(rnd, n, names, [random_column(rnd, n) for _ in names])


@pytest.mark.parametrize("n", [1, 2, 3, 17, 2000])
def test_the_calls_carry_the_references_headers_in_order(n: int) -> None:
    rnd = random.Random(n)
    for _ in range(20 if n < 100 else 3):
        batch = _random_batch(rnd, n)
        for keep in (True, False):
            taken, seen = _dict(batch, keep=keep)
            assert taken
            assert seen.calls == reference(batch).calls
        reports = [c[4] for c in seen.calls]
        assert reports[0] is first and (n == 1 or reports[-1] is last)
        assert all(r is None for r in reports[1:-1])


def test_what_produce_keeps_is_never_changed_after_its_call() -> None:
    batch = _random_batch(random.Random(9), 40)
    taken, seen = _dict(batch, keep=True)
    assert taken
    # each kept dict still holds the headers of the record it was produced with
    assert [list(h.items()) for h in seen.objects] == [c[7] for c in reference(batch).calls]
    assert len(set(map(id, seen.objects))) == 40


def test_one_dict_serves_every_record_when_produce_keeps_none() -> None:
    # the point of the loop: confluent-kafka copies the headers out during the call, so the
    # same dict carries every record's headers (no list or tuples per record)
    batch = _random_batch(random.Random(4), 300)
    taken, seen = _dict(batch, keep=False)
    assert taken and len(set(seen.ids)) == 1


@pytest.mark.parametrize(
    "batch",
    [
        ColumnBatch([b"k"], [b"v"]),  # no headers: the list loop passes None
        ColumnBatch([b"k"], [b"v"], ("x", "y", "x"), (b"1", b"2", b"3")),  # a repeated name
        ColumnBatch([b"k"], [b"v"], ("x", "x"), ([b"1"], b"2")),
        ColumnBatch(iter([b"k"]), [b"v"], ("a",), (b"x",)),  # type: ignore[arg-type]
        ColumnBatch([b"k"], [b"v"], ("a",), ({b"x"},)),  # type: ignore[arg-type]
        ColumnBatch([b"k"], [b"v"], (b"a",), (b"x",)),  # type: ignore[arg-type]
        ColumnBatch([b"k"], [b"v"], ("a",), [b"x"]),  # type: ignore[arg-type]
    ],
)
def test_what_it_does_not_take_it_leaves_unproduced(batch: ColumnBatch) -> None:
    taken, seen = _dict(batch)
    assert taken is False and seen.calls == []


@pytest.mark.parametrize(
    ("batch", "problem"),
    [
        (ColumnBatch([b"k"], [b"v", b"w"], ("a",), (b"x",)), "1 keys for 2 values"),
        (ColumnBatch([b"k"], [b"v"], ("a", "b"), (b"x",)), "2 header names for 1 header columns"),
        (ColumnBatch([b"k", None], [b"v", b"w"], ("a",), ([b"x"],)), "holds 1 values, not 2"),
    ],
)
def test_columns_that_do_not_line_up_raise_before_any_produce(
    batch: ColumnBatch, problem: str
) -> None:
    with pytest.raises(ValueError, match=problem):
        _dict(batch)


def test_a_full_queue_stops_the_loop_at_the_same_record() -> None:
    batch = _random_batch(random.Random(3), 50)
    seen = Seen(fail_at=20)
    with pytest.raises(BufferError, match="Queue full"):
        native_module().produce_columns_dict(
            seen, "t.w", batch.keys, batch.values, batch.header_names, batch.header_columns,
            1, first, last,
        )  # fmt: skip
    assert seen.calls == reference(batch, ts=1).calls[:20]


def test_the_adapter_takes_the_dict_loop_for_distinct_names_and_the_list_loop_else() -> None:
    native_module()
    distinct = ColumnBatch([b"a", b"b"], [b"1", b"2"], ("n", "m"), ([b"x", b"y"], b"s"))
    seen = Seen(keep=False)
    kbatch.produce_columns(seen, "t.w", distinct, TS, first, last)
    assert seen.calls == reference(distinct).calls
    assert len(set(seen.ids)) == 1  # one dict
    repeated = ColumnBatch([b"a", b"b"], [b"1", b"2"], ("n", "n"), ([b"x", b"y"], b"s"))
    calls = Calls()
    kbatch.produce_columns(calls, "t.w", repeated, TS, first, last)
    assert calls.calls == reference(repeated).calls
    assert [c[7] for c in calls.calls] == [[("n", b"x"), ("n", b"s")], [("n", b"y"), ("n", b"s")]]
