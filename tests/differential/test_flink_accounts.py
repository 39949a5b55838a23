"""Accounts and payments (transactional views, PII) on Flink equal the embedded runner's.

``accounts``: accounts opened, then updated (a null field means unchanged), under two tenants;
their holder's name and e-mail are PII, encrypted in the log. The Flink job has no key store:
its fold (the embedded runner's own ``fold_account``) carries the ciphertext, sealed, into
PostgreSQL, and the hub opens it when it reads the view, so the digest equals the embedded
view's (plaintext) digest, and an erased subject reads as erased in the Flink view too.

``payments``: each payment's status (initiated, settled or failed; terminal states stay), every
status change (an append table), and the daily use per account against the limit (a key that
spans partitions: the topic is keyed by payment, so the partial rows merge additively).

Compared in the session's one Flink run (``tests/differential/conftest.py``).
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from core.events import OutgoingEvent
from projections.catalog import ACCOUNTS, PAYMENTS
from tests.differential.conftest import FlinkSession

# the first test to ask for the session's Flink run waits for it: minutes on a busy machine
pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]


def opened(account: str, name: str, kyc: str, at: str) -> OutgoingEvent:
    return OutgoingEvent(
        event_type="hub.accounts.AccountOpened",
        value={
            "account_id": account,
            "customer_name": name,
            "email": f"{account.lower()}@example.org",
            "country": "DE",
            "kyc_level": kyc,
            "risk_rating": "LOW",
            "base_currency": "EUR",
            "opened_at": at,
        },
    )


def updated(
    account: str, at: str, kyc: str | None = None, risk: str | None = None
) -> OutgoingEvent:
    return OutgoingEvent(
        event_type="hub.accounts.AccountUpdated",
        value={"account_id": account, "kyc_level": kyc, "risk_rating": risk, "updated_at": at},
    )


def batches() -> list[tuple[str, list[OutgoingEvent]]]:
    return [
        (
            "acme",
            [
                opened("A1", "Zoë Ünal", "BASIC", "2026-03-01T08:00:00Z"),
                opened("A2", "Jean O'Brien", "STANDARD", "2026-03-01T09:00:00Z"),
                opened("E1", "To Be Erased", "BASIC", "2026-03-01T10:00:00Z"),
            ],
        ),
        ("globex", [opened("A1", "Other Tenant", "NONE", "2026-03-02T00:00:00Z")]),
        (
            "acme",
            [
                updated("A1", "2026-03-02T10:00:00Z", kyc="ENHANCED"),
                updated("A1", "2026-03-02T11:00:00Z", risk="HIGH"),  # kyc stays ENHANCED
                updated("A2", "2026-03-03T00:00:00.000001Z"),  # nothing changes but the time
            ],
        ),
    ]


def payment_batches() -> list[tuple[str, list[OutgoingEvent]]]:
    """Payments beside ``test_flink_projections.batches``: A1 breaches its daily limit."""
    from tests.differential.test_flink_projections import _payment

    return [
        (
            "acme",
            [
                _payment(200, "A1", "30000.00", "2026-03-02T13:00:00Z"),
                _payment(201, "A1", "25000.00", "2026-03-02T14:00:00Z"),
                _payment(200, "A1", "30000.00", "2026-03-02T15:00:00Z", "Settled"),
                _payment(201, "A1", "", "2026-03-02T16:00:00Z", "Failed"),
            ],
        )
    ]


def test_accounts_on_flink_equal_the_embedded_runner(flink_session: FlinkSession) -> None:
    embedded = flink_session.embedded["accounts"]
    views = flink_session.views.views
    table = ACCOUNTS.tables[0]
    rows = views.rows(table)
    assert views.digest(table) == embedded[table.name], rows
    got = {(r["tenant"], r["account_id"]): r for r in rows}
    a1 = got[("acme", "A1")]
    assert (a1["customer_name"], a1["kyc_level"], a1["risk_rating"], a1["version"]) == (
        "Zoë Ünal",
        "ENHANCED",
        "HIGH",
        3,
    )
    # PostgreSQL holds ciphertext only: the name is nowhere in the partial rows
    with views._engine.connect() as conn:
        stored = conn.exec_driver_sql(
            f"SELECT customer_name FROM {views.schema}.accounts_current__flink_p"
        ).scalars()
        assert all(v.startswith("pii:v2:accounts:") for v in stored)

    # crypto-shredding reaches the Flink view: E1's key destroyed, its PII reads as erased
    flink_session.views.hub.keystore.for_tenant("acme").destroy("E1")  # s18: acme's E1
    after = {(r["tenant"], r["account_id"]): r for r in views.rows(table)}
    assert (after[("acme", "E1")]["customer_name"], after[("acme", "E1")]["email"]) == (
        "[erased]",
        "[erased]",
    )
    assert after[("acme", "A2")]["customer_name"] == "Jean O'Brien"


def test_payments_on_flink_equal_the_embedded_runner(flink_session: FlinkSession) -> None:
    embedded = flink_session.embedded["payments"]
    views = flink_session.views.views
    for table in PAYMENTS.tables:
        got = views.digest(table)
        assert got == embedded[table.name], (table.name, views.rows(table))
        assert got["rows"] > 0
    status = {r["payment_id"]: r for r in views.rows(PAYMENTS.table("payment_status"))}
    assert (status["P200"]["status"], status["P201"]["status"]) == ("SETTLED", "FAILED")
    assert status["P201"]["reason_code"] == "TIMEOUT"
    history = [r for r in views.rows(PAYMENTS.table("payment_history")) if r["payment_id"] == "P6"]
    assert [r["status"] for r in history] == ["INITIATED", "FAILED"]
    limits = {
        (r["tenant"], r["account_id"], r["day"]): r
        for r in views.rows(PAYMENTS.table("payment_limits"))
    }
    a1 = limits[("acme", "A1", 1772409600 * 1_000_000)]  # 2026-03-02
    assert a1["breached"] == 1 and a1["used"] > Decimal("50000")
