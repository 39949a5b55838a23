"""Accounts for tests that ingest trades: ``trades-value``'s ``trade.account.known`` rule (a
``ref`` rule) quarantines a trade whose account was never opened on ``accounts``."""

from __future__ import annotations

from collections.abc import Iterable

from core.events import OutgoingEvent
from hub.bootstrap import Hub


def account_opened(
    account: str,
    *,
    name: str | None = None,
    email: str | None = None,
    date_of_birth: str | None = None,
    opened_at: str = "2026-01-01T00:00:00Z",
    key: str | None = None,
    headers: dict[str, str] | None = None,
) -> OutgoingEvent:
    """One ``AccountOpened`` for ``account`` (a GB, EUR, standard-KYC, low-risk account)."""
    return OutgoingEvent(
        event_type="hub.accounts.AccountOpened",
        value={
            "account_id": account,
            "customer_name": name if name is not None else f"Holder of {account}",
            "email": email if email is not None else f"{account.lower()}@example.org",
            "date_of_birth": date_of_birth,
            "country": "GB",
            "kyc_level": "STANDARD",
            "risk_rating": "LOW",
            "base_currency": "EUR",
            "opened_at": opened_at,
        },
        key=key,
        headers=headers or {},
    )


def open_accounts(h: Hub, ids: Iterable[str]) -> None:
    """Publish one ``AccountOpened`` per id (strict route: no quality rules, no quarantine)."""
    events = [account_opened(account) for account in ids]
    if events:
        h.publisher.publish("accounts", events, producer="test-setup")


def publish_trades(
    h: Hub, trade_ids: Iterable[str], *, account: str = "ACC-0001", instrument: str = "KND"
) -> None:
    """Publish one BUY of 1 at 10 USD per trade id, on tenant ``default`` (strict route)."""
    events = [
        OutgoingEvent(
            value={
                "trade_id": trade_id,
                "account_id": account,
                "instrument": instrument,
                "side": "BUY",
                "quantity": "1",
                "price": "10",
                "currency": "USD",
                "executed_at": "2026-12-01T10:00:00Z",
            }
        )
        for trade_id in trade_ids
    ]
    h.publisher.publish("trades", events, producer="t", tenant="default")
