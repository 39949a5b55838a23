"""A schema registered in plain form with a PII field must not store that field in clear.

Registered through the Confluent API (``POST /subjects/{s}/versions``) as a plain ``.avsc``, a
new subject's field marked ``"classification": "pii"`` was stored as given: ingest wrote the
value in clear, erasure of the data subject shredded nothing, and the schema told a compliance
officer the field was crypto-shreddable. The registry now keeps the log form
(``core.pii.encrypted_schema``) as the subject's version and the plain form under
``<subject>-plain`` (answering its id to the Confluent client, as for the hub's own schemas).
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

from core.avro import serde
from core.errors import InvalidSchema
from core.ports.policy import Principal
from ingest.files import publish_file
from projections.decode import Decoder
from registry.service import Reference
from tests.adversarial._api import Api, basic

OPERATOR = Principal("ops", frozenset({"admin"}))
PATIENT = {
    "type": "record",
    "name": "Patient",
    "namespace": "com.clinic",
    "fields": [
        {"name": "patient_id", "type": "string", "hub.data_subject": True},
        {"name": "diagnosis", "type": "string", "classification": "pii"},
        {"name": "ward", "type": "string"},
    ],
}
SECRET = "Xenodiagnosis-{}"


def _stored(api: Api, topic: str) -> list[Any]:
    log = api.hub.log
    return [rec for p in range(log.topic(topic).partitions) for rec in log.scan(topic, p)]


def test_a_plain_pii_schema_is_sealed_at_ingest(api: Api, tmp_path: Path) -> None:
    hub, c, h = api.hub, api.client, api.admin
    assert c.post("/v1/topics", json={"name": "patients", "partitions": 1}, headers=h).is_success
    r = c.post("/subjects/patients-value/versions", json={"schema": json.dumps(PATIENT)}, headers=h)
    assert r.status_code == 200, r.text
    answered = r.json()["id"]
    # the subject's version is the log form; the plain text is its companion's (Confluent
    # clients keep the id they were given and the hub encrypts their values at ingest)
    latest = c.get("/subjects/patients-value/versions/latest", headers=h).json()
    assert '"hub.encrypted"' in latest["schema"], latest
    assert hub.registry.lookup("patients-value-plain", json.dumps(PATIENT)).id == answered
    again = c.post(
        "/subjects/patients-value/versions", json={"schema": json.dumps(PATIENT)}, headers=h
    )
    assert again.json()["id"] == answered  # idempotent

    r = c.post(
        "/v1/ingest/patients",
        json={"events": [{"patient_id": "P1", "diagnosis": SECRET.format(1), "ward": "A"}]},
        headers=h,
    )
    assert r.status_code == 200 and r.json()["accepted"] == 1, r.text
    f = tmp_path / "patients.jsonl"
    f.write_text(json.dumps({"patient_id": "P2", "diagnosis": SECRET.format(2), "ward": "B"}))
    assert publish_file(hub.ingest, f, "patients").result.accepted == 1

    # a Confluent producer serializes with the id it was answered (the plain schema's)
    wire = serde.encode(
        answered,
        hub.registry.parsed(answered),
        {"patient_id": "P3", "diagnosis": SECRET.format(3), "ward": "C"},
    )
    r = c.post(
        "/v1/ingest/patients/avro",
        content=struct.pack(">I", len(wire)) + wire,
        headers={**h, "Content-Type": "application/vnd.hub.wire-batch"},
    )
    assert r.status_code == 200 and r.json()["accepted"] == 1, r.text

    records = _stored(api, "patients")
    assert len(records) == 3
    for rec in records:
        assert b"Xenodiagnosis" not in rec.value, rec.value  # never in clear in the log
    decoder = Decoder(hub.registry, hub.keystore)
    opened = [decoder.decode(r, decrypt=frozenset({"diagnosis"})).value for r in records]
    assert sorted(v["diagnosis"] for v in opened) == [SECRET.format(i) for i in (1, 2, 3)]

    ann = basic(hub.keys.create(["analyst"], principal="ann").token)
    seen = c.get("/v1/topics/patients/events?partition=0", headers=ann).json()["records"]
    assert seen and all("Xenodiagnosis" not in json.dumps(s["value"]) for s in seen), seen

    hub.eraser.erase(OPERATOR, "P1", "DSR-PLAIN", tenant_scope=None)
    by_subject = {
        serde.decode(r.value, hub.registry.parsed(int.from_bytes(r.value[1:5], "big")))[
            "patient_id"
        ]: r
        for r in records
    }
    gone = decoder.decode(by_subject["P1"], decrypt=frozenset({"diagnosis"})).value
    assert gone["diagnosis"] != SECRET.format(1)  # shredded
    kept = decoder.decode(by_subject["P2"], decrypt=frozenset({"diagnosis"})).value
    assert kept["diagnosis"] == SECRET.format(2)


def test_plain_pii_with_references_is_refused_naming_the_route(api: Api) -> None:
    hub, c, h = api.hub, api.client, api.admin
    ward = {"type": "record", "name": "Ward", "namespace": "com.clinic",
            "fields": [{"name": "code", "type": "string"}]}  # fmt: skip
    assert c.post(
        "/subjects/ward/versions", json={"schema": json.dumps(ward)}, headers=h
    ).is_success
    holder = json.loads(json.dumps(PATIENT))
    holder["fields"][2] = {"name": "ward", "type": "com.clinic.Ward"}
    body = {
        "schema": json.dumps(holder),
        "references": [{"name": "com.clinic.Ward", "subject": "ward", "version": 1}],
    }
    r = c.post("/subjects/refd-value/versions", json=body, headers=h)
    assert r.status_code == 422, r.text
    assert "diagnosis" in r.text and "core.pii.encrypted_schema" in r.text, r.text
    assert "refd-value" not in hub.registry.subjects()
    try:
        hub.registry.register(
            "refd-value", json.dumps(holder), "AVRO", (Reference("com.clinic.Ward", "ward", 1),)
        )
    except InvalidSchema:
        pass
    else:
        raise AssertionError("a plain PII schema with references was registered in clear")
