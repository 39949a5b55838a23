"""Positions and realised P&L (an entity projection) on Flink equal the embedded runner's.

The compiled job runs the embedded runner's own fold (``projections.folds.fold_position``) as a
Flink Python aggregate function per position key; trades buy, add, partly close, close and
reverse positions, pay fees, come in two currencies and from two tenants, and tie at one
microsecond. The PostgreSQL view's digest equals the embedded chDB view's, byte for byte.

Compared in the session's one Flink run (``tests/differential/conftest.py``); real components
as in ``test_flink_projections``.
"""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from decimal import Decimal

import pytest

from core.events import OutgoingEvent
from projections.catalog import POSITIONS, QUOTES
from tests.differential import test_flink_bars as bars
from tests.differential.conftest import FlinkSession

# the first test to ask for the session's Flink run waits for it: minutes on a busy machine
pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]

SEC = timedelta(seconds=1)


def trade(n: int, side: str, qty: str, price: str, fees: str = "0", **kw: str) -> OutgoingEvent:
    e = bars.trade(n, kw.get("instrument", "XA"), price, qty, bars.T0 + n * SEC, account="P1")
    extra = {"side": side, "fees": fees, "currency": kw.get("currency", "EUR")}
    return dataclasses.replace(e, value={**e.value, **extra})


def batches() -> list[tuple[str, list[OutgoingEvent]]]:
    life = [
        trade(100, "BUY", "10", "100", "1.25"),  # open long
        trade(101, "BUY", "5", "103.33333333"),  # add: average moves (rounded half-even)
        trade(102, "SELL", "4", "110", "0.50"),  # partly close: realise
        trade(103, "SELL", "20", "90"),  # close and reverse into a short at 90
        trade(104, "BUY", "9", "95.5", "2"),  # close the short
        trade(105, "BUY", "1", "7", currency="USD"),  # another currency: another position
        trade(106, "SELL", "1", "8", instrument="YB"),  # open a short
    ]
    return [("acme", life), ("globex", life[:3]), *bars.batches()]


def test_positions_on_flink_equal_the_embedded_runner(flink_session: FlinkSession) -> None:
    embedded = flink_session.embedded["positions"]
    views = flink_session.views.views
    table = POSITIONS.tables[0]
    rows = views.rows(table)
    assert views.digest(table) == embedded[table.name], rows
    # not two equal mistakes: acme's EUR position in XA after the whole life cycle is flat
    got = {(r["tenant"], r["account_id"], r["instrument"], r["currency"]): r for r in rows}
    flat = got[("acme", "P1", "XA", "EUR")]
    assert (flat["quantity"], flat["avg_cost"], flat["trades"]) == (0, 0, 5)
    assert flat["fees"] == Decimal("3.75")
    assert got[("acme", "P1", "YB", "EUR")]["quantity"] == Decimal(-1)


def quote(n: int, instrument: str, bid: str, ask: str, at_s: int, **kw: str) -> OutgoingEvent:
    at = bars.T0 + at_s * SEC
    return OutgoingEvent(
        event_type="hub.market.QuotePublished",
        value={
            "instrument": instrument,
            "venue": kw.get("venue", "XOFF"),
            "bid": bid,
            "ask": ask,
            "bid_size": f"{n}.5",
            "ask_size": "1",
            "currency": kw.get("currency", "EUR"),
            "quoted_at": at.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        },
    )


def quote_batches() -> list[tuple[str, list[OutgoingEvent]]]:
    """(tenant, quotes) in publishing order."""
    return [
        ("acme", [quote(1, "XA", "99.99999999", "100", 10), quote(2, "XA", "99", "101", 20)]),
        ("acme", [quote(3, "XA", "1", "2", 5), quote(4, "XA", "98", "102", 20, venue="XB")]),
        ("acme", [quote(5, "XA", "7", "8", 1, currency="USD"), quote(6, "YB", "1", "3", 1)]),
        ("globex", [quote(7, "XA", "5", "6", 1)]),
    ]


def test_latest_quotes_on_flink_equal_the_embedded_runner(flink_session: FlinkSession) -> None:
    """An older quote arriving late counts but does not replace the newer one; equal quote
    times fall back to the log position; mid rounds half-even (in the embedded fold, run by
    Flink too)."""
    embedded = flink_session.embedded["quotes"]
    views = flink_session.views.views
    table = QUOTES.tables[0]
    rows = views.rows(table)
    assert views.digest(table) == embedded[table.name], rows
    latest = {(r["tenant"], r["instrument"], r["currency"]): r for r in rows}
    xa = latest[("acme", "XA", "EUR")]
    assert (xa["venue"], xa["mid"], xa["quotes"]) == ("XB", Decimal(100), 4)
