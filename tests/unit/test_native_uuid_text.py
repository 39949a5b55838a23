"""The native UUIDv7 text writer (native/src/uuid_text.rs) against the numpy reference
``ids._uuid7_text_py``, and ``uuid7_bytes``'s ids against the standard library's parser."""

from __future__ import annotations

import os
import random
import uuid

import pytest

from domain.envelope import uuid7
from ingest import ids
from ingest.ids import native_uuid7_text, uuid7_bytes


@pytest.mark.skipif(native_uuid7_text is None, reason="hub_native not built")
def test_same_ids_as_the_reference_from_the_same_inputs() -> None:
    assert native_uuid7_text is not None
    rng = random.Random(16)
    firsts = [0, 1, 4095, 4096, (1 << 48) * 4096 - 3, 1_795_600_000_000 * 4096 + 4090]
    for first in firsts + [rng.randrange(1 << 59) for _ in range(50)]:
        for n in (1, 2, 7, 1000):
            rand = os.urandom(8 * n) if n < 1000 else bytes([0xFF, 0]) * (4 * n)
            assert native_uuid7_text(first, rand) == ids._uuid7_text_py(first, rand), first


@pytest.mark.skipif(native_uuid7_text is None, reason="hub_native not built")
def test_bad_input_is_refused() -> None:
    assert native_uuid7_text is not None
    assert native_uuid7_text(5, b"") == []
    with pytest.raises(ValueError, match="8 bytes per id"):
        native_uuid7_text(5, b"1234567")
    with pytest.raises(ValueError, match="past 64 bits"):
        native_uuid7_text((1 << 64) - 1, bytes(16))
    with pytest.raises(OverflowError):
        native_uuid7_text(-1, bytes(8))


def test_ids_are_version_7_increasing_and_after_earlier_ones() -> None:
    before = uuid7()
    got = uuid7_bytes(5000)
    parsed = [uuid.UUID(i.decode()) for i in got]
    assert all(len(i) == 36 and i.decode() == str(u) for i, u in zip(got, parsed, strict=True))
    assert {u.version for u in parsed} == {7} and {u.variant for u in parsed} == {uuid.RFC_4122}
    assert [u.bytes for u in parsed] == sorted(u.bytes for u in parsed)
    assert len(set(got)) == 5000
    assert str(before).encode() < got[0]
    assert uuid7_bytes(0) == []
