"""The HTTP API: authentication on every route, policy per role, publish and read, bad input."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from core.roles import ROLE_ACTIONS
from hub.api.app import create_app
from hub.bootstrap import Hub

TRADE = {
    "trade_id": "T-1",
    "account_id": "ACC-1",
    "instrument": "US0378331005",
    "side": "BUY",
    "quantity": "100",
    "price": "189.12345678",
    "currency": "USD",
    "executed_at": "2026-11-25T14:30:00.123456Z",
}


@pytest.fixture
def client(hub: Hub) -> Iterator[TestClient]:
    with TestClient(create_app(hub)) as c:
        yield c


def auth(token: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(token.encode()).decode()}


@pytest.fixture
def admin(hub: Hub) -> dict[str, str]:
    return auth(hub.keys.create(["admin"], principal="root").token)


def all_routes(routes: list) -> list:
    """Routes flattened: FastAPI (0.16x) keeps included routers as nested `_IncludedRouter`s."""
    out = []
    for r in routes:
        inner = getattr(r, "original_router", None)
        out.extend(all_routes(inner.routes) if inner is not None else [r])
    return out


def concrete(path: str) -> str:
    return (
        path.replace("{subject}", "s")
        .replace("{version}", "1")
        .replace("{id}", "1")
        .replace("{topic}", "trades")
    )


def test_every_route_but_the_probes_requires_authentication(client: TestClient, hub: Hub) -> None:
    app = client.app
    routes = [r for r in all_routes(app.routes) if hasattr(r, "methods")]  # type: ignore[attr-defined]
    assert len(routes) > 30, "the registry and hub routes are all mounted"
    checked = 0
    for route in routes:
        for method in route.methods - {"HEAD", "OPTIONS"}:
            resp = client.request(method, concrete(route.path))
            if route.path in ("/health", "/ready"):  # the probes
                assert resp.status_code == 200
            elif route.path == "/v1/enrol":  # the one-time token in the body is the credential
                assert resp.status_code == 422 and "body" in resp.text
            elif route.path == "/" or route.path.startswith("/ui"):
                # the console: its own session gate (tests/service/test_console.py) sends a page
                # without a session to the login page and answers a data call 401
                continue
            else:
                assert resp.status_code == 401, (method, route.path, resp.text)
                assert resp.json()["reason"] == "unauthenticated"
                checked += 1
    assert checked > 30
    bad = client.get("/v1/topics", headers={"Authorization": "Bearer hk_nope:secret"})
    assert bad.status_code == 401


def test_every_data_route_is_policy_checked(client: TestClient) -> None:
    """Each API route (except health) declares an authorize() dependency."""
    for route in all_routes(client.app.routes):  # type: ignore[attr-defined]
        if not isinstance(route, APIRoute) or route.path in ("/health", "/ready", "/v1/enrol"):
            continue  # the probes, and enrolment (its token is the credential)
        if route.path == "/" or route.path.startswith("/ui"):
            continue  # the console: test_console.py checks each of its routes declares an action
        names = [d.call.__name__ for d in route.dependant.dependencies if d.call]
        assert any(n.startswith("authorize_") for n in names), route.path


@pytest.mark.parametrize("role", sorted(ROLE_ACTIONS))
def test_roles_are_enforced(client: TestClient, hub: Hub, role: str) -> None:
    h = auth(hub.keys.create([role]).token)
    can = ROLE_ACTIONS[role]
    expect = {
        ("GET", "/v1/topics"): {"topic.read"},
        ("GET", "/subjects"): {"schema.read"},
        ("GET", "/metrics"): {"metrics.read"},  # a key of the hub's own tenant
        ("GET", "/v1/topics/trades/events"): {"event.read"},
    }
    for (method, path), actions in expect.items():
        status = client.request(method, path, headers=h).status_code
        assert (status == 200) == (actions <= can), (role, path, status)
        if not actions <= can:
            assert status == 403
    resp = client.post("/v1/topics/trades/events", headers=h, json={"events": [{"value": TRADE}]})
    assert (resp.status_code == 201) == ("event.publish" in can), (role, resp.text)


def test_basic_and_bearer_both_work(client: TestClient, hub: Hub) -> None:
    token = hub.keys.create(["analyst"]).token
    assert client.get("/v1/topics", headers=auth(token)).status_code == 200
    bearer = {"Authorization": f"Bearer {token}"}
    assert client.get("/v1/topics", headers=bearer).status_code == 200


def test_revoked_key_stops_working(client: TestClient, hub: Hub) -> None:
    issued = hub.keys.create(["analyst"])
    assert client.get("/v1/topics", headers=auth(issued.token)).status_code == 200
    hub.keys.revoke(issued.key_id, revoked_by="test")
    assert client.get("/v1/topics", headers=auth(issued.token)).status_code == 401


def test_publish_and_read_back_exact_decimals(client: TestClient, admin: dict[str, str]) -> None:
    body = {"events": [{"value": TRADE}, {"value": {**TRADE, "trade_id": "T-2"}}]}
    resp = client.post("/v1/topics/trades/events", headers=admin, json=body)
    assert resp.status_code == 201, resp.text
    offsets = resp.json()["offsets"]
    partition = offsets[0]["partition"]
    assert {o["partition"] for o in offsets} == {partition}  # same key, same partition
    read = client.get(f"/v1/topics/trades/events?partition={partition}", headers=admin).json()
    values = [r["value"] for r in read["records"]]
    assert values[0]["price"] == "189.12345678"
    assert values[0]["quantity"] == "100.0000"
    assert values[0]["executed_at"] == "2026-11-25T14:30:00.123456Z"
    headers = read["records"][0]["headers"]
    assert headers["ce_type"] == "hub.trading.TradeExecuted"
    assert headers["ce_source"] == "root"
    assert read["records"][0]["key"] == "ACC-1"


def test_record_name_strategy_topic_needs_event_type(
    client: TestClient, admin: dict[str, str]
) -> None:
    payment = {
        "payment_id": "P-1",
        "account_id": "ACC-1",
        "amount": "9999.99",
        "currency": "EUR",
        "counterparty_name": "Jane Doe",
        "counterparty_iban": "DE89370400440532013000",
        "counterparty_country": "DE",
        "initiated_at": "2026-11-25T10:00:00Z",
    }
    resp = client.post(
        "/v1/topics/payments/events", headers=admin, json={"events": [{"value": payment}]}
    )
    assert resp.status_code == 422
    assert resp.json()["reason"] == "event_type_required"
    resp = client.post(
        "/v1/topics/payments/events",
        headers=admin,
        json={"events": [{"value": payment, "event_type": "hub.payments.PaymentInitiated"}]},
    )
    assert resp.status_code == 201, resp.text
    rec = client.get(
        f"/v1/topics/payments/events?partition={resp.json()['offsets'][0]['partition']}",
        headers=admin,
    ).json()
    assert rec["records"][0]["headers"]["ce_classification"] == "pii"


@pytest.mark.parametrize(
    ("body", "status", "reason"),
    [
        (b"{not json", 422, "malformed_json"),
        (b"\xff\xfe\x00garbage", 422, "malformed_json"),
        (b'{"events": []}', 422, "invalid_batch"),
        (
            json.dumps({"events": [{"value": {**TRADE, "price": "1.123456789"}}]}).encode(),
            422,
            "serialization_error",
        ),
        (
            json.dumps({"events": [{"value": {**TRADE, "side": "SIDEWAYS"}}]}).encode(),
            422,
            "serialization_error",
        ),
        (
            json.dumps(
                {"events": [{"value": {k: v for k, v in TRADE.items() if k != "price"}}]}
            ).encode(),
            422,
            "serialization_error",
        ),
        (json.dumps({"events": [{"value": {**TRADE, "price": 1.5}}]}).encode(), 201, None),
    ],
)
def test_bad_input_is_rejected_and_nothing_is_stored(
    client: TestClient,
    hub: Hub,
    admin: dict[str, str],
    body: bytes,
    status: int,
    reason: str | None,
) -> None:
    before = sum(hub.log.end_offsets("trades").values())
    resp = client.post(
        "/v1/topics/trades/events",
        headers={**admin, "content-type": "application/json"},
        content=body,
    )
    assert resp.status_code == status, resp.text
    after = sum(hub.log.end_offsets("trades").values())
    if reason:
        assert resp.json()["reason"] == reason
        assert resp.json()["message"]
        assert after == before
    else:
        assert after == before + 1


def test_one_bad_record_rejects_the_whole_batch(
    client: TestClient, hub: Hub, admin: dict[str, str]
) -> None:
    body = {"events": [{"value": TRADE}, {"value": {**TRADE, "currency": "DOGE"}}]}
    resp = client.post("/v1/topics/trades/events", headers=admin, json=body)
    assert resp.status_code == 422
    assert resp.json()["message"].startswith("Record 1:")
    assert "currency" in resp.json()["message"]
    assert sum(hub.log.end_offsets("trades").values()) == 0


def test_oversize_payloads(client: TestClient, hub: Hub, admin: dict[str, str]) -> None:
    huge = {"events": [{"value": {**TRADE, "instrument": "X" * 2_000_000}}]}
    resp = client.post("/v1/topics/trades/events", headers=admin, json=huge)
    assert resp.status_code == 413
    assert resp.json()["reason"] == "payload_too_large"


def test_unknown_topic_and_topic_creation(client: TestClient, admin: dict[str, str]) -> None:
    resp = client.post("/v1/topics/nope/events", headers=admin, json={"events": [{"value": {}}]})
    assert resp.status_code == 404
    assert resp.json()["reason"] == "topic_not_found"
    made = client.post("/v1/topics", headers=admin, json={"name": "fx.rates", "partitions": 2})
    assert made.status_code == 201
    again = client.post("/v1/topics", headers=admin, json={"name": "fx.rates", "partitions": 5})
    assert again.status_code == 409


def test_openapi_and_metrics(client: TestClient, admin: dict[str, str]) -> None:
    doc = client.get("/openapi.json", headers=admin).json()
    assert "/subjects/{subject}/versions" in doc["paths"]
    assert "/v1/topics/{topic}/events" in doc["paths"]
    client.post("/v1/topics/trades/events", headers=admin, json={"events": [{"value": TRADE}]})
    text = client.get("/metrics", headers=admin).text
    assert 'hub_events_appended_total{topic="trades"} 1.0' in text
    assert "hub_http_request_seconds" in text
    # Labelled by the route template and the answer's status, not by the raw path.
    assert (
        'hub_http_requests_total{method="POST",route="/v1/topics/{topic}/events",status="201"} 1.0'
        in text
    ), [line for line in text.splitlines() if line.startswith("hub_http_requests_total")]


def test_only_admins_issue_admin_keys(client: TestClient, hub: Hub, admin: dict[str, str]) -> None:
    sec = auth(hub.keys.create(["security_admin"], owner="sam").token)
    assert client.post("/v1/keys", headers=sec, json={"roles": ["admin"]}).status_code == 403
    # A non-admin issues only roles it holds, to a new person.
    other = client.post("/v1/keys", headers=sec, json={"roles": ["analyst"]})
    assert other.status_code == 403 and other.json()["reason"] == "role_escalation"
    made = client.post("/v1/keys", headers=sec, json={"roles": ["security_admin"], "owner": "tim"})
    # a role that may approve: an enrolment token (half of it: a second approver adds the
    # other), never a key the issuer holds (governance.enrolment)
    assert made.status_code == 201 and "token" not in made.json()
    assert made.json()["status"] == "pending_approval"
    assert client.post("/v1/keys", headers=admin, json={"roles": ["wizard"]}).status_code == 422
