"""One tenant's labels MUST NOT label another tenant's events in a training set.

A label (``FraudConfirmed`` on ``payment-labels``, ``PaymentSettled`` on ``payments``) names its
subject by id (``payment_id``). globex's publisher may publish labels in its own tenant; naming
acme's payment ids there must neither flip acme's settled payment to fraud (label poisoning of
the shared model) nor pull acme's unlabelled payment into the set. acme's own labels still
count."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from core.events import OutgoingEvent
from hub.bootstrap import Hub
from hub.ml_setup import ml_of
from tests.adversarial._api import quiet_hub


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[Hub]:
    yield from quiet_hub(tmp_path / "d")


def payment(pid: str, hour: int) -> OutgoingEvent:
    return OutgoingEvent(
        {
            "payment_id": pid,
            "account_id": "ACC-A",
            "amount": "9800.00",
            "currency": "USD",
            "counterparty_name": "Someone",
            "counterparty_iban": "GB29NWBK60161331926819",
            "counterparty_country": "GB",
            "initiated_at": f"2026-11-24T1{hour}:00:00Z",
        },
        "hub.payments.PaymentInitiated",
    )


def settled(pid: str) -> OutgoingEvent:
    return OutgoingEvent(
        {
            "payment_id": pid,
            "account_id": "ACC-A",
            "amount": "9800.00",
            "currency": "USD",
            "initiated_at": "2026-11-24T10:00:00Z",
            "settled_at": "2026-11-24T12:00:00Z",
        },
        "hub.payments.PaymentSettled",
    )


def fraud(pid: str) -> OutgoingEvent:
    return OutgoingEvent(
        {
            "payment_id": pid,
            "account_id": "ACC-A",
            "kind": "FRAUD",
            "confirmed_by": "investigator",
            "confirmed_at": "2026-11-25T09:00:00Z",
        },
        "hub.payments.FraudConfirmed",
    )


def test_another_tenants_labels_do_not_label_a_tenants_payments(hub: Hub) -> None:
    pub = hub.publisher
    pub.publish("payments", [payment(f"P-{i}", i) for i in range(4)], "acme-bank", "acme")
    # acme's own labels: P-0 settled (0), P-1 confirmed fraud (1); P-2 and P-3 unlabelled
    pub.publish("payments", [settled("P-0")], "acme-bank", "acme")
    pub.publish("payment-labels", [fraud("P-1")], "acme-bank", "acme")
    # globex names acme's payment ids in its own tenant
    pub.publish("payment-labels", [fraud("P-0"), fraud("P-3")], "globex-bank", "globex")
    pub.publish("payments", [settled("P-2")], "globex-bank", "globex")

    rows = ml_of(hub).training_sets.cut("payment_risk").rows
    labels = {r["subject"]: r["label"] for r in rows}
    assert labels == {"P-0": 0, "P-1": 1}, labels


def test_another_tenants_labels_do_not_label_a_tenants_payments_in_the_ab_report(
    hub: Hub,
) -> None:
    """The A/B report's precision and recall (what a champion is promoted on) read the same
    labels: before the fix globex's ``FraudConfirmed`` of acme's P-0 turned acme's settled
    payment into a fraud there (session 14 review)."""
    pub = hub.publisher
    pub.publish("payments", [payment(f"P-{i}", i) for i in range(4)], "acme-bank", "acme")
    pub.publish("payments", [settled("P-0")], "acme-bank", "acme")
    pub.publish("payment-labels", [fraud("P-1")], "acme-bank", "acme")
    pub.publish("payment-labels", [fraud("P-0"), fraud("P-3")], "globex-bank", "globex")
    pub.publish("payments", [settled("P-2")], "globex-bank", "globex")

    ml = ml_of(hub)
    assert ml.labels(ml.view_of("payment_risk")) == {"P-0": 0, "P-1": 1}
