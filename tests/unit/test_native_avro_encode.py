"""The native row encoder (``hub_native.avro_encode_rows``) writes exactly the numpy reference's
bytes (``VectorEncoder.encode_py``) on random schemas and batches, and refuses buffers shorter
than the rows they claim. fastavro agreement of the encoder is ``test_avro_vector.py``'s."""

from __future__ import annotations

import random
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pytest

from core.avro import vector
from core.avro.vector import plan

hub_native = pytest.importorskip("hub_native")

TEXT = ["", "a", "é", "中文", "\U0001f600x", "XOFF", "ü" * 70, "z" * 200]
SYMBOLS = ["USD", "EUR", "GBP"]


def _column(rnd: random.Random, i: int) -> tuple[Any, pa.DataType, Any]:
    """(Avro field, Arrow type, a value maker) of a random vectorised kind."""
    kinds: list[tuple[Any, pa.DataType, Any]] = [
        ("string", pa.string(), lambda: rnd.choice(TEXT)),
        ("string", pa.large_string(), lambda: rnd.choice(TEXT)),
        ("bytes", pa.binary(), lambda: rnd.randbytes(rnd.randrange(0, 140))),
        ("bytes", pa.large_binary(), lambda: rnd.randbytes(rnd.randrange(0, 5))),
        ("long", pa.int64(), lambda: rnd.choice([0, -1, 63, -64, 64, 2**63 - 1, -(2**63)])),
        ("long", pa.int64(), lambda: rnd.randrange(-(2**63), 2**63)),
        ("long", pa.uint32(), lambda: rnd.randrange(0, 2**32)),
        ("long", pa.int8(), lambda: rnd.randrange(-128, 128)),
        ("int", pa.int16(), lambda: rnd.randrange(-(2**15), 2**15)),
        ("int", pa.uint16(), lambda: rnd.randrange(0, 2**16)),
        ("int", pa.uint8(), lambda: rnd.randrange(0, 256)),
        ("int", pa.int32(), lambda: rnd.randrange(-(2**31), 2**31)),
        ("boolean", pa.bool_(), lambda: rnd.random() < 0.5),
        ("double", pa.float64(), lambda: rnd.choice([0.0, -0.0, 1e300, rnd.random()])),
        ("double", pa.float32(), lambda: rnd.random() * 1e6),
        ("float", pa.float32(), lambda: rnd.random() - 0.5),
        (
            {"type": "enum", "name": f"E{i}", "symbols": SYMBOLS},
            pa.string(),
            lambda: rnd.choice(SYMBOLS),
        ),
        (
            {"type": "long", "logicalType": "timestamp-micros"},
            pa.timestamp(rnd.choice(["s", "ms", "us"]), tz=rnd.choice([None, "UTC"])),
            lambda: rnd.randrange(-(10**9), 10**9),
        ),
        (
            {"type": "int", "logicalType": "date"},
            pa.date32(),
            lambda: rnd.randrange(-700_000, 2_900_000),
        ),
    ]
    scale = rnd.randrange(0, 6)
    up = rnd.randrange(0, 3)  # Avro scale above Arrow's: values scaled up on the way
    digits = rnd.choice([3, 9, 12])
    kinds.append(
        (
            {"type": "bytes", "logicalType": "decimal", "precision": 18, "scale": scale + up},
            pa.decimal128(digits + scale, scale),
            lambda: Decimal(rnd.randrange(-(10**digits) + 1, 10**digits)).scaleb(-scale),
        )
    )
    avro, arrow, make = rnd.choice(kinds)
    return avro, arrow, make


def _batch(rnd: random.Random, n: int) -> tuple[dict[str, Any], pa.RecordBatch]:
    fields: list[dict[str, Any]] = []
    arrow: list[tuple[str, pa.DataType]] = []
    cols: list[list[Any]] = []
    for i in range(rnd.randrange(1, 9)):
        name = f"f{i}"
        if rnd.random() < 0.1:  # absent from the batch: its default, encoded once
            fields.append({"name": name, "type": "string", "default": rnd.choice(TEXT)})
            continue
        avro, arrow_type, make = _column(rnd, i)
        nullable = rnd.random() < 0.5
        null_share = rnd.choice([0.0, 0.3, 1.0]) if nullable else 0.0
        t: Any = avro
        if nullable:
            t = ["null", avro] if rnd.random() < 0.5 else [avro, "null"]
        fields.append({"name": name, "type": t})
        arrow.append((name, arrow_type))
        cols.append([None if rnd.random() < null_share else make() for _ in range(n)])
    schema = {"type": "record", "name": "R", "fields": fields}
    rnd.shuffle(arrow_order := list(range(len(arrow))))  # Arrow column order need not match
    rb = pa.RecordBatch.from_arrays(
        [pa.array(cols[k], arrow[k][1]) for k in arrow_order],
        schema=pa.schema([arrow[k] for k in arrow_order]),
    )
    return schema, rb


def _parsed(schema: dict[str, Any]) -> dict[str, Any]:
    import fastavro

    parsed: dict[str, Any] = fastavro.parse_schema(schema)  # type: ignore[assignment]
    return parsed


