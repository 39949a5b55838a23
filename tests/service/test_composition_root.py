"""``bootstrap()`` builds every service once and hands each its ports (issue 12): services share
one governance fold, none holds the ``Hub``, and reading a folded topic per request does not
re-read it from offset 0."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from core.ports.eventlog import StoredRecord
from governance.retention import GOVERNANCE_TOPIC
from hub.api.app import create_app
from hub.bootstrap import Hub


def test_services_are_built_once_and_share_their_collaborators(hub: Hub) -> None:
    assert hub.config_changes._governance is hub.governance
    assert hub.config_changes._policies is hub.policy_store
    assert hub.config_changes._rules is hub.ingest.rules
    assert hub.config_changes._ledger is hub.ledger
    assert hub.ingest.rules.governed is hub.config_changes  # rule changes are governed changes
    assert hub.policy_changes.store is hub.policy_store
    assert hub.retention.governance is hub.governance
    assert hub.catalog._governance is hub.governance
    assert hub.catalog._lineage is hub.lineage
    assert hub.eraser._governance is hub.governance
    assert hub.eraser._projections is hub.projections


def test_no_service_holds_the_hub(hub: Hub) -> None:
    services = [
        hub.governance,
        hub.config_changes,
        hub.policy_changes,
        hub.policy_store,
        hub.retention,
        hub.lineage,
        hub.catalog,
        hub.eraser,
        hub.cases,
        hub.projections,
        hub.ingest,
        hub.keys,
    ]
    for service in services:
        held = [name for name, v in vars(service).items() if v is hub]
        assert held == [], f"{type(service).__name__} holds the Hub in {held}"


@pytest.fixture
def governance_reads(hub: Hub, monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """The offsets every read of ``hub.governance`` starts at (the log's ``read``, spied)."""
    starts: list[int] = []
    real = hub.log.read

    def read(topic: str, partition: int, offset: int, max_records: int = 1000) -> Any:
        if topic == GOVERNANCE_TOPIC:
            starts.append(offset)
        out: list[StoredRecord] = real(topic, partition, offset, max_records)
        return out

    monkeypatch.setattr(hub.log, "read", read)
    yield starts


def test_requests_read_the_governance_topic_from_where_the_fold_stopped(
    hub: Hub, governance_reads: list[int]
) -> None:
    token = hub.keys.create(["admin"], owner="admin").token
    hub.log.create_topic("t.raw", 1)
    with TestClient(create_app(hub)) as client:
        auth = {"Authorization": f"Bearer {token}"}
        for i in range(3):
            r = client.post(
                "/v1/legal-holds", json={"scope": f"subject:ACC-{i}", "matter": "m"}, headers=auth
            )
            assert r.status_code == 201, r.text
        assert len(hub.governance.holds()) == 3  # the fold catches up once ...
        stopped_at = hub.governance.state().positions[0]
        hub.ledger.sync()  # the ledger has read them too (once, for their leaves)
        governance_reads.clear()
        for _ in range(5):
            r = client.get("/v1/legal-holds", headers=auth)
            assert r.status_code == 200
            assert len(r.json()["holds"]) == 3
            assert client.get("/v1/retention/policies", headers=auth).status_code == 200
            assert client.get("/v1/catalog", headers=auth).status_code == 200
    assert governance_reads == []  # ... and then nothing new appended: nothing read again
    hub.governance.place_hold("subject:ACC-9", actor="legal")
    assert len(hub.governance.holds()) == 4
    # Only the new record is read, from where the fold stopped (by the fold, and by the ledger
    # when its background sync covers it).
    assert governance_reads and set(governance_reads) == {stopped_at}


def test_the_policy_follower_runs_again_for_a_second_app_on_the_same_hub(hub: Hub) -> None:
    follower = hub.policy_follower
    for _ in range(2):
        with TestClient(create_app(hub)):
            thread = follower._thread
            assert thread is not None
            thread.join(timeout=1.5)  # a stopped follower's loop would have ended by now
            assert thread.is_alive()
        assert follower._thread is None and not thread.is_alive()
