"""The hub is no decryption oracle for ciphertext it is sent (session 16 review).

Topics are shared by every tenant, and a stored record's PII is ciphertext under its data
subject's key (``core.pii``): a consumer of the topic reads those bytes by design (a stock
Confluent deserializer reads the log schema). ``POST /v1/ingest/{topic}/avro`` decrypted a value
written with the log schema "as a copy of the hub's own records" and stored it again in the
sender's tenant: globex's publisher copied acme's stored account and sent it, and globex's
compliance officer then read acme's customer's name and email in clear.
"""

from __future__ import annotations

import json
import struct

from tests.adversarial._api import Api, basic

SUBJECT = "hub.accounts.AccountOpened"
ACCOUNT = {
    "account_id": "ACC-1",
    "customer_name": "Zed Secretname",
    "email": "zed@hidden.example",
    "date_of_birth": None,
    "country": "GB",
    "kyc_level": "BASIC",
    "risk_rating": "LOW",
    "base_currency": "EUR",
    "opened_at": "2026-11-25T10:00:00Z",
}


def test_another_tenants_stored_record_sent_back_is_refused_not_decrypted(api: Api) -> None:
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
    assert stored.value is not None and b"Secretname" not in stored.value  # ciphertext
    r = client.post(
        "/v1/ingest/accounts/avro",
        content=struct.pack(">I", len(stored.value)) + stored.value,
        headers={**gpub, "Content-Type": "application/vnd.hub.wire-batch"},
    )
    assert r.status_code == 200, r.text
    assert (r.json()["accepted"], r.json()["rejected"]) == (0, 1), r.text
    assert r.json()["rejections"][0]["reason_code"] == "ciphertext_refused"
    seen = []
    for p in range(3):
        r = client.get(f"/v1/topics/accounts/events?partition={p}", headers=gus)
        seen += [json.dumps(x["value"]) for x in r.json()["records"]]
    assert not [v for v in seen if "Secretname" in v], seen


def test_the_quarantined_ciphertext_is_not_replayed(api: Api) -> None:
    """An admin's replay (``quarantine.replay``) re-ingested the entry's original through the
    pipeline, which decrypts copies of the hub's records: the same oracle, one step later."""
    hub, client = api.hub, api.client
    apub = basic(hub.keys.create(["publisher"], principal="apat", tenant="acme").token)
    gpub = basic(hub.keys.create(["publisher"], principal="gpat", tenant="globex").token)
    r = client.post(
        "/v1/topics/accounts/events",
        json={"events": [{"value": ACCOUNT, "event_type": SUBJECT}]},
        headers=apub,
    )
    at = r.json()["offsets"][0]
    stored = next(iter(hub.log.scan("accounts", at["partition"], at["offset"])))
    assert stored.value is not None
    r = client.post(
        "/v1/ingest/accounts/avro",
        content=struct.pack(">I", len(stored.value)) + stored.value,
        headers={**gpub, "Content-Type": "application/vnd.hub.wire-batch"},
    )
    assert r.json()["rejected"] == 1, r.text
    (entry,) = client.get("/v1/quarantine", headers=api.admin).json()["records"]
    r = client.post("/v1/quarantine/replay", json={"offsets": [entry["offset"]]}, headers=api.admin)
    assert r.status_code == 422 and r.json()["reason"] == "not_replayable", r.text
