"""Issue 10 item 5: the registry API cannot delete, or make incompatible, a subject the hub's own
services write with (internal topics ``hub.*`` and ``_schemas``), whatever the role; and a hub
whose internal schema went missing re-registers it when it starts."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from core.roles import ROLE_ACTIONS, ROLES
from registry.internal import is_internal_subject

from ._api import Api, start_api

INTERNAL = ["hub.decisions-value", "hub.ApiKeyIssued", "hub.LegalHoldPlaced", "hub.audit2-value"]
NEW_SCHEMA = json.dumps({"type": "record", "name": "X", "fields": [{"name": "a", "type": "int"}]})


def changes(subject: str) -> list[tuple[str, str, dict[str, Any] | None]]:
    """Every registry request that deletes a subject, or makes it incompatible."""
    return [
        ("DELETE", f"/subjects/{subject}", None),
        ("DELETE", f"/subjects/{subject}?permanent=true", None),
        ("DELETE", f"/subjects/{subject}/versions/1", None),
        ("DELETE", f"/subjects/{subject}/versions/latest", None),
        ("DELETE", f"/subjects/{subject}/versions/-1?permanent=true", None),
        ("PUT", f"/config/{subject}", {"compatibility": "NONE"}),
        ("DELETE", f"/config/{subject}", None),
        ("PUT", f"/mode/{subject}", {"mode": "READONLY"}),
        ("PUT", f"/mode/{subject}", {"mode": "IMPORT"}),
        ("POST", f"/subjects/{subject}/versions", {"schema": NEW_SCHEMA}),
    ]


def test_the_internal_subject_rule() -> None:
    assert is_internal_subject("hub.decisions-value")
    assert is_internal_subject("hub.config-changes-value")
    assert is_internal_subject("hub.PolicyChangeActivated")  # record name of hub.policies
    assert is_internal_subject("_schemas-value")
    assert is_internal_subject("hub.anything-key")
    assert not is_internal_subject("trades-value")
    assert not is_internal_subject("hub.payments.PaymentInitiated")  # a domain topic's record
    assert not is_internal_subject("payments-hub.payments.PaymentInitiated")
    # one definition of "internal" with the write paths (core.events): flink.* result topics,
    # any _-topic, and case/Unicode-folded spellings are internal too
    assert is_internal_subject("flink.market_bars_1m-value")
    assert is_internal_subject("_offsets-key")
    assert is_internal_subject("HUB.principals-value")
    assert is_internal_subject("\uff48ub.decisions-value")  # fullwidth h
    assert not is_internal_subject("trade-labels-value")
    assert not is_internal_subject("trade-labels-hub.trading.TradeCleared")


@pytest.mark.parametrize("subject", INTERNAL)
def test_no_role_can_delete_or_break_an_internal_subject(api: Api, subject: str) -> None:
    for role in ROLES:
        for method, url, body in changes(subject):
            r = api.client.request(method, url, json=body, headers=api.as_role(role))
            assert r.status_code == 403, (role, method, url, r.status_code, r.text)
            if role == "admin":
                assert r.json()["reason"] == "internal_subject", (method, url, r.text)
    # the governed path to a subject's level is closed too
    r = api.client.post(
        "/v1/config/changes",
        json={"resource": f"registry.config:{subject}", "value": "NONE", "reason": "try"},
        headers=api.admin,
    )
    assert r.status_code == 403 and r.json()["reason"] == "internal_subject", r.text


def test_the_api_stays_up_after_the_attempts(api: Api) -> None:
    for method, url, body in changes("hub.decisions-value"):
        api.client.request(method, url, json=body, headers=api.admin)
    assert api.hub.registry.versions("hub.decisions-value") == [1]
    assert api.hub.registry.compatibility("hub.decisions-value") != "NONE"
    for path in ("/v1/topics", "/subjects", "/v1/legal-holds"):  # each records a decision
        assert api.client.get(path, headers=api.admin).status_code == 200, path
    r = api.client.post("/v1/legal-holds", json={"scope": "topic:trades"}, headers=api.admin)
    assert r.status_code == 201, r.text


def test_domain_subjects_stay_changeable(api: Api) -> None:
    r = api.client.put("/config/trades-value", json={"compatibility": "NONE"}, headers=api.admin)
    assert r.status_code == 200, r.text
    assert "schema.delete" in ROLE_ACTIONS["admin"]
    r = api.client.post(
        "/subjects/my-topic-value/versions", json={"schema": NEW_SCHEMA}, headers=api.admin
    )
    assert r.status_code == 200, r.text
    assert api.client.delete("/subjects/my-topic-value", headers=api.admin).status_code == 200


@pytest.mark.parametrize("permanent", [False, True])
def test_start_re_registers_a_missing_internal_schema(tmp_path: Path, permanent: bool) -> None:
    hub, client = start_api(tmp_path / "data")
    hub.registry.delete_subject("hub.decisions-value")  # "somehow": below the API
    if permanent:
        hub.registry.delete_subject("hub.decisions-value", permanent=True)
    client.close()
    hub.close()
    hub, client = start_api(tmp_path / "data")
    try:
        assert hub.registry.versions("hub.decisions-value")
        token = hub.keys.create(["admin"], principal="ops").token
        user, _, secret = token.partition(":")
        assert client.get("/v1/topics", auth=(user, secret)).status_code == 200
    finally:
        client.close()
        hub.close()


def test_start_works_when_the_registry_is_read_only(tmp_path: Path) -> None:
    hub, client = start_api(tmp_path / "data")
    hub.registry.set_mode("READONLY")
    client.close()
    hub.close()
    hub, client = start_api(tmp_path / "data")  # the shipped schemas are all registered already
    client.close()
    hub.close()
