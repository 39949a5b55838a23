"""Session 23 hostile inputs: numbers in forms only Python reads (docs/benchmarks/
s23-redteam-inputs23.md). The columnar readers take strict ASCII forms and leave the rest to the
reference, which read CSV cells with ``int()`` / ``Decimal()`` and decimal strings with
``Decimal()``: "1_000" was stored as 1000, "1_5" in a double as 15.0, "٣" (Arabic-Indic
three) or "５" (full-width five) as 3 and 5, "1_000.50" in a decimal field as 1000.50, all
accepted. A CSV reader (or a person) means none of these; each row is now quarantined naming
the cell."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from core.avro import serde
from hub.bootstrap import Hub
from ingest.files import publish_file
from ingest.quarantine import entries
from tests.adversarial._topics_hub import hub_with_topics

SCHEMA = {
    "type": "record",
    "name": "Fill",
    "fields": [
        {"name": "id", "type": "string"},
        {"name": "q", "type": "long"},
        {"name": "px", "type": "double"},
        {
            "name": "amt",
            "type": {"type": "bytes", "logicalType": "decimal", "precision": 10, "scale": 2},
        },
    ],
}


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[Hub]:
    with hub_with_topics(tmp_path / "data", {"fills": SCHEMA}) as h:
        yield h


def _stored(h: Hub) -> dict[str, Any]:
    out = {}
    for part, end in h.log.end_offsets("fills").items():
        for r in h.log.read("fills", part, 0, end) if end else []:
            v = serde.decode(r.value, h.registry.parsed(serde.split_wire(r.value)[0]))
            out[v["id"]] = v
    return out


GOOD = ["g1,5,1.5,1000.50", "g2,-7,2e3,0.25"]
BAD = [
    "b1,1_000,1.5,1.00",
    "b2,٣,1.5,1.00",
    "b3,５,1.5,1.00",
    "b4,5,1_5,1.00",
    "b5,5,1.5,1_000.50",
    "b6,5,1.5,١٢.50",
]


@pytest.mark.parametrize("columnar", [True, False])
def test_csv_cells_in_digits_only_python_reads_are_quarantined(
    hub: Hub, tmp_path: Path, columnar: bool
) -> None:
    f = tmp_path / "fills.csv"
    f.write_text("id,q,px,amt\n" + "\n".join(GOOD + BAD) + "\n", encoding="utf-8")
    r = publish_file(hub.ingest, f, "fills", columnar=columnar).result
    assert (r.accepted, r.rejected) == (len(GOOD), len(BAD)), r
    for why in r.rejections:
        assert "plain digits" in why.reason, why
    stored = _stored(hub)
    assert set(stored) == {"g1", "g2"}
    assert (stored["g1"]["q"], stored["g1"]["px"], stored["g1"]["amt"]) == (
        5,
        1.5,
        Decimal("1000.50"),
    )
    shas = {e["original_sha256"] for e in entries(hub.ingest, topic="fills")}
    assert {hashlib.sha256(row.encode()).hexdigest() for row in BAD} <= shas


@pytest.mark.parametrize("columnar", [True, False])
def test_json_decimal_strings_in_digits_only_python_reads_are_quarantined(
    hub: Hub, tmp_path: Path, columnar: bool
) -> None:
    good = {"id": "j1", "q": 1, "px": 1.0, "amt": "1000.50"}
    bad = [{**good, "id": f"k{i}", "amt": a} for i, a in enumerate(["1_000.50", "١٢.50", "１"])]
    f = tmp_path / "fills.jsonl"
    f.write_text("\n".join(json.dumps(v, ensure_ascii=False) for v in [good, *bad]) + "\n")
    r = publish_file(hub.ingest, f, "fills", columnar=columnar).result
    assert (r.accepted, r.rejected) == (1, len(bad)), r
    for why in r.rejections:
        assert "plain digits" in why.reason, why
    assert _stored(hub)["j1"]["amt"] == Decimal("1000.50")
    conv = serde.json_converter(
        hub.registry.parsed(hub.registry.get_version("fills-value", 1).id).parsed
    )
    for v in bad:
        with pytest.raises(serde.SerializationError):
            conv(v)
