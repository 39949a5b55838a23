"""The native metadata builder (hub_native.batch_metadata, native/src/metadata.rs) gives the
same RecordMetadata list as the pure-Python reference (``batch._metadata_py``) on random batches,
its instances are real frozen RecordMetadata, and unusual input is left to the reference."""

from __future__ import annotations

import dataclasses
import os
import random

import pytest

from adapters.kafka_log import batch
from core.ports.eventlog import RecordMetadata

native = (
    pytest.importorskip(
        "hub_native",
        reason="LOUD: hub_native is not built (make setup runs native/build.sh; needs cargo)",
    )
    if os.environ.get("CI") != "true"
    else __import__("hub_native")
)


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
