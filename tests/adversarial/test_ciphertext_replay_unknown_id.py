"""A quarantined wire value whose writer id became a log form later is not replayed
(session 16 review, second pass).

The first pass refused log-form values at ``POST /v1/ingest/{topic}/avro`` (reason
``ciphertext_refused``) and made those entries unreplayable, by their reason. But a value naming
a schema id nobody holds yet is quarantined as ``unknown_schema_id``: globex's publisher took
acme's stored account, rewrote its 5-byte header to the next free ids, sent it, then registered
a compatible version of the subject's log form with one more field of type ``null`` (zero bytes,
so acme's bytes decode under it unchanged) that took one of those ids. Replaying the entry
decrypted acme's customer into a globex record.
"""

from __future__ import annotations

import json
import struct

from tests.adversarial._api import Api, basic
from tests.adversarial.test_ciphertext_oracle import ACCOUNT, SUBJECT


def test_a_value_whose_id_later_names_a_log_form_is_not_replayed(api: Api) -> None:
    hub, client = api.hub, api.client
    apub = basic(hub.keys.create(["publisher"], principal="apat", tenant="acme").token)
    gpub = basic(hub.keys.create(["publisher"], principal="gpat", tenant="globex").token)
    gus = basic(hub.keys.create(["compliance_officer"], principal="gus", tenant="globex").token)
    r = client.post(
        "/v1/topics/accounts/events",
        json={"events": [{"value": ACCOUNT, "event_type": SUBJECT}]},
        headers=apub,
    )
    assert r.status_code == 201, r.text
    at = r.json()["offsets"][0]
    stored = next(iter(hub.log.scan("accounts", at["partition"], at["offset"])))
    assert stored.value is not None and b"Secretname" not in stored.value
    r = client.get("/subjects", headers=gpub)
    ids = [
        client.get(f"/subjects/{s}/versions/latest", headers=gpub).json()["id"] for s in r.json()
    ]
    top = max(ids)
    body = b""
    for n in range(top + 1, top + 4):
        value = stored.value[:1] + struct.pack(">I", n) + stored.value[5:]
        body += struct.pack(">I", len(value)) + value
    r = client.post(
        "/v1/ingest/accounts/avro",
        content=body,
        headers={**gpub, "Content-Type": "application/vnd.hub.wire-batch"},
    )
    assert r.status_code == 200 and r.json()["rejected"] == 3, r.text
    assert {x["reason_code"] for x in r.json()["rejections"]} == {"unknown_schema_id"}
    log_form = json.loads(
        client.get(f"/subjects/{SUBJECT}/versions/latest", headers=gpub).json()["schema"]
    )
    log_form["fields"].append({"name": "zz_nothing", "type": "null", "default": None})
    hpub = basic(hub.keys.create(["publisher"], principal="hpat").token)  # shared subject
    r = client.post(
        f"/subjects/{SUBJECT}/versions", json={"schema": json.dumps(log_form)}, headers=hpub
    )
    assert r.status_code == 200, r.text
    taken = r.json()["id"]
    assert top < taken <= top + 3, r.text
    entries = client.get("/v1/quarantine", headers=api.admin).json()["records"]
    refused = []
    for e in entries:
        r = client.post("/v1/quarantine/replay", json={"offsets": [e["offset"]]}, headers=api.admin)
        assert r.status_code in (200, 422), r.text
        if r.status_code == 422:
            assert r.json()["reason"] == "not_replayable", r.text
            refused.append(e["offset"])
    assert len(refused) == 1, refused  # the one whose id is the log form; the others stay unknown
    seen = []
    for p in range(3):
        r = client.get(f"/v1/topics/accounts/events?partition={p}", headers=gus)
        seen += [json.dumps(x["value"]) for x in r.json()["records"]]
    assert not [v for v in seen if "Secretname" in v], seen
