"""Alert rules beyond SQL (issue 15): projection lag, quarantine rate, drift events and the
ledger's verification each fire once, reach the webhook, and resolve; events on hub.alerts."""

from __future__ import annotations

import json
import sqlite3
import time
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from core.events import OutgoingEvent
from domain.alerts import AlertRule
from hub.bootstrap import Hub, bootstrap
from hub.console.alerts import AlertEngine, Webhook
from hub.settings import load_settings
from ingest.pipeline import RawRecord
from projections.catalog import PROJECTIONS
from tests.service.accounts import publish_trades
from tests.service.test_console_alerts import SECRET, Receiver


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[Hub]:
    h = bootstrap(
        load_settings(
            environ={"HUB_PROJECTION_AUTOSTART": "false"},
            data_dir=tmp_path / "data",
            ledger_store="sqlite",  # a row of ledger.sqlite is tampered with below
        )
    )
    try:
        yield h
    finally:
        h.close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.server.shutdown()
    r.server.server_close()


class Clock:
    def __init__(self) -> None:
        self.t = time.time()

    def __call__(self) -> float:
        return self.t


def _trades(hub: Hub, n: int, account: str = "ACC-0001") -> None:
    publish_trades(hub, (f"T-{uuid.uuid4().hex[:10]}" for _ in range(n)), account=account)


def _engine(hub: Hub, rule: AlertRule, receiver: Receiver, clock: Clock) -> AlertEngine:
    hook = Webhook(receiver.url, SECRET, attempts=2, backoff_s=0.01)
    return AlertEngine(hub, [rule], [hook], clock=clock)


def _fires_once_then_resolves(
    engine: AlertEngine, receiver: Receiver, fired: list[dict[str, object]], rule: str
) -> None:
    (f,) = fired
    assert f["event_type"] == "hub.AlertFired" and f["rule"] == rule
    assert engine.evaluate() == []  # still firing: no second event
    assert [e["rule"] for e in receiver.accepted()] == [rule]


def test_projection_lag_fires_and_resolves_when_the_projections_catch_up(
    hub: Hub, receiver: Receiver
) -> None:
    """Slow (~10-30 s): the first lag reading opens every projection's view store (chDB),
    as any first projection read of a fresh hub does."""
    rule = AlertRule(
        "lag", "lagging", "", threshold=Decimal(2), kind="metric", metric="projection_lag"
    )
    engine = _engine(hub, rule, receiver, Clock())
    assert engine.evaluate() == []
    _trades(hub, 3)
    fired = engine.evaluate()
    assert fired and fired[0]["value"] == "3"
    _fires_once_then_resolves(engine, receiver, fired, "lag")
    hub.projections.run([p.name for p in PROJECTIONS if "trades" in p.topics])
    (resolved,) = engine.evaluate()
    assert resolved["event_type"] == "hub.AlertResolved" and resolved["value"] == "0"
    assert resolved["alert_id"] == fired[0]["alert_id"]
    assert len(receiver.accepted()) == 2


def test_quarantine_rate_over_its_window_fires_and_resolves(hub: Hub, receiver: Receiver) -> None:
    clock = Clock()
    rule = AlertRule(
        "qrate",
        "quarantining",
        "",
        threshold=Decimal(10),
        kind="metric",
        metric="quarantine_rate",
        window_s=60,
    )
    engine = _engine(hub, rule, receiver, clock)
    assert engine.evaluate() == []  # the first sample: no rate yet
    _trades(hub, 3)  # accepted
    bad = {
        "trade_id": "Q-1",
        "account_id": "NOBODY",
        "instrument": "KND",
        "side": "BUY",
        "quantity": "1",
        "price": "10",
        "currency": "USD",
        "executed_at": "2026-12-01T10:00:00Z",
    }
    out = hub.ingest.ingest(
        "trades",
        [RawRecord(json.dumps(bad).encode(), value=bad, content_type="application/json")],
        source="test",
    )
    assert out.rejected == 1
    clock.t += 1
    fired = engine.evaluate()
    assert fired and fired[0]["value"] == "25.00"  # 1 of the 4 received
    _fires_once_then_resolves(engine, receiver, fired, "qrate")
    _trades(hub, 1)
    clock.t += 5
    assert engine.evaluate() == []  # 1 of 5 in the window: still above 10%
    clock.t += 120  # the window moved past the quarantined record
    (resolved,) = engine.evaluate()
    assert resolved["event_type"] == "hub.AlertResolved" and resolved["value"] == "0"


def test_a_drift_event_fires_and_resolves_when_it_leaves_the_window(
    hub: Hub, receiver: Receiver
) -> None:
    from ml.models import DRIFT, MODELS_TOPIC

    clock = Clock()
    rule = AlertRule("drift", "drifting", "", kind="drift", window_s=600)
    engine = _engine(hub, rule, receiver, clock)
    assert engine.evaluate() == []
    value = {
        "model": "fraud",
        "version": 1,
        "window": 500,
        "drifted": ["amount"],
        "report": json.dumps({"amount": {"psi": 0.4}}),
        "detected_at": int(time.time() * 1e6),
    }
    hub.publisher.publish(MODELS_TOPIC, [OutgoingEvent(value, DRIFT, "fraud")], "ml")
    fired = engine.evaluate()
    assert fired and fired[0]["value"] == "1"
    _fires_once_then_resolves(engine, receiver, fired, "drift")
    clock.t += 601
    (resolved,) = engine.evaluate()
    assert resolved["event_type"] == "hub.AlertResolved"


def test_a_failed_ledger_verification_fires_and_resolves_once_it_passes(
    hub: Hub, receiver: Receiver
) -> None:
    clock = Clock()
    rule = AlertRule(
        "ledger_bad", "verify failed", "", severity="critical", kind="ledger_verify", window_s=60
    )
    engine = _engine(hub, rule, receiver, clock)
    _trades(hub, 3)
    hub.ledger.sync(force_checkpoint=True)
    assert engine.evaluate() == []  # verified (full, the first time) and remembered
    clock.t += 10
    _trades(hub, 3)
    hub.ledger.sync(force_checkpoint=True)
    assert engine.evaluate() == []  # within window_s: not run again
    db_path = hub.settings.data_dir / "ledger.sqlite"
    with sqlite3.connect(db_path) as db:
        idx, h = db.execute(
            "SELECT idx, leaf_hash FROM leaves WHERE topic = 'trades' ORDER BY idx DESC LIMIT 1"
        ).fetchone()
        db.execute(
            "UPDATE leaves SET leaf_hash = ? WHERE idx = ?", (bytes([h[0] ^ 1]) + h[1:], idx)
        )
    clock.t += 60
    fired = engine.evaluate()  # incremental: the new leaves are checked
    assert fired and int(fired[0]["value"]) >= 1
    assert "leaf hash differs" in str(fired[0]["summary"])
    _fires_once_then_resolves(engine, receiver, fired, "ledger_bad")
    with sqlite3.connect(db_path) as db:
        db.execute("UPDATE leaves SET leaf_hash = ? WHERE idx = ?", (h, idx))
    clock.t += 60
    (resolved,) = engine.evaluate()
    assert resolved["event_type"] == "hub.AlertResolved"
    # The failing run and the passing one after it are CC7 evidence on the ledger.
    hub.ledger.sync(force_checkpoint=True)
    runs = hub.ledger.entries(action="ledger.verify", actor="hub.alerts")
    outcomes = [
        hub.reader.read(e["topic"], e["partition"], e["offset"], 1)[0]["value"]["outcome"]
        for e in runs
    ]
    assert outcomes == ["failed", "ok"]
