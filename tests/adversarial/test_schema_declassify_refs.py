"""PII inside a referenced schema cannot be declassified through the reference (session 16
review, second pass: held, kept as a regression test).

``core.pii.declassified`` compares each schema's own text. Personal data inside a referenced
schema: the referenced subject's own versions are compared when it gets a new one, and a
referencing subject's new version cannot be read without its references, so it is refused
rather than compared (and ingest through a schema with references is refused: the PII plan
cannot be made), never stored with the PII in clear.
"""

from __future__ import annotations

import json

from tests.adversarial._api import Api, basic

CONTACT = {
    "type": "record",
    "name": "Contact",
    "namespace": "hub.x",
    "fields": [{"name": "email", "type": "string", "classification": "pii"}],
}
HOLDER = {
    "type": "record",
    "name": "Holder",
    "namespace": "hub.x",
    "fields": [
        {"name": "id", "type": "string", "hub.data_subject": True},
        {"name": "contact", "type": "hub.x.Contact"},
    ],
}


def _ref(subject: str) -> list[dict[str, object]]:
    return [{"name": "hub.x.Contact", "subject": subject, "version": 1}]


def test_a_reference_cannot_carry_pii_out_of_its_classification(api: Api) -> None:
    c, admin = api.client, api.admin
    gpub = basic(api.hub.keys.create(["publisher"], principal="gp", tenant="globex").token)
    assert c.post("/v1/topics", json={"name": "holders", "partitions": 1}, headers=admin).is_success
    r = c.post(
        "/subjects/contact-ref/versions", json={"schema": json.dumps(CONTACT)}, headers=admin
    )
    assert r.status_code == 200, r.text
    body = {"schema": json.dumps(HOLDER), "references": _ref("contact-ref")}
    assert c.post("/subjects/holders-value/versions", json=body, headers=admin).status_code == 200
    # the referenced subject itself: dropping the classification is refused
    plain = json.loads(json.dumps(CONTACT))
    plain["fields"][0].pop("classification")
    plain["fields"].append({"name": "zz", "type": ["null", "string"], "default": None})
    r = c.post("/subjects/contact-ref/versions", json={"schema": json.dumps(plain)}, headers=gpub)
    assert r.status_code == 409 and "PII" in r.json()["message"], r.text
    # the referencing subject pointed at an unclassified twin of the referenced record
    r = c.post("/subjects/evil-contact/versions", json={"schema": json.dumps(plain)}, headers=gpub)
    assert r.status_code == 200, r.text
    evil = {"schema": json.dumps(HOLDER), "references": _ref("evil-contact")}
    for path in ("/subjects/holders-value/versions", "/subjects/holders-value/versions?x=1"):
        r = c.post(path, json=evil, headers=gpub)
        assert r.status_code in (409, 422), r.text
    r = c.get("/subjects/holders-value/versions", headers=gpub)
    assert r.json() == [1], r.text
    # and nothing is stored through a schema with references (its PII plan cannot be made)
    r = c.post(
        "/v1/topics/holders/events",
        json={"events": [{"value": {"id": "P1", "contact": {"email": "z@hidden.example"}}}]},
        headers=admin,
    )
    assert r.status_code == 422, r.text
    assert not list(api.hub.log.scan("holders", 0, 0))
