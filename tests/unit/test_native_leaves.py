"""The native leaf encoder (``native/src/leaves.rs``) gives exactly the leaf inputs and hashes of
the reference (``audit.leaf.encode``), and hands every record it cannot take back to the Python
path, whose errors are the reference's."""

from __future__ import annotations

import hashlib
import random
from typing import Any

import pytest

from audit import leaf as leaf_format
from core.ports.eventlog import StoredRecord
from ledger.leaves import LeafEncoder
from tests.native import native_module


@pytest.fixture(scope="module")
def native() -> Any:
    return native_module("record_leaf_hashes")


def _text(rnd: random.Random, n: int) -> str:
    return "".join(rnd.choice("abcXYZ_.-é漢😀") for _ in range(n))


def random_records(rnd: random.Random, n: int) -> list[StoredRecord]:
    out = []
    for i in range(n):
        headers = tuple(
            (_text(rnd, rnd.randint(0, 12)), rnd.randbytes(rnd.choice((0, 1, 16, 40, 300))))
            for _ in range(rnd.choice((0, 1, 3, 10)))
        )
        out.append(
            StoredRecord(
                topic=rnd.choice(("trades", "hub.audit", _text(rnd, rnd.randint(0, 30)))),
                partition=rnd.choice((0, 1, 7, 2**32 - 1)),
                offset=rnd.choice((i, 2**63 - 1, 2**64 - 1)),
                timestamp_ms=rnd.choice((0, 1_764_000_000_000, -1, -(2**63), 2**63 - 1)),
                key=rnd.choice((None, b"", rnd.randbytes(rnd.randint(1, 64)))),
                value=rnd.choice((None, b"", rnd.randbytes(rnd.randint(1, 2000)))),
                headers=headers,
            )
        )
    return out


def reference(r: StoredRecord) -> bytes:
    return leaf_format.encode(
        r.topic, r.partition, r.offset, r.timestamp_ms, r.key, r.headers, r.value
    )


def test_leaf_inputs_and_hashes_are_byte_identical_on_random_records(native: Any) -> None:
    rnd = random.Random(29)
    for n in (0, 1, 2, 50, 700):
        records = random_records(rnd, n)
        want = [reference(r) for r in records]
        assert native.record_leaf_inputs(records) == want
        packed = native.record_leaf_hashes(records)
        assert packed == b"".join(hashlib.sha256(b"\x00" + d).digest() for d in want)
        got, _ = LeafEncoder().encode(records)
        assert b"".join(got) == packed


@pytest.mark.parametrize(
    ("field", "bad"),
    [
        ("partition", -1),
        ("partition", 2**32),
        ("offset", -1),
        ("timestamp_ms", 2**63),
        ("timestamp_ms", 1.5),
        ("key", "text"),
        ("value", bytearray(b"v")),
        ("headers", (("name", "text"),)),
        ("headers", (("name", b"v", b"extra"),)),
        ("headers", (("\ud800", b"v"),)),
        ("headers", (("n" * 70_000, b"v"),)),
        ("topic", "t" * 70_000),
    ],
)
def test_a_record_it_cannot_take_goes_to_the_reference(native: Any, field: str, bad: Any) -> None:
    good = random_records(random.Random(3), 5)
    fields = {k: getattr(good[2], k) for k in StoredRecord.__dataclass_fields__}
    fields[field] = bad
    records = [*good[:2], StoredRecord(**fields), *good[3:]]
    assert native.record_leaf_hashes(records) is None
    assert native.record_leaf_inputs(records) is None
    try:
        want = b"".join(hashlib.sha256(b"\x00" + reference(r)).digest() for r in records)
    except Exception as exc:  # the reference's error, raised by the ledger's path too
        with pytest.raises(type(exc)):
            LeafEncoder().encode(records)
    else:  # the reference takes it (a bytearray value): the ledger's path gives its bytes
        assert b"".join(LeafEncoder().encode(records)[0]) == want
