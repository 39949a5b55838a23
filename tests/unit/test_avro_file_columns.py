"""Avro container blocks decoded natively (``ingest.avrofile``, native/src/avro_blocks.rs) give
exactly the record batch the reference gives (fastavro's datums through ``datum_batch``), on
random schemas of every layout kind (unions with null either side, decimals, timestamps, dates,
enums) and random values; and decline (None: the reference reads the block) whatever they do
not read exactly as fastavro: crafted bytes, values ``datum_batch`` refuses, corrupt blocks."""

from __future__ import annotations

import io
import json
import random
import struct
from decimal import Decimal
from typing import Any

import fastavro
import hub_native
import pyarrow as pa
import pytest

from ingest.arrowread import datum_batch, layout
from ingest.avrofile import Batch, Block, Segment, batches, block_batch, block_plan, read_blocks

if not hasattr(hub_native, "avro_block_columns"):
    pytest.fail("hub_native predates native/src/avro_blocks.rs: rerun `make setup`.")

KINDS = ["long", "int", "string", "boolean", "double", "float", "enum", "decimal", "ts", "date"]
_EPOCH_US = (-62_135_596_800_000_000 + 86_400_000_000, 253_402_300_799_999_999 - 86_400_000_000)


def field_type(kind: str, i: int, rnd: random.Random) -> Any:
    if kind == "enum":
        return {
            "type": "enum",
            "name": f"E{i}",
            "symbols": [f"S{k}" for k in range(rnd.randint(1, 5))],
        }
    if kind == "decimal":
        p = rnd.choice([1, 4, 9, 18, 20, 38])
        return {
            "type": "bytes",
            "logicalType": "decimal",
            "precision": p,
            "scale": rnd.randint(0, p),
        }
    if kind == "ts":
        return {"type": "long", "logicalType": "timestamp-micros"}
    if kind == "date":
        return {"type": "int", "logicalType": "date"}
    return kind


def value(kind: str, t: Any, rnd: random.Random) -> Any:
    from datetime import UTC, date, datetime, timedelta

    if kind == "long":
        return rnd.choice([0, -1, 2**63 - 1, -(2**63), rnd.randint(-(10**12), 10**12)])
    if kind == "int":
        return rnd.choice([0, -1, 2**31 - 1, -(2**31), rnd.randint(-1000, 1000)])
    if kind == "string":
        return rnd.choice(["", "a", "é", "日本", "\U0001f600", "x" * rnd.randint(0, 300), "\x00"])
    if kind == "boolean":
        return rnd.random() < 0.5
    if kind == "double":
        return rnd.choice([0.0, -0.0, 1.5, 1e308, -1e-308, float("inf"), rnd.random()])
    if kind == "float":
        return rnd.choice([0.0, 1.5, 3.4e38, -2.5, float("-inf"), float(rnd.randint(-99, 99))])
    if kind == "enum":
        return rnd.choice(t["symbols"])
    if kind == "decimal":
        p, s = t["precision"], t["scale"]
        digits = rnd.randint(0, min(p, 18))
        u = rnd.randint(-(10**digits) + 1, 10**digits - 1)
        return Decimal(u).scaleb(-s)
    if kind == "ts":
        us = rnd.choice([0, -1, _EPOCH_US[0], _EPOCH_US[1], rnd.randint(0, 2 * 10**15)])
        return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=us)
    return rnd.choice([date(1, 1, 1), date(9999, 12, 31), date(1970, 1, 1), date(2026, 12, 3)])


def random_schema(rnd: random.Random) -> dict[str, Any]:
    fields = []
    for i in range(rnd.randint(1, 8)):
        kind = rnd.choice(KINDS)
        t = field_type(kind, i, rnd)
        roll = rnd.random()
        f: dict[str, Any] = {"name": f"f{i}_{kind}", "type": t}
        if roll < 0.25:
            f = {"name": f["name"], "type": ["null", t], "default": None}
        elif roll < 0.4:
            f = {"name": f["name"], "type": [t, "null"]}
        fields.append(f)
    return {"type": "record", "name": "R", "namespace": "t", "fields": fields}


