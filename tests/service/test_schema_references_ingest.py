"""Ingest through a schema with Confluent references (``com.acme.Money`` from subject ``money``).

The registry accepted such schemas, but ingest through one answered 422 and stored nothing: the
PII plan, the log/plain forms and the columnar readers read the schema's text alone, where
``com.acme.Money`` is undefined. The registry now hands out the standalone form (the referenced
named types defined in place, ``registry.standalone``), so JSON over HTTP and files are
stored, decoded back and projected; PII marked inside a referenced schema is sealed.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from core.avro import serde
from core.errors import InvalidSchema
from core.pii import encrypted_schema
from hub.api.app import create_app
from hub.bootstrap import Hub
from ingest.files import publish_file
from projections.decode import Decoder
from registry.service import Reference, SchemaRegistry
from registry.standalone import inline_references
from tests.adversarial._api import basic

MONEY = {
    "type": "record",
    "name": "Money",
    "namespace": "com.acme",
    "fields": [
        {
            "name": "amount",
            "type": {"type": "bytes", "logicalType": "decimal", "precision": 18, "scale": 2},
        },
        {"name": "currency", "type": {"type": "enum", "name": "Ccy", "symbols": ["EUR", "USD"]}},
    ],
}
TRADE = {
    "type": "record",
    "name": "FxTrade",
    "namespace": "com.acme.trading",
    "fields": [
        {"name": "trade_id", "type": "string"},
        {"name": "ccy", "type": "com.acme.Ccy"},  # defined inside the referenced Money
        {"name": "notional", "type": "com.acme.Money"},
        {"name": "fee", "type": ["null", "com.acme.Money"], "default": None},
    ],
}
CONTACT = {
    "type": "record",
    "name": "Contact",
    "namespace": "com.acme",
    "fields": [{"name": "email", "type": "string", "classification": "pii"}],
}
HOLDER = {
    "type": "record",
    "name": "Holder",
    "namespace": "com.acme",
    "fields": [
        {"name": "id", "type": "string", "hub.data_subject": True},
        {"name": "contact", "type": "Contact"},
    ],
}


@pytest.fixture
def api(hub: Hub) -> Iterator[tuple[TestClient, dict[str, str]]]:
    with TestClient(create_app(hub)) as client:
        yield client, basic(hub.keys.create(["admin"], principal="ops").token)


def _register(c: TestClient, h: dict[str, str], subject: str, schema: Any, refs: Any = ()) -> int:
    body: dict[str, Any] = {"schema": json.dumps(schema)}
    if refs:
        body["references"] = list(refs)
    r = c.post(f"/subjects/{subject}/versions", json=body, headers=h)
    assert r.status_code == 200, r.text
    return int(r.json()["id"])


def _stored(hub: Hub, topic: str) -> list[Any]:
    return [rec for p in range(hub.log.topic(topic).partitions) for rec in hub.log.scan(topic, p)]


def _trade(i: int) -> dict[str, Any]:
    return {
        "trade_id": f"FX-{i}",
        "ccy": "EUR",
        "notional": {"amount": f"{i}000.25", "currency": "USD"},
        "fee": None if i % 2 else {"amount": "1.50", "currency": "EUR"},
    }


def test_records_through_a_referencing_schema_are_stored_and_read_back(
    hub: Hub, api: tuple[TestClient, dict[str, str]], tmp_path: Path
) -> None:
    c, h = api
    assert c.post("/v1/topics", json={"name": "fxtrades", "partitions": 2}, headers=h).is_success
    _register(c, h, "money", MONEY)
    ref = {"name": "com.acme.Money", "subject": "money", "version": 1}
    schema_id = _register(c, h, "fxtrades-value", TRADE, [ref])
    r = c.post("/v1/ingest/fxtrades", json={"events": [_trade(0), _trade(1)]}, headers=h)
    assert r.status_code == 200 and r.json()["accepted"] == 2, r.text
    r = c.post("/v1/topics/fxtrades/events", json={"events": [{"value": _trade(2)}]}, headers=h)
    assert r.status_code < 300, r.text
    f = tmp_path / "fx.jsonl"
    f.write_text("".join(json.dumps(_trade(i)) + "\n" for i in range(3, 6)))
    assert publish_file(hub.ingest, f, "fxtrades").result.accepted == 3

    records = _stored(hub, "fxtrades")
    assert len(records) == 6
    decoder = Decoder(hub.registry)
    by_id = {}
    for rec in records:
        assert int.from_bytes(rec.value[1:5], "big") == schema_id  # the referencing id
        value = serde.decode(rec.value, hub.registry.parsed(schema_id))
        assert decoder.decode(rec).value == value
        by_id[value["trade_id"]] = value
    assert by_id["FX-4"]["notional"] == {"amount": Decimal("4000.25"), "currency": "USD"}
    assert by_id["FX-4"]["fee"] == {"amount": Decimal("1.50"), "currency": "EUR"}
    assert by_id["FX-3"]["fee"] is None and by_id["FX-0"]["ccy"] == "EUR"
    # a stock reader given the referenced schema and the stored text agrees (no hub types)
    import fastavro

    named: dict[str, Any] = {}
    fastavro.parse_schema(MONEY, named_schemas=named)
    writer = fastavro.parse_schema(TRADE, named_schemas=named)
    import io

    plain = fastavro.schemaless_reader(io.BytesIO(records[0].value[5:]), writer, None)
    assert plain == serde.decode(records[0].value, hub.registry.parsed(schema_id))


def test_pii_inside_a_referenced_schema_is_sealed(
    hub: Hub, api: tuple[TestClient, dict[str, str]]
) -> None:
    c, h = api
    assert c.post("/v1/topics", json={"name": "holders", "partitions": 1}, headers=h).is_success
    # registered in its log form, as a subject whose PII is stored encrypted is (core.pii)
    _register(c, h, "contact", json.loads(encrypted_schema(json.dumps(CONTACT))))
    ref = {"name": "com.acme.Contact", "subject": "contact", "version": 1}
    _register(c, h, "holders-value", HOLDER, [ref])
    email = "z@hidden.example"
    r = c.post(
        "/v1/ingest/holders",
        json={"events": [{"id": "P1", "contact": {"email": email}}]},
        headers=h,
    )
    assert r.status_code == 200 and r.json()["accepted"] == 1, r.text
    (rec,) = _stored(hub, "holders")
    assert email.encode() not in rec.value  # sealed, as if Contact were defined in place
    decoder = Decoder(hub.registry, hub.keystore)
    assert decoder.decode(rec).value["contact"]["email"] != email
    opened = decoder.decode(rec, decrypt=frozenset({"contact/email"})).value
    assert opened["contact"]["email"] == email
    # storing it in clear through the referenced subject is still refused
    plain = json.loads(json.dumps(CONTACT))
    plain["fields"][0].pop("classification")
    plain["fields"].append({"name": "zz", "type": ["null", "string"], "default": None})
    r = c.post("/subjects/contact/versions", json={"schema": json.dumps(plain)}, headers=h)
    assert r.status_code == 409, r.text


def test_a_missing_reference_is_named_and_shared_types_defined_once(hub: Hub) -> None:
    registry: SchemaRegistry = hub.registry
    with pytest.raises(InvalidSchema, match=r"'com\.acme\.Money'.*'nowhere'"):
        registry.register(
            "fx2-value", json.dumps(TRADE), references=[Reference("com.acme.Money", "nowhere", 1)]
        )
    # a definition met twice (a referenced schema's copy) is kept once, at its first use
    money = registry.parsed(registry.register("money", json.dumps(MONEY)).id).canonical
    text = inline_references(
        json.dumps({**TRADE, "name": "com.acme.trading.FxTrade", "namespace": None}), [money]
    )
    assert text.count('"name":"com.acme.Money"') == 1 and text.count('"name":"com.acme.Ccy"') == 1


def test_a_reference_cycle_is_refused_naming_it(hub: Hub) -> None:
    """Registration cannot make a cycle (a reference names a version that exists), but IMPORT
    mode or a forged ``_schemas`` record can: reading the schema refuses it, no recursion."""
    from registry.service import SCHEMAS_TOPIC, StoredSchema, SubjectVersion

    registry: SchemaRegistry = hub.registry
    records = []
    for sid, subject, other in ((9001, "cyc-a", "cyc-b"), (9002, "cyc-b", "cyc-a")):
        text = json.dumps({"type": "record", "name": f"X{sid}", "fields": []})
        stored = StoredSchema(sid, text, "AVRO", (Reference(f"X{sid ^ 3}", other, 1),))
        records.append(registry._schema_record(SubjectVersion(subject, 1, sid, stored)))
    hub.log.append(SCHEMAS_TOPIC, records)
    registry.refresh()
    with pytest.raises(InvalidSchema, match=r"'cyc-a' version 1\) leads back .* a cycle"):
        registry.parsed(9001)


def test_compatibility_sees_through_references(
    hub: Hub, api: tuple[TestClient, dict[str, str]]
) -> None:
    """A referencing v2 whose referenced Money gained a field is checked on the whole type."""
    c, h = api
    _register(c, h, "money", MONEY)
    _register(
        c,
        h,
        "fxtrades-value",
        TRADE,
        [{"name": "com.acme.Money", "subject": "money", "version": 1}],
    )
    for subject, extra in (("money-required", {}), ("money-optional", {"default": "none"})):
        money = json.loads(json.dumps(MONEY))
        money["fields"].append({"name": "note", "type": "string", **extra})
        _register(c, h, subject, money)
    v2 = {"schema": json.dumps(TRADE)}
    bad = {
        **v2,
        "references": [{"name": "com.acme.Money", "subject": "money-required", "version": 1}],
    }
    r = c.post("/subjects/fxtrades-value/versions", json=bad, headers=h)
    assert r.status_code == 409 and "note" in r.text, r.text  # old Money has no note to read
    ok = {
        **v2,
        "references": [{"name": "com.acme.Money", "subject": "money-optional", "version": 1}],
    }
    r = c.post("/subjects/fxtrades-value/versions", json=ok, headers=h)
    assert r.status_code == 200, r.text
    assert c.get("/subjects/fxtrades-value/versions", headers=h).json() == [1, 2]
