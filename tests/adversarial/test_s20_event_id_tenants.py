"""Event ids are deduplicated per tenant, as natural keys are (session 20, high).

The event-id window was one per topic for every tenant. A sender may give its records' event
ids (``event_id``: the retry key of an idempotent producer, often derived from its own
business id; the Debezium source derives them from connector, table, LSN, operation and key).
globex's publisher that sent such an id first made acme's record with that id a "duplicate":
acme was answered ``duplicates: 1`` and its record was never stored; sending an id acme had
used told globex so (the same answer). Now each tenant's ids have their own window, rebuilt
from the log's ``ce_tenant`` beside ``ce_id``; a tenant's own retry stays a duplicate.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from hub.api.app import create_app
from hub.bootstrap import bootstrap
from tests.adversarial._api import QUOTE, basic, issue_key, quiet_settings

ACME_ORDER = str(uuid.uuid5(uuid.NAMESPACE_URL, "acme-order-42"))  # a derived, guessable id


@pytest.fixture
def data(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def keys(data: Path) -> dict[str, str]:
    hub = bootstrap(quiet_settings(data))
    try:
        return {t: issue_key(hub, "publisher", f"pub-{t}", t) for t in ("acme", "globex")}
    finally:
        hub.close()


def _client(data: Path) -> Iterator[TestClient]:
    hub = bootstrap(quiet_settings(data))
    try:
        with TestClient(create_app(hub)) as client:
            yield client
    finally:
        hub.close()


def _send(client: TestClient, token: str, event_id: str) -> dict[str, Any]:
    r = client.post(
        "/v1/ingest/quotes",
        json={"events": [{"value": QUOTE, "event_id": event_id}]},
        headers=basic(token),
    )
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    assert body["rejected"] == 0, body
    return body


def test_another_tenants_event_id_does_not_drop_a_record(data: Path, keys: dict[str, str]) -> None:
    for client in _client(data):
        assert _send(client, keys["globex"], ACME_ORDER)["accepted"] == 1
        got = _send(client, keys["acme"], ACME_ORDER)
        assert (got["accepted"], got["duplicates"]) == (1, 0), got
        # a tenant's own retry is still a duplicate
        assert _send(client, keys["acme"], ACME_ORDER)["duplicates"] == 1


def test_the_windows_rebuilt_from_the_log_stay_per_tenant(data: Path, keys: dict[str, str]) -> None:
    used = str(uuid.uuid4())
    for client in _client(data):
        assert _send(client, keys["acme"], used)["accepted"] == 1
    for client in _client(data):  # a new process: the windows come from the log's headers
        assert _send(client, keys["acme"], used)["duplicates"] == 1
        got = _send(client, keys["globex"], used)
        assert (got["accepted"], got["duplicates"]) == (1, 0), got
