"""``adapters.kafka_log.batch.columns_valid``: the Kafka log's once-per-column check of a
``ColumnBatch`` never passes a batch whose records ``append`` would refuse (``check_record``:
``record_problem``, the reserved idempotence header, a repeated envelope header); and
``header_lists`` gives every record's headers as ``ColumnBatch.records()`` holds them."""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import pytest

from adapters.kafka_log.batch import IDEM_HEADER, check_record, columns_valid, header_lists
from core.errors import InvalidInput
from core.ports.eventlog import ColumnBatch, check_envelope_headers
from core.ports.eventlog_checks import MAX_TIMESTAMP_MS


class _Bytes(bytes):
    pass


def _good(rng: random.Random) -> ColumnBatch:
    n = rng.randrange(1, 30)
    names = tuple(
        rng.choice(["ce_id", "ce_type", "x", "x", "hub_tenant", "ü"])
        for _ in range(rng.randrange(6))
    )
    names = tuple(dict.fromkeys(x for x in names if x.startswith(("ce_", "hub_")))) + tuple(
        x for x in names if not x.startswith(("ce_", "hub_"))
    )  # envelope names once, a caller's own may repeat
    columns: tuple[bytes | list[bytes], ...] = tuple(
        rng.randbytes(3) if rng.random() < 0.5 else [rng.randbytes(2) for _ in range(n)]
        for _ in names
    )
    return ColumnBatch(
        [rng.choice([None, b"", b"k%d" % i]) for i in range(n)],
        [rng.choice([None, rng.randbytes(5)]) for _ in range(n)],
        names,
        columns,
        rng.choice([None, 1, 1_700_000_000_000, MAX_TIMESTAMP_MS]),
    )


def _with(batch: ColumnBatch, **changes: Any) -> ColumnBatch:
    fields: dict[str, Any] = {
        "keys": batch.keys,
        "values": batch.values,
        "header_names": batch.header_names,
        "header_columns": batch.header_columns,
        "timestamp_ms": batch.timestamp_ms,
    }
    fields.update(changes)
    return ColumnBatch(**fields)


def _set(column: Any, value: object, rng: random.Random) -> list[Any]:
    out = list(column)
    out[rng.randrange(len(out))] = value
    return out


_BAD: list[Callable[[ColumnBatch, random.Random], ColumnBatch]] = [
    lambda b, r: _with(b, values=_set(b.values, "text", r)),
    lambda b, r: _with(b, values=_set(b.values, _Bytes(b"v"), r)),
    lambda b, r: _with(b, keys=_set(b.keys, bytearray(b"k"), r)),
    lambda b, r: _with(b, keys=_set(b.keys, "k", r)),
    lambda b, r: _with(b, timestamp_ms=-1),
    lambda b, r: _with(b, timestamp_ms=MAX_TIMESTAMP_MS + 1),
    lambda b, r: _with(b, timestamp_ms=True),
    lambda b, r: _with(b, timestamp_ms=1.5),
    lambda b, r: _with(
        b, header_names=(*b.header_names, IDEM_HEADER), header_columns=(*b.header_columns, b"1")
    ),
    lambda b, r: _with(
        b,
        header_names=(*b.header_names, "ce_id", "ce_id"),
        header_columns=(*b.header_columns, b"1", b"2"),
    ),
    lambda b, r: _with(
        b, header_names=(*b.header_names, b"raw"), header_columns=(*b.header_columns, b"1")
    ),
    lambda b, r: _with(
        b, header_names=(*b.header_names, "h"), header_columns=(*b.header_columns, "text")
    ),
    lambda b, r: _with(
        b, header_names=(*b.header_names, "h"), header_columns=(*b.header_columns, _Bytes(b"s"))
    ),
    lambda b, r: _with(
        b,
        header_names=(*b.header_names, "h"),
        header_columns=(*b.header_columns, _set([b"a"] * len(b), "t", r)),
    ),
    lambda b, r: _with(
        b,
        header_names=(*b.header_names, "h"),
        header_columns=(*b.header_columns, _set([b"a"] * len(b), None, r)),
    ),
]


def _refused(batch: ColumnBatch) -> bool:
    records = batch.records()
    try:
        for i, r in enumerate(records):
            check_record(r, i, 1, "t")
        check_envelope_headers([r.headers for r in records], "t")
    except InvalidInput:
        return True
    return False


@pytest.mark.parametrize("seed", range(40))
def test_good_batches_pass_and_headers_are_the_records(seed: int) -> None:
    rng = random.Random(seed)
    batch = _good(rng)
    batch.check("t")
    assert not _refused(batch)
    assert columns_valid(batch, IDEM_HEADER)
    lists = list(header_lists(batch))
    assert [tuple(h) if h is not None else () for h in lists] == [
        r.headers for r in batch.records()
    ]
    assert all(h is None or type(h) is list for h in lists)  # what produce() takes


@pytest.mark.parametrize("seed", range(60))
def test_a_batch_append_refuses_never_passes(seed: int) -> None:
    rng = random.Random(seed)
    batch = _BAD[seed % len(_BAD)](_good(rng), rng)
    assert _refused(batch)
    assert not columns_valid(batch, IDEM_HEADER)


def test_unusual_but_good_batches_go_as_records() -> None:
    """A timestamp of 0 (librdkafka's "now") and header columns of another sequence type are
    left to ``append`` of the records, which stores them as it always did."""
    base = ColumnBatch([b"k"], [b"v"], ("h",), ([b"a"],))
    assert columns_valid(base, IDEM_HEADER)
    assert not columns_valid(_with(base, timestamp_ms=0), IDEM_HEADER)
    assert not columns_valid(_with(base, header_columns=(range(1),)), IDEM_HEADER)