def random_rows(schema: dict[str, Any], n: int, rnd: random.Random) -> list[dict[str, Any]]:
    rows = []
    for _ in range(n):
        row = {}
        for f in schema["fields"]:
            t = f["type"]
            if isinstance(t, list):
                if rnd.random() < 0.3:
                    row[f["name"]] = None
                    continue
                t = t[0] if t[1] == "null" else t[1]
            row[f["name"]] = value(f["name"].split("_", 1)[1], t, rnd)
        rows.append(row)
    return rows


def blocks_of(schema: dict[str, Any], rows: list[dict[str, Any]], codec: str = "null") -> list[Any]:
    buf = io.BytesIO()
    fastavro.writer(buf, fastavro.parse_schema(schema), rows, codec=codec, sync_interval=700)
    buf.seek(0)
    got = list(read_blocks(buf, fastavro.parse_schema(schema)))
    buf.seek(0)  # the blocks hold every record fastavro's own reader gives, in order
    assert [d for b in got for d in b.datums(b.count)] == list(fastavro.reader(buf))
    return got


def reference(block: Block, lay: Any) -> pa.RecordBatch | None:
    return datum_batch(block.datums(block.count), lay)


@pytest.mark.parametrize("seed", range(40))
def test_native_block_equals_fastavro_datums(seed: int) -> None:
    rnd = random.Random(seed)
    schema = random_schema(rnd)
    parsed = fastavro.parse_schema(schema)
    lay = layout(parsed)
    assert lay is not None
    plan = block_plan(parsed, lay)
    assert plan is not None
    decoded = 0
    for block in blocks_of(
        schema, random_rows(schema, rnd.randint(1, 120), rnd), rnd.choice(["null", "deflate"])
    ):
        got = block_batch(block.data, block.count, plan, lay)
        want = reference(block, lay)
        if got is None:
            continue  # declined: the reference reads it
        decoded += 1
        assert want is not None, "the native decoder accepted a block datum_batch refuses"
        assert got.schema == want.schema
        for a, b in zip(got.columns, want.columns, strict=True):
            assert a.to_pylist() == b.to_pylist() or _same_nan(a, b)
            assert a.null_count == b.null_count
    assert decoded  # every value above is one the native decoder takes


def _same_nan(a: pa.Array, b: pa.Array) -> bool:
    return [repr(x) for x in a.to_pylist()] == [repr(x) for x in b.to_pylist()]


def test_every_value_kind_is_decoded_not_declined() -> None:
    schema = {
        "type": "record",
        "name": "R",
        "fields": [
            {
                "name": f"f{i}_{k}",
                "type": ["null", field_type(k, i, random.Random(i))],
                "default": None,
            }
            for i, k in enumerate(KINDS)
        ],
    }
    rows = random_rows(schema, 300, random.Random(1))
    parsed = fastavro.parse_schema(schema)
    lay = layout(parsed)
    assert lay is not None
    plan = block_plan(parsed, lay)
    assert plan is not None
    for block in blocks_of(schema, rows):
        got = block_batch(block.data, block.count, plan, lay)
        assert got is not None
        assert got.equals(reference(block, lay))


def _plan_of(fields: list[Any]) -> tuple[Any, Any]:
    parsed = fastavro.parse_schema({"type": "record", "name": "R", "fields": fields})
    lay = layout(parsed)
    assert lay is not None
    plan = block_plan(parsed, lay)
    return plan, lay


def zz(v: int) -> bytes:
    """Avro's zig-zag varint."""
    u = (v << 1) ^ (v >> 63)
    out = bytearray()
    while True:
        b = u & 0x7F
        u >>= 7
        if u:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


