"""``records_valid``: the whole-batch check agrees with ``record_problem`` record by record.

It may answer False for a good batch (the caller then checks record by record), never True for
a batch that ``record_problem`` refuses or that uses the reserved header name."""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import pytest

from core.ports.eventlog import Record
from core.ports.eventlog_checks import MAX_TIMESTAMP_MS, record_problem, records_valid

RESERVED = "__hub.idem"


class _Bytes(bytes):
    pass


class _Pair(tuple):  # type: ignore[type-arg]
    pass


def _good(rng: random.Random, partitions: int) -> Record:
    headers: Any = tuple(
        (f"h{j}", rng.randbytes(rng.randrange(4))) for j in range(rng.randrange(4))
    )
    if rng.random() < 0.2:
        headers = [list(p) for p in headers]
    return Record(
        value=rng.choice([None, rng.randbytes(8)]),
        key=rng.choice([None, b"k", b""]),
        headers=headers,
        timestamp_ms=rng.choice([None, 0, 1_700_000_000_000, MAX_TIMESTAMP_MS]),
        partition=rng.choice([None, *range(partitions)]),
    )


_BAD: list[Callable[[Record, int], object]] = [
    lambda r, n: (r.key, r.value),  # not a Record
    lambda r, n: Record(value="text", key=r.key, headers=r.headers),
    lambda r, n: Record(value=r.value, key=bytearray(b"k"), headers=r.headers),
    lambda r, n: Record(value=_Bytes(b"v"), headers=r.headers),
    lambda r, n: Record(value=r.value, timestamp_ms=-1),
    lambda r, n: Record(value=r.value, timestamp_ms=MAX_TIMESTAMP_MS + 1),
    lambda r, n: Record(value=r.value, timestamp_ms=True),
    lambda r, n: Record(value=r.value, timestamp_ms=1.5),
    lambda r, n: Record(value=r.value, partition=n),
    lambda r, n: Record(value=r.value, partition=-1),
    lambda r, n: Record(value=r.value, partition=False),
    lambda r, n: Record(value=r.value, headers={"a": b"b"}),  # type: ignore[arg-type]
    lambda r, n: Record(value=r.value, headers=(("a", "text"),)),  # type: ignore[arg-type]
    lambda r, n: Record(value=r.value, headers=((b"a", b"x"),)),  # type: ignore[arg-type]
    lambda r, n: Record(value=r.value, headers=(("a", b"x", b"y"),)),  # type: ignore[arg-type]
    lambda r, n: Record(value=r.value, headers=(("a",),)),  # type: ignore[arg-type]
    lambda r, n: Record(value=r.value, headers=("ab",)),  # type: ignore[arg-type]
    lambda r, n: Record(value=r.value, headers=(("a", None),)),  # type: ignore[arg-type]
    lambda r, n: Record(value=r.value, headers=((RESERVED, b"x"),)),
    lambda r, n: Record(value=r.value, headers=(_Pair(("a", b"x")),)),  # valid, unrecognised
    lambda r, n: Record(value=r.value, headers=(("a", _Bytes(b"x")),)),
]


def _reference(records: list[Any], partitions: int) -> bool:
    for i, r in enumerate(records):
        if record_problem(r, i, partitions, "t") is not None:
            return False
        if any(k == RESERVED for k, _ in r.headers):
            return False
    return True


@pytest.mark.parametrize("seed", range(6))
def test_good_batches_pass_whole(seed: int) -> None:
    rng = random.Random(seed)
    n = rng.randrange(1, 4)
    records = [_good(rng, n) for _ in range(rng.randrange(0, 300))]
    assert _reference(records, n)
    assert records_valid(records, n, RESERVED)


@pytest.mark.parametrize("bad", range(len(_BAD)))
def test_one_bad_record_is_never_passed(bad: int) -> None:
    rng = random.Random(bad)
    for _ in range(20):
        n = rng.randrange(1, 4)
        records: list[Any] = [_good(rng, n) for _ in range(rng.randrange(1, 50))]
        at = rng.randrange(len(records))
        records[at] = _BAD[bad](records[at], n)
        if not _reference(records, n):
            assert not records_valid(records, n, RESERVED)
        # a False for a valid batch (e.g. a tuple subclass) only costs the record-by-record path


def test_reserved_name_only_when_asked() -> None:
    records = [Record(value=b"v", headers=((RESERVED, b"x"),))]
    assert records_valid(records, 1)
    assert not records_valid(records, 1, RESERVED)
