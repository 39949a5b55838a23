"""Alert e-mail (issue 15): a firing and its resolution each reach a real local SMTP server
(aiosmtpd) exactly once, after a transient 4xx answer is retried; a permanent 5xx is not."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from decimal import Decimal
from email import message_from_bytes
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from core.errors import ConfigError
from core.events import OutgoingEvent
from domain.alerts import AlertRule
from hub.bootstrap import Hub
from hub.console.alerts import AlertEngine, Mailbox, engine_for, send_mail


class Inbox:
    """aiosmtpd handler: keeps every accepted message; answers ``first_codes`` to the first
    DATA commands (e.g. a 451 greylisting answer) before accepting."""

    def __init__(self, first_codes: tuple[str, ...] = ()) -> None:
        self.codes = list(first_codes)
        self.messages: list[Any] = []
        self.attempts = 0

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.attempts += 1
        if self.codes:
            return self.codes.pop(0)
        self.messages.append((envelope.rcpt_tos, message_from_bytes(envelope.content)))
        return "250 Message accepted for delivery"


def _port() -> int:
    for port in range(26020, 26030):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port in 26020-26029 for the test SMTP server")


@pytest.fixture
def smtp() -> Iterator[tuple[Inbox, Controller]]:
    inbox = Inbox(first_codes=("451 4.7.1 Greylisted, try again",))
    controller = Controller(inbox, hostname="127.0.0.1", port=_port())
    controller.start()
    try:
        yield inbox, controller
    finally:
        controller.stop()


def _trade(hub: Hub, n: int) -> None:
    value = {
        "trade_id": f"T-MAIL{n}",
        "account_id": "ACC-0001",
        "instrument": f"MAIL{n}",
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
        severity="critical",
    )


def test_a_firing_and_its_resolution_each_arrive_once_by_mail(
    hub: Hub, smtp: tuple[Inbox, Controller]
) -> None:
    inbox, controller = smtp
    box = Mailbox(
        "127.0.0.1", controller.port, "hub@example.org", ("co@example.org",), backoff_s=0.01
    )
    engine = AlertEngine(hub, [_rule(0)], mailboxes=[box])
    assert engine.evaluate() == [] and inbox.messages == []
    _trade(hub, 1)
    (fired,) = engine.evaluate()
    assert engine.evaluate() == []  # still firing: no second mail
    _trade(hub, 2)
    assert engine.evaluate() == []
    assert inbox.attempts == 2  # the greylisting 451, then accepted
    ((to, mail),) = inbox.messages
    assert to == ["co@example.org"]
    assert mail["Subject"] == "[hub alert] FIRED many_bars (critical)"
    assert mail["X-Hub-Alert-Event"] == fired["event_id"]
    assert mail["Message-ID"] == f"<{fired['event_id']}@hub.alerts>"
    assert fired["alert_id"] in mail.get_payload()
    (resolved,) = AlertEngine(hub, [_rule(5)], mailboxes=[box]).evaluate()
    assert [m["Subject"] for _, m in inbox.messages] == [
        "[hub alert] FIRED many_bars (critical)",
        "[hub alert] RESOLVED many_bars",
    ]
    assert inbox.messages[1][1]["X-Hub-Alert-Event"] == resolved["event_id"]


def test_a_permanent_refusal_is_not_retried(smtp: tuple[Inbox, Controller]) -> None:
    inbox, controller = smtp
    inbox.codes = ["554 5.7.1 Rejected"] * 3
    box = Mailbox("127.0.0.1", controller.port, "hub@example.org", ("co@example.org",))
    event = {"event_type": "hub.AlertFired", "event_id": "e1", "rule": "r", "value": "1"}
    assert send_mail(box, event, sleep=lambda _: None) is False
    assert inbox.attempts == 1 and inbox.messages == []


def test_an_unreachable_server_is_retried_then_given_up() -> None:
    slept: list[float] = []
    box = Mailbox("127.0.0.1", _port(), "hub@example.org", ("co@example.org",), attempts=3)
    event = {"event_type": "hub.AlertFired", "event_id": "e2", "rule": "r", "value": "1"}
    assert send_mail(box, event, sleep=slept.append) is False
    assert slept == [0.5, 1.0]


def test_smtp_without_recipients_is_a_config_error(hub: Hub) -> None:
    hub.settings = hub.settings.model_copy(update={"alert_smtp_host": "127.0.0.1"})
    with pytest.raises(ConfigError, match="HUB_ALERT_EMAIL_TO"):
        engine_for(hub)
