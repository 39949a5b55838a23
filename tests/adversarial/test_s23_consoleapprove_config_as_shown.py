"""Session 23 (consoleapprove23): a configuration approval names the value it approves.

``POST /v1/config/changes/{id}/approve`` took a reason only: what the approver read (the
change's ``new_value``) was not part of the approval. It now takes ``expected_new_value``;
when given, the approval is refused (409 ``change_not_as_shown``) unless the pending change
still sets exactly that value, and nothing is applied.
"""

from __future__ import annotations

from fastapi.testclient import TestClient

from hub.bootstrap import Hub
from tests.service.test_config_changes import RULES, auth, enable_two_person, fewer_rules, keyed


def test_an_approval_naming_another_value_is_refused(hub: Hub, client: TestClient) -> None:
    enable_two_person(hub, "rules:*")
    shipped = len(hub.ingest.rules.get("trades-value").rules)
    ada = keyed(hub, "ada", "admin")
    change = hub.config_changes.propose(ada, RULES, fewer_rules(hub, 2), "fewer rules")
    carol = hub.keys.create(["compliance_officer"], principal="carol2").token
    url = f"/v1/config/changes/{change.change_id}/approve"
    shown = fewer_rules(hub, 1)  # not what the change sets
    r = client.post(url, json={"reason": "ok", "expected_new_value": shown}, headers=auth(carol))
    assert r.status_code == 409 and r.json()["reason"] == "change_not_as_shown", r.text
    assert len(hub.ingest.rules.get("trades-value").rules) == shipped
    assert hub.config_changes.store.change(change.change_id).approvals == []
    seen = client.get(f"/v1/config/changes/{change.change_id}", headers=auth(carol)).json()
    r = client.post(
        url, json={"reason": "ok", "expected_new_value": seen["new_value"]}, headers=auth(carol)
    )
    assert r.status_code == 200 and r.json()["status"] == "applied", r.text


def test_hub_config_approve_expect_refuses_another_value(hub: Hub, client: TestClient) -> None:
    import json

    from click.testing import CliRunner

    from hub.cli import main

    enable_two_person(hub, "rules:*")
    ada = keyed(hub, "ada", "admin")
    change = hub.config_changes.propose(ada, RULES, fewer_rules(hub, 2), "fewer rules")
    carol = hub.keys.create(["compliance_officer"], principal="carol2").token
    other, shown = json.dumps(fewer_rules(hub, 1)), json.dumps(fewer_rules(hub, 2))
    data_dir = str(hub.settings.data_dir)
    client.close()
    hub.close()
    hub.close = lambda: None  # type: ignore[method-assign]  # the CLI opens the folder itself
    base = ["--data-dir", data_dir, "--key", carol, "config", "approve", change.change_id]
    r = CliRunner().invoke(main, [*base, "--expect", other])
    assert r.exit_code == 1 and "change_not_as_shown" in r.stderr, r.output
    r = CliRunner().invoke(main, [*base, "--expect", "{not json"])
    assert r.exit_code == 1 and "--expect is not JSON" in r.stderr, r.output
    r = CliRunner().invoke(main, [*base, "--expect", shown, "--reason", "read it"])
    assert r.exit_code == 0 and json.loads(r.stdout)["status"] == "applied", r.output
