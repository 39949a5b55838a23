"""Session 24, red team (docs/benchmarks/s24-redteam-attacker24.md): decimals in file rows.

``serde.coerce_decimals`` converted a file row's float, int or text into an Avro decimal only
for top-level fields, and passed any ``Decimal`` through. So a Parquet ``double`` inside a struct
or a list whose Avro field is a decimal (a price in a leg, a list of fills) was quarantined with
fastavro's "a bytes-like object is required, not 'float' on field px on field leg on field leg",
and a Parquet ``decimal128(10, 3)`` column holding 2.250 for a ``decimal(10, 2)`` field, even at
the top level, with "Scale provided in schema does not match the decimal" (naming no field).
Now every decimal, at any depth, is converted exactly as the top-level ones (a float by its
shortest repr, an int, plain text, a decimal of another scale that fits) or the row is refused
naming the value's path (``/leg/px``, ``/fills/1``) and the scale; nothing is rounded."""

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
    "name": "Trade",
    "fields": [
        {"name": "id", "type": "long"},
        {
            "name": "leg",
            "type": [
                "null",
                {"type": "record", "name": "Leg", "fields": [{"name": "px", "type": DEC}]},
            ],
        },
        {"name": "fills", "type": {"type": "array", "items": ["null", DEC]}},
        {"name": "total", "type": DEC},
    ],
}
WANT = {
    "leg": {"px": Decimal("101.25")},
    "fills": [None, Decimal("0.10"), Decimal("7.00")],
    "total": Decimal("108.35"),
}


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[Hub]:
    with hub_with_topics(tmp_path / "data", {"deals": SCHEMA}) as h:
        yield h


def _stored(h: Hub) -> dict[int, Any]:
    out = {}
    for part, end in h.log.end_offsets("deals").items():
        for r in h.log.read("deals", part, 0, end) if end else []:
            v = serde.decode(r.value, h.registry.parsed(serde.split_wire(r.value)[0]))
            out[v["id"]] = v
    return out


def _file(tmp_path: Path, t: pa.DataType, rows: list[tuple[Any, list[Any], Any]]) -> Path:
    f = tmp_path / "trades.parquet"
    table = pa.table(
        {
            "id": list(range(1, len(rows) + 1)),
            "leg": pa.array([{"px": px} for px, _, _ in rows], pa.struct([("px", t)])),
            "fills": pa.array([fills for _, fills, _ in rows], pa.list_(t)),
            "total": pa.array([total for _, _, total in rows], t),
        }
    )
    pq.write_table(table, f)
    return f


D3 = pa.decimal128(10, 3)
EXACT = {
    "double": (pa.float64(), (101.25, [None, 0.1, 7.0], 108.35)),
    "text": (pa.string(), ("101.25", [None, "0.1", "7"], "108.350")),
    "decimal(10,3)": (
        D3,
        (Decimal("101.250"), [None, Decimal("0.100"), Decimal("7.000")], Decimal("108.350")),
    ),
}


@pytest.mark.parametrize("columnar", [True, False])
@pytest.mark.parametrize("kind", sorted(EXACT))
def test_nested_decimals_from_parquet_are_converted_exactly(
    hub: Hub, tmp_path: Path, kind: str, columnar: bool
) -> None:
    t, row = EXACT[kind]
    r = publish_file(hub.ingest, _file(tmp_path, t, [row]), "deals", columnar=columnar).result
    assert (r.accepted, r.rejected) == (1, 0), [w.reason for w in r.rejections]
    assert _stored(hub) == {1: {"id": 1, **WANT}}
    stored = _stored(hub)[1]
    assert [d.as_tuple().exponent for d in (stored["leg"]["px"], stored["total"])] == [-2, -2]


BAD = {
    "double": (pa.float64(), [(101.255, [None, 0.1], 1.0), (1.0, [None, 0.125], 1.0)]),
    "decimal(10,3)": (
        D3,
        [
            (Decimal("1.000"), [None], Decimal("1.001")),
            (Decimal("1.005"), [None], Decimal("1.000")),
        ],
    ),
}
BAD_PATHS = {"double": ["/leg/px", "/fills/1"], "decimal(10,3)": ["/total", "/leg/px"]}


@pytest.mark.parametrize("columnar", [True, False])
@pytest.mark.parametrize("kind", sorted(BAD))
def test_a_nested_decimal_that_does_not_fit_is_refused_by_path_not_rounded(
    hub: Hub, tmp_path: Path, kind: str, columnar: bool
) -> None:
    t, rows = BAD[kind]
    ok = EXACT[kind][1]
    f = _file(tmp_path, t, [*rows, ok])
    r = publish_file(hub.ingest, f, "deals", columnar=columnar).result
    assert (r.accepted, r.rejected) == (1, 2), r
    reasons = [w.reason for w in r.rejections]
    for path, why in zip(BAD_PATHS[kind], reasons, strict=True):
        assert why.startswith(path + ":") and "more than 2 decimal places" in why, reasons
    assert _stored(hub) == {3: {"id": 3, **WANT}}
