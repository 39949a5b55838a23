"""Complex event processing: Flink ``MATCH_RECOGNIZE`` vs the embedded pattern engine.

Crafted payments, trades and quotes go through a hub on the Kafka footprint; each pattern of
``projections.patterns`` (AML structuring, price spike) runs as a bounded Flink job compiled from
its definition (alert rows upserted into PostgreSQL) and through ``find_matches`` over the same
records; the alert rows are equal, and equal to the matches the crafted cases were written for
(threshold and band edges, a gap of exactly the window, one millisecond under it, events out of
order within the watermark delay, ties at one millisecond, two tenants, skip past the last row).

Both patterns run in the session's one Flink job (``tests/differential/conftest.py``); real
components as in ``test_flink_projections`` (Kafka, PostgreSQL, the PyFlink venv and jars).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from core.events import OutgoingEvent
from projections.patterns import Pattern, PriceSpike, Structuring, normalise
from tests.differential.conftest import FlinkSession

# the first test to ask for the session's Flink run waits for it: minutes on a busy machine
pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
MIN = timedelta(minutes=1)
MS = timedelta(milliseconds=1)
STRUCTURING = Structuring(count=3, within_ms=3_600_000, max_delay_ms=7_200_000)
SPIKE = PriceSpike(pct=Decimal("5"), within_ms=60_000, max_delay_ms=120_000)


def rfc(at: datetime) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def pay(n: int, account: str, amount: str, at: datetime) -> OutgoingEvent:
    return OutgoingEvent(
        event_type="hub.payments.PaymentInitiated",
        value={
            "payment_id": f"P{n}",
            "account_id": account,
            "amount": amount,
            "currency": "EUR",
            "counterparty_name": f"Person {n}",
            "counterparty_iban": "DE00123",
            "counterparty_country": "DE",
            "initiated_at": rfc(at),
        },
        occurred_at=rfc(at),
    )


def payments() -> list[tuple[str, list[OutgoingEvent]]]:
    """(tenant, events) in publishing order, and (in comments) the matches they are for."""
    n = iter(range(1, 1000))
    near = "9500.00"
    return [
        (
            "acme",
            [
                # A1: three near payments, the last 1 ms under the hour: one match
                pay(next(n), "A1", near, T0),
                pay(next(n), "A1", near, T0 + 10 * MIN),
                pay(next(n), "A1", near, T0 + 60 * MIN - MS),
                # A2: 0, 30, 60 min (exactly the window: no), then 61 min: match 30, 60, 61
                pay(next(n), "A2", near, T0),
                pay(next(n), "A2", near, T0 + 30 * MIN),
                pay(next(n), "A2", near, T0 + 60 * MIN),
                pay(next(n), "A2", near, T0 + 61 * MIN),
                # A3: the floor is near, the threshold and under the floor are not: one match
                pay(next(n), "A3", "9000.00", T0),
                pay(next(n), "A3", "10000.00", T0 + MIN),
                pay(next(n), "A3", "9999.99", T0 + 2 * MIN),
                pay(next(n), "A3", "8999.99", T0 + 3 * MIN),
                pay(next(n), "A3", "9000.01", T0 + 4 * MIN),
            ],
        ),
        (
            "acme",
            [
                # A4: out of order (within the 2 h watermark delay): sorted, one match
                pay(next(n), "A4", near, T0 + 20 * MIN),
                pay(next(n), "A4", near, T0),
                pay(next(n), "A4", near, T0 + 10 * MIN),
                # A5: seven near payments in the hour: two matches (skip past last row)
                *[pay(next(n), "A5", near, T0 + i * MIN) for i in range(7)],
                # A7: ties at one millisecond, ordered by offset
                pay(next(n), "A7", "9100.00", T0 + 5 * MIN),
                pay(next(n), "A7", "9200.00", T0 + 5 * MIN),
                pay(next(n), "A7", "9300.00", T0 + 5 * MIN),
            ],
        ),
        # A6 under two tenants: two near payments each, never three in one partition key
        ("acme", [pay(next(n), "A6", near, T0), pay(next(n), "A6", near, T0 + MIN)]),
        ("globex", [pay(next(n), "A6", near, T0 + 2 * MIN)]),
        ("globex", [pay(next(n), "A6", near, T0 + 3 * MIN)]),
    ]


def forged_ahead() -> tuple[list[OutgoingEvent], int]:
    """Three near payments of A1 dated 30 days after the others, and their Kafka timestamp: a
    broker producer writes them claiming acme on every partition before the genuine payments
    (``conftest.forge_ahead``)."""
    ahead = T0 + timedelta(days=30)
    events = [pay(900 + i, "A1", "9500.00", ahead + i * MIN) for i in range(3)]
    return events, int(ahead.timestamp() * 1000)


def quote(instrument: str, ask: str, at: datetime) -> OutgoingEvent:
    return OutgoingEvent(
        event_type="hub.market.QuotePublished",
        value={
            "instrument": instrument,
            "venue": "XOFF",
            "bid": ask,
            "ask": ask,
            "bid_size": "10",
            "ask_size": "10",
            "currency": "EUR",
            "quoted_at": rfc(at),
        },
        occurred_at=rfc(at),
    )


def trade(n: int, instrument: str, price: str, at: datetime, account: str = "T1") -> OutgoingEvent:
    return OutgoingEvent(
        event_type="hub.trading.TradeExecuted",
        value={
            "trade_id": f"X{n}",
            "account_id": account,
            "instrument": instrument,
            "venue": "XOFF",
            "side": "BUY",
            "quantity": "1",
            "price": price,
            "currency": "EUR",
            "executed_at": rfc(at),
        },
        occurred_at=rfc(at),
    )


SEC = timedelta(seconds=1)


def market() -> list[tuple[str, list[OutgoingEvent]]]:
    """(topic, events) in publishing order."""
    return [
        (
            "quotes",
            [
                quote("XA", "100", T0),
                quote("YB", "50", T0),
                quote("YB", "60", T0 + SEC),
            ],
        ),
        (
            "trades",
            [
                trade(1, "XA", "105.00000000", T0 + SEC),  # exactly 5 %: no
                trade(2, "XA", "105.00000001", T0 + 2 * SEC),  # spike
                trade(3, "XA", "200", T0 + 3 * SEC),  # needs a new quote after an alert: no
                trade(4, "YB", "52.60", T0 + 2 * SEC),  # over the replaced quote only: no
                trade(5, "YB", "63.01", T0 + 3 * SEC, "T2"),  # spike over the newer quote
                trade(6, "ZC", "12", T0 + 5 * SEC),  # before its quote arrives (out of order)
            ],
        ),
        ("quotes", [quote("ZC", "10", T0 + SEC), quote("XA", "100", T0 + 10 * SEC)]),
        (
            "trades",
            [
                trade(7, "XA", "110", T0 + 70 * SEC),  # exactly the window after: no
                trade(8, "WD", "11", T0 + 20 * SEC),  # same millisecond as its quote
            ],
        ),
        ("quotes", [quote("WD", "10", T0 + 20 * SEC), quote("XA", "100", T0 + 100 * SEC)]),
        ("trades", [trade(9, "XA", "110", T0 + 160 * SEC - MS)]),  # 1 ms under: spike
    ]


def _both(session: FlinkSession, pattern: Pattern) -> tuple[list[Any], list[Any]]:
    """The embedded engine's matches and Flink's alert rows over the session's cep hub."""
    return session.matches[pattern.name], session.cep.views.alert_rows(pattern)


