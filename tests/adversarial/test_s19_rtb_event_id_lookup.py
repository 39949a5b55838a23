"""A publisher makes the ledger lookup by event id hand an auditor its own record.

Event ids may come from the sender and are deduplicated per topic within a window only, so a
publisher can give a record on another topic the id of an earlier event. `hub ledger find
--event-id` / `GET /v1/ledger/lookup?event_id=` answered the first record met (partition order):
for a non-UUIDv7 id (a sender's own, or Debezium's UUIDv5) the publisher's later record on
`accounts` came back as "the" event of a trade's id, with a valid inclusion proof that
`hub-verify leaf` accepts. Now a lookup that finds several records carrying the id answers 409
`ambiguous_event_id` naming each position; a tenant-limited reader sees only its tenant's."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.adversarial._api import Api, _serve, basic, issue_key
from tests.service.accounts import account_opened
from tests.service.test_ledger_lookup import TRADE

ACCOUNT = account_opened("ACC-9")


@pytest.fixture
def api(tmp_path: Path) -> Iterator[Api]:
    yield from _serve(tmp_path / "data")


def publish(api: Api, topic: str, event: dict[str, object], token: str | None = None) -> None:
    r = api.client.post(
        f"/v1/topics/{topic}/events",
        json={"events": [event]},
        headers=basic(token or api.tokens["publisher"]),
    )
    assert r.status_code == 201, r.text


def trade(event_id: str | None = None, trade_id: str = "T1") -> dict[str, object]:
    return {"value": {**TRADE, "trade_id": trade_id}, "key": "A1", "event_id": event_id}


def account(event_id: str, key: str = "ACC-9") -> dict[str, object]:
    return {
        "value": ACCOUNT.value,
        "event_type": ACCOUNT.event_type,
        "key": key,
        "event_id": event_id,
    }


def lookup(
    api: Api, event_id: str, role: str = "compliance_officer", token: str | None = None
) -> httpx.Response:
    return api.client.get(
        "/v1/ledger/lookup",
        params={"event_id": event_id},
        headers=basic(token or api.tokens[role]),
    )


def test_a_senders_id_reused_on_another_topic_is_ambiguous_not_the_forgery(api: Api) -> None:
    publish(api, "trades", trade("order-77"))
    publish(api, "accounts", account("order-77"))  # the publisher's record, published later
    r = lookup(api, "order-77")
    assert r.status_code == 409, r.json()  # before: 200 with accounts[0]@0, a valid proof
    body = r.json()
    assert body["reason"] == "ambiguous_event_id", body
    assert "trades[0]@0" in body["message"] and "accounts[" in body["message"], body


def test_a_hub_drawn_uuid7_reused_in_its_window_is_ambiguous(api: Api) -> None:
    publish(api, "accounts", account("0190b2a0-0000-7000-8000-00000000aaaa", "ACC-1"))
    publish(api, "trades", trade())
    rec = api.hub.log.read("trades", 0, 0, 1)[0]
    eid = (rec.header("ce_id") or b"").decode()
    publish(api, "accounts", account(eid))
    r = lookup(api, eid)
    assert r.status_code == 409, r.json()
    assert "trades[0]@0" in r.json()["message"], r.json()
    by_position = api.client.get(  # the way out the message names
        "/v1/ledger/lookup",
        params={"topic": "trades", "partition": 0, "offset": 0},
        headers=basic(api.tokens["compliance_officer"]),
    )
    assert by_position.status_code == 200 and by_position.json()["event_id"] == eid


def test_a_unique_id_is_answered_as_before(api: Api) -> None:
    publish(api, "trades", trade("order-1"))
    publish(api, "trades", trade(None, "T2"))
    r = lookup(api, "order-1")
    assert r.status_code == 200, r.json()
    assert (r.json()["topic"], r.json()["offset"]) == ("trades", 0)


def test_a_tenant_reader_sees_its_own_record_and_nothing_of_the_other(api: Api) -> None:
    acme_pub = issue_key(api.hub, "publisher", "acme-app", tenant="acme")
    globex_pub = issue_key(api.hub, "publisher", "globex-app", tenant="globex")
    acme_officer = issue_key(api.hub, "compliance_officer", "acme-cora", tenant="acme")
    publish(api, "trades", trade("shared-1"), acme_pub)
    publish(api, "accounts", account("shared-1"), globex_pub)
    r = lookup(api, "shared-1", token=acme_officer)
    assert r.status_code == 200, r.json()
    assert r.json()["topic"] == "trades"
    assert "accounts" not in r.text
    assert lookup(api, "shared-1", "admin").status_code == 409  # a hub-wide reader sees both
