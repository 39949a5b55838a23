"""``hub_native.prefixed_bytes`` (the natural-key header's values of a batch,
``columnar._prefixed``) against its reference, Arrow's join of the prefix and the column cast
to binary, as Python objects: random string columns with nulls, empty and multi-byte values,
slices at any offset (a bitmap not starting on a byte), every prefix; and a column whose
offsets leave its data is refused, not read."""

from __future__ import annotations

import random

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from ingest import columnar

hub_native = pytest.importorskip("hub_native")

PIECES = ["", "a", "E2E-100000001", "é", "日本語", "x" * 40, "\x00", "\x1f", "🙂z"]


def _column(rng: random.Random) -> pa.Array:
    n = rng.choice([0, 1, 2, 7, 8, 9, 63, 64, 65, 300])
    nulls = rng.random() < 0.5
    values = [
        None if nulls and rng.random() < 0.2 else "".join(rng.choices(PIECES, k=rng.randint(0, 3)))
        for _ in range(n)
    ]
    arr = pa.array(values, pa.string())
    if n and rng.random() < 0.5:  # a slice: offsets and bitmap read from a row inside
        lo = rng.randrange(n)
        arr = arr.slice(lo, rng.randint(0, n - lo))
    return arr


def _reference(prefix: str, arr: pa.Array) -> list[bytes | None]:
    joined = pc.binary_join_element_wise(pa.scalar(prefix), arr, "").cast(pa.binary())
    return list(joined.to_pylist())


@pytest.mark.parametrize("seed", range(8))
def test_prefixed_equals_the_arrow_join(seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    rng = random.Random(seed)
    for _ in range(200):
        arr = _column(rng)
        prefix = rng.choice(["", "r1\x1f", "unique-trade-id\x1f", "é\x1f"])
        got = columnar._prefixed(prefix, arr)
        assert got == _reference(prefix, arr), (prefix, arr)
        assert all(type(v) is bytes for v in got if v is not None)
        with monkeypatch.context() as m:
            m.setattr(columnar, "_native_prefixed_bytes", None)
            assert columnar._prefixed(prefix, arr) == got


def test_offsets_outside_the_data_are_refused() -> None:
    arr = pa.array(["abc", "de"], pa.string())
    valid, offsets, data = arr.buffers()
    short = pa.py_buffer(data.to_pybytes()[:3])  # the second value ends past the data
    with pytest.raises(ValueError, match="outside the data"):
        hub_native.prefixed_bytes(offsets, short, valid, 0, 2, b"p")
    with pytest.raises(ValueError, match="do not cover the rows"):
        hub_native.prefixed_bytes(offsets, data, valid, 1, 2, b"p")  # rows 1..3 of 2
    assert hub_native.prefixed_bytes(offsets, data, valid, 1, 1, b"p") == [b"pde"]
