"""Accounts for tests that ingest trades: ``trades-value``'s ``trade.account.known`` rule (a
``ref`` rule) quarantines a trade whose account was never opened on ``accounts``."""

from __future__ import annotations

from collections.abc import Iterable

from core.events import OutgoingEvent
from hub.bootstrap import Hub


def open_accounts(h: Hub, ids: Iterable[str]) -> None:
    """Publish one ``AccountOpened`` per id (strict route: no quality rules, no quarantine)."""
    events = [
        OutgoingEvent(
            event_type="hub.accounts.AccountOpened",
            value={
                "account_id": account,
                "customer_name": f"Holder of {account}",
                "email": f"{account.lower()}@example.org",
                "date_of_birth": None,
                "country": "GB",
                "kyc_level": "STANDARD",
                "risk_rating": "LOW",
                "base_currency": "EUR",
                "opened_at": "2026-01-01T00:00:00Z",
            },
        )
        for account in ids
    ]
    if events:
        h.publisher.publish("accounts", events, producer="test-setup")
