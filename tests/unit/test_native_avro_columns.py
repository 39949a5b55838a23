"""The native column-wise Avro decoder and envelope (hub_native.avro_columns / envelope_columns,
native/src/avro_columns.rs) against the numpy reference (``projections.columnar``): equal Arrow
columns on random records of every kind the decoder takes, and the same ``Unsupported`` message
on malformed values (truncated, bad union branch, over-long varint, random bytes), which also
shows the native decoder never reads outside its buffer (a crash or garbage would differ)."""

from __future__ import annotations

import io
import random
import struct
from decimal import Decimal
from typing import Any

import fastavro
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.ports.eventlog import StoredRecord
from projections import columnar
from projections.columnar import Unsupported
from tests.unit.native_module import native_module

native = native_module()
if not hasattr(native, "avro_columns"):
    pytest.fail("hub_native predates native/src/avro_columns.rs: rerun `make setup`.")

SCHEMA: dict[str, Any] = {
    "type": "record",
    "name": "R",
    "namespace": "t",
    "fields": [
        {"name": "l", "type": "long"},
        {"name": "i", "type": "int"},
        {"name": "s", "type": "string"},
        {"name": "b", "type": "bytes"},
        {"name": "f", "type": "boolean"},
        {"name": "d", "type": "double"},
        {"name": "g", "type": "float"},
        {"name": "e", "type": {"type": "enum", "name": "E", "symbols": ["A", "B", "C"]}},
        {
            "name": "m",
            "type": {"type": "bytes", "logicalType": "decimal", "precision": 18, "scale": 4},
        },
        {"name": "ts", "type": {"type": "long", "logicalType": "timestamp-micros"}},
        {"name": "n", "type": "null"},
        {"name": "os", "type": ["null", "string"]},
        {"name": "ol", "type": ["long", "null"]},
        {"name": "ob", "type": ["null", "boolean"]},
        {"name": "od", "type": ["null", "double"]},
        {"name": "oe", "type": ["null", "E"]},
        {
            "name": "om",
            "type": [
                "null",
                {"type": "bytes", "logicalType": "decimal", "precision": 18, "scale": 2},
            ],
        },
        {"name": "ot", "type": ["null", {"type": "long", "logicalType": "timestamp-micros"}]},
        {"name": "oy", "type": ["bytes", "null"]},
    ],
}
PARSED = fastavro.parse_schema(SCHEMA)
SID = 7

I64 = st.integers(-(2**63), 2**63 - 1)
I32 = st.integers(-(2**31), 2**31 - 1)
TS = st.integers(-62_135_596_800_000_000 + 86_400_000_000, 253_402_300_799_999_999 - 86_400_000_000)
DEC4 = st.integers(-(10**14), 10**14).map(lambda v: Decimal(v).scaleb(-4))
DEC2 = st.integers(-(10**16), 10**16).map(lambda v: Decimal(v).scaleb(-2))
F32 = st.floats(width=32, allow_nan=False)
F64 = st.floats(allow_nan=False)
RECORD = st.fixed_dictionaries(
    {
        "l": I64,
        "i": I32,
        "s": st.text(max_size=12),
        "b": st.binary(max_size=12),
        "f": st.booleans(),
        "d": F64,
        "g": F32,
        "e": st.sampled_from(["A", "B", "C"]),
        "m": DEC4,
        "ts": TS,
        "n": st.none(),
        "os": st.none() | st.text(max_size=8),
        "ol": st.none() | I64,
        "ob": st.none() | st.booleans(),
        "od": st.none() | F64,
        "oe": st.none() | st.sampled_from(["A", "B", "C"]),
        "om": st.none() | DEC2,
        "ot": st.none() | TS,
        "oy": st.none() | st.binary(max_size=8),
    }
)


def encode(rec: dict[str, Any], sid: int = SID) -> bytes:
    buf = io.BytesIO()
    buf.write(b"\x00" + struct.pack(">I", sid))
    fastavro.schemaless_writer(buf, PARSED, rec)
    return buf.getvalue()


def schema_of(sid: int) -> Any:
    return PARSED


def both(values: list[Any]) -> tuple[Any, Any]:
    """(native outcome, reference outcome): a (table, ids) pair or the Unsupported message."""

    def run(fn: Any) -> Any:
        try:
            table, ids = fn(values, schema_of)
            return table, ids.tolist()
        except Unsupported as exc:
            return str(exc)

    got = run(lambda v, s: columnar._native_decode(v, s) or pytest.fail("native declined"))
    return got, run(columnar.decode_values_py)


def same(got: Any, want: Any) -> None:
    if isinstance(want, str) or isinstance(got, str):
        assert got == want
        return
    assert got[1] == want[1]
    assert got[0].schema == want[0].schema
    assert got[0].equals(want[0]), (got[0].to_pylist(), want[0].to_pylist())


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(RECORD, min_size=1, max_size=12))
def test_native_columns_equal_the_reference(records: list[dict[str, Any]]) -> None:
    got, want = both([encode(r) for r in records])
    assert not isinstance(want, str), want
    same(got, want)


