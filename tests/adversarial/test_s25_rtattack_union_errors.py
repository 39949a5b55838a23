"""Session 25, red team (docs/benchmarks/s25-redteam-attacker25.md): errors inside a union.

A bad value inside a union was named by the union's path only: ``{"leg": {"px": "1.255"}}`` for
a ``["null", Leg]`` field was quarantined as "/leg: no union branch accepts {'px': '1.255'}."
(neither the field ``px`` nor the scale named), so a publisher could not tell what to fix; the
same for an array or a map inside a union. Now, when the value's shape leaves one branch (one
record whose fields hold every key of the object, or the one map, array, ... branch of its
JSON kind), that branch's own error is given, with the inner path; when several or none fit,
the union's message stays (naming the branches tried).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from core.avro import serde
from core.avro.schema import parse_schema
from core.errors import SerializationError
from hub.bootstrap import Hub
from ingest.files import publish_file
from tests.adversarial._topics_hub import hub_with_topics

DEC = {"type": "bytes", "logicalType": "decimal", "precision": 10, "scale": 2}
LEG = {"type": "record", "name": "Leg", "fields": [{"name": "px", "type": DEC}]}
FEE = {
    "type": "record",
    "name": "Fee",
    "fields": [{"name": "amount", "type": DEC}, {"name": "ccy", "type": "string"}],
}
SCHEMA = {
    "type": "record",
    "name": "Deal",
    "fields": [
        {"name": "id", "type": "long"},
        {"name": "leg", "type": ["null", LEG]},
        {"name": "cost", "type": ["null", FEE, "string"]},
        {"name": "fills", "type": ["null", {"type": "array", "items": DEC}]},
        {"name": "marks", "type": ["null", {"type": "map", "values": "long"}]},
    ],
}
OK = {"leg": {"px": "1.25"}, "cost": "none", "fills": ["1"], "marks": {"a": 1}}


def _check(value: dict[str, Any]) -> str:
    parsed = parse_schema(json.dumps(SCHEMA))
    with pytest.raises(SerializationError) as e:
        serde.from_json({"id": 1, **OK, **value}, parsed.parsed)
    return e.value.message


CASES = [
    ({"leg": {"px": "1.255"}}, "/leg/px:", "more than 2 decimal places"),
    ({"leg": {"px": "abc"}}, "/leg/px:", "abc"),
    ({"leg": {}}, "/leg/px:", "required field is missing"),
    ({"cost": {"amount": "2.001", "ccy": "EUR"}}, "/cost/amount:", "more than 2 decimal places"),
    ({"cost": {"amount": "2.00", "ccy": 7}}, "/cost/ccy:", "7"),
    ({"fills": ["1", "0.125"]}, "/fills/1:", "more than 2 decimal places"),
    ({"marks": {"a": 1, "b": "x"}}, "/marks/b:", "x"),
]


@pytest.mark.parametrize(("value", "path", "why"), CASES)
def test_a_bad_value_inside_a_union_names_its_own_path_and_reason(
    value: dict[str, Any], path: str, why: str
) -> None:
    msg = _check(value)
    assert msg.startswith(path) and why in msg, msg


def test_an_object_no_branch_fits_still_names_the_union() -> None:
    # keys of neither record: no one branch to blame, the union's message stays
    msg = _check({"leg": {"px": "1.00", "qty": 3}})
    assert msg.startswith("/leg:") and "no union branch accepts" in msg, msg


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[Hub]:
    with hub_with_topics(tmp_path / "data", {"deals": SCHEMA}) as h:
        yield h


@pytest.mark.parametrize("columnar", [True, False])
def test_the_quarantine_reason_of_a_file_row_names_the_inner_field(
    hub: Hub, tmp_path: Path, columnar: bool
) -> None:
    f = tmp_path / "deals.jsonl"
    rows = [
        {"id": 1, **OK},
        {"id": 2, **OK, "leg": {"px": "101.255"}},
        {"id": 3, **OK, "fills": ["1", "2.333"]},
    ]
    f.write_text("".join(json.dumps(r) + "\n" for r in rows))
    r = publish_file(hub.ingest, f, "deals", columnar=columnar).result
    assert (r.accepted, r.rejected) == (1, 2), r
    reasons = sorted(w.reason for w in r.rejections)
    assert any(x.startswith("/fills/1:") and "2 decimal places" in x for x in reasons), reasons
    assert any(x.startswith("/leg/px:") and "2 decimal places" in x for x in reasons), reasons
