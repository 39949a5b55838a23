"""Session 23, inputs left (docs/benchmarks/s23-inputsleft23.md), property form: random record
schemas (nested records, nullable unions, arrays, maps, decimals, dates, millis and micros
times) and random rows, written as an Avro container file (sometimes by an older version whose
times are finer than the latest's: micros read as millis) or a Parquet file (times one unit
finer than the field), published through every file path: columnar and per-row, native and
pure-Python Avro decoding. Each row is either stored equal to what the file holds (same type,
same bits, same digits) or quarantined with a named reason and its original bytes, and every
path stores and refuses the same rows the same way. Fixed seed: the same cases in CI."""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import fastavro
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.avro import serde
from hub.bootstrap import Hub
from ingest import avrofile
from ingest.files import publish_file
from ingest.quarantine import entries
from tests.adversarial._topics_hub import hub_with_topics

_SEQ = itertools.count()
DEC = {"type": "bytes", "logicalType": "decimal", "precision": 9, "scale": 2}
LEAVES = ["long", "int", "double", "float", "string", "boolean", "bytes", "dec", "ms", "us", "day"]

# An abstract type: a leaf name, ("array", t), ("map", t), ("null", t), ("record", [t, ...]).
abstract = st.recursive(
    st.sampled_from(LEAVES),
    lambda inner: st.one_of(
        st.tuples(st.just("array"), inner),
        st.tuples(st.just("map"), inner),
        st.tuples(st.just("null"), inner),
        st.tuples(st.just("record"), st.lists(inner, min_size=1, max_size=3)),
    ),
    max_leaves=6,
)


def avro(t: Any, older: bool = False, name: str = "Row") -> Any:
    """The Avro type of ``t`` (a record's first field is ``id``; records named by their place);
    ``older``: the version whose millis times are micros."""
    if isinstance(t, str):
        return {
            "dec": DEC,
            "ms": {
                "type": "long",
                "logicalType": "timestamp-micros" if older else "timestamp-millis",
            },
            "us": {"type": "long", "logicalType": "timestamp-micros"},
            "day": {"type": "int", "logicalType": "date"},
        }.get(t, t)
    kind, inner = t
    if kind == "array":
        return {"type": "array", "items": avro(inner, older, name + "A")}
    if kind == "map":
        return {"type": "map", "values": avro(inner, older, name + "M")}
    if kind == "null":
        t = avro(inner, older, name + "N")
        return t if isinstance(t, list) else ["null", t]  # a union holds no union
    return {
        "type": "record",
        "name": name,
        "fields": [
            {"name": _field(i), "type": avro(x, older, f"{name}_{i}")} for i, x in enumerate(inner)
        ],
    }


def _field(i: int) -> str:
    return "id" if i == 0 else f"f{i}"


def arrow(t: Any) -> pa.DataType:
    """The Parquet (Arrow) type of ``t``, times one unit finer than the field."""
    if isinstance(t, str):
        return {
            "long": pa.int64(),
            "int": pa.int32(),
            "double": pa.float64(),
            "float": pa.float32(),
            "string": pa.string(),
            "boolean": pa.bool_(),
            "bytes": pa.binary(),
            "dec": pa.decimal128(9, 2),
            "ms": pa.timestamp("us", tz="UTC"),
            "us": pa.timestamp("us", tz="UTC"),
            "day": pa.date32(),
        }[t]
    kind, inner = t
    if kind == "array":
        return pa.list_(arrow(inner))
    if kind == "null":
        return arrow(inner)
    assert kind == "record"
    return pa.struct([(_field(i), arrow(x)) for i, x in enumerate(inner)])


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
micros = st.one_of(
    st.integers(0, 4_000_000_000).map(lambda n: n * 1_000_000),  # whole seconds
    st.integers(0, 4_000_000_000_000).map(lambda n: n * 1000),  # millis
    st.integers(-62_135_596_800_000_000, 253_402_300_799_999_999),  # any micros
)


def values(t: Any) -> st.SearchStrategy[Any]:
    if isinstance(t, str):
        return {
            "long": st.integers(-(2**63), 2**63 - 1),
            "int": st.integers(-(2**31), 2**31 - 1),
            "double": st.floats(allow_nan=False, allow_infinity=False),
            "float": st.floats(width=32, allow_nan=False, allow_infinity=False),
            "string": st.text(max_size=4),
            "boolean": st.booleans(),
            "bytes": st.binary(max_size=4),
            "dec": st.integers(-(10**9) + 1, 10**9 - 1).map(lambda n: Decimal(n).scaleb(-2)),
            "ms": micros.map(lambda us: EPOCH + timedelta(microseconds=us)),
            "us": micros.map(lambda us: EPOCH + timedelta(microseconds=us)),
            "day": st.dates(date(1, 1, 1), date(9999, 12, 31)),
        }[t]
    kind, inner = t
    if kind == "array":
        return st.lists(values(inner), max_size=3)
    if kind == "map":
        return st.dictionaries(st.text("abc", max_size=2), values(inner), max_size=2)
    if kind == "null":
        return st.one_of(st.none(), values(inner))
    return st.fixed_dictionaries({_field(i): values(x) for i, x in enumerate(inner)})


def has_map(t: Any) -> bool:
    if isinstance(t, str):
        return False
    kind, inner = t
    return kind == "map" or any(has_map(x) for x in (inner if kind == "record" else [inner]))


