"""Pure folds and windows: no store, no log."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal as D

import pytest

from core.projection import Event, FoldContext, Windowing, WindowState
from projections.catalog import MARKET_BARS, PAYMENT_AGGREGATES, POSITIONS
from projections.folds import (
    fold_bars,
    fold_payment_aggregates,
    fold_position,
    merge_src,
    position_key,
)
from projections.windows import MINUTE_US, hopping, is_late, tumbling


def trade(
    offset, minute, second=0, price="100", qty="1", side="BUY", partition=0, fees="0", cur="USD"
):
    return Event(
        "trades",
        partition,
        offset,
        0,
        "A1",
        "hub.trading.TradeExecuted",
        "acme",
        {
            "trade_id": f"t{offset}",
            "account_id": "A1",
            "instrument": "XS1",
            "side": side,
            "quantity": D(qty),
            "price": D(price),
            "currency": cur,
            "fees": D(fees),
            "executed_at": datetime(2026, 1, 1, 0, minute, second, tzinfo=UTC),
        },
    )


def test_tumbling_and_hopping_windows():
    assert tumbling(61 * 1_000_000, MINUTE_US) == MINUTE_US
    assert hopping(6 * MINUTE_US + 1, 5 * MINUTE_US, MINUTE_US) == [
        2 * MINUTE_US,
        3 * MINUTE_US,
        4 * MINUTE_US,
        5 * MINUTE_US,
        6 * MINUTE_US,
    ]
    assert not is_late(10, None)
    assert is_late(10, 10) and not is_late(11, 10)
    with pytest.raises(ValueError):
        hopping(0, 5, 2)


def test_bars_ohlcv_and_batching_independent():
    events = [trade(0, 0, 1, "10"), trade(1, 0, 30, "12", "2"), trade(2, 0, 5, "9")]
    out = fold_bars(events, WindowState(), FoldContext())
    (bar,) = out["ohlcv_1m"]
    assert (bar["open"], bar["high"], bar["low"], bar["close"]) == (D(10), D(12), D(9), D(12))
    assert bar["volume"] == D(4) and bar["notional"] == D("10") + D("24") + D("9")
    assert bar["events"] == 3 and (bar["src_first"], bar["src_last"]) == (0, 2)
    assert len(out["ohlcv_5m_hop_1m"]) == 5  # one trade minute falls in five hopping windows
    assert {t.name for t in MARKET_BARS.tables} >= set(out) - {"late_events"}


def test_late_event_updates_its_window_by_default():
    ctx = FoldContext(Windowing(allowed_lateness_us=0, late_mode="update"))
    ws = WindowState()
    events = [trade(0, 5), trade(1, 0)]  # the second is 5 minutes late
    out = fold_bars(events, ws, ctx)
    starts = sorted(r["window_start"] for r in out["ohlcv_1m"])
    assert len(starts) == 2 and out["late_events"] == []


def test_late_event_goes_to_side_output_when_configured():
    ctx = FoldContext(Windowing(allowed_lateness_us=0, late_mode="side"))
    out = fold_bars([trade(0, 5), trade(1, 0)], WindowState(), ctx)
    assert len(out["ohlcv_1m"]) == 1
    late = [r for r in out["late_events"] if r["view"] == "ohlcv_1m"]
    assert late and late[0]["src_offset"] == 1


def test_lateness_allowance_keeps_slightly_late_events():
    ctx = FoldContext(Windowing(allowed_lateness_us=10 * MINUTE_US, late_mode="side"))
    out = fold_bars([trade(0, 5), trade(1, 0)], WindowState(), ctx)
    assert len(out["ohlcv_1m"]) == 2 and out["late_events"] == []


def test_watermark_is_per_partition():
    ctx = FoldContext(Windowing(allowed_lateness_us=0, late_mode="side"))
    out = fold_bars([trade(0, 5, partition=0), trade(0, 0, partition=1)], WindowState(), ctx)
    assert out["late_events"] == []  # partition 1 had seen nothing: not late


def test_positions_average_cost_and_realised_pnl():
    ctx = FoldContext()
    s = fold_position(None, trade(0, 0, price="10", qty="10"), ctx)
    s = fold_position(s, trade(1, 0, price="20", qty="10"), ctx)
    assert s["quantity"] == D(20) and s["avg_cost"] == D(15)
    s = fold_position(s, trade(2, 0, price="18", qty="5", side="SELL", fees="1.50"), ctx)
    assert s["quantity"] == D(15)
    assert s["realised_pnl"] == D("13.50")  # (18 - 15) * 5 - 1.50
    s = fold_position(s, trade(3, 0, price="10", qty="20", side="SELL"), ctx)
    assert s["quantity"] == D(-5) and s["avg_cost"] == D(10)  # reversed into a short at 10
    assert s["realised_pnl"] == D("13.50") + (D(10) - D(15)) * 15


def test_bars_are_per_currency_never_blended():
    """Issue 11 item 9: one XXX trade at price 1 must not turn a USD bar into an XXX one."""
    events = [trade(0, 0, 1, "100", "10"), trade(1, 0, 2, "1", "1", cur="XXX")]
    out = fold_bars(events, WindowState(), FoldContext())
    bars = {b["currency"]: b for b in out["ohlcv_1h"]}
    assert set(bars) == {"USD", "XXX"}
    usd = bars["USD"]
    assert (usd["open"], usd["low"], usd["close"]) == (D(100), D(100), D(100))
    assert usd["volume"] == D(10) and usd["notional"] == D(1000)  # VWAP stays 100
    assert bars["XXX"]["volume"] == D(1)
    assert "currency" in MARKET_BARS.table("ohlcv_1h").key


def test_positions_are_per_currency():
    usd, xxx = trade(0, 0, price="100", qty="10"), trade(1, 0, price="1", qty="10", cur="XXX")
    assert position_key(usd) != position_key(xxx)
    assert "currency" in POSITIONS.table("positions").key


def payment(offset, amount, day=1):
    return Event(
        "payments",
        0,
        offset,
        0,
        "p",
        "hub.payments.PaymentInitiated",
        "acme",
        {
            "payment_id": f"p{offset}",
            "account_id": "A1",
            "amount": D(amount),
            "currency": "EUR",
            "counterparty_name": "x",
            "counterparty_iban": "y",
            "counterparty_country": "DE",
            "initiated_at": datetime(2026, 1, day, 12, tzinfo=UTC),
        },
    )


def test_aml_counts_payments_just_under_the_threshold():
    ctx = FoldContext(params=PAYMENT_AGGREGATES.params)
    out = fold_payment_aggregates(
        [payment(0, "9500"), payment(1, "9999.99"), payment(2, "10000"), payment(3, "50")],
        WindowState(),
        ctx,
    )
    (aml,) = out["aml_daily"]
    assert aml["near_threshold"] == 2 and aml["near_threshold_amount"] == D("19499.99")
    (vol,) = out["payment_volumes_1d"]
    assert vol["events"] == 4 and vol["amount"] == D("29549.99")


def test_merge_src_keeps_per_partition_ranges():
    src = merge_src(None, trade(5, 0))
    src = merge_src(src, trade(9, 0))
    src = merge_src(src, trade(2, 0, partition=1))
    assert src == [["trades", 0, 5, 9, 2], ["trades", 1, 2, 2, 1]]