@pytest.mark.parametrize("seed", range(300))
def test_native_equals_reference(seed: int) -> None:
    rnd = random.Random(seed)
    n = rnd.choice([0, 1, 2, 7, 64, 300])
    schema, rb = _batch(rnd, n)
    enc = plan(_parsed(schema), rb.schema)
    assert enc is not None, schema
    good = rb.filter(pa.array(~enc.bad_rows(rb))) if n else rb
    header = rnd.choice([b"", b"\x00\x00\x00\x00\x07"])
    want = enc.encode_py(good, header)
    got = enc.encode(good, header)
    assert got == want
    assert all(type(v) is bytes for v in got)
    if good.num_rows > 2:  # non-zero Arrow offsets: every buffer read from the slice's start
        sliced = good.slice(1, good.num_rows - 2)
        assert enc.encode(sliced, header) == enc.encode_py(sliced, header) == want[1:-1]


def test_rows_bad_rows_flags_encode_alike() -> None:
    """Rows outside the contract (a null in a non-null field, a string that is no enum
    symbol) still get the reference's bytes, whatever those are."""
    schema = {
        "type": "record",
        "name": "R",
        "fields": [
            {"name": "s", "type": "string"},
            {"name": "e", "type": {"type": "enum", "name": "E", "symbols": SYMBOLS}},
            {"name": "l", "type": "long"},
        ],
    }
    rb = pa.RecordBatch.from_pydict(
        {"s": ["x", None, "é"], "e": ["USD", "nope", None], "l": [1, None, 3]}
    )
    enc = plan(_parsed(schema), rb.schema)
    assert enc is not None and enc.bad_rows(rb).tolist() == [False, True, True]
    assert enc.encode(rb) == enc.encode_py(rb)


def test_unusual_decimal_shift_left_to_the_reference(monkeypatch: pytest.MonkeyPatch) -> None:
    """A decimal shift outside 0..=18 answers None natively; the reference decides."""
    schema = {
        "type": "record",
        "name": "R",
        "fields": [
            {"name": "q", "type": {"type": "bytes", "logicalType": "decimal", "precision": 18}}
        ],
    }
    rb = pa.RecordBatch.from_pydict({"q": pa.array([Decimal("1.5")], pa.decimal128(5, 1))})
    enc = plan(_parsed(schema), rb.schema)
    assert enc is not None
    fields = [enc._native_field(f, rb) for f in enc.fields]
    assert fields[0][2] == -1
    assert hub_native.avro_encode_rows(1, b"", fields) is None
    assert enc.encode(rb) == enc.encode_py(rb)


def test_short_buffers_refused() -> None:
    """Buffers that do not cover the rows claimed are an error, not a read past their end."""
    ints = pa.py_buffer(b"\x01" * 16)  # two int64 values
    with pytest.raises(ValueError, match="values buffer shorter"):
        hub_native.avro_encode_rows(3, b"", [(2, -1, 4, None, 0, ints, None, 0, b"")])
    with pytest.raises(ValueError, match="values buffer shorter"):
        hub_native.avro_encode_rows(2, b"", [(2, -1, 4, None, 0, ints, None, 1, b"")])
    with pytest.raises(ValueError, match="validity buffer shorter"):
        hub_native.avro_encode_rows(
            9, b"", [(2, 0, 1, pa.py_buffer(b"\xff"), 0, ints, None, 0, b"")]
        )
    offsets = pa.py_buffer((0).to_bytes(4, "little") + (9).to_bytes(4, "little"))
    with pytest.raises(ValueError, match="data buffer shorter"):
        hub_native.avro_encode_rows(
            1, b"", [(1, -1, 0, None, 0, offsets, pa.py_buffer(b"abc"), 0, b"")]
        )
    down = pa.py_buffer(b"".join(v.to_bytes(4, "little") for v in (0, 3, 1)))
    with pytest.raises(ValueError, match="decreasing offsets"):
        hub_native.avro_encode_rows(
            2, b"", [(1, -1, 0, None, 0, down, pa.py_buffer(b"abc"), 0, b"")]
        )
    # the same calls with rows the buffers cover
    got = hub_native.avro_encode_rows(2, b"h", [(2, -1, 4, None, 0, ints, None, 0, b"")])
    assert got == [b"h" + _varint_long(0x0101010101010101)] * 2


def _varint_long(v: int) -> bytes:
    z = (v << 1) ^ (v >> 63)
    out = bytearray()
    while z >= 0x80:
        out.append((z & 0x7F) | 0x80)
        z >>= 7
    out.append(z)
    return bytes(out)


def test_without_native_the_reference_encodes(monkeypatch: pytest.MonkeyPatch) -> None:
    rnd = random.Random(7)
    schema, rb = _batch(rnd, 50)
    enc = plan(_parsed(schema), rb.schema)
    assert enc is not None
    good = rb.filter(pa.array(~enc.bad_rows(rb)))
    want = enc.encode(good)
    monkeypatch.setattr(vector, "_native_encode", None)
    assert enc.encode(good) == want
