"""Session 18 red team (new surfaces): a schema that says a field is encrypted while it is not.

IMPORT mode refuses a schema that classifies a field PII but stores it in clear (session 17),
and READWRITE registers the log form of such a schema instead. Both decided "stores it
encrypted" from the ``hub.encrypted`` attribute alone: a field ``{"type": "string",
"classification": "pii", "hub.encrypted": true, "hub.plaintype": "string"}`` passed both and
was registered as the subject's version, telling an auditor (and the catalog) that the field
was crypto-shreddable while every value written with it is a plain string. A field marked
encrypted must be ciphertext (``bytes`` or ``["null", "bytes"]``) naming its plain type.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from core.pii import encrypted_schema
from tests.adversarial._api import Api

FAKE: dict[str, Any] = {
    "type": "record",
    "name": "Patient",
    "namespace": "com.clinic",
    "fields": [
        {"name": "patient_id", "type": "string", "hub.data_subject": True},
        {
            "name": "diagnosis",
            "type": "string",
            "classification": "pii",
            "hub.encrypted": True,
            "hub.plaintype": "string",
        },
        {"name": "ward", "type": "string"},
    ],
}


@pytest.mark.parametrize("mode", ["READWRITE", "IMPORT"])
def test_a_field_marked_encrypted_that_is_not_ciphertext_is_refused(api: Api, mode: str) -> None:
    c, h = api.client, api.admin
    if mode == "IMPORT":
        assert c.put("/mode/clinic-value", json={"mode": "IMPORT"}, headers=h).status_code == 200
    body: dict[str, Any] = {"schema": json.dumps(FAKE)}
    if mode == "IMPORT":
        body |= {"id": 9101, "version": 1}
    r = c.post("/subjects/clinic-value/versions", json=body, headers=h)
    assert r.status_code == 422, r.text
    assert "diagnosis" in r.json()["message"] and "hub.encrypted" in r.json()["message"], r.text
    assert "clinic-value" not in api.hub.registry.subjects(include_deleted=True)


def test_the_real_log_form_still_registers(api: Api) -> None:
    plain = json.loads(json.dumps(FAKE))
    del plain["fields"][1]["hub.encrypted"], plain["fields"][1]["hub.plaintype"]
    r = api.client.post(
        "/subjects/clinic-value/versions",
        json={"schema": encrypted_schema(json.dumps(plain))},
        headers=api.admin,
    )
    assert r.status_code == 200, r.text
