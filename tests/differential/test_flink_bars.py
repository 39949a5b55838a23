"""Market bars (tumbling and hopping windows) on Flink equal the embedded runner's, byte for byte.

Trades cross minute and hour edges (09:00:59.999999 / 09:01:00), arrive out of order and very
late (an 08:30 trade published after the 10:00 ones: ``late_mode="update"`` counts it in both
engines), tie at one microsecond across partitions and within one, come in two currencies for one
instrument and from two tenants, and have prices whose VWAP does not terminate. The compiled job
(``projections.flink.compile._market_bars``, generated from ``folds.BAR_WINDOWS``) writes partial
rows into PostgreSQL; the merged views' digests equal the embedded chDB views' digests.

The trades are published (with the positions' trades) and compared in the session's one Flink
run (``tests/differential/conftest.py``); real components as in ``test_flink_projections``.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from core.events import OutgoingEvent
from projections.catalog import MARKET_BARS
from tests.differential.conftest import FlinkSession

# the first test to ask for the session's Flink run waits for it: minutes on a busy machine
pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
US = timedelta(microseconds=1)
MIN = timedelta(minutes=1)


def trade(n: int, instrument: str, price: str, qty: str, at: datetime, **kw: str) -> OutgoingEvent:
    return OutgoingEvent(
        event_type="hub.trading.TradeExecuted",
        value={
            "trade_id": f"T{n}",
            "account_id": kw.get("account", f"A{n % 4}"),
            "instrument": instrument,
            "venue": "XOFF",
            "side": "BUY" if n % 2 else "SELL",
            "quantity": qty,
            "price": price,
            "currency": kw.get("currency", "EUR"),
            "executed_at": at.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        },
    )


def batches() -> list[tuple[str, list[OutgoingEvent]]]:
    return [
        (
            "acme",
            [
                trade(1, "XA", "100.00000001", "3", T0),  # minute and hour start
                trade(2, "XA", "101", "7", T0 + MIN - US),  # last µs of the first minute
                trade(3, "XA", "99.5", "0.0001", T0 + MIN),  # next minute
                trade(4, "XA", "100", "1", T0 + 60 * MIN - US),  # last µs of the hour
                trade(5, "XA", "102", "2", T0 + 60 * MIN),  # next hour
                trade(6, "XA", "98", "5", T0 + 2 * MIN, account="B1"),  # ties at one µs:
                trade(7, "XA", "97", "5", T0 + 2 * MIN, account="B2"),  # two partitions
                trade(8, "XA", "96", "5", T0 + 2 * MIN, account="B2"),  # and one partition
                trade(9, "XA", "3.33333333", "3", T0 + 3 * MIN, currency="USD"),
                trade(10, "XA", "1", "0.0003", T0 + 3 * MIN, currency="USD"),
            ],
        ),
        ("globex", [trade(11, "XA", "50", "1", T0 + 30 * US), trade(12, "YB", "7", "9", T0)]),
        (
            "acme",
            [  # out of order, and one trade 30 minutes before everything else (very late)
                trade(13, "XA", "105", "1", T0 + 90 * SEC),
                trade(14, "XA", "95", "1", T0 + 30 * SEC),
                trade(15, "XA", "90", "2", T0 - 30 * MIN),
            ],
        ),
        (
            "acme",
            [
                trade(20 + i, "YB", f"{10 + i}.12345678", f"{i + 1}.5", T0 + i * 17 * SEC)
                for i in range(12)
            ],
        ),
    ]


SEC = timedelta(seconds=1)


def test_market_bars_on_flink_equal_the_embedded_runner(flink_session: FlinkSession) -> None:
    embedded = flink_session.embedded["market_bars"]
    views = flink_session.views.views
    tables = [MARKET_BARS.table(n) for n in ("ohlcv_1m", "ohlcv_1h", "ohlcv_5m_hop_1m")]
    for table in tables:
        got = views.digest(table)
        assert got == embedded[table.name], (table.name, views.rows(table))
        assert got["rows"] > 0

    # not two equal mistakes: the first minute of XA in EUR for acme, from the inputs
    bars = {
        (r["tenant"], r["instrument"], r["currency"], r["window_start"]): r
        for r in views.rows(tables[0])
    }
    first = bars[("acme", "XA", "EUR", int(T0.timestamp()) * 1_000_000)]
    assert (first["open"], first["close"]) == (Decimal("100.00000001"), Decimal("101"))
    assert (first["high"], first["low"], first["events"]) == (Decimal(101), Decimal(95), 3)
    assert first["volume"] == Decimal("11")
    hop = {(r["tenant"], r["instrument"], r["currency"]) for r in views.rows(tables[2])}
    assert ("acme", "XA", "USD") in hop and ("globex", "YB", "EUR") in hop