def same(a: Any, b: Any) -> bool:
    """Equal, of the same kind, floats to the bit (-0.0 is not 0.0), decimals to the digit."""
    if isinstance(a, float) or isinstance(b, float):
        return type(a) is type(b) and (a == b and math.copysign(1, a) == math.copysign(1, b))
    if isinstance(a, Decimal) or isinstance(b, Decimal):
        return type(a) is type(b) and a.as_tuple() == b.as_tuple()
    if isinstance(a, datetime) or isinstance(b, datetime):
        return (
            isinstance(a, datetime)
            and isinstance(b, datetime)
            and a == b
            and getattr(a, "nanosecond", 0) == getattr(b, "nanosecond", 0)
        )
    if isinstance(a, dict):
        return type(b) is dict and a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return type(b) is list and len(a) == len(b) and all(map(same, a, b))
    return type(a) is type(b) and a == b


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    with hub_with_topics(tmp_path_factory.mktemp("s23fuzzfiles") / "data", {}) as h:
        yield h


def _topic(h: Hub, schemas: list[Any]) -> str:
    topic = f"t{next(_SEQ)}"
    h.log.create_topic(topic, 1)
    for s in schemas:
        h.registry.register(f"{topic}-value", json.dumps(s))
    return topic


def _outcome(h: Hub, topic: str, f: Path, columnar: bool) -> dict[int, Any]:
    """Per row id: ("stored", value) or ("refused", reason)."""
    r = publish_file(h.ingest, f, topic, columnar=columnar).result
    out: dict[int, Any] = {}
    for part, end in h.log.end_offsets(topic).items():
        for rec in h.log.read(topic, part, 0, end) if end else []:
            v = serde.decode(rec.value, h.registry.parsed(serde.split_wire(rec.value)[0]))
            out[v["id"]] = ("stored", v)
    quarantined = [e for e in entries(h.ingest, topic=topic)]
    assert len(quarantined) == r.rejected, (quarantined, r)
    for why in r.rejections:
        assert why.reason and why.reason_code, why
        out[why.index] = ("refused", why.reason)
    assert r.accepted + r.rejected == len(out), (r, out)
    return out


def _check(source: list[dict[str, Any]], outcomes: list[dict[int, Any]]) -> None:
    first = outcomes[0]
    for o in outcomes[1:]:  # every path stores and refuses the same rows alike
        assert o.keys() == first.keys()
        for i, (how, what) in o.items():
            assert first[i][0] == how, (i, first[i], (how, what))
            if how == "stored":
                assert same(first[i][1], what), (i, first[i][1], what)
    for row in source:
        how, what = first[row["id"]]
        if how == "stored":
            assert same(what, row), (row, what)  # stored exactly what the file holds
        else:
            assert row["id"] in first and what, (row, what)


row_types = st.lists(abstract, min_size=1, max_size=3)
SETTINGS = settings(
    derandomize=True, max_examples=25, deadline=None, suppress_health_check=list(HealthCheck)
)


@SETTINGS
@given(data=st.data(), types=row_types, older=st.booleans())
def test_an_avro_file_row_is_stored_as_written_or_quarantined(
    hub: Hub,
    tmp_path_factory: pytest.TempPathFactory,
    data: st.DataObject,
    types: list[Any],
    older: bool,
) -> None:
    rec = ("record", ["long", *types])
    reader = avro(rec)
    writer = avro(rec, older=True) if older else reader
    rows = data.draw(st.lists(values(rec), min_size=1, max_size=4))
    rows = [dict(r, id=i) for i, r in enumerate(rows)]
    f = tmp_path_factory.mktemp("avro") / "rows.avro"
    with f.open("wb") as out:
        fastavro.writer(out, fastavro.parse_schema(writer), rows)
    with f.open("rb") as inp:
        source = list(fastavro.reader(inp))  # what the file holds
    outcomes = []
    for native, columnar in itertools.product([True, False], [True, False]):
        topic = _topic(hub, [writer, reader] if older else [reader])
        with pytest.MonkeyPatch.context() as m:
            if not native:
                m.setattr(avrofile, "native_decoder", None)
                m.setattr(avrofile, "native_batch_decoder", None)
            outcomes.append(_outcome(hub, topic, f, columnar))
    _check(source, outcomes)


@SETTINGS
@given(data=st.data(), types=row_types)
def test_a_parquet_file_row_is_stored_as_written_or_quarantined(
    hub: Hub, tmp_path_factory: pytest.TempPathFactory, data: st.DataObject, types: list[Any]
) -> None:
    types = [t for t in types if not has_map(t)] or ["long"]
    rec = ("record", ["long", *types])
    reader = avro(rec)
    rows = data.draw(st.lists(values(rec), min_size=1, max_size=4))
    rows = [dict(r, id=i) for i, r in enumerate(rows)]
    table = pa.Table.from_pylist(rows, schema=pa.schema(list(arrow(rec))))
    f = tmp_path_factory.mktemp("parquet") / "rows.parquet"
    pq.write_table(table, f)
    source = pq.read_table(f).to_pylist()  # what the file holds
    outcomes = [_outcome(hub, _topic(hub, [reader]), f, columnar) for columnar in (True, False)]
    _check(source, outcomes)
