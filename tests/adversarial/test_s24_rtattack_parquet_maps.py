"""Session 24, red team (docs/benchmarks/s24-redteam-attacker24.md): Parquet map columns.

pyarrow reads a Parquet ``map<string, ...>`` column as a list of (key, value) pairs, which the
hub handed to the Avro encoder as it was: every row of a file with a map column was quarantined
with "'list' object has no attribute 'items'", naming neither the column nor the type, though
the schema's field is a map. Now a map column goes into a map field as the schema says (its
values converted like any other: decimals exactly), at the top level or inside a union; a key
that is not text, or a key given twice (a dict would keep one value and lose the other), is
refused naming the column and the problem, with nothing else of the row stored."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from core.avro import serde
from hub.bootstrap import Hub
from ingest.files import publish_file
from tests.adversarial._topics_hub import hub_with_topics

DEC = {"type": "bytes", "logicalType": "decimal", "precision": 10, "scale": 2}
SCHEMA = {
    "type": "record",
    "name": "Book",
    "fields": [
        {"name": "id", "type": "long"},
        {"name": "limits", "type": {"type": "map", "values": "long"}},
        {"name": "prices", "type": ["null", {"type": "map", "values": DEC}], "default": None},
    ],
}


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[Hub]:
    with hub_with_topics(tmp_path / "data", {"books": SCHEMA}) as h:
        yield h


def _stored(h: Hub) -> dict[int, Any]:
    out = {}
    for part, end in h.log.end_offsets("books").items():
        for r in h.log.read("books", part, 0, end) if end else []:
            v = serde.decode(r.value, h.registry.parsed(serde.split_wire(r.value)[0]))
            out[v["id"]] = v
    return out


TEXT = pa.string()


def _file(tmp_path: Path, limits: list[Any], key: pa.DataType = TEXT) -> Path:
    f = tmp_path / "books.parquet"
    table = pa.table(
        {
            "id": list(range(1, len(limits) + 1)),
            "limits": pa.array(limits, pa.map_(key, pa.int64())),
            "prices": pa.array(
                [[("bid", 101.25), ("ask", 101.5)]] + [None] * (len(limits) - 1),
                pa.map_(pa.string(), pa.float64()),
            ),
        }
    )
    pq.write_table(table, f)
    return f


@pytest.mark.parametrize("columnar", [True, False])
def test_a_parquet_map_column_is_stored_as_the_schemas_map(
    hub: Hub, tmp_path: Path, columnar: bool
) -> None:
    f = _file(tmp_path, [[("eur", 10), ("usd", 20)], []])
    r = publish_file(hub.ingest, f, "books", columnar=columnar).result
    assert (r.accepted, r.rejected) == (2, 0), [w.reason for w in r.rejections]
    assert _stored(hub) == {
        1: {
            "id": 1,
            "limits": {"eur": 10, "usd": 20},
            "prices": {"bid": Decimal("101.25"), "ask": Decimal("101.50")},
        },
        2: {"id": 2, "limits": {}, "prices": None},
    }


@pytest.mark.parametrize("columnar", [True, False])
def test_a_map_key_given_twice_is_refused_by_name_not_collapsed(
    hub: Hub, tmp_path: Path, columnar: bool
) -> None:
    f = _file(tmp_path, [[("eur", 10)], [("eur", 10), ("eur", 99)]])
    r = publish_file(hub.ingest, f, "books", columnar=columnar).result
    assert (r.accepted, r.rejected) == (1, 1), r
    (why,) = r.rejections
    assert "/limits" in why.reason and "'eur' more than once" in why.reason, why.reason
    assert set(_stored(hub)) == {1}


@pytest.mark.parametrize("columnar", [True, False])
def test_a_map_column_with_number_keys_is_refused_naming_the_column_and_type(
    hub: Hub, tmp_path: Path, columnar: bool
) -> None:
    f = _file(tmp_path, [[(7, 10)]], key=pa.int64())
    r = publish_file(hub.ingest, f, "books", columnar=columnar).result
    assert (r.accepted, r.rejected) == (0, 1), r
    (why,) = r.rejections
    assert "/limits" in why.reason and "is int" in why.reason and "text" in why.reason, why.reason
    assert _stored(hub) == {}
