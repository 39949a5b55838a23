"""Retention must not delete the events the hub's own state is folded from (session 14 review).

Only ``hub.audit``, ``hub.governance`` and ``_schemas`` were protected. One security admin
(``retention.write``; the two-person rule names only ``policy`` by default) could set
``max_records: 1`` on ``hub.principals`` and run the job: every key but the newest was folded
out of existence (the admin's too), and with them the provenance the two-person rule walks.
The same held for the active policy (``hub.policies``), configuration and its approvals, cases
(an open case unmasks PII), model approvals, quarantine replay marks and source positions.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from core.events import OutgoingEvent
from governance.retention import POLICY_SET, PROTECTED_TOPICS
from hub.api.app import create_app
from hub.bootstrap import Hub, bootstrap

STATE_TOPICS = [
    "hub.principals",
    "hub.policies",
    "hub.config",
    "hub.config-changes",
    "hub.cases",
    "hub.models",
    "hub.quarantine-replays",
    "hub.source-positions",
]


def auth(token: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(token.encode()).decode()}


@pytest.fixture
def client(hub: Hub) -> Iterator[TestClient]:
    with TestClient(create_app(hub)) as c:
        yield c


def test_a_security_admin_cannot_expire_the_keys_out_of_existence(
    client: TestClient, hub: Hub
) -> None:
    root = hub.keys.create(["admin"], owner="root")
    sec = auth(hub.keys.create(["security_admin"], owner="sam").token)
    hub.keys.create(["analyst"], owner="ann")
    body = {"scope": "topic:hub.principals", "max_records": 1, "reason": "tidy up"}
    r = client.post("/v1/retention/policies", headers=sec, json=body)
    assert r.status_code == 422 and r.json()["reason"] == "protected_topic", r.text
    assert client.post("/v1/retention/run", headers=sec).status_code == 200
    assert client.get("/v1/topics", headers=auth(root.token)).status_code == 200
    # what a policy set before the topic was protected would do: the job skips it
    planted = {
        "scope": "topic:hub.principals",
        "max_age_ms": None,
        "max_records": 1,
        "time_column": None,
        "set_by": "sam",
        "reason": "before the fix",
        "set_at": "2026-12-01T00:00:00Z",
    }
    event = OutgoingEvent(value=planted, event_type=POLICY_SET, key=planted["scope"])
    hub.publisher.publish("hub.governance", [event], producer="sam")
    report = hub.retention.run()
    assert {"scope": "topic:hub.principals", "reason": "protected topic"} in report.skipped
    assert report.deleted == []
    # the keys come back the same in a new process (a fold of the whole topic)
    again = bootstrap(hub.settings)
    try:
        assert again.keys.verify(root.key_id, root.secret).id == "root"
        assert {k.owner for k in again.keys.active()} >= {"root", "sam", "ann"}
    finally:
        again.close()


@pytest.mark.parametrize("topic", STATE_TOPICS)
def test_no_retention_policy_on_a_topic_the_hubs_state_is_folded_from(
    client: TestClient, hub: Hub, topic: str
) -> None:
    assert topic in PROTECTED_TOPICS
    admin = auth(hub.keys.create(["admin"], owner="root").token)
    body = {"scope": f"topic:{topic}", "max_age_ms": 1, "reason": "tidy up"}
    r = client.post("/v1/retention/policies", headers=admin, json=body)
    assert r.status_code == 422 and r.json()["reason"] == "protected_topic", r.text
    assert hub.governance.policies() == {}