@pytest.mark.parametrize(
    ("fields", "data", "count", "why"),
    [
        ([{"name": "a", "type": "int"}], zz(2**31), 1, "an int out of 32 bits"),
        ([{"name": "a", "type": "long"}], b"\xff" * 11, 1, "a varint longer than 10 bytes"),
        ([{"name": "a", "type": "long"}], zz(1), 2, "a record past the block's end"),
        ([{"name": "a", "type": "long"}], zz(1) + b"\x00", 1, "bytes after the last record"),
        ([{"name": "a", "type": "string"}], zz(2) + b"\xc3(", 1, "invalid UTF-8"),
        ([{"name": "a", "type": "string"}], zz(5) + b"ab", 1, "a length past the block"),
        ([{"name": "a", "type": "string"}], zz(-1), 1, "a negative length"),
        ([{"name": "a", "type": ["null", "long"]}], zz(2) + zz(1), 1, "a union branch of 2"),
        ([{"name": "a", "type": "boolean"}], b"\x02", 1, "a boolean byte of 2"),
        (
            [{"name": "a", "type": {"type": "enum", "name": "E", "symbols": ["X"]}}],
            zz(1),
            1,
            "enum",
        ),
        (
            [{"name": "a", "type": {"type": "bytes", "logicalType": "decimal", "precision": 30}}],
            zz(9) + b"\x01" * 9,
            1,
            "a decimal wider than 64 bits",
        ),
        (
            [{"name": "a", "type": {"type": "bytes", "logicalType": "decimal", "precision": 2}}],
            zz(1) + b"\x64",
            1,
            "a decimal past its precision",
        ),
        (
            [{"name": "a", "type": {"type": "long", "logicalType": "timestamp-micros"}}],
            zz(2**62),
            1,
            "a timestamp outside datetime's range",
        ),
        ([{"name": "a", "type": {"type": "int", "logicalType": "date"}}], zz(3_000_000), 1, "date"),
        ([{"name": "a", "type": "double"}], struct.pack("<f", 1.0), 1, "a double cut short"),
        ([{"name": "a", "type": "long"}], b"", 0, "no records"),
    ],
)
def test_unusual_blocks_are_declined(fields: list[Any], data: bytes, count: int, why: str) -> None:
    plan, lay = _plan_of(fields)
    assert block_batch(data, count, plan, lay) is None, why


def test_a_huge_record_count_is_declined_without_reading() -> None:
    plan, lay = _plan_of([{"name": "a", "type": "long"}])
    assert block_batch(zz(1), 2**62, plan, lay) is None


def test_batches_cut_blocks_at_the_batch_size_and_resume_cuts_rows() -> None:
    schema = {"type": "record", "name": "R", "fields": [{"name": "a", "type": "long"}]}
    parsed = fastavro.parse_schema(schema)
    lay = layout(parsed)
    assert lay is not None
    plan = block_plan(parsed, lay)
    assert plan is not None
    blocks = blocks_of(schema, [{"a": i} for i in range(1000)])
    assert len(blocks) >= 3
    got = list(batches(iter(blocks), plan, lay, 128))
    assert [len(b) for b in got] == [128] * 7 + [104]
    values = [v for b in got for v in b.record_batch().column(0).to_pylist()]
    assert values == list(range(1000))
    cut = got[1][50:]
    assert isinstance(cut, Batch) and len(cut) == 78
    assert cut.record_batch().column(0).to_pylist() == list(range(178, 256))
    assert cut.datums_at([0, 77, 3]) == [{"a": 178}, {"a": 255}, {"a": 181}]
    assert [d["a"] for d in cut.datums()] == list(range(178, 256))


def test_a_declined_block_makes_the_batch_read_by_the_reference() -> None:
    schema = {"type": "record", "name": "R", "fields": [{"name": "a", "type": "int"}]}
    parsed = fastavro.parse_schema(schema)
    lay = layout(parsed)
    assert lay is not None
    plan = block_plan(parsed, lay)
    assert plan is not None
    block = blocks_of(schema, [{"a": 1}, {"a": 2}])[0]
    batch = Batch([Segment(block, None, 0, 2)])
    assert batch.record_batch() is None
    assert batch.datums() == [{"a": 1}, {"a": 2}]
    assert json.dumps(batch.datums_at([1])) == '[{"a": 2}]'


def _batch_columns(blocks: list[Any], cuts: list[tuple[int, int, int]], plan: Any) -> Any:
    return hub_native.avro_batch_columns(
        [(blocks[k].data, blocks[k].count, lo, hi) for k, lo, hi in cuts], plan
    )