def test_malformed_values_give_the_reference_message() -> None:
    rng = random.Random(13)
    good = [
        encode(
            {
                "l": rng.randrange(-(10**12), 10**12),
                "i": 3,
                "s": "ab\u00e9" * rng.randrange(3),
                "b": rng.randbytes(rng.randrange(4)),
                "f": True,
                "d": 1.5,
                "g": 0.25,
                "e": "B",
                "m": Decimal("12.3400"),
                "ts": 1_767_225_600_000_000,
                "n": None,
                "os": rng.choice([None, "x"]),
                "ol": rng.choice([None, -5]),
                "ob": None,
                "od": 2.0,
                "oe": rng.choice([None, "C"]),
                "om": rng.choice([None, Decimal("-1.25")]),
                "ot": None,
                "oy": b"\xff",
            }
        )
        for _ in range(40)
    ]
    messages = set()
    for case in range(600):
        batch = [bytearray(v) for v in rng.sample(good, rng.randrange(1, 6))]
        victim = batch[rng.randrange(len(batch))]
        how = case % 5
        if how == 0:  # truncated
            del victim[rng.randrange(5, len(victim)) :]
        elif how == 1:  # a random byte
            victim[rng.randrange(5, len(victim))] = rng.randrange(256)
        elif how == 2:  # an over-long varint
            at = rng.randrange(5, len(victim))
            victim[at:at] = b"\xff" * rng.randrange(9, 12)
        elif how == 3:  # random tail
            at = rng.randrange(5, len(victim))
            victim[at:] = rng.randbytes(rng.randrange(0, 30))
        else:  # several bytes replaced (union branches, lengths, booleans...)
            for _ in range(3):
                victim[rng.randrange(5, len(victim))] = rng.choice([0x02, 0x04, 0x7F, 0x80, 0xFE])
        got, want = both([bytes(v) for v in batch])
        same(got, want)
        if isinstance(want, str):
            messages.add(want)
    # the fuzzing reached the checks that matter
    assert {
        "a record is shorter than its schema",
        "a varint longer than 10 bytes",
        "a union branch out of range",
    } <= messages, messages


def test_prefix_problems_and_mixed_ids() -> None:
    v = encode(
        {
            "l": 1, "i": 2, "s": "", "b": b"", "f": False, "d": 0.0, "g": 0.0, "e": "A",
            "m": Decimal(0), "ts": 0, "n": None, "os": None, "ol": None, "ob": None, "od": None,
            "oe": None, "om": None, "ot": None, "oy": None,
        }
    )  # fmt: skip
    for values in ([v, None], [v, b"\x00\x00"], [v, b"\x01" + v[1:]]):
        got, want = both(values)
        same(got, want)
    mixed = [v, encode({**PARSED_DEFAULTS}, sid=8)]
    assert columnar._native_decode(mixed, schema_of) is None  # several ids: the reference
    table, ids = columnar.decode_values(mixed, schema_of)
    assert ids.tolist() == [SID, 8] and table.num_rows == 2


PARSED_DEFAULTS: dict[str, Any] = {
    "l": 0, "i": 0, "s": "", "b": b"", "f": False, "d": 0.0, "g": 0.0, "e": "A",
    "m": Decimal(0), "ts": 0, "n": None, "os": None, "ol": None, "ob": None, "od": None,
    "oe": None, "om": None, "ot": None, "oy": None,
}  # fmt: skip


def test_decode_values_uses_the_native_decoder(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*_: Any) -> Any:
        raise AssertionError("the reference ran")

    monkeypatch.setattr(columnar, "decode_values_py", refuse)
    table, _ = columnar.decode_values([encode(PARSED_DEFAULTS)], schema_of)
    assert table.num_rows == 1


def test_envelope_arrays_equal_the_reference() -> None:
    rng = random.Random(5)
    tenants = [b"acme", b"globex", b"caf\xc3\xa9", b"\xff", None]
    types = [b"hub.trading.TradeExecuted", b"x", None]
    recs = []
    for i in range(300):
        headers: list[tuple[str, Any]] = [("ce_id", str(i).encode())]
        for _ in range(rng.randrange(2)):  # absent or once (repeated: Unsupported, below)
            headers.append(("ce_tenant", rng.choice(tenants)))
        for _ in range(rng.randrange(2)):
            headers.append(("ce_type", rng.choice(types)))
        rng.shuffle(headers)
        recs.append(StoredRecord("t", 0, 100 + i, 0, None, b"", tuple(headers)))
    ids = columnar.np.full(len(recs), SID, columnar.np.int64)
    got = columnar.envelope_arrays(recs, ids, lambda sid: f"schema{sid}")
    tenants_py, types_py = columnar.envelope(recs, ids, lambda sid: f"schema{sid}")
    assert got[0].to_pylist() == tenants_py
    assert got[1].to_pylist() == types_py
    assert got[2].tolist() == [r.offset for r in recs]
    assert native.envelope_columns(recs) is not None  # the native path ran
    twice = [*recs, StoredRecord("t", 0, 9, 0, None, b"", (("ce_type", b"a"), ("ce_type", b"b")))]
    ids = columnar.np.full(len(twice), SID, columnar.np.int64)
    with pytest.raises(columnar.Unsupported):  # no copy is picked, natively or not
        columnar.envelope_arrays(twice, ids, lambda sid: f"schema{sid}")
