"""Session 23 hostile inputs: timestamp text whose value changed on the way in (docs/benchmarks/
s23-redteam-inputs23.md). The columnar readers take only strict RFC 3339 text and hand every
other form to the per-record reference (``serde.from_json``), which read it with Python's
``fromisoformat`` and stored what fastavro made of the result:

- ``2026-01-01T10:00:00`` (no offset) in a ``timestamp-*`` field was stored as 10:00 UTC,
  whatever zone the sender meant;
- ``10:00:00+05:30`` in a ``local-timestamp-*`` field was stored as 10:00, the offset dropped
  (``10:00:00-08:00`` gave the same value);
- ``10:00:00.999999Z`` in a ``timestamp-millis`` field was stored as .999, and
  ``.123456789Z`` (nanoseconds) in a ``timestamp-micros`` field as .123456.

Each was accepted with no word. Now each such record is quarantined with its original bytes and
a reason naming the problem, on every path (JSON lines and CSV files, columnar or not, the
ingest API's records, the strict publish API)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from core.avro import serde
from core.errors import HubError
from hub.bootstrap import Hub
from ingest.files import publish_file
from ingest.pipeline import RawRecord
from ingest.quarantine import entries
from tests.adversarial._topics_hub import hub_with_topics


def _rec(logical: str) -> dict[str, Any]:
    return {
        "type": "record",
        "name": "Tick",
        "fields": [
            {"name": "id", "type": "string"},
            {"name": "at", "type": {"type": "long", "logicalType": logical}},
        ],
    }


# (topic's logical type, text, what the reason names)
BAD = [
    ("timestamp-micros", "2026-01-01T10:00:00", "UTC offset"),
    ("timestamp-micros", "2026-01-01", "UTC offset"),
    ("timestamp-millis", "2026-01-01T10:00:00", "UTC offset"),
    ("timestamp-millis", "2026-01-01T10:00:00.999999Z", "fractional seconds"),
    ("timestamp-millis", "2026-01-01T10:00:00.1234+00:00", "fractional seconds"),
    ("timestamp-micros", "2026-01-01T10:00:00.123456789Z", "fractional seconds"),
    ("local-timestamp-millis", "2026-01-01T10:00:00.0001", "fractional seconds"),
    ("local-timestamp-millis", "2026-01-01T10:00:00+05:30", "UTC offset"),
    ("local-timestamp-millis", "2026-01-01T10:00:00Z", "UTC offset"),
]
# (logical type, text, the instant stored): exact forms still taken, trailing zeros included
GOOD = [
    ("timestamp-micros", "2026-01-01T10:00:00.123456Z", datetime(2026, 1, 1, 10, 0, 0, 123456)),
    ("timestamp-millis", "2026-01-01T10:00:00.123000Z", datetime(2026, 1, 1, 10, 0, 0, 123000)),
    ("timestamp-micros", "2026-01-01T10:00:00+01:00", datetime(2026, 1, 1, 9)),
    ("timestamp-millis", "2026-01-01T10:00:00.5Z", datetime(2026, 1, 1, 10, 0, 0, 500000)),
]
TOPICS = ("timestamp-micros", "timestamp-millis", "local-timestamp-millis")


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[Hub]:
    schemas = {t: _rec(t) for t in TOPICS}
    with hub_with_topics(tmp_path / "data", schemas) as h:
        yield h


def _stored(h: Hub, topic: str) -> dict[str, Any]:
    out = {}
    for part, end in h.log.end_offsets(topic).items():
        for r in h.log.read(topic, part, 0, end) if end else []:
            if r.value is not None:
                v = serde.decode(r.value, h.registry.parsed(serde.split_wire(r.value)[0]))
                out[v["id"]] = v["at"]
    return out


def _lines(cases: list[tuple[str, str, Any]], topic: str, prefix: str) -> list[bytes]:
    return [
        json.dumps({"id": f"{prefix}{i}", "at": text}).encode()
        for i, (t, text, _) in enumerate(cases)
        if t == topic
    ]


def _check(h: Hub, topic: str, bad: list[bytes]) -> None:
    stored = _stored(h, topic)
    for line in bad:
        assert json.loads(line)["id"] not in stored, line
    for i, (t, _, at) in enumerate(GOOD):
        if t == topic:
            assert stored[f"g{i}"].replace(tzinfo=None) == at, stored
    quarantined = {e["original_sha256"]: e for e in entries(h.ingest, limit=1000, topic=topic)}
    for line, (_, _, named) in zip(bad, [c for c in BAD if c[0] == topic], strict=True):
        sha = hashlib.sha256(line).hexdigest()
        if sha not in quarantined:  # a CSV row's original is the row, not the JSON line
            continue
        assert named in quarantined[sha]["reason"], quarantined[sha]


@pytest.mark.parametrize("columnar", [True, False])
def test_json_lines_files_quarantine_timestamps_that_would_change(
    hub: Hub, tmp_path: Path, columnar: bool
) -> None:
    for topic in TOPICS:
        bad, good = _lines(BAD, topic, "b"), _lines(GOOD, topic, "g")
        f = tmp_path / f"{topic}.jsonl"
        f.write_bytes(b"\n".join(good + bad) + b"\n")
        r = publish_file(hub.ingest, f, topic, columnar=columnar).result
        assert (r.accepted, r.rejected) == (len(good), len(bad)), (topic, r)
        _check(hub, topic, bad)
        for line in bad:
            sha = hashlib.sha256(line).hexdigest()
            assert any(e["original_sha256"] == sha for e in entries(hub.ingest, limit=1000))


@pytest.mark.parametrize("columnar", [True, False])
def test_csv_files_quarantine_timestamps_that_would_change(
    hub: Hub, tmp_path: Path, columnar: bool
) -> None:
    for topic in TOPICS:
        bad = [f"b{i},{text}" for i, (t, text, _) in enumerate(BAD) if t == topic]
        good = [f"g{i},{text}" for i, (t, text, _) in enumerate(GOOD) if t == topic]
        f = tmp_path / f"{topic}.csv"
        f.write_text("id,at\n" + "\n".join(good + bad) + "\n")
        r = publish_file(hub.ingest, f, topic, columnar=columnar).result
        assert (r.accepted, r.rejected) == (len(good), len(bad)), (topic, r)
        for why in r.rejections:
            assert "UTC offset" in why.reason or "fractional seconds" in why.reason, why
        stored = _stored(hub, topic)
        assert not any(k.startswith("b") for k in stored), stored
        shas = {e["original_sha256"] for e in entries(hub.ingest, limit=1000, topic=topic)}
        assert {hashlib.sha256(row.encode()).hexdigest() for row in bad} <= shas


def test_ingest_records_and_the_publish_converters_refuse_them_too(hub: Hub) -> None:
    for topic in TOPICS:
        bad, good = _lines(BAD, topic, "b"), _lines(GOOD, topic, "g")
        raws = [RawRecord(x, value=json.loads(x)) for x in good + bad]
        r = hub.ingest.ingest(topic, raws, source=f"s23-{topic}")
        assert (r.accepted, r.rejected) == (len(good), len(bad)), (topic, r)
        _check(hub, topic, bad)
        for line in bad:
            with pytest.raises(HubError) as exc:
                serde.from_json(json.loads(line), hub.registry.parsed(_latest(hub, topic)).parsed)
            assert "UTC offset" in str(exc.value) or "fractional seconds" in str(exc.value)
            conv = serde.json_converter(hub.registry.parsed(_latest(hub, topic)).parsed)
            with pytest.raises(HubError):
                conv(json.loads(line))


def _latest(h: Hub, topic: str) -> int:
    return h.registry.get_version(f"{topic}-value", "latest").id


def test_an_instant_with_its_offset_is_stored_as_that_instant() -> None:
    """The accepted forms keep their meaning (the offset applied, never dropped)."""
    schema = serde.json_converter(
        {
            "type": "record",
            "name": "T",
            "fields": [{"name": "at", "type": {"type": "long", "logicalType": "timestamp-micros"}}],
        }
    )
    got = schema({"at": "2026-01-01T10:00:00.000001-05:00"})["at"]
    assert got.astimezone(UTC) == datetime(2026, 1, 1, 15, 0, 0, 1, tzinfo=UTC)