def test_structuring_on_flink_equals_the_embedded_engine(flink_session: FlinkSession) -> None:
    embedded, flink = _both(flink_session, STRUCTURING)
    assert normalise(flink) == normalise(embedded), (flink, embedded)
    ms = int(T0.timestamp() * 1000)
    got = sorted(
        (r["account_id"], r["first_at"] - ms, r["last_at"] - ms, r["payments"], r["amount"])
        for r in embedded
    )
    m = 60_000
    assert got == [
        ("A1", 0, 60 * m - 1, 3, Decimal("28500.00")),
        ("A2", 30 * m, 61 * m, 3, Decimal("28500.00")),
        ("A3", 0, 4 * m, 3, Decimal("28000.00")),
        ("A4", 0, 20 * m, 3, Decimal("28500.00")),
        ("A5", 0, 2 * m, 3, Decimal("28500.00")),
        ("A5", 3 * m, 5 * m, 3, Decimal("28500.00")),
        ("A7", 5 * m, 5 * m, 3, Decimal("27600.00")),
    ]


def test_price_spike_on_flink_equals_the_embedded_engine(flink_session: FlinkSession) -> None:
    embedded, flink = _both(flink_session, SPIKE)
    assert normalise(flink) == normalise(embedded), (flink, embedded)
    ms = int(T0.timestamp() * 1000)
    assert sorted(
        (r["trade_id"], r["quote_at"] - ms, r["trade_at"] - ms, r["ask"], r["price"])
        for r in embedded
    ) == [
        ("X2", 0, 2000, Decimal("100"), Decimal("105.00000001")),
        ("X5", 1000, 3000, Decimal("60"), Decimal("63.01")),
        ("X6", 1000, 5000, Decimal("10"), Decimal("12")),
        ("X8", 20_000, 20_000, Decimal("10"), Decimal("11")),
        ("X9", 100_000, 160_000 - 1, Decimal("100"), Decimal("110")),
    ]


