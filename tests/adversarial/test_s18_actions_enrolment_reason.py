"""Session 18 follow-up: the reason an approver gives for an enrolment is kept and shown.

The console (and ``POST /v1/enrolments/{id}/approve``, ``hub principals approve --reason``)
take a reason, but ``hub.EnrolmentApproved`` had no field for it: the reason was dropped and an
auditor reviewing who approved whose key saw no justification. The schema now has ``reason``
(default ``""``, so events written before still decode), the fold keeps it and the enrolment
lists show it (``approval_reason``).
"""

from __future__ import annotations

import json
from typing import Any

from fastapi.testclient import TestClient

from core.avro.schema import parse_schema
from core.avro.serde import decode, encode
from hub.bootstrap import Hub
from tests.adversarial._api import basic as auth
from tests.adversarial.test_two_person_enrolment import people  # noqa: F401  (fixture)

OLD_APPROVED = {  # hub.EnrolmentApproved as released before the reason field
    "type": "record",
    "name": "EnrolmentApproved",
    "namespace": "hub",
    "fields": [
        {"name": "key_id", "type": "string"},
        {"name": "approved_by", "type": "string"},
        {"name": "approved_by_key", "type": "string", "default": ""},
        {"name": "approved_at", "type": {"type": "long", "logicalType": "timestamp-micros"}},
        {"name": "approval_salt", "type": "string", "default": ""},
        {"name": "approval_hmac", "type": "string", "default": ""},
    ],
}
REASON = "badge 4411 checked against HR record, ticket SEC-93"


def test_the_approval_reason_is_recorded_and_listed(
    hub: Hub,
    client: TestClient,
    people: dict[str, Any],  # noqa: F811
) -> None:
    root, ann = auth(people["root"].token), auth(people["ann"].token)
    r = client.post("/v1/keys", headers=root, json={"roles": ["security_admin"], "owner": "erin"})
    assert r.status_code == 201, r.text
    eid = r.json()["enrolment_id"]
    r = client.post(f"/v1/enrolments/{eid}/approve", headers=ann, json={"reason": REASON})
    assert r.status_code == 200, r.text
    listed = {e["enrolment_id"]: e for e in client.get("/v1/enrolments", headers=root).json()}
    assert listed[eid]["approved_by"] == "ann"
    assert listed[eid]["approval_reason"] == REASON, listed[eid]
    # on the log (so on the ledger): the event itself carries it
    found = [
        r["value"]
        for p, end in hub.log.end_offsets("hub.principals").items()
        for r in hub.reader.read("hub.principals", p, 0, end)
        if r["headers"].get("ce_type") == "hub.EnrolmentApproved"
    ]
    assert [v.get("reason") for v in found] == [REASON], found
    # the fold keeps it (the lists above read it from there)
    assert {e.enrolment_id: e.approval_reason for e in hub.keys.enrolments()}[eid] == REASON


def test_an_approval_written_before_the_field_still_decodes() -> None:
    from importlib import resources

    new = (resources.files("domain") / "schemas" / "EnrolmentApproved.avsc").read_text("utf-8")
    old = parse_schema(json.dumps(OLD_APPROVED))
    value = {
        "key_id": "e1",
        "approved_by": "ann",
        "approved_by_key": "k1",
        "approved_at": 1_700_000_000_000_000,
        "approval_salt": "s",
        "approval_hmac": "h",
    }
    datum = decode(encode(7, old, value), old, parse_schema(new))
    assert datum["reason"] == "" and datum["approved_by"] == "ann", datum
