"""Publishing PII topics with a stock Confluent serializer (issue 11.3), over real HTTP.

The registered schema of a PII topic is its log form (PII fields are ``bytes`` ciphertext). A
publisher holds the plain ``.avsc``: confluent-kafka's own ``AvroSerializer`` registers it under
the subject (the registry keeps it under ``<subject>-plain`` and answers with its id), the
framed values go to ``POST /v1/ingest/{topic}/avro``, and the hub encrypts before the log.
"""

from __future__ import annotations

import socket
import struct
import threading
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from confluent_kafka.schema_registry import SchemaRegistryClient, record_subject_name_strategy
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

from core.events import OutgoingEvent
from domain.catalog import schema_text
from hub.api.app import create_app
from hub.bootstrap import Hub, bootstrap
from hub.settings import load_settings

PORTS = range(25080, 25090)  # the ports this project's tests may serve on
SUBJECT = "hub.accounts.AccountOpened"


def _bind() -> socket.socket:
    for port in PORTS:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.bind(("127.0.0.1", port))
            return sock
        except OSError:
            sock.close()
    pytest.skip("no free port in 25080..25089")


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Hub, str, str]]:
    hub = bootstrap(load_settings(environ={}, data_dir=tmp_path / "hub"))
    sock = _bind()
    server = uvicorn.Server(
        uvicorn.Config(create_app(hub), log_level="warning", lifespan="off", access_log=False)
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.01)
    token = hub.keys.create(["admin"], principal="publisher").token
    try:
        yield hub, f"http://127.0.0.1:{sock.getsockname()[1]}", token
    finally:
        server.should_exit = True
        thread.join(timeout=15)
        sock.close()
        hub.close()


def account(account_id: str, name: str = "Alice Plain") -> dict[str, Any]:
    return {
        "account_id": account_id,
        "customer_name": name,
        "email": "alice.plain@example.org",
        "date_of_birth": date(1980, 2, 3),
        "country": "GB",
        "kyc_level": "STANDARD",
        "risk_rating": "LOW",
        "base_currency": "EUR",
        "opened_at": datetime(2026, 11, 25, 10, tzinfo=UTC),
    }


def post_framed(url: str, token: str, topic: str, *values: bytes) -> dict[str, Any]:
    user, _, secret = token.partition(":")
    body = b"".join(struct.pack(">I", len(v)) + v for v in values)
    r = httpx.post(
        f"{url}/v1/ingest/{topic}/avro",
        content=body,
        auth=(user, secret),
        headers={"Content-Type": "application/vnd.hub.wire-batch"},
        timeout=30,
    )
    assert r.status_code == 200, r.text
    out: dict[str, Any] = r.json()
    return out


def test_stock_avro_serializer_publishes_plain_records_and_the_hub_encrypts(
    served: tuple[Hub, str, str],
) -> None:
    hub, url, token = served
    client = SchemaRegistryClient({"url": url, "basic.auth.user.info": token})
    serializer = AvroSerializer(
        client,
        schema_text(SUBJECT),  # the plain .avsc as shipped
        conf={"subject.name.strategy": record_subject_name_strategy},
    )
    ctx = SerializationContext("accounts", MessageField.VALUE)
    value = serializer(account("ACC-PLAIN-1"), ctx)
    assert value is not None
    plain_id = int.from_bytes(value[1:5], "big")
    assert hub.registry.lookup(f"{SUBJECT}-plain", schema_text(SUBJECT)).id == plain_id
    assert hub.registry.versions(SUBJECT) == [1]  # the log form is untouched
    result = post_framed(url, token, "accounts", value)
    assert (result["accepted"], result["rejected"]) == (1, 0), result
    (stored,) = [
        r
        for p, end in hub.log.end_offsets("accounts").items()
        for r in hub.log.read("accounts", p, 0, end + 1)
    ]
    assert stored.value is not None
    assert b"Alice Plain" not in stored.value  # ciphertext in the log
    log_id = int.from_bytes(stored.value[1:5], "big")
    assert log_id == hub.registry.get_version(SUBJECT, "latest").id
    assert hub.reader.decode(stored)["value"]["customer_name"] == "Alice Plain"
    # and a stock Confluent consumer reads the stored record with the log schema (ciphertext)
    read = AvroDeserializer(client)(stored.value, ctx)
    assert isinstance(read["customer_name"], bytes) and read["account_id"] == "ACC-PLAIN-1"


def test_bytes_that_are_not_hub_ciphertext_get_a_clear_reason(served: tuple[Hub, str, str]) -> None:
    hub, url, token = served
    client = SchemaRegistryClient({"url": url, "basic.auth.user.info": token})
    log_form = AvroSerializer(
        client,
        hub.registry.get_version(SUBJECT, "latest").schema.text,  # ciphertext bytes fields
        conf={
            "subject.name.strategy": record_subject_name_strategy,
            "auto.register.schemas": False,
            "use.latest.version": True,
        },
    )
    ctx = SerializationContext("accounts", MessageField.VALUE)
    fake = {
        **account("ACC-NEW"),
        "customer_name": b"Alice",
        "email": b"a@example.org",
        "date_of_birth": None,
    }
    # an existing subject too: its key exists, and the bytes still are not its ciphertext
    existing = {
        **account("ACC-OLD"),
        "date_of_birth": "1980-02-03",
        "opened_at": "2026-11-25T10:00:00Z",
    }
    hub.publisher.publish(
        "accounts", [OutgoingEvent(value=existing, event_type=SUBJECT)], producer="t"
    )
    values = [log_form({**fake, "account_id": a}, ctx) for a in ("ACC-NEW", "ACC-OLD")]
    result = post_framed(url, token, "accounts", *[v for v in values if v is not None])
    assert (result["accepted"], result["rejected"]) == (0, 2), result
    for rejection in result["rejections"]:
        assert rejection["reason_code"] == "ciphertext_refused"
        assert "erased" not in rejection["reason"]  # it was: "key_destroyed ... (erased, or ...)"
        assert f"'{SUBJECT}-plain'" in rejection["reason"]
        assert "send plain values" in rejection["reason"]
