"""Scheduled retraining as governed configuration (``ml.retrain:<model>``, ``ml.schedule``): the
scheduler folds the setting and the models' events, so it retrains when a period is due or a
drift was recorded, never twice for one reason, and a restart neither repeats nor skips."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from core.errors import InvalidInput, NotFound
from core.events import OutgoingEvent
from core.ports.policy import Principal
from hub.bootstrap import Hub, bootstrap
from hub.ml_setup import ml_of
from hub.settings import load_settings
from ml.models import now_iso
from ml.schedule import RETRAIN_PREFIX, SCHEDULER, RetrainScheduler, schedules

ALICE = Principal("alice", frozenset({"ml_engineer"}))
BOB = Principal("bob", frozenset({"ml_engineer"}))
T = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)


def _hub(data: Path) -> Hub:
    return bootstrap(load_settings(environ={"HUB_PROJECTION_AUTOSTART": "false"}, data_dir=data))


def _ts(dt: datetime) -> str:
    return dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _payments(hub: Hub) -> None:
    """60 payments of 20 accounts; the large ones are confirmed fraud, the rest settle."""
    events, labels = [], []
    for i in range(60):
        pid, acc, at = f"P-{i}", f"A{i % 20}", T + timedelta(minutes=7 * i)
        fraud = i % 3 == 0
        amount = f"{9_000 + i}.00" if fraud else f"{20 + i}.00"
        base = {"payment_id": pid, "account_id": acc, "amount": amount, "currency": "USD"}
        initiated = {
            **base,
            "counterparty_name": "Someone",
            "counterparty_iban": "GB29NWBK60161331926819",
            "counterparty_country": "GB",
            "initiated_at": _ts(at),
        }
        events.append(OutgoingEvent(initiated, "hub.payments.PaymentInitiated"))
        if fraud:
            label = {**base, "kind": "FRAUD", "confirmed_at": _ts(at + timedelta(days=1))}
            label.pop("amount"), label.pop("currency")
            labels.append(OutgoingEvent(label))
        else:
            settled = {**base, "initiated_at": _ts(at), "settled_at": _ts(at + timedelta(hours=1))}
            events.append(OutgoingEvent(settled, "hub.payments.PaymentSettled"))
    hub.publisher.publish("payments", events, "t")
    hub.publisher.publish("payment-labels", labels, "t")


@pytest.fixture
def data(tmp_path: Path) -> Iterator[Path]:
    hub = _hub(tmp_path / "data")
    _payments(hub)
    ml = ml_of(hub)
    mv = ml.train(ALICE, "payment_risk")
    change = ml.changes.propose_champion(ALICE, "payment_risk", mv.version, "first")
    ml.changes.approve(BOB, change.change_id)
    hub.close()
    yield tmp_path / "data"


def _scheduler(hub: Hub) -> RetrainScheduler:
    return RetrainScheduler(hub.config_changes.store, lambda: ml_of(hub))


def test_a_schedule_retrains_when_due_once_and_survives_a_restart(data: Path) -> None:
    hub = _hub(data)
    ml = ml_of(hub)
    assert _scheduler(hub).due(datetime.now(UTC) + timedelta(days=30)) == []  # none set
    change = ml.changes.propose(
        ALICE, RETRAIN_PREFIX + "payment_risk", {"every": "1d", "share": 0.2}, "nightly"
    )
    assert change.status == "applied"
    assert ml.changes.value(RETRAIN_PREFIX + "payment_risk")["value"] == {
        "every": "1d",
        "on_drift": False,
        "share": 0.2,
    }
    now = datetime.now(UTC)
    scheduler = _scheduler(hub)
    assert scheduler.due(now) == []  # the first period counts from the change
    later = now + timedelta(days=1, minutes=1)
    ml.models.clock = later.isoformat  # the day has passed: the retrain is stamped then
    made = scheduler.run_due(later)
    assert [(mv.version, mv.stage, mv.share) for mv in made] == [(2, "CHALLENGER", 0.2)]
    assert ml.models.version("payment_risk", 2).registered_by == SCHEDULER.id
    assert ml.models.state("payment_risk").champion == 1  # promotion stays two-person
    assert scheduler.run_due(later) == []  # not twice in one period
    hub.close()

    again = _hub(data)  # a restart: everything is folded from the log again
    scheduler = _scheduler(again)
    assert scheduler.due(later) == []  # no repeat
    due = scheduler.due(later + timedelta(days=1, minutes=5))  # no skip
    assert [(s.model, reason) for s, reason in due] == [("payment_risk", "scheduled: every 1d")]
    again.close()


def test_a_drift_event_triggers_one_retrain(data: Path) -> None:
    hub = _hub(data)
    ml = ml_of(hub)
    ml.changes.propose(ALICE, RETRAIN_PREFIX + "payment_risk", {"on_drift": True}, "drift")
    scheduler = _scheduler(hub)
    far = datetime.now(UTC) + timedelta(days=365)
    assert scheduler.due(far) == []  # no period, no drift
    ml.models.publish_drift(
        {
            "model": "payment_risk",
            "version": 1,
            "window": 500,
            "drifted": ["amount"],
            "report": "{}",
            "detected_at": now_iso(),
        }
    )
    (mv,) = scheduler.run_due()
    assert mv.version == 2 and mv.stage == "CHALLENGER" and mv.share == 0.1
    assert scheduler.run_due() == []  # that drift is answered by v2
    ml.changes.propose(ALICE, RETRAIN_PREFIX + "payment_risk", None, "stop")
    assert schedules(hub.config_changes.store) == {}
    hub.close()


BAD = [
    ({"every": "5m"}, "shorter than 10 minutes"),
    ({"every": "weekly"}, "is not a period"),
    ({"every": "1d", "share": 1.5}, "at most 0.5"),
    ({"share": 0.2}, "needs every"),
    ({"every": "1d", "cron": "* * *"}, "is an object of every, on_drift, share"),
    ({"every": "1d", "on_drift": "yes"}, "on_drift is true or false"),
]


def test_a_bad_schedule_is_refused_naming_the_problem(data: Path) -> None:
    hub = _hub(data)
    changes = ml_of(hub).changes
    for value, message in BAD:
        with pytest.raises(InvalidInput, match=message):
            changes.propose(ALICE, RETRAIN_PREFIX + "payment_risk", value, "bad")
    with pytest.raises(NotFound, match="There is no model 'nope'"):
        changes.propose(ALICE, RETRAIN_PREFIX + "nope", {"every": "1d"}, "bad")
    assert schedules(hub.config_changes.store) == {}  # nothing was applied
    hub.close()


def test_the_cli_refuses_a_bad_schedule_naming_it(tmp_path: Path) -> None:
    from hub.cli import main
    from tests.cli_keys import admin_args

    args = admin_args(tmp_path)
    r = CliRunner().invoke(main, [*args, "ml", "schedule", "payment_risk", "--every", "7d"])
    assert r.exit_code != 0 and "There is no model 'payment_risk'" in r.output
    r = CliRunner().invoke(main, [*args, "ml", "schedule", "payment_risk", "--every", "1w"])
    assert r.exit_code != 0 and "is not a period" in r.output
