"""PII inside a referenced schema cannot be declassified through the reference (session 16
review, second pass: held, kept as a regression test).

``core.pii.declassified`` compares schema texts. Personal data inside a referenced schema: the
referenced subject's own versions are compared when it gets a new one, and a referencing
subject's new version is compared in its standalone form (the referenced types defined in
place) against the standalone form of each live version. Ingest through a schema with
references reads its standalone form (``registry.standalone``), so the referenced PII marking
is seen as if defined in place.
"""

from __future__ import annotations

import json

from core.pii import pii_fields
from tests.adversarial._api import Api, basic

CONTACT = {
    "type": "record",
    "name": "Contact",
    "namespace": "com.x",
    "fields": [{"name": "email", "type": "string", "classification": "pii"}],
}
HOLDER = {
    "type": "record",
    "name": "Holder",
    "namespace": "com.x",
    "fields": [
        {"name": "id", "type": "string", "hub.data_subject": True},
        {"name": "contact", "type": "com.x.Contact"},
    ],
}


def _ref(subject: str) -> list[dict[str, object]]:
    return [{"name": "com.x.Contact", "subject": subject, "version": 1}]


def test_a_reference_cannot_carry_pii_out_of_its_classification(api: Api) -> None:
    c, admin = api.client, api.admin
    # the hub's own publisher: a tenant's may not change the shared subjects at all
    gpub = basic(api.hub.keys.create(["publisher"], principal="gp").token)
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
    # ingest through the schema with references (refused with 422 until the registry handed
    # out its standalone form): stored, and the PII plan sees the referenced classification,
    # so the record is treated exactly as through the same schema defined in place
    r = c.post(
        "/v1/topics/holders/events",
        json={"events": [{"value": {"id": "P1", "contact": {"email": "z@hidden.example"}}}]},
        headers=admin,
    )
    assert r.status_code == 201, r.text
    holder_id = api.hub.registry.get_version("holders-value", 1).id
    assert pii_fields(api.hub.registry.parsed(holder_id).text) == ["contact/email"]
    assert len(list(api.hub.log.scan("holders", 0, 0))) == 1
