"""The native metadata builder (hub_native.batch_metadata, native/src/metadata.rs) gives the
same RecordMetadata list as the pure-Python reference (``batch._metadata_py``) on random batches,
its instances are real frozen RecordMetadata, and unusual input is left to the reference."""

from __future__ import annotations

import dataclasses
import random

import pytest

from adapters.kafka_log import batch
from core.ports.eventlog import RecordMetadata
from tests.unit.native_module import native_module

native = native_module()


@pytest.mark.parametrize("seed", range(8))
def test_same_list_as_the_reference(seed: int) -> None:
    rng = random.Random(seed)
    n = rng.randrange(0, 3000)
    first = rng.choice((0, rng.randrange(1 << 40)))
    stamps: int | list[int] = (
        rng.randrange(1 << 45) if seed % 2 else [rng.randrange(1 << 45) for _ in range(n)]
    )
    topic, partition = f"t.{seed}", rng.randrange(64)
    fast = native.batch_metadata(RecordMetadata, topic, partition, first, n, stamps)
    assert fast == batch._metadata_py(topic, partition, first, n, stamps)
    assert all(type(m) is RecordMetadata for m in fast)
    if fast:
        with pytest.raises(dataclasses.FrozenInstanceError):
            fast[0].offset = 1  # type: ignore[misc]
        assert hash(fast[-1]) == hash(
            RecordMetadata(topic, partition, first + n - 1, fast[-1].timestamp_ms)
        )


def test_unusual_input_is_left_to_the_reference() -> None:
    make = native.batch_metadata
    assert make(RecordMetadata, "t", 0, 5, 2, [1, 2]) is not None
    assert make(RecordMetadata, "t", 0, 5, 3, [1, 2]) is None  # one stamp short
    assert make(RecordMetadata, "t", 0, 5, 2, [1, 2.0]) is None
    assert make(RecordMetadata, "t", 0, 5, 2, [1, True]) is None
    assert make(RecordMetadata, "t", 0, 5, 2, 1.5) is None


@pytest.mark.parametrize("seed", range(6))
def test_records_from_columns_equal_the_reference(seed: int) -> None:
    from core.ports import eventlog_rows
    from core.ports.eventlog import Record

    rng = random.Random(seed)
    n = rng.randrange(1, 2500)
    values = [rng.randbytes(rng.randrange(0, 60)) for _ in range(n)]
    keys = [rng.choice((None, rng.randbytes(rng.randrange(0, 9)))) for _ in range(n)]
    heads = [
        tuple((f"h{j}", rng.randbytes(rng.randrange(0, 6))) for j in range(rng.randrange(0, 12)))
        for _ in range(n)
    ]
    fast = native.frozen_rows(Record, eventlog_rows._FIELDS, (values, keys, heads, None, None))
    assert (
        fast
        == eventlog_rows.records_py(values, keys, heads)
        == eventlog_rows.records(values, keys, heads)
    )
    assert all(type(r) is Record for r in fast)
    with pytest.raises(dataclasses.FrozenInstanceError):
        fast[0].value = b"x"  # type: ignore[misc]
    assert {fast[0]: 1}[Record(values[0], keys[0], heads[0])] == 1  # hashes alike


def test_frozen_rows_leaves_unusual_input_to_the_reference() -> None:
    from core.ports.eventlog import Record

    rows = native.frozen_rows
    names = ("value", "key", "headers", "timestamp_ms", "partition")
    assert rows(Record, names, ([b"a"], [None], [()], None, None)) is not None
    assert rows(Record, names, ([b"a"], [None, None], [()], None, None)) is None  # lengths
    assert rows(Record, names, (b"a", None, (), None, None)) is None  # no list column
    assert rows(Record, names[:4], ([b"a"], [None], [()], None, None)) is None
    assert rows(Record, (*names[:4], 5), ([b"a"], [None], [()], None, None)) is None

    class Custom:
        def __new__(cls) -> Custom:  # not object.__new__: never bypassed
            return super().__new__(cls)

    assert rows(Custom, ("a",), ([1],)) is None
