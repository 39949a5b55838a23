"""Session 23 hostile inputs: file times finer than their field (docs/benchmarks/
s23-redteam-inputs23.md). A Parquet ``timestamp[us]`` column published to a
``timestamp-millis`` field, a ``timestamp[ns]`` column to a ``timestamp-micros`` one, or an Avro
file written with ``timestamp-micros`` read through a later ``timestamp-millis`` version (the
registry's default rules ignore logical types, as Confluent's do) were accepted and stored cut
to the field's unit: 10:00:00.999999 became 10:00:00.999. Now such a row is quarantined naming
the field and the unit; rows already at the unit are taken as before."""

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


def _rec(logical: str, nullable: bool = False) -> dict[str, Any]:
    t: Any = {"type": "long", "logicalType": logical}
    return {
        "type": "record",
        "name": "Tick",
        "fields": [
            {"name": "id", "type": "long"},
            {"name": "at", "type": ["null", t] if nullable else t},
        ],
    }


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[Hub]:
    topics = {
        "ms": _rec("timestamp-millis", nullable=True),
        "us": _rec("timestamp-micros"),
        "old": _rec("timestamp-micros", nullable=True),
    }
    with hub_with_topics(tmp_path / "data", topics) as h:
        yield h


def _stored(h: Hub, topic: str) -> dict[int, Any]:
    out = {}
    for part, end in h.log.end_offsets(topic).items():
        for r in h.log.read(topic, part, 0, end) if end else []:
            v = serde.decode(r.value, h.registry.parsed(serde.split_wire(r.value)[0]))
            out[v["id"]] = v["at"]
    return out


@pytest.mark.parametrize("columnar", [True, False])
@pytest.mark.parametrize(
    ("topic", "unit", "exact", "finer", "named", "kept"),
    [
        ("ms", "us", AT_US + 999_000, AT_US + 999_999, "milliseconds", 999_000),
        (
            "us",
            "ns",
            (AT_US + 123_456) * 1000,
            (AT_US + 123_456) * 1000 + 789,
            "microseconds",
            123_456,
        ),
    ],
)
def test_a_parquet_time_finer_than_its_field_is_quarantined_not_cut(
    hub: Hub,
    tmp_path: Path,
    columnar: bool,
    topic: str,
    unit: str,
    exact: int,
    finer: int,
    named: str,
    kept: int,
) -> None:
    f = tmp_path / "times.parquet"
    table = pa.table({"id": [1, 2], "at": pa.array([exact, finer], pa.timestamp(unit, tz="UTC"))})
    pq.write_table(table, f)
    r = publish_file(hub.ingest, f, topic, columnar=columnar).result
    assert (r.accepted, r.rejected) == (1, 1), r
    (why,) = r.rejections
    assert "/at" in why.reason and named in why.reason, why
    stored = _stored(hub, topic)
    assert stored == {1: AT.replace(microsecond=kept)}


@pytest.mark.parametrize("columnar", [True, False])
def test_an_avro_file_of_micros_read_as_millis_keeps_every_digit_or_is_quarantined(
    hub: Hub, tmp_path: Path, columnar: bool
) -> None:
    old = _rec("timestamp-micros", nullable=True)
    # the registry's default rules (Confluent's) allow it: both are longs
    hub.registry.register("old-value", json.dumps(_rec("timestamp-millis", nullable=True)))
    f = tmp_path / "old.avro"
    rows = [
        {"id": 1, "at": AT.replace(microsecond=250_000)},
        {"id": 2, "at": AT.replace(microsecond=250_001)},
        {"id": 3, "at": None},
    ]
    with f.open("wb") as out:
        fastavro.writer(out, fastavro.parse_schema(old), rows)
    r = publish_file(hub.ingest, f, "old", columnar=columnar).result
    assert (r.accepted, r.rejected) == (2, 1), r
    assert "milliseconds" in r.rejections[0].reason
    assert _stored(hub, "old") == {1: AT.replace(microsecond=250_000), 3: None}