@pytest.mark.parametrize("seed", range(30))
def test_a_batch_decoded_whole_equals_its_blocks_decoded_alone(
    seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``Batch.record_batch`` of a batch's blocks in one native call gives the rows the per-block
    reference gives (each block's record batch, cut and concatenated), for batches that cut
    blocks anywhere; where it answers None, so does the reference, and where it answers a batch,
    it equals fastavro's datums of those rows (``datum_batch``)."""
    from ingest import avrofile

    rnd = random.Random(1000 + seed)
    schema = random_schema(rnd)
    parsed = fastavro.parse_schema(schema)
    lay = layout(parsed)
    assert lay is not None
    plan = block_plan(parsed, lay)
    assert plan is not None
    rows = random_rows(schema, rnd.randint(1, 400), rnd)
    blocks = blocks_of(schema, rows, rnd.choice(["null", "deflate"]))
    size = rnd.choice([1, 7, 50, 128, 1000])
    whole = list(batches(iter(blocks), plan, lay, size))
    monkeypatch.setattr(avrofile, "native_batch_decoder", None)
    alone = list(batches(iter(blocks), plan, lay, size))
    assert [len(b) for b in whole] == [len(b) for b in alone]
    assert all(b.plan is not None for b in whole) and all(b.plan is None for b in alone)
    decoded = 0
    for a, b in zip(whole, alone, strict=True):
        monkeypatch.undo()
        got = a.record_batch()
        monkeypatch.setattr(avrofile, "native_batch_decoder", None)
        want = b.record_batch()
        if got is None:
            assert want is None
            continue
        decoded += 1
        ref = datum_batch(a.datums(), lay)
        assert ref is not None
        for x in (want, ref):
            if x is None:
                continue
            assert got.schema == x.schema
            for c, d in zip(got.columns, x.columns, strict=True):
                assert c.to_pylist() == d.to_pylist() or _same_nan(c, d)
                assert c.null_count == d.null_count
    assert decoded


def test_the_batch_decoder_declines_when_any_block_is_declined() -> None:
    """One bad block (bytes after its last record, a varint too long, a row of it outside the
    batch's rows included: every block is read whole) declines the whole batch; rows outside
    a block are refused."""
    plan, _ = _plan_of([{"name": "a", "type": "long"}])
    good = Block(zz(1) + zz(2) + zz(3), 3, None)
    assert _batch_columns([good], [(0, 0, 3)], plan) == [(struct.pack("<3q", 1, 2, 3), None, None)]
    assert _batch_columns([good, good], [(0, 2, 3), (1, 0, 1)], plan) == [
        (struct.pack("<2q", 3, 1), None, None)
    ]
    for bad in (Block(zz(1) + b"\x00", 1, None), Block(b"\xff" * 11, 1, None)):
        assert _batch_columns([good, bad], [(0, 0, 3), (1, 0, 1)], plan) is None
    tail = Block(zz(1) + zz(2) + b"\xff" * 11, 3, None)  # row 2 is bad, only rows 0..2 asked
    assert _batch_columns([tail], [(0, 0, 2)], plan) is None
    for lo, hi in ((0, 4), (2, 2), (3, 1)):
        assert _batch_columns([good], [(0, lo, hi)], plan) is None
    assert _batch_columns([Block(zz(1), 2**62, None)], [(0, 0, 1)], plan) is None
    assert _batch_columns([], [], plan) is None


def test_a_straddling_block_with_an_int_out_of_range_in_the_next_batch() -> None:
    """A value ``datum_batch`` refuses (an int out of 32 bits) in rows of the block that belong
    to the next batch: this batch's rows decode natively and equal fastavro's; the next batch
    is declined (the reference reads it, and refuses the value)."""
    fields = [{"name": "a", "type": "int"}]
    plan, lay = _plan_of(fields)
    block = Block(zz(1) + zz(2) + zz(2**31), 3, fastavro.parse_schema(fields[0]["type"]))
    first, second = batches(iter([block]), plan, lay, 2)
    got = first.record_batch()
    assert got is not None and got.column(0).to_pylist() == [1, 2]
    assert second.record_batch() is None
