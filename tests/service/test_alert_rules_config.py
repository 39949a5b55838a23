"""Alert rules as governed config (issue 15): ``alerts.rules`` changes only through the
config-change flow, needs a second person when the policy bundle says so, and the alert engine
evaluates the rules in force on its next pass."""

from __future__ import annotations

import pytest

from core.errors import Forbidden, InvalidInput
from core.events import OutgoingEvent
from core.ports.policy import Principal
from domain.alerts import SHIPPED_RULES
from governance.alertrules import ALERT_RULES, rules_in_force
from governance.configstore import CONFIG_CHANGES_TOPIC
from hub.bootstrap import Hub
from hub.console.alerts import engine_for
from tests.service.test_config_changes import CAROL, enable_two_person

ADMIN = Principal("ada", frozenset({"admin"}))
BARS_RULE = {
    "name": "many_bars",
    "summary": "More one-minute bars than the threshold.",
    "sql": "SELECT count() AS bars FROM ohlcv_1m",
    "threshold": "0",
    "severity": "info",
}


def _trade(hub: Hub) -> None:
    value = {
        "trade_id": "T-RULE1",
        "account_id": "ACC-0001",
        "instrument": "RULE1",
        "side": "BUY",
        "quantity": "10",
        "price": "100.5",
        "currency": "USD",
        "executed_at": "2026-12-01T10:00:00Z",
    }
    hub.publisher.publish("trades", [OutgoingEvent(value=value)], producer="t", tenant="default")
    hub.projections.run(["market_bars"])


def test_a_rule_set_through_the_config_flow_is_evaluated_on_the_next_pass(hub: Hub) -> None:
    engine = engine_for(hub)
    assert engine.rules == SHIPPED_RULES
    _trade(hub)
    assert all(e["rule"] != "many_bars" for e in engine.evaluate())
    change = hub.config_changes.propose(ADMIN, ALERT_RULES, [BARS_RULE], "watch bars")
    assert change.status == "applied"
    (fired,) = [e for e in engine.evaluate() if e["rule"] == "many_bars"]
    assert fired["event_type"] == "hub.AlertFired" and fired["severity"] == "info"
    assert [r.name for r in engine.rules] == ["many_bars"]
    # null restores the shipped rules
    hub.config_changes.propose(ADMIN, ALERT_RULES, None, "back to the shipped rules")
    assert rules_in_force(hub.config_changes.store) == SHIPPED_RULES
    # the change is an event on hub.config.changes, so on the ledger
    hub.ledger.sync(force_checkpoint=True)
    assert hub.ledger.entries(topic=CONFIG_CHANGES_TOPIC)


def test_under_the_two_person_rule_a_second_person_must_approve(hub: Hub) -> None:
    enable_two_person(hub, ALERT_RULES)
    change = hub.config_changes.propose(ADMIN, ALERT_RULES, [BARS_RULE], "watch bars")
    assert change.status == "pending_approval"
    assert rules_in_force(hub.config_changes.store) == SHIPPED_RULES  # nothing in force yet
    with pytest.raises(Forbidden, match="Two-person rule: 'ada' proposed"):
        hub.config_changes.approve(ADMIN, change.change_id, "me again")
    approved = hub.config_changes.approve(CAROL, change.change_id, "agreed")
    assert approved.status == "applied"
    assert [r.name for r in rules_in_force(hub.config_changes.store)] == ["many_bars"]


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ([], "list of 1 to 200 rule objects"),
        ([{"name": "x"}], "sql must be one SELECT"),
        ([{"summary": "x"}], "must be an object with a name"),
        ([{"name": "x", "kind": "gauge"}], "kind 'gauge' must be one of sql, metric"),
        ([{"name": "x", "kind": "metric", "metric": "cpu"}], "names one of projection_lag"),
        ([{"name": "x", "kind": "drift", "sql": "SELECT 1"}], "sql is for kind sql only"),
        ([{"name": "x", "kind": "drift", "window_s": 0}], "window_s 0 must be whole seconds"),
        ([{**BARS_RULE, "name": "Bad Name"}], "must be lower-case"),
        ([BARS_RULE, BARS_RULE], "defined twice"),
        ([{**BARS_RULE, "sql": "DROP TABLE ohlcv_1m"}], "sql must be one SELECT"),
        ([{**BARS_RULE, "store": "elsewhere"}], "analytics or transactional"),
        ([{**BARS_RULE, "severity": "panic"}], "info, warning, critical"),
        ([{**BARS_RULE, "threshold": "lots"}], "is not a number"),
        ([{**BARS_RULE, "threshold": "NaN"}], "finite"),
        ([{**BARS_RULE, "extra": 1}], "fields: name, summary"),
    ],
)
def test_a_bad_rule_set_is_refused_naming_the_problem(
    hub: Hub, value: object, message: str
) -> None:
    with pytest.raises(InvalidInput, match=message):
        hub.config_changes.propose(ADMIN, ALERT_RULES, value, "bad")
    assert rules_in_force(hub.config_changes.store) == SHIPPED_RULES