def test_forged_future_dated_payments_move_no_engine(flink_session: FlinkSession) -> None:
    """A broker producer's payments dated 30 days ahead, claiming acme, written on every
    partition before the genuine ones (``forged_ahead``): their claim fails, so both engines
    take neither their time nor their events (``hub_tenant_ok`` in Flink's rowtime column,
    ``pattern_batch.claimed`` in the embedded engine). They used to count as tenant 'default'
    (a match of their own in both) and to move the watermark past every genuine payment (the
    served detector then dropped those as late): here no genuine payment is late, nothing
    matches under 'default', and the alert rows (checked against the crafted expectations in
    ``test_structuring_on_flink_equals_the_embedded_engine``) are equal in both engines."""
    assert flink_session.forged_ahead >= 3 * 2  # at least two partitions
    embedded, flink = _both(flink_session, STRUCTURING)
    assert normalise(flink) == normalise(embedded), (flink, embedded)
    assert {r["tenant"] for r in [*embedded, *flink]} == {"acme"}
    assert flink_session.detector.states[STRUCTURING.name].late == 0
    served = [a for a in flink_session.alerts["embedded"] if a["rule"] == "pattern.aml_structuring"]
    assert len(served) == len(flink) == 7
    assert all("(tenant acme)" in a["summary"] for a in served)


def test_pattern_definitions_refuse_nonsense() -> None:
    from core.errors import ConfigError

    with pytest.raises(ConfigError, match="at least 2"):
        Structuring(count=1)
    with pytest.raises(ConfigError, match="between 0 and 1"):
        Structuring(band=Decimal("1.5"))
    with pytest.raises(ConfigError, match="positive percentage"):
        PriceSpike(pct=Decimal(0))
    with pytest.raises(ConfigError, match="milliseconds"):
        PriceSpike(within_ms=0)
    assert Path(__file__).exists()


def test_one_structuring_pattern_is_one_alert_event_from_each_engine(
    flink_session: FlinkSession,
) -> None:
    """The operational paths of both engines raised the matches as ``hub.AlertFired`` events on
    ``hub.alerts`` in the session: the embedded detector (what ``hub serve`` runs) and the cep
    hub's ``FlinkProjections`` after its job (what ``hub projection run --engine flink`` does).
    The injected A1 pattern (three payments in the hour) is exactly one event per engine; the
    console's alert list shows them; running either again (a restart) adds nothing."""
    from hub.console.alerts import ALERTS_TOPIC, AlertEngine
    from hub.pattern_alerts import PatternDetector, by_engine

    hub = flink_session.cep.hub
    embedded, flink = _both(flink_session, STRUCTURING)
    assert len(embedded) == len(flink) == 7
    raised = {
        e: [a for a in v if a["rule"] == "pattern.aml_structuring"]
        for e, v in flink_session.alerts.items()
    }
    assert {e: len(v) for e, v in raised.items()} == {"embedded": 7, "flink": 7}
    # a second detection (a restarted job, a re-read log) appends nothing
    assert flink_session.cep_runner.fire_alerts() == []
    assert flink_session.detector.step() == []
    assert PatternDetector(hub, (STRUCTURING, SPIKE)).step() == []

    listed = AlertEngine(hub, []).events()  # what the console's alert list reads
    engines = by_engine(listed)
    assert {k: len(v) for k, v in engines.items()} == {"embedded": 12, "flink": 12}
    for engine, events in engines.items():
        a1 = [e for e in events if "from account A1 (tenant acme)" in e["summary"]]
        assert len(a1) == 1, (engine, a1)
        assert (a1[0]["rule"], a1[0]["value"], a1[0]["threshold"]) == (
            "pattern.aml_structuring",
            "28500",
            "10000",
        )
        assert a1[0]["event_type"] == "hub.AlertFired"
        spikes = [e for e in events if e["rule"] == "pattern.price_spike"]
        assert len(spikes) == 5, (engine, spikes)
    # appended through the hub's log: the ledger covers them like any other record
    assert sum(hub.log.end_offsets(ALERTS_TOPIC).values()) >= 24
