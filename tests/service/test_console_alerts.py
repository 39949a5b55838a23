"""Alerts: a rule fires once per firing, is recorded on hub.alerts (and the ledger), reaches a
local webhook signed with HMAC (retried after a 5xx), survives a restart, and resolves."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from collections.abc import Iterator
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import pytest

from core.events import OutgoingEvent
from domain.alerts import SHIPPED_RULES, AlertRule
from hub.bootstrap import Hub
from hub.console.alerts import AlertEngine, Webhook, engine_for

SECRET = b"webhook-test-secret"


class Receiver:
    """A local webhook endpoint: answers 500 to the first ``fail_first`` requests."""

    def __init__(self, fail_first: int = 0) -> None:
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.fail_first = fail_first
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["content-length"]))
                receiver.requests.append(({k.lower(): v for k, v in self.headers.items()}, body))
                failing = len(receiver.requests) <= receiver.fail_first
                self.send_response(500 if failing else 204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Handler)  # a free port the OS picks
        self.url = f"http://127.0.0.1:{self.server.server_port}/alerts"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def accepted(self) -> list[dict[str, Any]]:
        """Bodies of requests answered 2xx, one per event id."""
        seen: dict[str, dict[str, Any]] = {}
        for i, (headers, body) in enumerate(self.requests):
            if i >= self.fail_first:
                seen[headers["x-hub-alert-event"]] = json.loads(body)
        return list(seen.values())


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver(fail_first=1)
    yield r
    r.server.shutdown()
    r.server.server_close()


def _trade(hub: Hub, instrument: str) -> None:
    value = {
        "trade_id": f"T-{instrument}",
        "account_id": "ACC-0001",
        "instrument": instrument,
        "side": "BUY",
        "quantity": "10",
        "price": "100.5",
        "currency": "USD",
        "executed_at": "2026-12-01T10:00:00Z",
    }
    hub.publisher.publish("trades", [OutgoingEvent(value=value)], producer="t", tenant="default")
    hub.projections.run(["market_bars"])


def _rule(threshold: int) -> AlertRule:
    return AlertRule(
        "many_bars",
        "More one-minute bars than the threshold.",
        "SELECT count() AS bars FROM ohlcv_1m",
        threshold=Decimal(threshold),
        severity="info",
    )


def test_a_firing_reaches_the_webhook_once_signed_and_resolves(
    hub: Hub, receiver: Receiver
) -> None:
    hook = Webhook(receiver.url, SECRET, attempts=3, backoff_s=0.01)
    engine = AlertEngine(hub, [_rule(0)], [hook])
    assert engine.evaluate() == []  # no bars yet: nothing fires
    _trade(hub, "ALR1")
    (fired,) = engine.evaluate()
    assert fired["event_type"] == "hub.AlertFired" and fired["value"] == "1"
    assert engine.evaluate() == []  # still firing: no second event, no second delivery
    _trade(hub, "ALR2")
    assert engine.evaluate() == []

    # Delivered once, after one retry (the receiver failed the first attempt), and signed.
    assert len(receiver.requests) == 2
    (delivered,) = receiver.accepted()
    assert delivered["alert_id"] == fired["alert_id"] and delivered["rule"] == "many_bars"
    headers, body = receiver.requests[-1]
    expected = "sha256=" + hmac.new(SECRET, body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(headers["x-hub-signature-256"], expected)
    assert headers["x-hub-alert-event"] == fired["event_id"]

    # A restart folds the firing from the log: no new firing; raising the threshold resolves it.
    assert AlertEngine(hub, [_rule(0)], [hook]).evaluate() == []
    (resolved,) = AlertEngine(hub, [_rule(5)], [hook]).evaluate()
    assert resolved["event_type"] == "hub.AlertResolved"
    assert resolved["alert_id"] == fired["alert_id"] and resolved["value"] == "2"
    assert [e["rule"] for e in receiver.accepted()] == ["many_bars", "many_bars"]

    # Both are events on hub.alerts, covered by the ledger.
    types = [e["event_type"] for e in engine.events()]
    assert types == ["hub.AlertFired", "hub.AlertResolved"]
    hub.ledger.sync(force_checkpoint=True)
    entries = hub.ledger.entries(topic="hub.alerts")
    assert len(entries) == 2
    assert hub.ledger.entry(entries[-1]["index"])["proof"] is not None


def test_a_wrong_secret_does_not_verify(hub: Hub, receiver: Receiver) -> None:
    engine = AlertEngine(hub, [_rule(0)], [Webhook(receiver.url, b"other", backoff_s=0.01)])
    _trade(hub, "ALR3")
    engine.evaluate()
    headers, body = receiver.requests[-1]
    good = "sha256=" + hmac.new(SECRET, body, hashlib.sha256).hexdigest()
    assert headers["x-hub-signature-256"] != good


def test_the_shipped_rules_run_on_the_views(hub: Hub) -> None:
    engine = engine_for(hub)
    assert {r.name for r in engine.rules} == {r.name for r in SHIPPED_RULES}
    for rule in engine.rules:
        assert engine.measure(rule) == 0  # their SQL passes the query guard on an empty hub
    assert engine.evaluate() == []
