"""A JSON object naming a member twice is refused on every data path (s19).

``{"s": "low", "s": "high"}`` was accepted everywhere, the last value winning (Python's ``json``
and Arrow), while the hub keeps the original bytes: a first-wins parser reading that original
(an auditor's tool, a downstream system) reads another record than the one stored. The HTTP
JSON routes now answer 422 ``duplicate_key`` naming the member; a JSON lines file or NDJSON
body quarantines the line (reason ``duplicate_key``, original bytes kept) and keeps the rest;
a replay of such a quarantined original is refused again.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hub.bootstrap import bootstrap
from hub.settings import load_settings
from ingest import quarantine
from ingest.files import publish_file
from tests.adversarial._api import Api

SCHEMA = {
    "type": "record",
    "name": "T",
    "fields": [{"name": "s", "type": "string"}, {"name": "n", "type": "long"}],
}
DUP = b'{"s":"low","n":1,"s":"high"}'


@pytest.mark.parametrize(
    "body",
    [
        b'{"events":[{"value":' + DUP + b"}]}",
        b'{"events":[{"value":{"s":"a","n":1}}],"events":[{"value":{"s":"b","n":2}}]}',
        b'{"events":[{"value":{"s":"a","n":1},"key":"k1","key":"k2"}]}',
    ],
)
def test_http_publish_refuses_a_repeated_member(api: Api, body: bytes) -> None:
    api.topic("dup.pub", SCHEMA)
    headers = {**api.admin, "Content-Type": "application/json"}
    r = api.client.post("/v1/topics/dup.pub/events", content=body, headers=headers)
    assert r.status_code == 422, r.text
    assert "duplicate_key" in r.text and "appears twice" in r.text
    assert sum(api.hub.log.end_offsets("dup.pub").values()) == 0


@pytest.mark.parametrize(
    "body",
    [
        b'{"events":[{"s":"a","n":1},' + DUP + b"]}",
        b'{"events":[{"s":"a","n":1},{"value":' + DUP + b"}]}",
        b'{"events":[{"s":"a","n":1}],"events":[{"s":"b","n":2}]}',
    ],
)
def test_http_ingest_json_body_refuses_a_repeated_member(api: Api, body: bytes) -> None:
    api.topic("dup.ing", SCHEMA)
    headers = {**api.admin, "Content-Type": "application/json"}
    r = api.client.post("/v1/ingest/dup.ing", content=body, headers=headers)
    assert r.status_code == 422, r.text
    assert "duplicate_key" in r.text and ("'s'" in r.text or "'events'" in r.text)
    assert sum(api.hub.log.end_offsets("dup.ing").values()) == 0


def test_http_ingest_ndjson_quarantines_only_the_ambiguous_line(api: Api) -> None:
    api.topic("dup.nd", SCHEMA)
    headers = {**api.admin, "Content-Type": "application/x-ndjson"}
    body = b'{"s":"a","n":1}\n' + DUP + b'\n{"s":"c","n":3}\n'
    r = api.client.post("/v1/ingest/dup.nd", content=body, headers=headers)
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["accepted"] == 2 and out["rejected"] == 1, out
    [rej] = out["rejections"]
    assert rej["index"] == 1 and rej["reason_code"] == "duplicate_key" and "'s'" in rej["reason"]


@pytest.mark.parametrize("columnar", [True, False])
def test_a_json_lines_file_quarantines_the_ambiguous_line(tmp_path: Path, columnar: bool) -> None:
    h = bootstrap(
        load_settings(environ={"HUB_PROJECTION_AUTOSTART": "false"}, data_dir=tmp_path / "d")
    )
    try:
        h.log.create_topic("t", 1)
        h.registry.register("t-value", json.dumps(SCHEMA))
        f = tmp_path / "dup.jsonl"
        nested = b'{"s":"x","n":2,"n":3}'
        f.write_bytes(b'{"s":"a","n":1}\n' + DUP + b"\n" + nested + b'\n{"s":"c","n":4}\n')
        result = publish_file(h.ingest, f, "t", columnar=columnar).result
        assert result.accepted == 2
        got = {r.index: (r.reason_code, r.reason) for r in result.rejections}
        assert sorted(got) == [1, 2]
        assert got[1][0] == got[2][0] == "duplicate_key"
        assert "'s'" in got[1][1] and "'n'" in got[2][1]
        listed = quarantine.entries(h.ingest)
        assert len(listed) == 2
        originals = [quarantine.decode_entry(h.ingest, e["offset"])["original"] for e in listed]
        assert originals == [DUP, nested]
        before = sum(h.log.end_offsets("t").values())
        # the kept original is not accepted on replay either
        out = quarantine.replay(h.ingest, [listed[0]["offset"]])
        assert [r.reason_code for r in out["t"].rejections] == ["duplicate_key"]
        assert sum(h.log.end_offsets("t").values()) == before
    finally:
        h.close()
