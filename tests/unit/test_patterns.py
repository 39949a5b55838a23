"""The embedded pattern engine on crafted events (no Kafka, no Flink): the semantics the Flink
``MATCH_RECOGNIZE`` jobs are checked against in ``tests/differential/test_flink_patterns.py``."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from projections.patterns import (
    PAYMENT_INITIATED,
    QUOTE_PUBLISHED,
    TRADE_EXECUTED,
    PatternEvent,
    PriceSpike,
    Structuring,
    find_matches,
    ms_of,
)

H = 3_600_000


def pay(offset: int, at: int, amount: str = "9500.00", account: str = "A1", tenant: str = "t"):
    value = {"account_id": account, "amount": Decimal(amount)}
    return PatternEvent("payments", 0, offset, PAYMENT_INITIATED, tenant, at, value)


def run(events: list[PatternEvent], **kw: Any) -> list[tuple[int, ...]]:
    p = Structuring(count=3, within_ms=H, **kw)
    return [(r["first_offset"], r["last_offset"]) for r in find_matches(p, events)]


def test_a_gap_of_exactly_the_window_does_not_match_and_one_ms_under_does() -> None:
    assert run([pay(0, 0), pay(1, 1), pay(2, H)]) == []
    assert run([pay(0, 0), pay(1, 1), pay(2, H - 1)]) == [(0, 2)]


def test_band_edges_and_skip_past_last_row() -> None:
    edges = [pay(0, 0, "9000.00"), pay(1, 1, "10000.00"), pay(2, 2, "9999.99"), pay(3, 3, "9000")]
    assert run(edges) == [(0, 3)]  # the threshold itself is not near, the floor is
    seven = [pay(i, i) for i in range(7)]
    assert run(seven) == [(0, 2), (3, 5)]


def test_events_are_ordered_by_time_then_position_and_keyed_by_tenant() -> None:
    assert run([pay(0, 20), pay(1, 0), pay(2, 10)]) == [(1, 0)]
    split = [pay(0, 0), pay(1, 1), pay(2, 2, tenant="u"), pay(3, 3, tenant="u")]
    assert run(split) == []


def test_price_spike_needs_more_than_pct_over_the_latest_quote() -> None:
    def ev(offset: int, at: int, kind: str, instrument: str, price: str) -> PatternEvent:
        if kind == "q":
            v = {"instrument": instrument, "ask": Decimal(price)}
            return PatternEvent("quotes", 0, offset, QUOTE_PUBLISHED, "t", at, v)
        v = {"instrument": instrument, "price": Decimal(price), "trade_id": f"X{offset}"}
        return PatternEvent("trades", 1, offset, TRADE_EXECUTED, "t", at, v)

    events = [
        ev(0, 0, "q", "XA", "100"),
        ev(0, 1, "t", "XA", "105"),  # exactly 5 %: no
        ev(1, 2, "t", "XA", "105.00000001"),  # spike
        ev(2, 3, "t", "XA", "500"),  # no quote since the alert
        ev(1, 10, "q", "XA", "100"),
        ev(3, 60_010, "t", "XA", "500"),  # exactly the window after the quote
    ]
    got = find_matches(PriceSpike(pct=Decimal(5), within_ms=60_000), events)
    assert [r["trade_id"] for r in got] == ["X1"]


def test_event_time_is_the_header_truncated_to_milliseconds() -> None:
    assert ms_of("1970-01-01T00:00:01.999999Z") == 1999
    assert ms_of("2026-03-02T09:00:00.000000Z") == 1772442000000
