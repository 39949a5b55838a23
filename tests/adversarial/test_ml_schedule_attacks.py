"""``hub ml schedule`` (the governed setting ``ml.retrain:<model>``) under attack: a key without
``model.train`` + ``model.promote`` cannot set or change a schedule, on the CLI or over HTTP
(the generic config-change routes do not take the resource either); where the active bundle's
``two_person`` list names it, a proposal waits for a second person, and neither the proposer
nor a role without ``model.approve`` can apply it; bad values are refused with the reason.
Every refusal by the policy is a decision on the ledger."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient

from core.ports.policy import Principal
from core.roles import ROLE_ACTIONS, ROLES
from hub.api.app import create_app
from hub.bootstrap import Hub, bootstrap
from hub.cli import main
from hub.settings import load_settings
from ml.schedule import RETRAIN_PREFIX, schedules
from tests.adversarial._api import basic, register_payment_model
from tests.service.test_config_changes import enable_two_person

RESOURCE = RETRAIN_PREFIX + "payment_risk"
ALICE = Principal("alice", frozenset({"ml_engineer"}))
MAY_SCHEDULE = {r for r in ROLES if {"model.train", "model.promote"} <= ROLE_ACTIONS[r]}


def _hub(data: Path) -> Hub:
    return bootstrap(load_settings(environ={"HUB_PROJECTION_AUTOSTART": "false"}, data_dir=data))


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A hub with a trained payment_risk model and one key per role (plus a second ml
    engineer); closed, so each CLI call opens it as an operator's would."""
    data = tmp_path_factory.mktemp("ml-schedule") / "data"
    h = _hub(data)
    try:
        register_payment_model(h)
        keys = {role: h.keys.create([role], principal=f"p-{role}").token for role in ROLES}
        keys["ml_engineer_2"] = h.keys.create(["ml_engineer"], principal="p-ml-2").token
    finally:
        h.close()
    yield {"data": data, "keys": keys}


def cli(site: dict[str, Any], who: str, *args: str) -> Any:
    return CliRunner().invoke(
        main, ["--data-dir", str(site["data"]), "--key", site["keys"][who], *args]
    )


def _state(site: dict[str, Any], actor: str = "") -> tuple[dict[str, Any], list[Any], list[str]]:
    """The schedules in force, the changes of the resource, and ``actor``'s denied actions on
    the ledger."""
    h = _hub(site["data"])
    try:
        store = h.config_changes.store
        store.refresh()
        changes = [c for c in store.changes() if c.resource == RESOURCE]
        denied: list[str] = []
        if actor:
            h.ledger.sync(force_checkpoint=True)
            for e in h.ledger.entries(topic="hub.decisions", actor=actor, with_fields=True):
                (record,) = h.reader.read(e["topic"], e["partition"], e["offset"], 1)
                if record["value"]["allow"] is False:  # the decision itself, as recorded
                    denied.append(e["action"])
        return schedules(store), changes, denied
    finally:
        h.close()


@pytest.mark.parametrize("role", ["analyst", "publisher", "compliance_officer"])
def test_a_role_without_model_rights_cannot_set_a_schedule_on_the_cli(
    site: dict[str, Any], role: str
) -> None:
    assert role not in MAY_SCHEDULE  # the compliance officer approves models, never trains
    before = _state(site)[:2]
    r = cli(site, role, "ml", "schedule", "payment_risk", "--every", "1d", "--on-drift")
    assert r.exit_code == 1 and "Traceback" not in r.output, r.output
    assert "denied" in r.stderr.lower(), r.output
    r = cli(site, role, "ml", "schedule", "payment_risk", "--off")
    assert r.exit_code == 1 and "denied" in r.stderr.lower(), r.output
    in_force, changes, denied = _state(site, f"p-{role}")
    assert (in_force, changes) == before  # nothing proposed, nothing applied
    assert denied.count("model.train") + denied.count("model.promote") >= 2, denied


