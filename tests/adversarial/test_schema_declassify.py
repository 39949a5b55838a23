"""A new schema version may not declassify PII (session 16 review, attacker view).

Subjects are shared by every tenant's producers, and Avro compatibility ignores the
``classification`` attribute (``bytes`` and ``string`` even promote to each other). So globex's
publisher (``schema.write``) registered ``hub.accounts.AccountOpened`` v2: the same fields with
``customer_name`` and ``email`` plain unclassified strings, plus one optional field. acme's next
account was then stored in clear (no crypto-shredding on erasure) and acme's analyst, without
``pii.read``, read the customer's name and email unmasked.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.adversarial._api import Api, basic

SUBJECT = "hub.accounts.AccountOpened"
ACCOUNT = {
    "account_id": "ACC-9",
    "customer_name": "Zed Secretname",
    "email": "zed@hidden.example",
    "date_of_birth": None,
    "country": "GB",
    "kyc_level": "BASIC",
    "risk_rating": "LOW",
    "base_currency": "EUR",
    "opened_at": "2026-11-25T10:00:00Z",
}


def _latest(api: Api, headers: dict[str, str]) -> dict[str, Any]:
    r = api.client.get(f"/subjects/{SUBJECT}/versions/latest", headers=headers)
    assert r.status_code == 200, r.text
    return r.json()


def _declassified(schema: dict[str, Any], *, plain: bool, drop_class: bool) -> dict[str, Any]:
    out = json.loads(json.dumps(schema))
    for f in out["fields"]:
        if f["name"] not in ("customer_name", "email"):
            continue
        if drop_class:
            f.pop("classification", None)
        if plain:
            f.pop("hub.encrypted", None)
            f["type"] = f.pop("hub.plaintype")
    out["fields"].append({"name": "zz_extra", "type": ["null", "string"], "default": None})
    return out


@pytest.mark.parametrize(
    ("plain", "drop_class"),
    [(True, True), (False, True)],
    ids=["clear-unclassified", "encrypted-unclassified"],
)
def test_a_tenants_publisher_cannot_declassify_a_shared_subject(
    api: Api, plain: bool, drop_class: bool
) -> None:
    hub = api.hub
    gpub = basic(hub.keys.create(["publisher"], principal="gpat", tenant="globex").token)
    apub = basic(hub.keys.create(["publisher"], principal="apat", tenant="acme").token)
    ann = basic(hub.keys.create(["analyst"], principal="ann", tenant="acme").token)
    # a tenant's publisher may not change a shared subject at all now (test_s19_tenancy_
    # registry); the classification check still holds for the hub's own publishers
    hpub = basic(hub.keys.create(["publisher"], principal="hpat").token)
    before = _latest(api, gpub)
    evil = _declassified(json.loads(before["schema"]), plain=plain, drop_class=drop_class)
    r = api.client.post(
        f"/subjects/{SUBJECT}/versions", json={"schema": json.dumps(evil)}, headers=gpub
    )
    assert r.status_code == 403 and r.json()["reason"] == "subject_owned", r.text
    for path in (f"/subjects/{SUBJECT}/versions", f"/subjects/{SUBJECT}/versions?x=1"):
        r = api.client.post(path, json={"schema": json.dumps(evil)}, headers=hpub)  # fast, full
        assert r.status_code == 409, r.text
        assert "PII" in r.json()["message"] and "email" in r.json()["message"], r.text
    assert _latest(api, gpub)["version"] == before["version"]
    r = api.client.post(
        "/v1/topics/accounts/events",
        json={"events": [{"value": ACCOUNT, "event_type": SUBJECT}]},
        headers=apub,
    )
    assert r.status_code == 201, r.text
    seen = []
    for p in range(3):
        r = api.client.get(f"/v1/topics/accounts/events?partition={p}", headers=ann)
        seen += [rec["value"] for rec in r.json()["records"]]
    assert seen and all("Secretname" not in json.dumps(v) for v in seen), seen


@pytest.mark.parametrize("to", ["country", None])
def test_the_data_subject_field_cannot_be_moved_or_dropped(api: Api, to: str | None) -> None:
    """Moved to ``country`` (or dropped), the PII of every tenant's accounts would be encrypted
    under ``GB`` (or unattributed): erasing ACC-9 would shred nothing of theirs."""
    gpub = basic(api.hub.keys.create(["publisher"], principal="gpat").token)  # the hub's own
    before = _latest(api, gpub)
    schema = json.loads(before["schema"])
    for f in schema["fields"]:
        f.pop("hub.data_subject", None)
        if f["name"] == to:
            f["hub.data_subject"] = True
    schema["fields"].append({"name": "zz_extra", "type": ["null", "string"], "default": None})
    r = api.client.post(
        f"/subjects/{SUBJECT}/versions", json={"schema": json.dumps(schema)}, headers=gpub
    )
    assert r.status_code == 409 and "account_id" in r.json()["message"], r.text
    assert _latest(api, gpub)["version"] == before["version"]


def test_a_compatible_version_that_keeps_the_classification_is_registered(api: Api) -> None:
    admin = api.admin
    schema = json.loads(_latest(api, admin)["schema"])
    schema["fields"].append({"name": "zz_extra", "type": ["null", "string"], "default": None})
    r = api.client.post(
        f"/subjects/{SUBJECT}/versions", json={"schema": json.dumps(schema)}, headers=admin
    )
    assert r.status_code == 200, r.text


def test_a_plain_classified_version_is_registered_sealed(api: Api) -> None:
    """The plain form of a new version that keeps the classification (was refused 409) is now
    registered sealed (tests/adversarial/test_plain_pii_registration.py): its log form becomes
    the subject's version, so every tenant's PII stays encrypted and masked."""
    hub = api.hub
    gpub = basic(hub.keys.create(["publisher"], principal="gpat", tenant="globex").token)
    apub = basic(hub.keys.create(["publisher"], principal="apat", tenant="acme").token)
    ann = basic(hub.keys.create(["analyst"], principal="ann", tenant="acme").token)
    hpub = basic(hub.keys.create(["publisher"], principal="hpat").token)  # the hub's own
    before = _latest(api, gpub)
    plain = _declassified(json.loads(before["schema"]), plain=True, drop_class=False)
    r = api.client.post(
        f"/subjects/{SUBJECT}/versions", json={"schema": json.dumps(plain)}, headers=hpub
    )
    assert r.status_code == 200, r.text
    after = _latest(api, gpub)
    assert after["version"] == before["version"] + 1
    fields = {f["name"]: f for f in json.loads(after["schema"])["fields"]}
    assert fields["email"].get("hub.encrypted") and fields["customer_name"].get("hub.encrypted")
    r = api.client.post(
        "/v1/topics/accounts/events",
        json={"events": [{"value": ACCOUNT, "event_type": SUBJECT}]},
        headers=apub,
    )
    assert r.status_code == 201, r.text
    seen = []
    for p in range(3):
        r = api.client.get(f"/v1/topics/accounts/events?partition={p}", headers=ann)
        seen += [rec["value"] for rec in r.json()["records"]]
    assert seen and all("Secretname" not in json.dumps(v) for v in seen), seen
    stored = [rec.value for p in range(3) for rec in hub.log.scan("accounts", p)]
    assert stored and all(b"Secretname" not in v for v in stored)
