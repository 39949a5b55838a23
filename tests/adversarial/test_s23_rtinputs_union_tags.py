"""Session 23 hostile inputs: a JSON object that is both a tagged union value and a map or
record (docs/benchmarks/s23-redteam-inputs23.md). ``serde.from_json`` takes union values untagged
and, as Avro's JSON encoding writes them, tagged (``{"string": "x"}``). For a field of type
``["null", "string", map<string>]`` the map ``{"string": "x"}`` was read as the tagged string
"x" and stored so, accepted: and a stored map comes back from the hub's own JSON
(``serde.to_json``) in exactly that form, so exporting and re-ingesting a record changed it.
Such an object is now quarantined naming the ambiguity and how to send each meaning."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from core.avro import serde
from hub.bootstrap import Hub
from ingest.files import publish_file
from ingest.pipeline import RawRecord
from ingest.quarantine import entries
from tests.adversarial._topics_hub import hub_with_topics

FEE = {"type": "record", "name": "Fee", "fields": [{"name": "long", "type": "long"}]}
SCHEMA = {
    "type": "record",
    "name": "Tagged",
    "fields": [
        {"name": "id", "type": "string"},
        {"name": "attrs", "type": ["null", "string", {"type": "map", "values": "string"}]},
        {"name": "fee", "type": ["null", "long", FEE], "default": None},
    ],
}


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[Hub]:
    with hub_with_topics(tmp_path / "data", {"tagged": SCHEMA}) as h:
        yield h


def _stored(h: Hub) -> dict[str, Any]:
    out = {}
    for part, end in h.log.end_offsets("tagged").items():
        for r in h.log.read("tagged", part, 0, end) if end else []:
            v = serde.decode(r.value, h.registry.parsed(serde.split_wire(r.value)[0]))
            out[v["id"]] = v
    return out


AMBIGUOUS = [
    {"id": "a1", "attrs": {"string": "x"}},  # the map {"string": "x"}, or the string "x"?
    {"id": "a2", "attrs": None, "fee": {"long": 5}},  # the long 5, or Fee(long=5)?
]
CLEAR = [
    ({"id": "c1", "attrs": "x"}, "x", None),
    ({"id": "c2", "attrs": {"map": {"string": "x"}}}, {"string": "x"}, None),
    ({"id": "c3", "attrs": {"a": "b", "c": "d"}}, {"a": "b", "c": "d"}, None),
    ({"id": "c4", "attrs": None, "fee": 5}, None, 5),
    ({"id": "c5", "attrs": None, "fee": {"Fee": {"long": 5}}}, None, {"long": 5}),
    ({"id": "c6", "attrs": {"string": "x", "other": "y"}}, {"string": "x", "other": "y"}, None),
]


def _lines(values: list[dict[str, Any]]) -> list[bytes]:
    return [json.dumps(v).encode() for v in values]


def test_an_object_both_tagged_and_a_map_or_record_is_quarantined(hub: Hub) -> None:
    bad, good = _lines(AMBIGUOUS), _lines([c[0] for c in CLEAR])
    r = hub.ingest.ingest(
        "tagged", [RawRecord(x, value=json.loads(x)) for x in good + bad], source="s23-tags"
    )
    assert (r.accepted, r.rejected) == (len(good), len(bad)), r
    for why in r.rejections:
        assert "ambiguous" in why.reason, why
    stored = _stored(hub)
    assert set(stored) == {c[0]["id"] for c in CLEAR}
    for value, attrs, fee in CLEAR:
        assert (stored[value["id"]]["attrs"], stored[value["id"]]["fee"]) == (attrs, fee)
    shas = {e["original_sha256"] for e in entries(hub.ingest, topic="tagged")}
    assert {hashlib.sha256(x).hexdigest() for x in bad} <= shas


@pytest.mark.parametrize("columnar", [True, False])
def test_a_stored_map_exported_as_json_is_not_read_back_as_another_value(
    hub: Hub, tmp_path: Path, columnar: bool
) -> None:
    """The hub's own JSON of a stored record, published again, is that record or refused."""
    r = hub.ingest.ingest(
        "tagged",
        [RawRecord(b"{}", value={"id": "m", "attrs": {"map": {"string": "x"}}})],
        source="s23-tags-export",
    )
    assert r.accepted == 1
    exported = serde.to_json(_stored(hub)["m"])
    assert exported["attrs"] == {"string": "x"}
    f = tmp_path / "again.jsonl"
    f.write_text(json.dumps({**exported, "id": "m2"}) + "\n")
    again = publish_file(hub.ingest, f, "tagged", columnar=columnar).result
    stored = _stored(hub)
    if again.accepted:
        assert stored["m2"]["attrs"] == {"string": "x"}, stored["m2"]
    else:
        assert "ambiguous" in again.rejections[0].reason
        assert "m2" not in stored
