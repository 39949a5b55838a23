"""Session 23, inputs left (docs/benchmarks/s23-inputsleft23.md): times nested inside records,
arrays and maps of file rows. ``serde.check_stamps`` refused a Parquet/Avro time finer than its
field only for top-level fields; a ``timestamp[us]`` inside a struct or a list published to a
``timestamp-millis`` field, or an Avro file's micros inside a record read through a later millis
version, was stored cut (10:00:00.999999 became 10:00:00.999). Now the row is quarantined with
the path of the value and the unit, whatever the depth; rows at the unit are taken unchanged."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import fastavro
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from core.avro import serde
from hub.bootstrap import Hub
from ingest.files import publish_file
from tests.adversarial._topics_hub import hub_with_topics

AT = datetime(2026, 1, 1, 10, tzinfo=UTC)
AT_US = int(AT.timestamp()) * 1_000_000


def _stamp(logical: str) -> dict[str, Any]:
    return {"type": "long", "logicalType": logical}


def _rec(logical: str, maps: bool = True) -> dict[str, Any]:
    """id, a nested record holding a time, an array of times, a map of times (not for Parquet:
    its map columns are read as lists of pairs, which the hub refuses as a whole)."""
    return {
        "type": "record",
        "name": "Trade",
        "fields": [
            {"name": "id", "type": "long"},
            {
                "name": "leg",
                "type": [
                    "null",
                    {
                        "type": "record",
                        "name": "Leg",
                        "fields": [{"name": "at", "type": _stamp(logical)}],
                    },
                ],
            },
            {"name": "fills", "type": {"type": "array", "items": ["null", _stamp(logical)]}},
        ]
        + ([{"name": "marks", "type": {"type": "map", "values": _stamp(logical)}}] if maps else []),
    }


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[Hub]:
    topics = {
        "pq": _rec("timestamp-millis", maps=False),
        "old": _rec("timestamp-micros"),
    }
    with hub_with_topics(tmp_path / "data", topics) as h:
        yield h


def _stored(h: Hub, topic: str) -> dict[int, Any]:
    out = {}
    for part, end in h.log.end_offsets(topic).items():
        for r in h.log.read(topic, part, 0, end) if end else []:
            v = serde.decode(r.value, h.registry.parsed(serde.split_wire(r.value)[0]))
            out[v["id"]] = v
    return out


def _row(i: int, leg: int, fill: int, mark: int) -> dict[str, Any]:
    def t(us: int) -> datetime:
        return AT.replace(microsecond=us)

    return {"id": i, "leg": {"at": t(leg)}, "fills": [None, t(fill)], "marks": {"k": t(mark)}}


EXACT = _row(1, 250_000, 500_000, 750_000)
FINER = [  # one value finer than millis, at each depth
    (_row(2, 250_001, 500_000, 750_000), "/leg/at"),
    (_row(3, 250_000, 500_001, 750_000), "/fills/1"),
    (_row(4, 250_000, 500_000, 750_001), "/marks/k"),
]


def _table(rows: list[dict[str, Any]]) -> pa.Table:
    ts = pa.timestamp("us", tz="UTC")
    return pa.table(
        {
            "id": [r["id"] for r in rows],
            "leg": pa.array([r["leg"] for r in rows], pa.struct([("at", ts)])),
            "fills": pa.array([r["fills"] for r in rows], pa.list_(ts)),
        }
    )


def _check(hub: Hub, topic: str, r: Any, finer: list[tuple[dict[str, Any], str]]) -> None:
    assert (r.accepted, r.rejected) == (1, len(finer)), r
    for why in r.rejections:
        assert "milliseconds" in why.reason, why
    reasons = " ".join(w.reason for w in r.rejections)
    for _, path in finer:
        assert path in reasons, (path, reasons)
    (stored,) = _stored(hub, topic).values()
    assert stored == {k: v for k, v in EXACT.items() if k in stored}


@pytest.mark.parametrize("columnar", [True, False])
def test_a_nested_parquet_time_finer_than_its_field_is_quarantined_not_cut(
    hub: Hub, tmp_path: Path, columnar: bool
) -> None:
    f = tmp_path / "nested.parquet"
    finer = FINER[:2]
    pq.write_table(_table([EXACT] + [row for row, _ in finer]), f)
    r = publish_file(hub.ingest, f, "pq", columnar=columnar).result
    _check(hub, "pq", r, finer)


@pytest.mark.parametrize("columnar", [True, False])
def test_an_avro_file_of_nested_micros_read_as_millis_is_quarantined_not_cut(
    hub: Hub, tmp_path: Path, columnar: bool
) -> None:
    # the registry's default rules (Confluent's) allow micros -> millis: both are longs
    hub.registry.register("old-value", json.dumps(_rec("timestamp-millis")))
    f = tmp_path / "old.avro"
    with f.open("wb") as out:
        fastavro.writer(
            out, fastavro.parse_schema(_rec("timestamp-micros")), [EXACT] + [r for r, _ in FINER]
        )
    r = publish_file(hub.ingest, f, "old", columnar=columnar).result
    _check(hub, "old", r, FINER)


@pytest.mark.parametrize("columnar", [True, False])
def test_nested_time_text_finer_than_its_field_in_json_lines_is_quarantined(
    hub: Hub, tmp_path: Path, columnar: bool
) -> None:
    def text(us: int) -> str:
        return AT.replace(microsecond=us).strftime("%Y-%m-%dT%H:%M:%S.%fZ")

    def line(i: int, leg: int, fill: int, mark: int) -> str:
        row = {"id": i, "leg": {"at": text(leg)}, "fills": [None, text(fill)]}
        return json.dumps(row | {"marks": {"k": text(mark)}})

    f = tmp_path / "nested.jsonl"
    f.write_text(
        "\n".join(
            [
                line(1, 250_000, 500_000, 750_000),
                line(2, 250_001, 500_000, 750_000),
                line(3, 250_000, 500_001, 750_000),
                line(4, 250_000, 500_000, 750_001),
            ]
        )
        + "\n"
    )
    hub.registry.register("old-value", json.dumps(_rec("timestamp-millis")))
    r = publish_file(hub.ingest, f, "old", columnar=columnar).result
    assert (r.accepted, r.rejected) == (1, 3), r
    reasons = " ".join(w.reason for w in r.rejections)
    # a union branch that fails names the union ("/leg: no union branch accepts ...")
    for path in ("/leg", "/fills/1", "/marks/k"):
        assert path in reasons, (path, reasons)
    (stored,) = _stored(hub, "old").values()
    assert stored == EXACT