def test_analyst_and_publisher_cannot_set_a_schedule_over_http(site: dict[str, Any]) -> None:
    """The config-change routes are the only HTTP write path for governed settings: the two
    roles are refused there (403, recorded), and even the admin's proposal of this resource is
    a 4xx naming it (the ML flow, with its model rights, is the only way)."""
    h = _hub(site["data"])
    client = TestClient(create_app(h), raise_server_exceptions=False)
    body = {"resource": RESOURCE, "value": {"every": "1d"}, "reason": "mine"}
    try:
        for role in ("analyst", "publisher"):
            r = client.post("/v1/config/changes", json=body, headers=basic(site["keys"][role]))
            assert r.status_code == 403, r.text
        r = client.post("/v1/config/changes", json=body, headers=basic(site["keys"]["admin"]))
        assert 400 <= r.status_code < 500 and RESOURCE in r.text, r.text
    finally:
        client.close()
        h.close()
    in_force, changes, denied = _state(site, "p-analyst")
    assert RESOURCE not in [c.resource for c in changes if c.status == "applied"] or in_force
    assert "config.propose" in denied
    assert "config.propose" in _state(site, "p-publisher")[2]


BAD = [
    (["--every", "0d"], "0d"),
    (["--every", "5m"], "shorter than 10 minutes"),
    (["--every", "7d", "--share", "2"], "at most 0.5"),
    (["--every", "7d", "--share", "-0.1"], "at most 0.5"),
    (["--every", "7d", "--off"], "--off stops the schedule"),
]


@pytest.mark.parametrize(("args", "message"), BAD)
def test_bad_values_are_refused_naming_the_problem(
    site: dict[str, Any], args: list[str], message: str
) -> None:
    before = _state(site)[:2]
    r = cli(site, "ml_engineer", "ml", "schedule", "payment_risk", *args)
    assert r.exit_code == 1 and "Traceback" not in r.output, r.output
    assert message in r.stderr, r.stderr
    assert _state(site)[:2] == before


def test_an_unknown_model_is_refused_by_name(site: dict[str, Any]) -> None:
    r = cli(site, "ml_engineer", "ml", "schedule", "no_such_model", "--every", "7d")
    assert r.exit_code == 1 and "Traceback" not in r.output, r.output
    assert "There is no model 'no_such_model'" in r.stderr, r.stderr
    r = cli(site, "ml_engineer", "ml", "schedule", "../etc", "--every", "7d")
    assert r.exit_code == 1 and "Traceback" not in r.output, r.output


def test_under_the_two_person_rule_a_schedule_needs_a_second_model_approver(
    site: dict[str, Any],
) -> None:
    h = _hub(site["data"])
    try:
        enable_two_person(h, "ml.retrain:*")
    finally:
        h.close()
    r = cli(site, "ml_engineer", "ml", "schedule", "payment_risk", "--every", "7d", "--on-drift")
    assert r.exit_code == 0, r.output
    assert "two-person rule" in r.stderr
    change = json.loads(r.stdout)
    assert change["status"] == "pending_approval"
    assert _state(site)[0] == {}  # not in force yet
    r = cli(site, "ml_engineer", "ml", "approve", change["change_id"])  # the proposer
    assert r.exit_code == 1 and "two_person_rule" in r.stderr, r.output
    for role in ("analyst", "publisher"):
        r = cli(site, role, "ml", "approve", change["change_id"])
        assert r.exit_code == 1 and "denied" in r.stderr.lower(), r.output
        assert "model.approve" in _state(site, f"p-{role}")[2]
    assert _state(site)[0] == {}
    r = cli(site, "ml_engineer_2", "ml", "approve", change["change_id"])
    assert r.exit_code == 0 and '"status": "applied"' in r.stdout, r.output
    in_force = _state(site)[0]
    assert in_force["payment_risk"].as_value() == {"every": "7d", "on_drift": True, "share": 0.1}
