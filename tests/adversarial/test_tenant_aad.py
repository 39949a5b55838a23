"""A PII ciphertext is bound to the tenant of the record that holds it (session 17).

PII keys are per data subject hub-wide and topics are shared by tenants, so before the tenant
was bound into the associated data (``core.ports.keystore.make_aad``) a value of acme's record
opened just as well inside a globex record: globex copied acme's stored account off the topic
(any consumer reads the ciphertext), had it stored as its own, and globex's officer read acme's
customer in clear. Session 16 closed the Avro route and the quarantine replay one by one; these
tests attack the root: every way globex can get acme's ciphertext into a globex record, and the
legacy (v1, no tenant) values stored before the change.

Against the source before the change, ``test_pipeline_*``, ``test_avro_route_without_*`` and
``test_raw_copy_*`` fail (globex reads the plaintext or the copy is accepted); the JSON, NDJSON,
Arrow and file routes never opened a submitted ciphertext (they seal what they are given), and
are kept here so a later route that does is caught.
"""

from __future__ import annotations

import base64
import io
import json
import struct
from pathlib import Path
from typing import Any

import fastavro
import pyarrow as pa
import pytest

from core.avro import serde
from core.pii import PiiCodec, plan
from core.ports.eventlog import Record
from core.ports.keystore import make_aad_v1
from ingest.files import publish_file
from ingest.pipeline import RawRecord
from tests.adversarial._api import Api, basic

TOPIC = "accounts"
TYPE = "hub.accounts.AccountOpened"
SECRETS = ("Secretname", "zed@hidden")
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


def _keys(api: Api) -> dict[str, dict[str, str]]:
    make = api.hub.keys.create
    return {
        "apub": basic(make(["publisher"], principal="apat", tenant="acme").token),
        "gpub": basic(make(["publisher"], principal="gpat", tenant="globex").token),
        "ann": basic(make(["compliance_officer"], principal="ann", tenant="acme").token),
        "gus": basic(make(["compliance_officer"], principal="gus", tenant="globex").token),
    }


def _acme_record(api: Api, keys: dict[str, dict[str, str]]) -> Any:
    r = api.client.post(
        f"/v1/topics/{TOPIC}/events",
        json={"events": [{"value": ACCOUNT, "event_type": TYPE}]},
        headers=keys["apub"],
    )
    assert r.status_code == 201, r.text
    at = r.json()["offsets"][0]
    stored = next(iter(api.hub.log.scan(TOPIC, at["partition"], at["offset"])))
    assert stored.value is not None and b"Secretname" not in stored.value  # ciphertext
    return stored


def _read(api: Api, who: dict[str, str]) -> list[dict[str, Any]]:
    """Every record of the topic the reader's tenant sees, as the API shows them."""
    seen: list[dict[str, Any]] = []
    for p in range(api.hub.log.topic(TOPIC).partitions):
        r = api.client.get(f"/v1/topics/{TOPIC}/events?partition={p}&limit=500", headers=who)
        assert r.status_code == 200, r.text
        seen += r.json()["records"]
    return seen


def _leaks(records: list[dict[str, Any]]) -> list[str]:
    return [json.dumps(x) for x in records if any(s in json.dumps(x) for s in SECRETS)]


def _ciphertexts(api: Api, stored: Any) -> dict[str, bytes]:
    schema_id, _ = serde.split_wire(stored.value)
    datum = serde.decode(stored.value, api.hub.registry.parsed(schema_id))
    return {"customer_name": datum["customer_name"], "email": datum["email"]}


def test_pipeline_refuses_another_tenants_ciphertext_and_takes_the_owners(api: Api) -> None:
    """The pipeline still takes a copy of the hub's own record (``kind="wire"``, the log
    form) from the tenant it belongs to, and opens it as the SENDER's tenant: globex's copy of
    acme's record is refused (``not_hub_ciphertext``), never decrypted, never stored."""
    keys = _keys(api)
    stored = _acme_record(api, keys)
    res = api.hub.ingest.ingest(
        TOPIC, [RawRecord(stored.value, kind="wire")], source="t", producer="gpat", tenant="globex"
    )
    assert (res.accepted, res.rejected) == (0, 1), res
    assert res.rejections[0].reason_code == "not_hub_ciphertext"
    assert "another tenant's copy" in res.rejections[0].reason
    assert not _leaks(_read(api, keys["gus"]))
    res = api.hub.ingest.ingest(
        TOPIC, [RawRecord(stored.value, kind="wire")], source="t", producer="apat", tenant="acme"
    )
    assert (res.accepted, res.duplicates) in ((1, 0), (0, 1)), res  # acme's own copy opens


