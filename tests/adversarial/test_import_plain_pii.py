"""IMPORT mode must not store a plain PII schema as a subject's version.

Outside IMPORT the registry keeps the log form of a plain schema with PII fields
(test_plain_pii_registration.py). In IMPORT mode (a subject's, or the global one) it stored the
schema as given, under the id and version the caller named: a registry.config holder (a
security admin) could set IMPORT on a new subject, import the plain schema, and every record
published with it carried the PII in clear, out of erasure's reach, while the schema told an
auditor the field was crypto-shreddable. Now the import is refused (422) naming the field.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from core.pii import encrypted_schema
from tests.adversarial._api import Api

PATIENT: dict[str, Any] = {
    "type": "record",
    "name": "Patient",
    "namespace": "com.clinic",
    "fields": [
        {"name": "patient_id", "type": "string", "hub.data_subject": True},
        {"name": "diagnosis", "type": "string", "classification": "pii"},
        {"name": "ward", "type": "string"},
    ],
}


def _import(api: Api, subject: str, schema: Mapping[str, Any], **ids: int) -> Any:
    return api.client.post(
        f"/subjects/{subject}/versions",
        json={"schema": json.dumps(schema), **ids},
        headers=api.admin,
    )


def test_a_plain_pii_schema_is_refused_in_a_subjects_import_mode(api: Api) -> None:
    c, h = api.client, api.admin
    r = c.put("/mode/clinic-value", json={"mode": "IMPORT"}, headers=h)
    assert r.status_code == 200, r.text
    r = _import(api, "clinic-value", PATIENT, id=9001, version=1)
    assert r.status_code == 422, r.text
    assert "diagnosis" in r.json()["message"] and "IMPORT" in r.json()["message"]
    assert "clinic-value" not in api.hub.registry.subjects(include_deleted=True)
    assert c.get("/schemas/ids/9001", headers=h).status_code == 404

    # the log form imports under the ids asked for; so does a schema without PII
    r = _import(api, "clinic-value", json.loads(encrypted_schema(json.dumps(PATIENT))), id=9001)
    assert r.status_code == 200 and r.json()["id"] == 9001, r.text
    ward = {**PATIENT, "name": "Ward", "fields": [{"name": "ward", "type": "string"}]}
    assert c.put("/mode/wards-value", json={"mode": "IMPORT"}, headers=h).status_code == 200
    r = _import(api, "wards-value", ward, id=9002)
    assert r.status_code == 200 and r.json()["id"] == 9002, r.text


def test_a_plain_pii_schema_is_refused_in_the_global_import_mode(api: Api) -> None:
    c, h = api.client, api.admin
    r = c.put("/mode?force=true", json={"mode": "IMPORT"}, headers=h)
    assert r.status_code == 200, r.text
    r = _import(api, "newclinic-value", PATIENT, id=9100, version=1)
    assert r.status_code == 422 and "diagnosis" in r.json()["message"], r.text
    assert "newclinic-value" not in api.hub.registry.subjects(include_deleted=True)
