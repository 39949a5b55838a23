"""A replay publishes a quarantined record in its tenant's name, so replaying another tenant's
record needs the policy's allow for that tenant (session 14 review).

The shipped table grants ``quarantine.replay`` to admin only (who has ``tenant.all``); a
deployment that grants it to a tenant-bound role (here: publishers) must not let globex's
replayer re-ingest acme's records. Before the fix the decision was taken for the replayer's own
tenant only, so globex's publisher replayed acme's record into acme's topic."""

from __future__ import annotations

import json
from typing import Any

from click.testing import CliRunner

from core.policybundle import PolicyBundle
from tests.service.test_config_changes import ALICE, CAROL

from ._api import Api, basic
from .test_quarantine_tenant_scope import NDJSON, _list


def _grant_replay_to_publishers(api: Api) -> None:
    shipped = PolicyBundle.from_dir()
    data = json.loads(shipped.files["hub/data.json"])
    data["role_actions"]["publisher"] = [*data["role_actions"]["publisher"], "quarantine.replay"]
    files = {**shipped.files, "hub/data.json": json.dumps(data, indent=2) + "\n"}
    change = api.hub.policy_changes.propose(ALICE, files, "publishers replay their records")
    api.hub.policy_changes.approve(CAROL, change.change_id, "agreed")


def _fixable(api: Api, token: str) -> int:
    """A trades record quarantined for a rule (a negative quantity); its offset."""
    line = json.dumps(
        {
            "event_type": "hub.trading.TradeExecuted",
            "key": "t-q",
            "value": {
                "trade_id": "t-q",
                "account_id": "ACC-1",
                "instrument": "XS1",
                "side": "BUY",
                "quantity": "-1",
                "price": "100.25",
                "currency": "USD",
                "fees": "0.10",
                "executed_at": "2026-01-01T00:00:00Z",
            },
        }
    )
    r = api.client.post(
        "/v1/ingest/trades", content=line + "\n", headers={**basic(token), **NDJSON}
    )
    assert r.status_code == 200 and r.json()["rejected"] == 1, r.text
    return max(e["offset"] for e in _list(api, api.admin))


def test_globex_cannot_replay_acmes_quarantined_record(api: Api) -> None:
    _grant_replay_to_publishers(api)
    keys = api.hub.keys
    acme = keys.create(["publisher"], principal="pia", tenant="acme").token
    globex = keys.create(["publisher"], principal="gil", tenant="globex").token
    at = _fixable(api, acme)
    mine = _fixable(api, globex)

    r = api.client.post("/v1/quarantine/replay", json={"offsets": [at]}, headers=basic(globex))
    assert r.status_code == 403, r.text
    r = api.client.post(
        "/v1/quarantine/replay", json={"offsets": [mine, at]}, headers=basic(globex)
    )
    assert r.status_code == 403, r.text  # nothing of the call is replayed
    assert {e["offset"]: e["status"] for e in _list(api, api.admin)}[mine] == "pending"

    # each tenant's replayer replays its own
    for token, offset in ((globex, mine), (acme, at)):
        r = api.client.post(
            "/v1/quarantine/replay", json={"offsets": [offset]}, headers=basic(token)
        )
        assert r.status_code == 200, r.text
    status = {e["offset"]: e["status"] for e in _list(api, api.admin)}
    assert status[at] != "pending" and status[mine] != "pending"


def test_the_cli_refuses_it_too(api: Api) -> None:
    from hub.cli import main

    _grant_replay_to_publishers(api)
    keys = api.hub.keys
    acme = keys.create(["publisher"], principal="pia", tenant="acme").token
    globex = keys.create(["publisher"], principal="gil", tenant="globex").token
    at = _fixable(api, acme)
    data = str(api.hub.settings.data_dir)
    api.hub.close()  # the CLI opens the data folder as an operator's would
    api.hub.close = lambda: None  # type: ignore[method-assign]

    def cli(token: str, *args: str) -> Any:
        return CliRunner().invoke(main, ["--data-dir", data, "--key", token, "quarantine", *args])

    r = cli(globex, "replay", str(at))
    assert r.exit_code == 1 and "Access denied" in r.output, r.output
    r = cli(acme, "replay", str(at))
    assert r.exit_code == 0, r.output
