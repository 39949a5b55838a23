"""The hub's Schema Registry REST API, proven with confluent-kafka's own client over real HTTP.

Part 1 drives the API with ``SchemaRegistryClient``, ``AvroSerializer`` and ``AvroDeserializer``;
part 2 checks each Confluent error code and response shape with raw HTTP; part 3 checks schema
evolution under the compatibility levels; part 4 checks what is stored (the ``_schemas`` topic
in Confluent's record format) and that a restarted registry serves the same ids and versions.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from confluent_kafka.schema_registry import (
    Schema,
    SchemaReference,
    ServerConfig,
    record_subject_name_strategy,
    topic_subject_name_strategy,
)
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.schema_registry.error import SchemaRegistryError
from confluent_kafka.serialization import MessageField, SerializationContext

from registry.service import SCHEMAS_TOPIC

from .conftest import RegistryServer

MEDIA_TYPE = "application/vnd.schemaregistry.v1+json"


def record(name: str, fields: list[dict[str, Any]], namespace: str = "com.acme.test") -> str:
    return json.dumps({"type": "record", "name": name, "namespace": namespace, "fields": fields})


def decimal_type(scale: int, precision: int = 18) -> dict[str, Any]:
    return {"type": "bytes", "logicalType": "decimal", "precision": precision, "scale": scale}


PAYMENT_V1 = record(
    "Payment",
    [
        {"name": "payment_id", "type": "string"},
        {"name": "amount", "type": decimal_type(2)},
    ],
)
PAYMENT_V2 = record(
    "Payment",
    [
        {"name": "payment_id", "type": "string"},
        {"name": "amount", "type": decimal_type(2)},
        {"name": "memo", "type": "string", "default": ""},
    ],
)
TRADE = record(
    "Trade",
    [
        {"name": "trade_id", "type": "string"},
        {"name": "price", "type": decimal_type(8)},
        {"name": "executed_at", "type": {"type": "long", "logicalType": "timestamp-micros"}},
    ],
    namespace="com.acme.trading",
)


def level_of(config: ServerConfig) -> str | None:
    return None if config.compatibility_level is None else config.compatibility_level.value


def body(schema: str, **extra: Any) -> dict[str, Any]:
    return {"schema": schema, **extra}


def assert_error(resp: httpx.Response, status: int, error_code: int) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith(MEDIA_TYPE)
    payload: dict[str, Any] = resp.json()
    assert payload["error_code"] == error_code, payload
    assert isinstance(payload["message"], str) and len(payload["message"]) > 10, payload
    return payload


# -- part 1: confluent-kafka's own client -----------------------------------------------------
def test_register_and_read_back_with_the_confluent_client(
    registry_server: RegistryServer,
) -> None:
    client = registry_server.client()
    schema_id = client.register_schema("payments-value", Schema(PAYMENT_V1, "AVRO"))
    assert schema_id >= 1
    # Same schema again, through a client with empty caches: same id, no new version.
    again = registry_server.client()
    assert again.register_schema("payments-value", Schema(PAYMENT_V1, "AVRO")) == schema_id
    assert again.get_versions("payments-value") == [1]
    # Same schema in another subject: same global id, that subject's version 1.
    assert again.register_schema("payments-copy", Schema(PAYMENT_V1, "AVRO")) == schema_id

    fetched = again.get_schema(schema_id)
    assert json.loads(fetched.schema_str or "") == json.loads(PAYMENT_V1)
    assert fetched.schema_type == "AVRO"

    latest = again.get_latest_version("payments-value")
    assert (latest.schema_id, latest.version, latest.subject) == (schema_id, 1, "payments-value")
    v1 = again.get_version("payments-value", 1)
    assert v1.schema_id == schema_id
    assert json.loads(v1.schema.schema_str or "") == json.loads(PAYMENT_V1)

    found = again.lookup_schema("payments-value", Schema(PAYMENT_V1, "AVRO"))
    assert (found.schema_id, found.version) == (schema_id, 1)

    subjects = again.get_subjects()
    assert {"payments-value", "payments-copy"} <= set(subjects)
    assert again.get_subjects(subject_prefix="payments-c") == ["payments-copy"]
    assert again.get_schema_types() == ["AVRO"]
    assert again.get_subjects_by_schema_id(schema_id) == ["payments-copy", "payments-value"]
    pairs = {(v.subject, v.version) for v in again.get_schema_versions(schema_id)}
    assert pairs == {("payments-copy", 1), ("payments-value", 1)}

    v2_id = again.register_schema("payments-value", Schema(PAYMENT_V2, "AVRO"))
    assert v2_id != schema_id
    assert again.get_versions("payments-value") == [1, 2]
    assert registry_server.client().get_latest_version("payments-value").version == 2

    with pytest.raises(SchemaRegistryError) as missing:
        again.lookup_schema("payments-copy", Schema(PAYMENT_V2, "AVRO"))
    assert (missing.value.http_status_code, missing.value.error_code) == (404, 40403)


def test_soft_and_permanent_deletes_with_the_confluent_client(
    registry_server: RegistryServer,
) -> None:
    client = registry_server.client()
    client.register_schema("deletes-value", Schema(PAYMENT_V1, "AVRO"))
    client.register_schema("deletes-value", Schema(PAYMENT_V2, "AVRO"))

    assert client.delete_version("deletes-value", 1) == 1
    assert client.get_versions("deletes-value") == [2]
    assert client.get_versions("deletes-value", deleted=True) == [1, 2]
    assert client.get_versions("deletes-value", deleted_only=True) == [1]
    assert client.get_version("deletes-value", 1, deleted=True).version == 1

    with pytest.raises(SchemaRegistryError) as not_soft:
        client.delete_subject("deletes-value", permanent=True)
    assert not_soft.value.error_code == 40405

    assert client.delete_version("deletes-value", 1, permanent=True) == 1
    assert client.get_versions("deletes-value", deleted=True) == [2]

    assert client.delete_subject("deletes-value") == [2]
    assert "deletes-value" not in client.get_subjects()
    assert "deletes-value" in client.get_subjects(deleted=True)
    assert "deletes-value" in client.get_subjects(deleted_only=True)
    with pytest.raises(SchemaRegistryError) as gone:
        client.get_versions("deletes-value")
    assert gone.value.error_code == 40401

    assert client.delete_subject("deletes-value", permanent=True) == [2]
    assert "deletes-value" not in client.get_subjects(deleted=True)

    # Re-registering after a permanent delete starts the subject afresh.
    assert client.register_schema("deletes-value", Schema(PAYMENT_V1, "AVRO")) >= 1
    assert client.get_versions("deletes-value") == [1]


def test_compatibility_config_with_the_confluent_client(registry_server: RegistryServer) -> None:
    client = registry_server.client()
    client.register_schema("compat-value", Schema(PAYMENT_V1, "AVRO"))
    assert client.get_compatibility() == "BACKWARD"
    with pytest.raises(SchemaRegistryError) as unset:
        client.get_compatibility("compat-value")
    assert unset.value.error_code == 40408

    # The client returns the PUT answer as is: Confluent's {"compatibility": ...}.
    answer: Any = client.set_compatibility("compat-value", "full")
    assert answer == {"compatibility": "FULL"}
    assert client.get_compatibility("compat-value") == "FULL"
    assert level_of(client.get_config("compat-value")) == "FULL"

    no_default = record(
        "Payment",
        [
            {"name": "payment_id", "type": "string"},
            {"name": "amount", "type": decimal_type(2)},
            {"name": "desk", "type": "string"},
        ],
    )
    assert client.test_compatibility("compat-value", Schema(PAYMENT_V2, "AVRO")) is True
    assert client.test_compatibility("compat-value", Schema(no_default, "AVRO"), 1) is False
    assert (
        client.test_compatibility_all_versions("compat-value", Schema(no_default, "AVRO")) is False
    )

    assert level_of(client.delete_config("compat-value")) == "FULL"
    answer = client.set_compatibility(level="NONE")
    assert answer == {"compatibility": "NONE"}
    assert client.get_compatibility() == "NONE"
    assert client.test_compatibility("compat-value", Schema(no_default, "AVRO")) is True
    assert level_of(client.delete_config()) == "NONE"
    assert client.get_compatibility() == "BACKWARD"


def test_mode_with_the_confluent_client(registry_server: RegistryServer) -> None:
    client = registry_server.client()
    assert client.get_global_mode() == "READWRITE"
    assert client.update_mode("frozen-value", "READONLY") == "READONLY"
    assert client.get_mode("frozen-value") == "READONLY"
    with pytest.raises(SchemaRegistryError) as refused:
        client.register_schema("frozen-value", Schema(PAYMENT_V1, "AVRO"))
    assert (refused.value.http_status_code, refused.value.error_code) == (422, 42205)
    assert client.update_mode("frozen-value", "READWRITE") == "READWRITE"
    assert client.register_schema("frozen-value", Schema(PAYMENT_V1, "AVRO")) >= 1


MONEY = record(
    "Money", [{"name": "amount", "type": decimal_type(4)}, {"name": "currency", "type": "string"}]
)
TRANSFER = record(
    "Transfer",
    [{"name": "transfer_id", "type": "string"}, {"name": "value", "type": "com.acme.test.Money"}],
)


def test_schema_references_with_the_confluent_client(registry_server: RegistryServer) -> None:
    client = registry_server.client()
    money_id = client.register_schema("money", Schema(MONEY, "AVRO"))
    ref = SchemaReference("com.acme.test.Money", "money", 1)
    transfer = Schema(TRANSFER, "AVRO", references=[ref])
    transfer_id = client.register_schema("transfers-value", transfer)
    assert transfer_id != money_id

    fresh = registry_server.client()
    got = fresh.get_latest_version("transfers-value")
    assert [(r.name, r.subject, r.version) for r in got.schema.references or ()] == [
        ("com.acme.test.Money", "money", 1)
    ]
    assert [r.subject for r in fresh.get_schema(transfer_id).references or ()] == ["money"]
    assert fresh.get_referenced_by("money", 1) == [transfer_id]
    assert fresh.lookup_schema("transfers-value", transfer).schema_id == transfer_id

    with pytest.raises(SchemaRegistryError) as referenced:
        fresh.delete_version("money", 1)
    assert (referenced.value.http_status_code, referenced.value.error_code) == (422, 42206)

    # The serializer resolves the reference through the registry; the deserializer too.
    serializer = AvroSerializer(
        fresh, transfer, conf={"auto.register.schemas": False, "use.latest.version": True}
    )
    ctx = SerializationContext("transfers", MessageField.VALUE)
    value = {"transfer_id": "X-1", "value": {"amount": Decimal("12.3400"), "currency": "EUR"}}
    data = serializer(value, ctx)
    assert data is not None
    assert int.from_bytes(data[1:5], "big") == transfer_id
    assert AvroDeserializer(registry_server.client())(data, ctx) == value


@pytest.mark.parametrize(
    ("strategy", "subject"),
    [
        (topic_subject_name_strategy, "otc-trades-value"),
        (record_subject_name_strategy, "com.acme.trading.Trade"),
    ],
    ids=["topic", "record"],
)
def test_avro_round_trip_with_decimal_and_timestamp_micros(
    registry_server: RegistryServer, strategy: Callable[..., str], subject: str
) -> None:
    serializer = AvroSerializer(
        registry_server.client(), TRADE, conf={"subject.name.strategy": strategy}
    )
    ctx = SerializationContext("otc-trades", MessageField.VALUE)
    value = {
        "trade_id": "T-1",
        "price": Decimal("189.12345678"),
        "executed_at": datetime(2026, 11, 25, 14, 30, 0, 123456, tzinfo=UTC),
    }
    data = serializer(value, ctx)
    assert data is not None and data[0] == 0  # Confluent wire format: magic byte 0, then the id
    registered = registry_server.client().get_latest_version(subject)
    assert int.from_bytes(data[1:5], "big") == registered.schema_id

    decoded = AvroDeserializer(registry_server.client())(data, ctx)
    assert decoded == value
    assert decoded["price"].as_tuple().exponent == -8
    assert decoded["executed_at"].microsecond == 123456


# -- part 2: raw HTTP, shapes and every error code ---------------------------------------------
def test_response_shapes_and_media_types(registry_server: RegistryServer) -> None:
    with registry_server.http() as http:
        for ctype in (MEDIA_TYPE, "application/vnd.schemaregistry+json", "application/json"):
            resp = http.post(
                "/subjects/shapes-value/versions",
                content=json.dumps(body(PAYMENT_V1)),
                headers={"Content-Type": ctype},
            )
            assert resp.status_code == 200, resp.text
            assert resp.headers["content-type"].startswith(MEDIA_TYPE)
            schema_id = resp.json()["id"]
        assert resp.json() == {"id": schema_id}

        version = http.get("/subjects/shapes-value/versions/latest").json()
        assert version == {
            "subject": "shapes-value",
            "version": 1,
            "id": schema_id,
            "schema": PAYMENT_V1,
        }
        assert http.get("/subjects/shapes-value/versions/-1").json() == version
        assert http.get("/subjects/shapes-value/versions/1").json() == version
        raw = http.get("/subjects/shapes-value/versions/1/schema")
        assert raw.status_code == 200 and json.loads(raw.text) == json.loads(PAYMENT_V1)
        assert http.get(f"/schemas/ids/{schema_id}").json() == {"schema": PAYMENT_V1}
        assert http.get(
            f"/schemas/ids/{schema_id}", params={"subject": "x", "format": "y"}
        ).json() == {"schema": PAYMENT_V1}
        assert json.loads(http.get(f"/schemas/ids/{schema_id}/schema").text) == json.loads(
            PAYMENT_V1
        )
        assert http.get(f"/schemas/ids/{schema_id}/subjects").json() == ["shapes-value"]
        assert http.get(f"/schemas/ids/{schema_id}/versions").json() == [
            {"subject": "shapes-value", "version": 1}
        ]
        assert http.get("/schemas/types").json() == ["AVRO"]
        listed = http.get("/schemas", params={"subjectPrefix": "shapes"}).json()
        assert listed == [version]
        looked_up = http.post("/subjects/shapes-value", json=body(PAYMENT_V1)).json()
        assert looked_up == version
        http.post("/subjects/shapes-value/versions", json=body(PAYMENT_V2))
        assert http.get("/subjects/shapes-value/versions").json() == [1, 2]
        assert http.get(
            "/subjects/shapes-value/versions", params={"offset": 1, "limit": 1}
        ).json() == [2]
        latest_only = http.get("/schemas", params={"subjectPrefix": "shapes", "latestOnly": True})
        assert [s["version"] for s in latest_only.json()] == [2]
        assert http.get("/subjects/shapes-value/versions/1/referencedby").json() == []
        assert http.get("/config").json() == {"compatibilityLevel": "BACKWARD"}
        assert http.get("/config/shapes-value", params={"defaultToGlobal": True}).json() == {
            "compatibilityLevel": "BACKWARD"
        }
        assert http.put("/config/shapes-value", json={"compatibility": "FORWARD"}).json() == {
            "compatibility": "FORWARD"
        }
        assert http.get("/config/shapes-value").json() == {"compatibilityLevel": "FORWARD"}
        assert http.get("/mode").json() == {"mode": "READWRITE"}
        assert http.get("/mode/shapes-value").json() == {"mode": "READWRITE"}
        # normalize is accepted (the registry always compares canonical forms).
        reformatted = json.dumps(json.loads(PAYMENT_V1), indent=2)
        again = http.post(
            "/subjects/shapes-value/versions", params={"normalize": "true"}, json=body(reformatted)
        )
        assert again.json() == {"id": schema_id}


def test_not_found_error_codes(registry_server: RegistryServer) -> None:
    with registry_server.http() as http:
        assert_error(http.get("/subjects/nope/versions"), 404, 40401)
        assert_error(http.get("/subjects/nope/versions/1"), 404, 40401)
        assert_error(http.post("/subjects/nope", json=body(PAYMENT_V1)), 404, 40401)
        assert_error(http.delete("/subjects/nope"), 404, 40401)
        http.post("/subjects/nf-value/versions", json=body(PAYMENT_V1)).raise_for_status()
        assert_error(http.get("/subjects/nf-value/versions/99"), 404, 40402)
        assert_error(http.delete("/subjects/nf-value/versions/99"), 404, 40402)
        assert_error(http.get("/schemas/ids/99999"), 404, 40403)
        assert_error(http.get("/schemas/ids/99999/schema"), 404, 40403)
        assert_error(http.get("/schemas/ids/99999/subjects"), 404, 40403)
        assert_error(http.post("/subjects/nf-value", json=body(PAYMENT_V2)), 404, 40403)
        assert_error(http.get("/config/nf-value"), 404, 40408)
        assert_error(http.delete("/config/nf-value"), 404, 40408)


def test_delete_state_error_codes(registry_server: RegistryServer) -> None:
    with registry_server.http() as http:
        http.post("/subjects/del-value/versions", json=body(PAYMENT_V1)).raise_for_status()
        http.post("/subjects/del-value/versions", json=body(PAYMENT_V2)).raise_for_status()
        assert_error(http.delete("/subjects/del-value/versions/1?permanent=true"), 404, 40407)
        assert http.delete("/subjects/del-value/versions/1").json() == 1
        assert_error(http.delete("/subjects/del-value/versions/1"), 404, 40406)
        assert_error(http.get("/subjects/del-value/versions/1"), 404, 40402)
        assert (
            http.get("/subjects/del-value/versions/1", params={"deleted": True}).json()["version"]
            == 1
        )
        assert_error(http.delete("/subjects/del-value?permanent=true"), 404, 40405)
        assert http.delete("/subjects/del-value").json() == [2]
        assert_error(http.delete("/subjects/del-value"), 404, 40404)
        assert http.delete("/subjects/del-value?permanent=true").json() == [1, 2]
        assert_error(http.delete("/subjects/del-value?permanent=true"), 404, 40401)


def test_invalid_input_error_codes(registry_server: RegistryServer) -> None:
    with registry_server.http() as http:
        bad = assert_error(
            http.post("/subjects/inv-value/versions", json=body('{"type": "recrod"}')), 422, 42201
        )
        assert bad["reason"] == "invalid_schema"
        assert_error(
            http.post("/subjects/inv-value/versions", json={"schemaType": "AVRO"}), 422, 42201
        )
        assert_error(
            http.post("/subjects/inv-value/versions", json=body("not json at all {")), 422, 42201
        )
        proto = body('syntax = "proto3"; message M {}', schemaType="PROTOBUF")
        assert_error(http.post("/subjects/inv-value/versions", json=proto), 422, 42201)
        dangling = body(
            TRANSFER, references=[{"name": "com.acme.test.Money", "subject": "nope", "version": 1}]
        )
        assert_error(http.post("/subjects/inv-value/versions", json=dangling), 422, 42201)
        dangling["references"][0]["version"] = -1  # "latest" of a subject that does not exist
        assert_error(http.post("/subjects/inv-value/versions", json=dangling), 422, 42201)
        http.post("/subjects/inv-value/versions", json=body(PAYMENT_V1)).raise_for_status()
        for version in ("0", "abc", "2147483648", "-2"):
            assert_error(http.get(f"/subjects/inv-value/versions/{version}"), 422, 42202)
        assert_error(http.get("/subjects/nope/versions/abc"), 422, 42202)
        assert_error(http.put("/config", json={"compatibility": "SIDEWAYS"}), 422, 42203)
        assert_error(http.put("/config/inv-value", json={"compatibility": 3}), 422, 42203)
        assert_error(http.put("/mode", json={"mode": "FAST"}), 422, 42204)
        assert_error(http.put("/mode/inv-value", json={}), 422, 42204)

        malformed = assert_error(
            http.post(
                "/subjects/inv-value/versions",
                content=b'{"schema": ',
                headers={"Content-Type": MEDIA_TYPE},
            ),
            422,
            422,
        )
        assert "not valid JSON" in malformed["message"] and "column" in malformed["message"]
        assert_error(http.post("/subjects/inv-value/versions", json=["a"]), 422, 422)
        assert_error(
            http.post(
                "/subjects/inv-value/versions",
                content=b"",
                headers={"Content-Type": MEDIA_TYPE},
            ),
            422,
            422,
        )
        assert_error(
            http.post(
                "/subjects/inv-value/versions",
                content=json.dumps(body(PAYMENT_V1)),
                headers={"Content-Type": "text/plain"},
            ),
            415,
            415,
        )
        assert_error(http.get("/subjects", headers={"Accept": "text/html"}), 406, 406)
        assert http.get("/subjects", headers={"Accept": "*/*"}).status_code == 200
        assert_error(http.get("/schemas/ids/abc"), 422, 422)


def test_read_only_mode_refuses_writes(registry_server: RegistryServer) -> None:
    with registry_server.http() as http:
        http.post("/subjects/ro-value/versions", json=body(PAYMENT_V1)).raise_for_status()
        assert http.put("/mode", json={"mode": "READONLY"}).json() == {"mode": "READONLY"}
        refused = assert_error(
            http.post("/subjects/ro-value/versions", json=body(PAYMENT_V2)), 422, 42205
        )
        assert "read-only" in refused["message"]
        assert_error(http.delete("/subjects/ro-value/versions/1"), 422, 42205)
        assert_error(http.delete("/subjects/ro-value"), 422, 42205)
        assert http.get("/subjects/ro-value/versions").json() == [1]  # reads still work
        assert http.put("/mode", json={"mode": "READWRITE"}).json() == {"mode": "READWRITE"}
        http.post("/subjects/ro-value/versions", json=body(PAYMENT_V2)).raise_for_status()


def test_import_mode_keeps_given_ids(registry_server: RegistryServer) -> None:
    with registry_server.http() as http:
        assert_error(
            http.post("/subjects/imp-value/versions", json=body(PAYMENT_V1, id=500, version=7)),
            422,
            42205,
        )
        http.put("/mode/imp-value", json={"mode": "IMPORT"}).raise_for_status()
        resp = http.post("/subjects/imp-value/versions", json=body(PAYMENT_V1, id=500, version=7))
        assert resp.json() == {"id": 500}
        assert http.get("/subjects/imp-value/versions").json() == [7]
        clash = http.post("/subjects/imp-value/versions", json=body(PAYMENT_V2, id=500, version=8))
        assert_error(clash, 422, 42207)


def test_reference_exists_and_referenced_by(registry_server: RegistryServer) -> None:
    with registry_server.http() as http:
        http.post("/subjects/money/versions", json=body(MONEY)).raise_for_status()
        refs = [{"name": "com.acme.test.Money", "subject": "money", "version": -1}]
        transfer = http.post("/subjects/xfer-value/versions", json=body(TRANSFER, references=refs))
        transfer_id = transfer.json()["id"]
        stored = http.get("/subjects/xfer-value/versions/1").json()
        assert stored["references"] == [
            {"name": "com.acme.test.Money", "subject": "money", "version": 1}
        ]
        assert http.get("/subjects/money/versions/1/referencedby").json() == [transfer_id]
        assert_error(http.delete("/subjects/money/versions/1"), 422, 42206)
        assert_error(http.delete("/subjects/money"), 422, 42206)


def test_policy_denials_answer_40301(registry_server: RegistryServer) -> None:
    analyst = registry_server.issue("analyst")
    with registry_server.http(analyst) as http:
        assert http.get("/subjects").status_code == 200
        denied = assert_error(
            http.post("/subjects/deny-value/versions", json=body(PAYMENT_V1)), 403, 40301
        )
        assert "schema.write" in denied["message"]
        assert_error(http.put("/config", json={"compatibility": "NONE"}), 403, 40301)
        assert_error(http.delete("/subjects/deny-value"), 403, 40301)
    with pytest.raises(SchemaRegistryError) as refused:
        registry_server.client(analyst).register_schema("deny-value", Schema(PAYMENT_V1, "AVRO"))
    assert refused.value.error_code == 40301


def test_backend_failure_answers_50001(
    registry_server: RegistryServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: Any, **kwargs: Any) -> Any:
        raise OSError("disk I/O error")

    monkeypatch.setattr(registry_server.log, "append", broken)
    # the hub app appends a registration with its decision, in one transaction
    monkeypatch.setattr(registry_server.log, "transaction", broken)
    with registry_server.http() as http:
        failed = assert_error(
            http.post("/subjects/broken-value/versions", json=body(PAYMENT_V1)), 500, 50001
        )
        assert "OSError" in failed["message"]
    monkeypatch.undo()
    with registry_server.http() as http:
        http.post("/subjects/broken-value/versions", json=body(PAYMENT_V1)).raise_for_status()
        assert http.get("/subjects/broken-value/versions").json() == [1]


def test_concurrent_clients_see_consistent_state(registry_server: RegistryServer) -> None:
    errors: list[str] = []

    def work(n: int) -> None:
        with registry_server.http() as http:
            for i in range(8):
                schema = record(f"Event{n}x{i}", [{"name": "id", "type": "string"}])
                resp = http.post(f"/subjects/conc-{n}-{i}/versions", json=body(schema))
                listed = http.get("/subjects")
                if resp.status_code != 200 or listed.status_code != 200:
                    errors.append(f"{resp.status_code} {resp.text} {listed.status_code}")

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with registry_server.http() as http:
        subjects = [s for s in http.get("/subjects").json() if s.startswith("conc-")]
        assert len(subjects) == 32
        ids = [http.get(f"/subjects/{s}/versions/1").json()["id"] for s in subjects]
        assert len(set(ids)) == 32


# -- part 3: schema evolution ------------------------------------------------------------------
def test_backward_evolution_accepts_defaults_and_names_breaking_fields(
    registry_server: RegistryServer,
) -> None:
    with registry_server.http() as http:
        http.post("/subjects/evo-value/versions", json=body(PAYMENT_V1)).raise_for_status()
        v2 = http.post("/subjects/evo-value/versions", json=body(PAYMENT_V2))
        assert v2.status_code == 200, v2.text
        assert http.get("/subjects/evo-value/versions").json() == [1, 2]

        added_without_default = record(
            "Payment",
            [
                {"name": "payment_id", "type": "string"},
                {"name": "amount", "type": decimal_type(2)},
                {"name": "memo", "type": "string", "default": ""},
                {"name": "settlement_desk", "type": "string"},
            ],
        )
        rejected = assert_error(
            http.post("/subjects/evo-value/versions", json=body(added_without_default)), 409, 409
        )
        assert "settlement_desk" in rejected["message"]
        assert "BACKWARD" in rejected["message"]

        # (A decimal rescale alone passes, as in Confluent's registry, which ignores logical
        # types: tests/unit/test_compatibility.py; a change of the underlying type does not.)
        rescaled = record(
            "Payment",
            [
                {"name": "payment_id", "type": "string"},
                {"name": "amount", "type": "double"},
                {"name": "memo", "type": "string", "default": ""},
            ],
        )
        rejected = assert_error(
            http.post("/subjects/evo-value/versions", json=body(rescaled)), 409, 409
        )
        assert "amount" in rejected["message"]
        assert "cannot read the writer type bytes" in rejected["message"]

        verbose = http.post(
            "/compatibility/subjects/evo-value/versions/latest",
            params={"verbose": True},
            json=body(rescaled),
        ).json()
        assert verbose["is_compatible"] is False
        assert any("amount" in m for m in verbose["messages"])
        assert http.post(
            "/compatibility/subjects/evo-value/versions/latest", json=body(rescaled)
        ).json() == {"is_compatible": False}
        assert http.post(
            "/compatibility/subjects/evo-value/versions",
            params={"verbose": True},
            json=body(PAYMENT_V2),
        ).json() == {"is_compatible": True, "messages": []}
        # Nothing rejected was stored.
        assert http.get("/subjects/evo-value/versions").json() == [1, 2]
        # A subject without versions is compatible with anything; a missing version is not found.
        assert http.post(
            "/compatibility/subjects/fresh-value/versions/latest", json=body(rescaled)
        ).json() == {"is_compatible": True}
        assert_error(
            http.post("/compatibility/subjects/evo-value/versions/9", json=body(rescaled)),
            404,
            40402,
        )


def test_removing_a_field_without_default_breaks_forward_and_full(
    registry_server: RegistryServer,
) -> None:
    without_payment_id = record("Payment", [{"name": "amount", "type": decimal_type(2)}])
    with registry_server.http() as http:
        http.post("/subjects/rm-value/versions", json=body(PAYMENT_V1)).raise_for_status()
        # BACKWARD: a new reader simply ignores the removed field.
        assert http.post(
            "/compatibility/subjects/rm-value/versions/latest", json=body(without_payment_id)
        ).json() == {"is_compatible": True}
        http.put("/config/rm-value", json={"compatibility": "FULL"}).raise_for_status()
        rejected = assert_error(
            http.post("/subjects/rm-value/versions", json=body(without_payment_id)), 409, 409
        )
        assert "payment_id" in rejected["message"]
        assert "FULL" in rejected["message"]


def test_full_transitive_checks_every_version_but_full_only_the_latest(
    registry_server: RegistryServer,
) -> None:
    v1 = record(
        "Order", [{"name": "order_id", "type": "string"}, {"name": "venue", "type": "string"}]
    )
    v2 = record(
        "Order",
        [
            {"name": "order_id", "type": "string"},
            {"name": "venue", "type": "string", "default": "X"},
        ],
    )
    v3 = record("Order", [{"name": "order_id", "type": "string"}])
    with registry_server.http() as http:
        for subject, level in (("full-value", "FULL"), ("fullt-value", "FULL_TRANSITIVE")):
            http.put(f"/config/{subject}", json={"compatibility": level}).raise_for_status()
            http.post(f"/subjects/{subject}/versions", json=body(v1)).raise_for_status()
            http.post(f"/subjects/{subject}/versions", json=body(v2)).raise_for_status()

        assert http.post("/subjects/full-value/versions", json=body(v3)).status_code == 200
        assert http.get("/subjects/full-value/versions").json() == [1, 2, 3]

        check = http.post(
            "/compatibility/subjects/fullt-value/versions", params={"verbose": True}, json=body(v3)
        ).json()
        assert check["is_compatible"] is False and any("venue" in m for m in check["messages"])
        # Against only the latest version the same schema is fine.
        assert http.post(
            "/compatibility/subjects/fullt-value/versions/2", json=body(v3)
        ).json() == {"is_compatible": True}
        rejected = assert_error(
            http.post("/subjects/fullt-value/versions", json=body(v3)), 409, 409
        )
        assert "venue" in rejected["message"] and "FULL_TRANSITIVE" in rejected["message"]


# -- part 4: storage and restart ---------------------------------------------------------------
def test_state_is_stored_in_the_schemas_topic_in_confluent_format(
    registry_server: RegistryServer,
) -> None:
    with registry_server.http() as http:
        start = registry_server.log.end_offsets(SCHEMAS_TOPIC)[0]
        schema_id = http.post("/subjects/fmt-value/versions", json=body(PAYMENT_V1)).json()["id"]
        http.put("/config/fmt-value", json={"compatibility": "FULL"}).raise_for_status()
        http.put("/mode/fmt-value", json={"mode": "READWRITE"}).raise_for_status()
        http.delete("/subjects/fmt-value").raise_for_status()
        http.delete("/subjects/fmt-value?permanent=true").raise_for_status()

    recs = registry_server.log.read(SCHEMAS_TOPIC, 0, start, 100)
    keys = [r.key for r in recs]
    values = [None if r.value is None else json.loads(r.value) for r in recs]
    schema_key = b'{"keytype":"SCHEMA","subject":"fmt-value","version":1,"magic":1}'
    config_key = b'{"keytype":"CONFIG","subject":"fmt-value","magic":0}'
    mode_key = b'{"keytype":"MODE","subject":"fmt-value","magic":0}'
    assert keys == [schema_key, config_key, mode_key, schema_key, config_key, mode_key, schema_key]
    assert values[0] == {
        "subject": "fmt-value",
        "version": 1,
        "id": schema_id,
        "schema": PAYMENT_V1,
        "deleted": False,
        "tenant": "default",  # its owner (hub.registry_scope): a member Confluent ignores
    }
    assert values[1] == {"compatibilityLevel": "FULL"}
    assert values[2] == {"mode": "READWRITE"}
    assert values[3] == {**values[0], "deleted": True}  # soft delete of the subject ...
    assert values[4] is None and values[5] is None  # ... drops its config and mode
    assert values[6] is None  # permanent delete: a tombstone
    assert registry_server.log.topic(SCHEMAS_TOPIC).config.get("cleanup.policy") == "compact"


def test_a_restarted_registry_serves_the_same_ids_and_versions(
    start_registry: Callable[[Path], RegistryServer], tmp_path: Path
) -> None:
    data_dir = tmp_path / "data"
    first = start_registry(data_dir)
    client = first.client()
    ids = {
        "a-value": client.register_schema("a-value", Schema(PAYMENT_V1, "AVRO")),
        "b-value": client.register_schema("b-value", Schema(TRADE, "AVRO")),
    }
    ids["a-value v2"] = client.register_schema("a-value", Schema(PAYMENT_V2, "AVRO"))
    client.register_schema("money", Schema(MONEY, "AVRO"))
    ref = SchemaReference("com.acme.test.Money", "money", 1)
    ids["xfer"] = client.register_schema("xfer-value", Schema(TRANSFER, "AVRO", references=[ref]))
    client.set_compatibility("b-value", "FULL_TRANSITIVE")
    client.delete_version("a-value", 1)
    with first.http() as http:
        before = {
            path: http.get(path).json()
            for path in (
                "/subjects",
                "/schemas",
                "/subjects/a-value/versions",
                "/subjects/a-value/versions/1?deleted=true",
                "/subjects/xfer-value/versions/latest",
                "/config/b-value",
            )
        }
    first.stop()

    second = start_registry(data_dir)
    with second.http() as http:
        after = {path: http.get(path).json() for path in before}
    assert after == before
    again = second.client()
    assert again.get_latest_version("a-value").schema_id == ids["a-value v2"]
    assert again.get_latest_version("b-value").schema_id == ids["b-value"]
    assert again.get_latest_version("xfer-value").schema_id == ids["xfer"]
    # Registering a known schema returns its old id; a new one gets max(id) + 1.
    assert again.register_schema("c-value", Schema(PAYMENT_V1, "AVRO")) == ids["a-value"]
    fresh = record("Fresh", [{"name": "x", "type": "int"}])
    expected = max(second.registry.schema_ids()) + 1
    assert again.register_schema("d-value", Schema(fresh, "AVRO")) == expected
