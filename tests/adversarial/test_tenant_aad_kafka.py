"""The Kafka data topic route of ``test_tenant_aad``: a producer with access to the broker (but
not the hub's MAC key) copies acme's stored PII values into records of its own, claiming globex
or acme as their tenant. The hub reads such a record with its tenant claim dropped
(``adapters.kafka_log.auth``), so acme's v2 values fail (sealed for acme's record) and an old
v1 value opens for nobody (``core.pii.legacy_readable``); acme's own record still reads.
Before the tenant was bound, the claim-less copy opened for every hub-wide reader.
"""

from __future__ import annotations

import json
import uuid

import pytest
from confluent_kafka import Producer

from core.avro import serde
from core.events import STRATEGY_CONFIG, OutgoingEvent, tenant_of
from core.pii import PiiCodec, encrypted_schema, plan
from core.ports.keystore import make_aad_v1
from domain.catalog import schema_text
from hub.bootstrap import Hub
from tests.adversarial._kafka_hub import raw_records

pytestmark = pytest.mark.integration

TYPE = "hub.accounts.AccountOpened"
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


def test_a_broker_producers_copies_of_acmes_pii_open_for_nobody(
    kafka_hub: tuple[Hub, str], kafka: str
) -> None:
    h, prefix = kafka_hub
    topic = f"kt.accounts.{uuid.uuid4().hex[:6]}"
    h.log.create_topic(topic, 1, {STRATEGY_CONFIG: "topic"})
    sv = h.registry.register(f"{topic}-value", encrypted_schema(schema_text(TYPE)))
    h.publisher.publish(
        topic, [OutgoingEvent(value=ACCOUNT, event_type=TYPE)], producer="apat", tenant="acme"
    )
    ((value, _key, headers),) = raw_records(kafka, prefix + topic)
    assert headers[-1][0] == "__hub.mac" and b"Secretname" not in value
    writer = h.registry.parsed(sv.id)
    plain = PiiCodec(h.keystore).decrypt(
        serde.decode(value, writer), writer.text, topic, tenant="acme"
    )
    old = dict(plain)  # acme's record as sealed before the tenant was bound (v1)
    for field in plan(writer.text).fields:
        if plain[field.name] is not None:
            aad = make_aad_v1(topic, field.name, "ACC-1")
            old[field.name] = h.keystore.encrypt("ACC-1", field.encode(plain[field.name]), aad)
    old_value = serde.encode(sv.id, writer, old)

    def claiming(tenant: str, keep_mac: bool) -> list[tuple[str, bytes]]:
        out = [(k, tenant.encode() if k == "ce_tenant" else v) for k, v in headers]
        return out if keep_mac else out[:-1]

    producer = Producer({"bootstrap.servers": kafka, "log_level": 0})
    for v, hs in (
        (value, claiming("globex", keep_mac=False)),  # a plain producer's copy
        (value, claiming("globex", keep_mac=True)),  # acme's MAC on a changed claim
        (old_value, claiming("acme", keep_mac=False)),  # an old value, claiming its owner
        (old_value, claiming("globex", keep_mac=False)),
    ):
        producer.produce(prefix + topic, value=v, key=b"copy", headers=hs)
    assert producer.flush(30) == 0
    own, *copies = h.log.read(topic, 0, 0, 10)
    assert len(copies) == 4
    assert h.reader.decode(own)["value"]["customer_name"] == "Zed Secretname"
    for rec in copies:
        assert tenant_of(rec) == "default"  # the claim is dropped (the hub did not write it)
        shown = h.reader.decode(rec)
        assert "Secretname" not in json.dumps(shown), shown
        assert "authentication" in shown["error"], shown