def test_avro_route_without_its_route_check_still_gives_no_plaintext(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Session 16 refused log-form values at ``POST /v1/ingest/{topic}/avro``; with that check
    gone (a new route that forgets it) the pipeline itself must refuse acme's ciphertext."""
    import hub.api.routers.ingest as routes

    monkeypatch.setattr(routes, "_no_ciphertext", lambda hub, raw, tenant: raw)
    keys = _keys(api)
    stored = _acme_record(api, keys)
    r = api.client.post(
        f"/v1/ingest/{TOPIC}/avro",
        content=struct.pack(">I", len(stored.value)) + stored.value,
        headers={**keys["gpub"], "Content-Type": "application/vnd.hub.wire-batch"},
    )
    assert r.status_code == 200, r.text
    assert (r.json()["accepted"], r.json()["rejected"]) == (0, 1), r.text
    assert not _leaks(_read(api, keys["gus"]))
    (entry,) = api.client.get("/v1/quarantine", headers=api.admin).json()["records"]
    shown = api.client.get(f"/v1/quarantine/{entry['offset']}", headers=keys["gus"])
    assert not any(s in shown.text for s in SECRETS), shown.text


def _as_text(ct: bytes, how: str) -> str:
    return base64.b64encode(ct).decode() if how == "base64" else ct.decode("latin-1")


@pytest.mark.parametrize("how", ["base64", "latin-1"])
def test_json_ndjson_and_arrow_routes_seal_a_pasted_ciphertext_as_text(api: Api, how: str) -> None:
    keys = _keys(api)
    cts = _ciphertexts(api, _acme_record(api, keys))
    row = {**ACCOUNT, "account_id": "ACC-1"}
    row.update({k: _as_text(v, how) for k, v in cts.items()})
    hdr = keys["gpub"]
    r = api.client.post(f"/v1/ingest/{TOPIC}", json={"events": [row]}, headers=hdr)
    assert r.status_code == 200, r.text
    ndjson = (json.dumps({"value": row, "event_type": TYPE}) + "\n").encode()
    r = api.client.post(
        f"/v1/ingest/{TOPIC}",
        content=ndjson,
        headers={**hdr, "Content-Type": "application/x-ndjson"},
    )
    assert r.status_code == 200, r.text
    table = pa.Table.from_pylist([{k: v for k, v in row.items() if k != "opened_at"}])
    sink = io.BytesIO()
    with pa.ipc.new_stream(sink, table.schema) as w:
        w.write_table(table)
    r = api.client.post(
        f"/v1/ingest/{TOPIC}",
        content=sink.getvalue(),
        headers={**hdr, "Content-Type": "application/vnd.apache.arrow.stream"},
    )
    assert r.status_code in (200, 422), r.text
    assert not _leaks(_read(api, keys["gus"]))


def test_file_routes_json_lines_and_a_log_form_avro_file_give_no_plaintext(
    api: Api, tmp_path: Path
) -> None:
    """A JSON lines file with the ciphertext pasted as text, and an Avro container file
    written with the log schema itself (PII fields as the ciphertext bytes), ingested as
    globex: neither opens acme's values."""
    keys = _keys(api)
    stored = _acme_record(api, keys)
    cts = _ciphertexts(api, stored)
    lines = tmp_path / "copy.jsonl"
    row = {**ACCOUNT, **{k: _as_text(v, "base64") for k, v in cts.items()}}
    lines.write_text(json.dumps(row) + "\n")
    publish_file(api.hub.ingest, lines, TOPIC, event_type=TYPE, producer="gpat", tenant="globex")
    schema_id, _ = serde.split_wire(stored.value)
    writer = api.hub.registry.parsed(schema_id)
    datum = serde.decode(stored.value, writer)
    avro = tmp_path / "copy.avro"
    with avro.open("wb") as f:
        fastavro.writer(f, fastavro.parse_schema(json.loads(writer.text)), [datum])
    try:
        publish_file(api.hub.ingest, avro, TOPIC, event_type=TYPE, producer="gpat", tenant="globex")
    except Exception as exc:  # refused whole is fine: no plaintext either way
        assert not any(s in str(exc) for s in SECRETS)
    assert not _leaks(_read(api, keys["gus"]))


def _with_tenant(headers: Any, tenant: str) -> tuple[tuple[str, bytes], ...]:
    return tuple((k, tenant.encode() if k == "ce_tenant" else v) for k, v in headers)


def test_raw_copy_into_a_globex_record_does_not_open(api: Api) -> None:
    """A writer to the data topic itself (a Kafka producer on the topic, a restore of an
    edited file) puts acme's value bytes in a record whose ``ce_tenant`` is globex: readers
    open PII as the tenant of the record as stored, so globex's officer gets an error, not
    acme's customer."""
    keys = _keys(api)
    stored = _acme_record(api, keys)
    copy = Record(
        value=stored.value, key=b"ACC-1-copy", headers=_with_tenant(stored.headers, "globex")
    )
    api.hub.log.append(TOPIC, [copy])
    mine = _read(api, keys["gus"])
    assert mine, "globex sees its (copied) record"
    assert not _leaks(mine), mine
    assert any(r.get("error") and "authentication" in r["error"] for r in mine), mine
    assert _leaks(_read(api, keys["ann"]))  # acme's own record still reads in clear


def _v1_value(api: Api, stored: Any) -> bytes:
    """acme's record as the hub sealed it before the tenant was bound (v1 associated data)."""
    schema_id, _ = serde.split_wire(stored.value)
    writer = api.hub.registry.parsed(schema_id)
    datum = serde.decode(stored.value, writer)
    plain = PiiCodec(api.hub.keystore).decrypt(datum, writer.text, TOPIC, tenant="acme")
    out = dict(plain)
    for field in plan(writer.text).fields:
        value = plain[field.name]
        if value is not None:
            aad = make_aad_v1(TOPIC, field.name, "ACC-1")
            out[field.name] = api.hub.keystore.encrypt("ACC-1", field.encode(value), aad)
    return serde.encode(schema_id, writer, out)


def test_legacy_v1_values_read_back_for_their_records_but_a_copy_is_refused(api: Api) -> None:
    keys = _keys(api)
    stored = _acme_record(api, keys)
    old = _v1_value(api, stored)
    api.hub.log.append(TOPIC, [Record(value=old, key=b"ACC-1", headers=tuple(stored.headers))])
    acme = _read(api, keys["ann"])
    assert len(acme) == 2 and all(r["value"]["customer_name"] == "Zed Secretname" for r in acme)
    for tenant in ("globex", "acme"):  # a v1 value is never opened for a submitted record
        res = api.hub.ingest.ingest(
            TOPIC, [RawRecord(old, kind="wire")], source="t", producer="p", tenant=tenant
        )
        assert (res.accepted, res.rejected) == (0, 1), (tenant, res)
        assert res.rejections[0].reason_code == "not_hub_ciphertext"
    assert not _leaks(_read(api, keys["gus"]))


def test_a_quarantined_original_copied_into_a_globex_entry_does_not_open(api: Api) -> None:
    """acme's quarantined record keeps its original sealed under the subject's key; the same
    entry bytes in a globex entry (a raw copy on ``hub.quarantine``) show globex no original."""
    from ingest.quarantine import QUARANTINE_TOPIC

    keys = _keys(api)
    bad = {**ACCOUNT, "kyc_level": "NOT_A_LEVEL"}
    body = {"events": [{"value": bad, "event_type": TYPE}]}
    r = api.client.post(f"/v1/ingest/{TOPIC}", json=body, headers=keys["apub"])
    assert r.status_code == 200 and r.json()["rejected"] == 1, r.text
    (entry,) = api.client.get("/v1/quarantine", headers=keys["ann"]).json()["records"]
    own = api.client.get(f"/v1/quarantine/{entry['offset']}", headers=keys["ann"])
    assert own.status_code == 200 and "Secretname" in _shown(own), own.text  # acme's opens
    assert own.json()["sealed_for"] == "ACC-1"
    from hub.api.positions import codec_of

    # ann's listing gives acme's positions (s19), not offsets
    at = codec_of(api.hub).decode("acme", QUARANTINE_TOPIC, 0, entry["offset"])
    (rec,) = api.hub.log.read(QUARANTINE_TOPIC, 0, at, 1)
    api.hub.log.append(
        QUARANTINE_TOPIC,
        [Record(value=rec.value, key=rec.key, headers=_with_tenant(rec.headers, "globex"))],
    )
    (copy,) = api.client.get("/v1/quarantine", headers=keys["gus"]).json()["records"]
    shown = api.client.get(f"/v1/quarantine/{copy['offset']}", headers=keys["gus"])
    assert shown.status_code == 422 and shown.json()["reason"] == "decryption_failed", shown.text
    assert not any(s in _shown(shown) for s in SECRETS), shown.text


def _shown(r: Any) -> str:
    """A quarantine entry as the API shows it, its base64 original decoded."""
    try:
        original = base64.b64decode(r.json().get("original_base64") or "").decode("latin-1")
    except ValueError:
        original = ""
    return r.text + original


def test_an_old_value_in_a_record_the_hub_did_not_write_does_not_open(api: Api) -> None:
    """A producer on the data topic copies acme's old (v1) value into a record of its own. On
    Kafka a record without the hub's MAC is read with its ``ce_tenant`` claim dropped
    (``adapters.kafka_log.auth``); the reader then sees no tenant of its own on it, and a v1
    value opens only in a record that carries one: nobody, hub-wide readers included, reads
    acme's customer through the copy. acme's old record itself still reads."""
    keys = _keys(api)
    stored = _acme_record(api, keys)
    old = _v1_value(api, stored)
    api.hub.log.append(TOPIC, [Record(value=old, key=b"ACC-1", headers=tuple(stored.headers))])
    claimless = tuple(h for h in stored.headers if h[0] != "ce_tenant")
    api.hub.log.append(TOPIC, [Record(value=old, key=b"ACC-1-x", headers=claimless)])
    everything = _read(api, api.admin)
    copies = [r for r in everything if r["key"] == "ACC-1-x"]
    assert copies and not _leaks(copies), copies
    assert "authentication" in copies[0]["error"], copies
    assert len(_leaks(everything)) == 2  # acme's v2 record and its own v1 one
