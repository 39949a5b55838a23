"""Session 25, red team (docs/benchmarks/s25-redteam-attacker25.md): a lone surrogate in JSON text.

JSON may escape a UTF-16 surrogate without its pair (``"\\ud800"``); Python's parser gives a
string no UTF-8 can encode. The record was quarantined with the encoder's own words, "Record does
not match schema D: 'utf-8' codec can't encode character '\\ud800' in position 0: surrogates not
allowed", naming neither the field nor what to send instead (the field may be one of many, or a
map's key, deep in the record). Now the reason names the value's path (``/leg/name``, the map
``/tags`` and its key) and says to send the character's pair or another character; nothing of
the other records of the batch changes.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from hub.api.app import create_app
from hub.bootstrap import Hub
from ingest import quarantine
from tests.adversarial._api import basic, issue_key
from tests.adversarial._topics_hub import hub_with_topics

LEG = {"type": "record", "name": "Leg", "fields": [{"name": "name", "type": "string"}]}
SCHEMA = {
    "type": "record",
    "name": "D",
    "fields": [
        {"name": "id", "type": "long"},
        {"name": "s", "type": "string"},
        {"name": "leg", "type": ["null", LEG]},
        {"name": "tags", "type": {"type": "map", "values": "string"}},
        {"name": "notes", "type": {"type": "array", "items": "string"}},
    ],
}
OK = b'"s": "ok", "leg": {"name": "x"}, "tags": {"k": "v"}, "notes": ["a"]'
BAD = {
    "/s": b'"s": "a\\ud800b", "leg": null, "tags": {}, "notes": []',
    "/leg/name": b'"s": "ok", "leg": {"name": "\\udfff"}, "tags": {}, "notes": []',
    "/tags/k": b'"s": "ok", "leg": null, "tags": {"k": "\\ud83d"}, "notes": []',
    "/tags": b'"s": "ok", "leg": null, "tags": {"\\ud83d": "v"}, "notes": []',
    "/notes/1": b'"s": "ok", "leg": null, "tags": {}, "notes": ["a", "\\ud800"]',
}


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[Hub]:
    with hub_with_topics(tmp_path / "data", {"deals": SCHEMA}) as h:
        yield h


@pytest.mark.parametrize("media", ["application/json", "application/x-ndjson"])
def test_a_lone_surrogate_is_refused_naming_its_field(hub: Hub, media: str) -> None:
    key = basic(issue_key(hub, "publisher", "gus", "globex"))
    rows = [b'{"id": 0, ' + OK + b"}"] + [
        b'{"id": %d, ' % (i + 1) + body + b"}" for i, body in enumerate(BAD.values())
    ]
    if media == "application/json":
        body = b'{"events": [' + b", ".join(rows) + b"]}"
    else:
        body = b"\n".join(rows)
    with TestClient(create_app(hub), raise_server_exceptions=False) as c:
        r = c.post("/v1/ingest/deals", content=body, headers={**key, "Content-Type": media})
    assert r.status_code == 200, r.text
    out = r.json()
    assert (out["accepted"], out["rejected"]) == (1, len(BAD)), json.dumps(out, indent=1)
    reasons = {w["index"]: w["reason"] for w in out["rejections"]}
    for i, path in enumerate(BAD, start=1):
        why = reasons[i]
        assert why.startswith(path + ":") and "surrogate" in why, (path, why)
        assert "send" in why, why


PEOPLE = {
    "type": "record",
    "name": "P",
    "fields": [
        {"name": "account_id", "type": "string", "hub.data_subject": True},
        {"name": "name", "type": "string", "classification": "pii"},
        {"name": "mail", "type": ["null", "string"], "classification": "pii"},
    ],
}
PEOPLE_BAD = {  # the reason of each, after the good record 0
    b'{"account_id": "a2", "name": "x\\ud800", "mail": null}': "/name:",
    b'{"account_id": "a3", "name": "ok", "mail": "\\udc00"}': "/mail:",
    b'{"account_id": "\\udc00", "name": "ok", "mail": null}': "Data subject id",
    b'{"account_id": "b\\u0000c", "name": "ok", "mail": null}': "Data subject id",
    b'{"account_id": "' + b"z" * 2000 + b'", "name": "ok", "mail": null}': "Data subject id",
}


@pytest.mark.parametrize("media", ["application/json", "application/x-ndjson"])
def test_a_pii_record_with_a_surrogate_or_an_unusable_subject_is_quarantined_not_a_500(
    tmp_path: Path, media: str
) -> None:
    """Before: the PII field's own encoder (``core.pii``) and the quarantine's seal under the
    record's subject raised ``UnicodeEncodeError`` / an unhandled ``InvalidInput``: HTTP 500
    for the whole batch, the good records with it; a connector would retry it for ever."""
    with hub_with_topics(tmp_path / "data", {"people": PEOPLE}) as h:
        key = basic(issue_key(h, "publisher", "gus", "globex"))
        rows = [b'{"account_id": "a1", "name": "ok", "mail": null}', *PEOPLE_BAD]
        if media == "application/json":
            body = b'{"events": [' + b", ".join(rows) + b"]}"
        else:
            body = b"\n".join(rows)
        with TestClient(create_app(h), raise_server_exceptions=False) as c:
            r = c.post("/v1/ingest/people", content=body, headers={**key, "Content-Type": media})
        assert r.status_code == 200, r.text
        out = r.json()
        assert (out["accepted"], out["rejected"]) == (1, len(PEOPLE_BAD)), out
        reasons = {w["index"]: w["reason"] for w in out["rejections"]}
        for i, start in enumerate(PEOPLE_BAD.values(), start=1):
            assert reasons[i].startswith(start), (start, reasons[i])
        assert "surrogate" in reasons[1] and "surrogate" in reasons[3], reasons
        kept = quarantine.entries(h.ingest, limit=100)
        assert len(kept) == len(PEOPLE_BAD)  # each kept, sealed (the originals hold PII)
        assert all(e.get("sealed_for") for e in kept), kept
