"""A seeded, reproducible demo data set: one trading day, loaded through the ingest pipeline.

Contents (seed 7, trading day 2026-11-24, all times UTC):
- 200 accounts (``AccountOpened``) with KYC levels NONE/BASIC/STANDARD/ENHANCED and risk ratings;
- 50 instruments; a random walk of quotes every ~5 minutes per instrument 08:00–16:30
  (~5,000 ``QuotePublished``), and ~3,000 ``TradeExecuted`` near the quoted prices;
- ~1,200 payments: ``PaymentInitiated`` and, for most, ``PaymentSettled`` minutes later.

Planted anomalies (valid records: they pass quality rules, the analytics must find them):
- structuring: account ``ACC-0042`` sends 9 payments of 9,500–9,990 USD (just under a 10,000
  reporting threshold) to three counterparties between 10:00 and 15:00;
- velocity burst: account ``ACC-0077`` initiates 25 payments within 4 minutes at 13:37;
- sanctioned country: account ``ACC-0123`` pays a counterparty in ``KP`` (and one in ``IR``);
- off-market trades: every hundredth trade (``TR-000037``, ``TR-000137``, ...; 30 in all) is
  executed 1-2.5% away from the mid quoted at its time (a normal trade is within a few basis
  points of it).

Labels (``payment-labels``): the next day an investigator confirms each planted payment
(``FraudConfirmed``: STRUCTURING, VELOCITY, SANCTIONS), so payment risk models can be trained
and their live precision and recall measured (``hub ml``). On ``trade-labels`` market
surveillance reviews every off-market trade (``TradeAnomalyConfirmed``) and every third other
trade (``TradeCleared``), the labels of the price anomaly model.

Planted bad records (they end in ``hub.quarantine``, visible with ``hub quarantine list``):
- a trade with a negative quantity (``trade.quantity.positive``), a trade in ``XXX``
  (``trade.currency.known``), a crossed quote (ask < bid, ``quote.not.crossed``), a settlement
  before its initiation (``settlement.after.initiation``), a payment with a malformed IBAN
  (``payment.iban.format``), a trade missing its price (schema: required field), and one
  repeated trade id (counted as a duplicate, not appended).

Loading is idempotent: the source ``demo:<seed>`` records its position with the data; a second
``hub demo load`` sees it done and does nothing.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from ingest.pipeline import IngestPipeline, IngestResult, RawRecord

DAY = datetime(2026, 11, 24, tzinfo=UTC)
SEED = 7
COUNTRIES = ["GB", "DE", "FR", "NL", "US", "CH", "SG", "IE", "ES", "IT"]
CCY = ["USD", "EUR", "GBP", "CHF"]


@dataclass(frozen=True)
class DemoEvent:
    topic: str
    value: dict[str, Any]
    event_type: str | None = None
    event_id: str | None = None


def _ts(dt: datetime) -> str:
    return dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _iban(rng: random.Random, country: str) -> str:
    return f"{country}{rng.randint(10, 99)}{''.join(rng.choices('ABCDEFGHIJ0123456789', k=18))}"


def generate(seed: int = SEED) -> Iterator[DemoEvent]:
    """Every demo event in load order (accounts, quotes, trades, payments, bad records)."""
    rng = random.Random(seed)
    open_ = DAY + timedelta(hours=8)
    accounts = [f"ACC-{i:04d}" for i in range(200)]
    for i, acc in enumerate(accounts):
        yield DemoEvent(
            "accounts",
            {
                "account_id": acc,
                "customer_name": f"Customer {i}",
                "email": f"customer{i}@example.com",
                "country": rng.choice(COUNTRIES),
                "kyc_level": rng.choices(["NONE", "BASIC", "STANDARD", "ENHANCED"], [1, 3, 5, 2])[
                    0
                ],
                "risk_rating": rng.choices(["LOW", "MEDIUM", "HIGH"], [6, 3, 1])[0],
                "base_currency": rng.choice(CCY),
                "opened_at": _ts(DAY - timedelta(days=rng.randint(30, 2000))),
            },
            "hub.accounts.AccountOpened",
        )
    instruments = [f"INS{i:03d}" for i in range(50)]
    price = {s: Decimal(rng.randint(500, 50000)) / 100 for s in instruments}
    path: dict[str, list[Decimal]] = {s: [] for s in instruments}  # mid price per 5-min step
    for step in range(102):  # every 5 minutes, 08:00-16:30
        t = open_ + timedelta(minutes=5 * step)
        for s in instruments:
            p = price[s] * Decimal(1 + rng.gauss(0, 0.002)).quantize(Decimal("0.000001"))
            price[s] = p.quantize(Decimal("0.0001"))
            path[s].append(price[s])
            spread = (price[s] * Decimal("0.0005")).quantize(Decimal("0.0001"))
            yield DemoEvent(
                "quotes",
                {
                    "instrument": s,
                    "venue": "XLON",
                    "bid": str(price[s] - spread),
                    "ask": str(price[s] + spread),
                    "bid_size": str(rng.randint(1, 50) * 100),
                    "ask_size": str(rng.randint(1, 50) * 100),
                    "currency": "USD",
                    "quoted_at": _ts(t + timedelta(seconds=rng.randint(0, 299))),
                },
            )
    reviewed: list[tuple[str, str, bool]] = []
    for i in range(3000):
        s = rng.choice(instruments)
        offset_s = rng.randint(0, int(8.5 * 3600))
        t = open_ + timedelta(seconds=offset_s)
        # Executed near the mid quoted at that time, within a few basis points.
        mid = path[s][min(offset_s // 300, len(path[s]) - 1)]
        traded = (mid * Decimal(1 + rng.gauss(0, 0.0003))).quantize(Decimal("0.0001"))
        off_market = i % 100 == OFF_MARKET_AT
        if off_market:  # no extra draw from rng: every other demo value stays as it was
            away = Decimal("0.01") + Decimal("0.005") * ((i // 100) % 4)
            sign = 1 if (i // 100) % 2 == 0 else -1
            traded = (mid * (1 + sign * away)).quantize(Decimal("0.0001"))
        if off_market or i % 3 == 0:
            reviewed.append((f"TR-{i:06d}", s, off_market))
        yield DemoEvent(
            "trades",
            {
                "trade_id": f"TR-{i:06d}",
                "account_id": rng.choice(accounts),
                "instrument": s,
                "venue": "XLON",
                "side": rng.choice(["BUY", "SELL"]),
                "quantity": str(rng.randint(1, 100) * 10),
                "price": str(traded),
                "currency": "USD",
                "fees": "1.50",
                "executed_at": _ts(t),
            },
        )
    yield from _payments(rng, accounts, open_)
    yield from _labels()
    yield from _trade_labels(reviewed)
    yield from _bad(open_)


def _payment(
    n: int, acc: str, amount: Decimal, country: str, t: datetime, rng: random.Random
) -> Iterator[DemoEvent]:
    pid = f"PAY-{n:06d}"
    yield DemoEvent(
        "payments",
        {
            "payment_id": pid,
            "account_id": acc,
            "amount": str(amount),
            "currency": "USD",
            "counterparty_name": f"Counterparty {rng.randint(1, 500)}",
            "counterparty_iban": _iban(rng, country),
            "counterparty_country": country,
            "initiated_at": _ts(t),
        },
        "hub.payments.PaymentInitiated",
    )
    if rng.random() < 0.9:
        yield DemoEvent(
            "payments",
            {
                "payment_id": pid,
                "account_id": acc,
                "amount": str(amount),
                "currency": "USD",
                "initiated_at": _ts(t),
                "settled_at": _ts(t + timedelta(minutes=rng.randint(1, 90))),
            },
            "hub.payments.PaymentSettled",
        )


def _payments(rng: random.Random, accounts: list[str], open_: datetime) -> Iterator[DemoEvent]:
    n = 0
    for _ in range(1150):
        acc = rng.choice(accounts)
        amount = Decimal(rng.randint(1000, 2_500_000)) / 100
        t = open_ + timedelta(seconds=rng.randint(0, 9 * 3600))
        yield from _payment(n, acc, amount, rng.choice(COUNTRIES), t, rng)
        n += 1
    for k in range(9):  # structuring
        amount = Decimal(rng.randint(9500, 9990))
        t = DAY + timedelta(hours=10, minutes=33 * k)
        yield from _payment(n, "ACC-0042", amount, "GB", t, rng)
        n += 1
    for k in range(25):  # velocity burst
        t = DAY + timedelta(hours=13, minutes=37, seconds=9 * k)
        yield from _payment(n, "ACC-0077", Decimal(rng.randint(100, 900)), "DE", t, rng)
        n += 1
    for country in ("KP", "IR"):  # sanctioned countries
        t = DAY + timedelta(hours=11, minutes=rng.randint(0, 59))
        yield from _payment(n, "ACC-0123", Decimal("48250.00"), country, t, rng)
        n += 1


PLANTED = (  # (first payment number, count, account, kind) of _payments' anomalies
    (1150, 9, "ACC-0042", "STRUCTURING"),
    (1159, 25, "ACC-0077", "VELOCITY"),
    (1184, 2, "ACC-0123", "SANCTIONS"),
)


def _labels() -> Iterator[DemoEvent]:
    confirmed = _ts(DAY + timedelta(days=1, hours=9))
    for first, count, account, kind in PLANTED:
        for n in range(first, first + count):
            yield DemoEvent(
                "payment-labels",
                {
                    "payment_id": f"PAY-{n:06d}",
                    "account_id": account,
                    "kind": kind,
                    "confirmed_by": "investigator-1",
                    "confirmed_at": confirmed,
                },
                "hub.payments.FraudConfirmed",
            )


OFF_MARKET_AT = 37  # the trade number modulo 100 of the planted off-market trades


def _trade_labels(reviewed: list[tuple[str, str, bool]]) -> Iterator[DemoEvent]:
    at = _ts(DAY + timedelta(days=1, hours=8))
    for trade_id, instrument, off_market in reviewed:
        value = {"trade_id": trade_id, "instrument": instrument, "reviewed_by": "surveillance-1"}
        if off_market:
            yield DemoEvent(
                "trade-labels",
                {**value, "kind": "OFF_MARKET", "reviewed_at": at},
                "hub.trading.TradeAnomalyConfirmed",
            )
        else:
            yield DemoEvent(
                "trade-labels", {**value, "reviewed_at": at}, "hub.trading.TradeCleared"
            )


def _bad(open_: datetime) -> Iterator[DemoEvent]:
    t = _ts(open_ + timedelta(hours=2))
    trade = {
        "account_id": "ACC-0001",
        "instrument": "INS001",
        "venue": "XLON",
        "side": "BUY",
        "quantity": "100",
        "price": "12.5",
        "currency": "USD",
        "executed_at": t,
    }
    yield DemoEvent("trades", {**trade, "trade_id": "BAD-001", "quantity": "-100"})
    yield DemoEvent("trades", {**trade, "trade_id": "BAD-002", "currency": "XXX"})
    missing = {k: v for k, v in trade.items() if k != "price"}
    yield DemoEvent("trades", {**missing, "trade_id": "BAD-003"})
    yield DemoEvent("trades", {**trade, "trade_id": "TR-000001"})  # duplicate trade id
    yield DemoEvent(
        "quotes",
        {
            "instrument": "INS002",
            "bid": "101.5",
            "ask": "99.5",
            "bid_size": "100",
            "ask_size": "100",
            "currency": "USD",
            "quoted_at": t,
        },
    )
    yield DemoEvent(
        "payments",
        {
            "payment_id": "PAY-BAD-1",
            "account_id": "ACC-0002",
            "amount": "250.00",
            "currency": "USD",
            "initiated_at": t,
            "settled_at": _ts(open_ + timedelta(hours=1)),
        },
        "hub.payments.PaymentSettled",
    )
    yield DemoEvent(
        "payments",
        {
            "payment_id": "PAY-BAD-2",
            "account_id": "ACC-0003",
            "amount": "75.00",
            "currency": "USD",
            "counterparty_name": "Nobody",
            "counterparty_iban": "not-an-iban",
            "counterparty_country": "GB",
            "initiated_at": t,
        },
        "hub.payments.PaymentInitiated",
    )


def load(pipeline: IngestPipeline, seed: int = SEED, batch_size: int = 2000) -> dict[str, Any]:
    """Load the demo once; returns counts per topic, or ``{"already_loaded": True}``."""
    source = f"demo:{seed}"
    last = pipeline.positions.get(source)
    if last is not None and last.done:
        return {"already_loaded": True, "records": last.records}
    skip = 0 if last is None else last.records
    out: dict[str, IngestResult] = {}
    consumed = 0
    pending: list[RawRecord] = []
    topic = ""

    def flush(done: bool = False) -> None:
        nonlocal pending
        if pending or done:
            r = pipeline.ingest(
                topic or "trades",
                pending,
                source=source,
                position={"events": consumed},
                consumed=consumed,
                done=done,
            )
            out.setdefault(topic or "trades", IngestResult()).add(r)
        pending = []

    for i, ev in enumerate(generate(seed)):
        if i < skip:
            continue
        if ev.topic != topic or len(pending) >= batch_size:
            flush()
            topic = ev.topic
        raw = json.dumps(ev.value).encode()
        pending.append(
            RawRecord(raw, value=json.loads(raw, parse_float=Decimal), event_type=ev.event_type)
        )
        consumed = i + 1
    flush(done=True)
    return {
        t: {"accepted": r.accepted, "rejected": r.rejected, "duplicates": r.duplicates}
        for t, r in out.items()
    }
