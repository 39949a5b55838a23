"""Every way to read an event's content applies the ``event.read`` decision in full: tenant
isolation, the internal-topic permission and PII masking, whatever the channel.

Found in session 10's review: ``GET /v1/ledger/lookup?include_event=true`` and
``hub ledger find --export`` handed out any record's raw bytes (another tenant's, or the key
hashes of ``hub.principals``), and ``hub tail`` decrypted PII for a principal without
``pii.read`` and showed every tenant's records, where ``GET /v1/topics/{topic}/events`` masks
and filters them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from core.events import PRINCIPALS_TOPIC, OutgoingEvent
from hub.cli import main
from tests.service.accounts import account_opened

from ._api import Api, basic, start_api

NOW = "2026-11-25T10:00:00Z"
SECRET_NAME = "Gloria Globex"


def _account(account: str) -> OutgoingEvent:
    return account_opened(
        account, name=SECRET_NAME, email="gloria@globex.example", opened_at=NOW, key=account
    )


def _lookup(api: Api, headers: dict[str, str], topic: str, partition: int, offset: int) -> Any:
    return api.client.get(
        "/v1/ledger/lookup",
        params={
            "topic": topic,
            "partition": partition,
            "offset": offset,
            "include_event": "true",
        },
        headers=headers,
    )


def test_lookup_with_the_event_keeps_to_the_readers_tenant(api: Api) -> None:
    hub = api.hub
    (md,) = hub.publisher.publish("accounts", [_account("G-1")], "globex-app", tenant="globex")
    acme = basic(hub.keys.create(["compliance_officer"], owner="olga", tenant="acme").token)
    globex = basic(hub.keys.create(["compliance_officer"], owner="gus", tenant="globex").token)
    # The event route filters the record out for acme (the decision's row filter) ...
    listed = api.client.get(
        "/v1/topics/accounts/events", params={"partition": md.partition}, headers=acme
    )
    assert listed.status_code == 200 and listed.json()["records"] == []
    # ... and so does the ledger lookup: another tenant's entry answers as a missing one, with
    # or without the event (ledger reads keep to the reader's tenant, like event reads).
    got = _lookup(api, acme, md.topic, md.partition, md.offset)
    assert got.status_code == 404, got.text
    plain = api.client.get(
        "/v1/ledger/lookup",
        params={"topic": md.topic, "partition": md.partition, "offset": md.offset},
        headers=acme,
    )
    assert plain.status_code == 404 and plain.json() == got.json(), plain.text
    # The record's own tenant reads it.
    own = _lookup(api, globex, md.topic, md.partition, md.offset)
    assert own.status_code == 200 and own.json()["value"]


def test_lookup_with_the_event_needs_internal_read_on_internal_topics(api: Api) -> None:
    hub = api.hub
    hub.keys.create(["publisher"], owner="pat")  # one more record on hub.principals
    officer = api.as_role("compliance_officer")  # event.read and ledger.read, no internal.read
    assert (
        api.client.get(f"/v1/topics/{PRINCIPALS_TOPIC}/events", headers=officer).status_code == 403
    )
    got = _lookup(api, officer, PRINCIPALS_TOPIC, 0, 0)
    assert got.status_code == 403, got.text
    assert got.json()["reason"] == "internal_topic"
    assert "value" not in got.text


def _cli(data: Path, token: str, *args: str) -> Any:
    key = data / f"key-{abs(hash(token))}"
    key.write_text(token + "\n")
    return CliRunner().invoke(main, ["--data-dir", str(data), "--key-file", str(key), *args])


def test_cli_tail_masks_pii_and_keeps_to_the_tenant(tmp_path: Path) -> None:
    data = tmp_path / "data"
    hub, client = start_api(data)
    try:
        hub.publisher.publish("accounts", [_account("G-1")], "globex-app", tenant="globex")
        hub.publisher.publish("accounts", [_account("D-1")], "default-app")
        analyst = hub.keys.create(["analyst"], owner="ann").token  # no pii.read
        officer = hub.keys.create(["compliance_officer"], owner="olga").token  # pii.read
        admin = hub.keys.create(["admin"], owner="ada").token  # tenant.all
    finally:
        client.close()
        hub.close()

    def tailed(token: str) -> list[dict[str, Any]]:
        r = _cli(data, token, "tail", "accounts", "-n", "10")
        assert r.exit_code == 0, r.output
        return [json.loads(x) for x in r.stdout.splitlines()]

    seen = tailed(analyst)
    assert [r["key"] for r in seen] == ["D-1"]  # the default tenant's record only
    assert seen[0]["value"]["customer_name"] == "***"
    assert SECRET_NAME not in json.dumps(seen)
    seen = tailed(officer)
    assert [r["key"] for r in seen] == ["D-1"]
    assert seen[0]["value"]["customer_name"] == SECRET_NAME
    assert sorted(r["key"] for r in tailed(admin)) == ["D-1", "G-1"]


def test_cli_find_export_applies_the_event_read_decision(tmp_path: Path) -> None:
    data = tmp_path / "data"
    hub, client = start_api(data)
    try:
        (md,) = hub.publisher.publish("accounts", [_account("G-1")], "globex-app", tenant="globex")
        hub.ledger.sync(force_checkpoint=True)
        security = hub.keys.create(["security_admin"], owner="sam").token  # ledger.read only
        acme = hub.keys.create(["compliance_officer"], owner="olga", tenant="acme").token
        globex = hub.keys.create(["compliance_officer"], owner="gus", tenant="globex").token
    finally:
        client.close()
        hub.close()
    where = ["--topic", md.topic, "--partition", str(md.partition), "--offset", str(md.offset)]
    # Readers of other tenants (default, acme): the entry answers as a missing one, the event
    # is not exported.
    for token in (security, acme):
        out = tmp_path / "event.json"
        r = _cli(data, token, "ledger", "find", *where, "--export", str(out))
        assert r.exit_code == 1, r.output
        assert "ledger_entry_not_found" in r.stderr, r.stderr
        assert not out.exists()
        plain = _cli(data, token, "ledger", "find", *where)
        assert plain.exit_code == 1 and "ledger_entry_not_found" in plain.stderr, plain.output
    out = tmp_path / "event.json"
    r = _cli(data, globex, "ledger", "find", *where, "--export", str(out))
    assert r.exit_code == 0, r.output
    assert json.loads(out.read_text())["value"]


TRADE = {
    "trade_id": "T1",
    "account_id": "A1",
    "instrument": "XS0001",
    "side": "BUY",
    "quantity": "100",
    "price": "101.25",
    "currency": "EUR",
    "executed_at": NOW,
}


def test_a_publisher_cannot_set_the_envelope_or_audit_headers(api: Api) -> None:
    """A caller's ``ce_tenant``, ``ce_source`` or ``hub_action`` would repeat the hub's own
    (which the log refuses, see ``test_duplicate_envelope_headers.py``): every such name is
    refused here first, naming it, whatever its case; nothing is stored."""
    publisher = api.as_role("publisher")
    end = dict(api.hub.log.end_offsets("trades"))
    for name in ("ce_tenant", "ce_source", "CE_Type", "hub_action", "ce_subject", "Content-Type"):
        r = api.client.post(
            "/v1/topics/trades/events",
            json={"events": [{"value": TRADE, "key": "A1", "headers": {name: "acme"}}]},
            headers=publisher,
        )
        assert r.status_code == 422, (name, r.text)
        assert r.json()["reason"] == "reserved_header", r.text
        assert repr(name) in r.json()["message"]
    assert dict(api.hub.log.end_offsets("trades")) == end
    ok = api.client.post(
        "/v1/topics/trades/events",
        json={"events": [{"value": TRADE, "key": "A1", "headers": {"x-desk": "rates"}}]},
        headers=publisher,
    )
    assert ok.status_code in (200, 201), ok.text
