"""Session 23, inputs left (docs/benchmarks/s23-inputsleft23.md): a plain number read as a time.
The registry's default rules (Confluent's) ignore logical types, so a version 2 that turns a
``long`` into a ``timestamp-millis`` (or back) is accepted. The wire path refuses an old record
through it (``LOGICAL_TYPE_MISMATCH``: the number's meaning changes, say from seconds to
milliseconds), but an Avro file written with version 1 was taken: 1767261600 (seconds) stored as
1970-01-21T10:54:21.600Z. Now the file path refuses the whole file as the wire path refuses the
record, naming the field; a change between two time units (read by value, finer times
quarantined) and the latest version itself are still taken."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import fastavro
import pytest

from core.avro import serde
from hub.bootstrap import Hub
from ingest.files import FileUnreadable, publish_file
from ingest.pipeline import RawRecord
from ingest.quarantine import entries
from tests.adversarial._topics_hub import hub_with_topics

SECONDS = 1_767_261_600  # 2026-01-01T10:00:00Z in seconds


def _rec(t: Any) -> dict[str, Any]:
    return {
        "type": "record",
        "name": "Tick",
        "fields": [{"name": "id", "type": "long"}, {"name": "at", "type": t}],
    }


MILLIS = {"type": "long", "logicalType": "timestamp-millis"}
V1 = {  # plain long, at the top and inside an array
    "plain": _rec("long"),
    "nested": _rec({"type": "array", "items": "long"}),
    "typed": _rec(MILLIS),
}
V2 = {
    "plain": _rec(MILLIS),
    "nested": _rec({"type": "array", "items": MILLIS}),
    "typed": _rec("long"),
}
ROW = {"plain": SECONDS, "nested": [SECONDS], "typed": SECONDS * 1000}


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    data = tmp_path_factory.mktemp("s23untyped") / "data"
    with hub_with_topics(data, V1) as h:
        for topic, v2 in V2.items():
            h.registry.register(f"{topic}-value", json.dumps(v2))  # default rules accept it
        yield h


def _stored(h: Hub, topic: str) -> list[Any]:
    out = []
    for part, end in h.log.end_offsets(topic).items():
        for r in h.log.read(topic, part, 0, end) if end else []:
            out.append(serde.decode(r.value, h.registry.parsed(serde.split_wire(r.value)[0])))
    return out


def _v1_datum(topic: str) -> dict[str, Any]:
    at = ROW[topic]
    if topic == "typed":
        at = serde.from_json({"id": 1, "at": "2026-01-01T10:00:00Z"}, _parsed(V1[topic]))["at"]
    return {"id": 1, "at": at}


def _parsed(schema: dict[str, Any]) -> Any:
    return fastavro.parse_schema(schema)


@pytest.mark.parametrize("topic", ["plain", "nested", "typed"])
def test_the_wire_path_refuses_a_number_read_as_a_time(hub: Hub, topic: str) -> None:
    v1 = hub.registry.get_version(f"{topic}-value", 1).id
    old = serde.encode(v1, hub.registry.parsed(v1), _v1_datum(topic))
    result = hub.ingest.ingest(topic, [RawRecord(old, kind="wire")], source=f"s23-{topic}")
    assert (result.accepted, result.rejected) == (0, 1), result
    assert "LOGICAL_TYPE_MISMATCH" in result.rejections[0].reason or (
        "logical types" in result.rejections[0].reason
    )
    (entry,) = [e for e in entries(hub.ingest, topic=topic) if e["source"] == f"s23-{topic}"]
    assert entry["original_sha256"] == hashlib.sha256(old).hexdigest()


@pytest.mark.parametrize("columnar", [True, False])
@pytest.mark.parametrize("topic", ["plain", "nested", "typed"])
def test_an_avro_file_whose_numbers_would_be_read_as_times_is_refused(
    hub: Hub, tmp_path: Path, topic: str, columnar: bool
) -> None:
    f = tmp_path / "old.avro"
    with f.open("wb") as out:
        fastavro.writer(out, _parsed(V1[topic]), [_v1_datum(topic)])
    before = _stored(hub, topic)
    with pytest.raises(FileUnreadable) as exc:
        publish_file(hub.ingest, f, topic, columnar=columnar)
    assert "LOGICAL_TYPE_MISMATCH" in str(exc.value) and "/fields/at" in str(exc.value), exc
    assert _stored(hub, topic) == before  # nothing of it published


@pytest.mark.parametrize("columnar", [True, False])
def test_the_latest_version_and_a_change_of_time_unit_are_still_taken(
    hub: Hub, tmp_path: Path, columnar: bool
) -> None:
    f = tmp_path / "new.avro"
    with f.open("wb") as out:
        fastavro.writer(out, _parsed(V2["plain"]), [_v1_datum("typed")])
    assert publish_file(hub.ingest, f, "plain", columnar=columnar).result.accepted == 1
    micros = _rec({"type": "long", "logicalType": "timestamp-micros"})
    hub.registry.register("plain-value", json.dumps(micros))  # default rules: both are longs
    # a millis file read through the latest (micros) version: the same instant, taken
    g = tmp_path / "new2.avro"
    with g.open("wb") as out:
        fastavro.writer(out, _parsed(V2["plain"]), [_v1_datum("typed") | {"id": 2}])
    assert publish_file(hub.ingest, g, "plain", columnar=columnar).result.accepted == 1
    at = _v1_datum("typed")["at"]
    assert [v["at"] for v in _stored(hub, "plain")][-2:] == [at, at]
