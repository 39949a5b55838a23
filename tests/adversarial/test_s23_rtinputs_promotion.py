"""Session 23 hostile inputs: a schema change that rounds numbers (docs/benchmarks/s23-redteam-
inputs23.md). The registry accepts ``long`` -> ``double`` as BACKWARD compatible (the Avro
specification lets a reader promote it), and both ingest paths that resolve an older writer to
the latest schema took records through it: a long 9007199254740993 written under version 1 was
stored as 9007199254740992.0, accepted, with no word anywhere. The wire path's strict check and
the Avro file path now refuse such a promotion (``LOSSY_PROMOTION``), naming the field."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import fastavro
import pytest

from core.avro import serde
from core.avro.compatibility import CompatibilityLevel, check_level, check_reader_writer
from core.avro.schema import parse_schema
from hub.bootstrap import Hub
from ingest.files import FileUnreadable, publish_file
from ingest.pipeline import RawRecord
from ingest.quarantine import entries
from tests.adversarial._topics_hub import hub_with_topics

EXACT = 2**53 + 1  # the first integer a double cannot hold


def _rec(t: Any) -> dict[str, Any]:
    return {"type": "record", "name": "Amount", "fields": [{"name": "n", "type": t}]}


V1 = _rec("long")
V2 = _rec("double")


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    data = tmp_path_factory.mktemp("s23promo") / "data"
    with hub_with_topics(data, {"amounts": V1, "counts": _rec("int")}) as h:
        h.registry.register("amounts-value", json.dumps(V2))  # BACKWARD accepts it
        h.registry.register("counts-value", json.dumps(_rec("long")))  # exact: int -> long
        yield h


def _ids(h: Hub, subject: str) -> list[int]:
    return [h.registry.get_version(subject, v).id for v in (1, 2)]


def _stored(h: Hub, topic: str) -> list[Any]:
    out = []
    for part, end in h.log.end_offsets(topic).items():
        for r in h.log.read(topic, part, 0, end) if end else []:
            if r.value is not None:
                out.append(serde.decode(r.value, h.registry.parsed(serde.split_wire(r.value)[0])))
    return out


@pytest.mark.parametrize(
    ("writer", "reader", "lossy"),
    [
        ("long", "double", True),
        ("long", "float", True),
        ("int", "float", True),
        ("int", "long", False),
        ("int", "double", False),
        ("float", "double", False),
        (["null", "long"], ["null", "double"], True),
        ({"type": "array", "items": "long"}, {"type": "array", "items": "double"}, True),
        ("long", ["null", "double", "long"], True),  # the first matching branch is the double
    ],
)
def test_strict_mode_names_every_promotion_that_can_round(
    writer: Any, reader: Any, lossy: bool
) -> None:
    w, r = parse_schema(json.dumps(_rec(writer))), parse_schema(json.dumps(_rec(reader)))
    assert check_reader_writer(r, w) == []  # the default (Confluent) mode allows them all
    found = check_reader_writer(r, w, strict_logical_types=True)
    assert [i.rule for i in found] == (["LOSSY_PROMOTION"] if lossy else [])
    if lossy:
        assert found[0].path.startswith("/fields/n") and "would round" in found[0].message
        strict = check_level(r, [w], CompatibilityLevel.BACKWARD, strict_logical_types=True)
        assert [i.rule for i in strict] == ["LOSSY_PROMOTION"]


def test_a_wire_record_of_the_old_long_version_is_quarantined_not_rounded(hub: Hub) -> None:
    v1, v2 = _ids(hub, "amounts-value")
    old = serde.encode(v1, hub.registry.parsed(v1), {"n": EXACT})
    new = serde.encode(v2, hub.registry.parsed(v2), {"n": 1.5})
    result = hub.ingest.ingest(
        "amounts", [RawRecord(old, kind="wire"), RawRecord(new, kind="wire")], source="s23-wire"
    )
    assert (result.accepted, result.rejected) == (1, 1), result
    (why,) = result.rejections
    assert why.reason_code == "incompatible_schema", why
    assert "/fields/n" in why.reason and "would round" in why.reason, why
    assert all(v["n"] != float(EXACT) for v in _stored(hub, "amounts"))
    (entry,) = [e for e in entries(hub.ingest, topic="amounts") if e["source"] == "s23-wire"]
    assert entry["original_sha256"] == hashlib.sha256(old).hexdigest()


@pytest.mark.parametrize("columnar", [True, False])
def test_an_avro_file_of_the_old_long_version_is_refused_not_rounded(
    hub: Hub, tmp_path: Path, columnar: bool
) -> None:
    f = tmp_path / "old.avro"
    with f.open("wb") as out:
        fastavro.writer(out, fastavro.parse_schema(V1), [{"n": 1}, {"n": EXACT}])
    before = _stored(hub, "amounts")
    with pytest.raises(FileUnreadable) as exc:
        publish_file(hub.ingest, f, "amounts", columnar=columnar)
    assert "LOSSY_PROMOTION" in str(exc.value) and "/fields/n" in str(exc.value)
    assert _stored(hub, "amounts") == before  # nothing of it published


@pytest.mark.parametrize("columnar", [True, False])
def test_exact_promotions_and_the_latest_version_are_still_taken(
    hub: Hub, tmp_path: Path, columnar: bool
) -> None:
    f = tmp_path / "ints.avro"
    with f.open("wb") as out:
        fastavro.writer(out, fastavro.parse_schema(_rec("int")), [{"n": 2**31 - 1}])
    assert publish_file(hub.ingest, f, "counts", columnar=columnar).result.accepted == 1
    g = tmp_path / "latest.avro"
    with g.open("wb") as out:
        fastavro.writer(out, fastavro.parse_schema(V2), [{"n": 0.1}])
    assert publish_file(hub.ingest, g, "amounts", columnar=columnar).result.accepted == 1
    assert {"n": 2**31 - 1} in _stored(hub, "counts")
    v1, _ = _ids(hub, "counts-value")
    wire = serde.encode(v1, hub.registry.parsed(v1), {"n": -(2**31)})
    assert (
        hub.ingest.ingest("counts", [RawRecord(wire, kind="wire")], source="s23-w2").accepted == 1
    )
