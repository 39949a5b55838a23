"""The pure folds of the shipped projections. No I/O: events in, rows out.

Aggregate folds pre-aggregate one partition chunk into partial rows keyed by the table key;
``Partials`` tracks, per row, the offsets folded (``src_first``/``src_last``) and the count
(``events``) so the runner can prove each row. Money stays ``Decimal`` throughout.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from core.projection import Event, FoldContext, Row, WindowState, to_micros
from projections.windows import DAY_US, HOUR_US, MINUTE_US, hopping, is_late, tumbling

ZERO = Decimal(0)
Q8 = Decimal("1e-8")
Q12 = Decimal("1e-12")


class Partials:
    """Partial rows of one table for one chunk, merged in place by key."""

    __slots__ = ("rows",)

    def __init__(self) -> None:
        self.rows: dict[tuple[Any, ...], Row] = {}

    def get(self, key: tuple[Any, ...], e: Event, make: Any) -> Row:
        row = self.rows.get(key)
        if row is None:
            row = make()
            row["events"] = 0
            row["src_first"] = e.offset
            self.rows[key] = row
        row["events"] += 1
        row["src_last"] = e.offset  # a chunk is one partition in offset order
        return row


def _late_row(e: Event, table: str, window_start: int, event_us: int) -> Row:
    return {
        "tenant": e.tenant,
        "src_topic": e.topic,
        "src_partition": e.partition,
        "src_offset": e.offset,
        "view": table,
        "window_start": window_start,
        "event_at": event_us,
    }


# -- market bars: OHLCV + VWAP ------------------------------------------------------------------
BAR_WINDOWS: tuple[tuple[str, int, int], ...] = (
    ("ohlcv_1m", MINUTE_US, MINUTE_US),
    ("ohlcv_1h", HOUR_US, HOUR_US),
    ("ohlcv_5m_hop_1m", 5 * MINUTE_US, MINUTE_US),
)


def fold_bars(events: Sequence[Event], ws: WindowState, ctx: FoldContext) -> dict[str, list[Row]]:
    """Trades -> OHLCV bars per instrument and currency (tumbling 1 m and 1 h, hopping 5 m every
    1 m). Currency is part of the key: trades in two currencies make two bars, never a blend."""
    lateness = ctx.windowing.allowed_lateness_us
    side = ctx.windowing.late_mode == "side"
    parts = {name: Partials() for name, _, _ in BAR_WINDOWS}
    late: list[Row] = []
    for e in events:
        v = e.value
        ts = to_micros(v["executed_at"])
        wm = ws.watermark(e.topic, e.partition, lateness)
        ws.observe(e.topic, e.partition, ts)
        price: Decimal = v["price"]
        qty: Decimal = v["quantity"]
        pos = e.pos
        for name, size, hop in BAR_WINDOWS:
            starts = [tumbling(ts, size)] if size == hop else hopping(ts, size, hop)
            for start in starts:
                if is_late(start + size, wm) and side:
                    late.append(_late_row(e, name, start, ts))
                    continue
                row = parts[name].get(
                    (e.tenant, v["instrument"], v["currency"], start),
                    e,
                    lambda e=e, v=v, start=start, size=size, ts=ts, pos=pos: {
                        "tenant": e.tenant,
                        "instrument": v["instrument"],
                        "window_start": start,
                        "window_end": start + size,
                        "currency": v["currency"],
                        "open": v["price"],
                        "high": v["price"],
                        "low": v["price"],
                        "close": v["price"],
                        "volume": ZERO,
                        "notional": ZERO,
                        "first_at": ts,
                        "first_pos": pos,
                        "last_at": ts,
                        "last_pos": pos,
                    },
                )
                if (ts, pos) < (row["first_at"], row["first_pos"]):
                    row["open"], row["first_at"], row["first_pos"] = price, ts, pos
                if (ts, pos) >= (row["last_at"], row["last_pos"]):
                    row["close"], row["last_at"], row["last_pos"] = price, ts, pos
                if price > row["high"]:
                    row["high"] = price
                if price < row["low"]:
                    row["low"] = price
                row["volume"] += qty
                row["notional"] += price * qty
    out = {name: list(p.rows.values()) for name, p in parts.items()}
    out["late_events"] = late
    return out


# -- payments: volumes per corridor and AML aggregates -------------------------------------------
def fold_payment_aggregates(
    events: Sequence[Event], ws: WindowState, ctx: FoldContext
) -> dict[str, list[Row]]:
    """PaymentInitiated -> daily volumes per corridor and daily AML aggregates per account.

    Corridor = currency and destination country. AML: payments with ``threshold * (1 - band) <=
    amount < threshold`` are "just under the threshold" (structuring).
    """
    lateness = ctx.windowing.allowed_lateness_us
    side = ctx.windowing.late_mode == "side"
    threshold = Decimal(str(ctx.params.get("aml_threshold", "10000")))
    floor = threshold * (1 - Decimal(str(ctx.params.get("aml_band", "0.1"))))
    vol, aml = Partials(), Partials()
    late: list[Row] = []
    for e in events:
        if e.event_type != "hub.payments.PaymentInitiated":
            continue
        v = e.value
        ts = to_micros(v["initiated_at"])
        wm = ws.watermark(e.topic, e.partition, lateness)
        ws.observe(e.topic, e.partition, ts)
        day = tumbling(ts, DAY_US)
        if is_late(day + DAY_US, wm) and side:
            late.append(_late_row(e, "payment_volumes_1d", day, ts))
            late.append(_late_row(e, "aml_daily", day, ts))
            continue
        amount: Decimal = v["amount"]
        cur, country = v["currency"], v["counterparty_country"]
        r = vol.get(
            (e.tenant, day, cur, country),
            e,
            lambda e=e, day=day, cur=cur, country=country: {
                "tenant": e.tenant,
                "day": day,
                "currency": cur,
                "country": country,
                "amount": ZERO,
            },
        )
        r["amount"] += amount
        a = aml.get(
            (e.tenant, v["account_id"], day, cur),
            e,
            lambda e=e, v=v, day=day, cur=cur: {
                "tenant": e.tenant,
                "account_id": v["account_id"],
                "day": day,
                "currency": cur,
                "amount": ZERO,
                "near_threshold": 0,
                "near_threshold_amount": ZERO,
            },
        )
        a["amount"] += amount
        if floor <= amount < threshold:
            a["near_threshold"] += 1
            a["near_threshold_amount"] += amount
    return {
        "payment_volumes_1d": list(vol.rows.values()),
        "aml_daily": list(aml.rows.values()),
        "late_events": late,
    }


# -- positions and realised P&L (entity, average-cost method) ------------------------------------
def position_key(e: Event) -> tuple[Any, ...]:
    """A position per account, instrument AND currency: trades in another currency open another
    position (quantities and costs in two currencies never net)."""
    return (e.tenant, e.value["account_id"], e.value["instrument"], e.value["currency"])


def fold_position(state: Row | None, e: Event, ctx: FoldContext) -> Row:
    """Average cost: buys into a long (sells into a short) move the average; closing trades
    realise (price − average) × closed quantity (reversed for shorts); fees are always a cost."""
    v = e.value
    row: Row = (
        dict(state)
        if state
        else {
            "tenant": e.tenant,
            "account_id": v["account_id"],
            "instrument": v["instrument"],
            "currency": v["currency"],
            "quantity": ZERO,
            "avg_cost": ZERO,
            "realised_pnl": ZERO,
            "fees": ZERO,
            "trades": 0,
            "last_trade_at": 0,
        }
    )
    price: Decimal = v["price"]
    signed = v["quantity"] if v["side"] == "BUY" else -v["quantity"]
    qty: Decimal = row["quantity"]
    avg: Decimal = row["avg_cost"]
    if v["side"] in ("BUY", "SELL") and signed:
        if qty == 0 or (qty > 0) == (signed > 0):  # opening or adding
            total = qty + signed
            avg = ((avg * qty + price * signed) / total).quantize(Q8, ROUND_HALF_EVEN)
            qty = total
        else:  # closing (and maybe reversing)
            closed = min(abs(signed), abs(qty))
            direction = 1 if qty > 0 else -1
            row["realised_pnl"] += (price - avg) * closed * direction
            qty += signed
            if qty == 0:
                avg = ZERO
            elif (qty > 0) != (direction > 0):  # reversed: the rest opens at this price
                avg = price
    fees: Decimal = v.get("fees", ZERO) or ZERO
    row["realised_pnl"] = (row["realised_pnl"] - fees).quantize(Q12)
    row["fees"] += fees
    row["quantity"], row["avg_cost"] = qty, avg
    row["trades"] += 1
    row["last_trade_at"] = max(row["last_trade_at"], to_micros(v["executed_at"]))
    return row


# -- latest quote per instrument and currency (entity) -------------------------------------------
Q_HALF = Decimal("1e-8")


def quote_key(e: Event) -> tuple[Any, ...]:
    return (e.tenant, e.value["instrument"], e.value["currency"])


def fold_quote(state: Row | None, e: Event, ctx: FoldContext) -> Row:
    """The latest quote by quote time (``quoted_at``, then log position for equal times): an
    older quote arriving late counts but does not replace a newer one. ``mid`` = (bid + ask) / 2
    rounded half-even to 8 places."""
    v = e.value
    at = to_micros(v["quoted_at"])
    pos = e.pos
    if state is not None and (at, pos) < (state["quoted_at"], state["quote_pos"]):
        row = dict(state)
    else:
        row = {
            "tenant": e.tenant,
            "instrument": v["instrument"],
            "currency": v["currency"],
            "venue": v["venue"],
            "bid": v["bid"],
            "ask": v["ask"],
            "mid": ((v["bid"] + v["ask"]) / 2).quantize(Q_HALF, ROUND_HALF_EVEN),
            "bid_size": v["bid_size"],
            "ask_size": v["ask_size"],
            "quoted_at": at,
            "quote_pos": pos,
            "quotes": state["quotes"] if state else 0,
        }
    row["quotes"] += 1
    return row


# -- transactional: accounts, payment status and history, limits ---------------------------------
ACCOUNT_FIELDS = ("customer_name", "email", "country", "kyc_level", "risk_rating", "base_currency")


def account_key(e: Event) -> tuple[Any, ...]:
    return (e.tenant, e.value["account_id"])


def fold_account(state: Row | None, e: Event, ctx: FoldContext) -> Row:
    v = e.value
    row: Row = (
        dict(state)
        if state
        else {
            "tenant": e.tenant,
            "account_id": v["account_id"],
            **dict.fromkeys(ACCOUNT_FIELDS),
            "opened_at": None,
            "updated_at": None,
            "version": 0,
        }
    )
    if e.event_type == "hub.accounts.AccountOpened":
        for f in ACCOUNT_FIELDS:
            row[f] = v[f]
        row["opened_at"] = to_micros(v["opened_at"])
        row["updated_at"] = row["opened_at"]
    else:  # AccountUpdated: null means unchanged
        for f in ("kyc_level", "risk_rating"):
            if v.get(f) is not None:
                row[f] = v[f]
        row["updated_at"] = to_micros(v["updated_at"])
    row["version"] += 1
    return row


def payment_key(e: Event) -> tuple[Any, ...]:
    return (e.tenant, e.value["payment_id"])


_STATUS = {
    "hub.payments.PaymentInitiated": "INITIATED",
    "hub.payments.PaymentSettled": "SETTLED",
    "hub.payments.PaymentFailed": "FAILED",
}


def fold_payment(state: Row | None, e: Event, ctx: FoldContext) -> Row:
    v = e.value
    row: Row = (
        dict(state)
        if state
        else {
            "tenant": e.tenant,
            "payment_id": v["payment_id"],
            "account_id": v["account_id"],
            "amount": None,
            "currency": None,
            "counterparty_name": None,
            "counterparty_country": None,
            "status": None,
            "reason_code": None,
            "initiated_at": None,
            "settled_at": None,
            "failed_at": None,
        }
    )
    status = _STATUS[e.event_type]
    if status == "INITIATED":
        for f in ("amount", "currency", "counterparty_name", "counterparty_country"):
            row[f] = v[f]
        row["initiated_at"] = to_micros(v["initiated_at"])
    elif status == "SETTLED":
        row["amount"], row["currency"] = v["amount"], v["currency"]
        row["settled_at"] = to_micros(v["settled_at"])
    else:
        row["reason_code"] = v["reason_code"]
        row["failed_at"] = to_micros(v["failed_at"])
    if row["status"] not in ("SETTLED", "FAILED"):  # terminal states stay
        row["status"] = status
    return row


_AT = {"INITIATED": "initiated_at", "SETTLED": "settled_at", "FAILED": "failed_at"}


def fold_payment_history(
    events: Sequence[Event], ws: WindowState, ctx: FoldContext
) -> dict[str, list[Row]]:
    rows = []
    for e in events:
        if e.event_type not in _STATUS:
            continue
        status = _STATUS[e.event_type]
        at = e.value.get(_AT[status])
        rows.append(
            {
                "tenant": e.tenant,
                "src_topic": e.topic,
                "src_partition": e.partition,
                "src_offset": e.offset,
                "payment_id": e.value["payment_id"],
                "status": status,
                "at": None if at is None else to_micros(at),
            }
        )
    return {"payment_history": rows}


def limit_key(e: Event) -> tuple[Any, ...]:
    day = tumbling(to_micros(e.value["initiated_at"]), DAY_US)
    return (e.tenant, e.value["account_id"], day, e.value["currency"])


def fold_limit(state: Row | None, e: Event, ctx: FoldContext) -> Row:
    tenant, account, day, currency = limit_key(e)
    limit = Decimal(str(ctx.params.get("daily_limit", "50000")))
    row: Row = (
        dict(state)
        if state
        else {
            "tenant": tenant,
            "account_id": account,
            "day": day,
            "currency": currency,
            "used": ZERO,
            "payments": 0,
            "daily_limit": limit,
            "breached": 0,
        }
    )
    row["used"] += e.value["amount"]
    row["payments"] += 1
    row["breached"] = int(row["used"] > row["daily_limit"])
    return row


def merge_src(src: Sequence[Sequence[Any]] | None, e: Event) -> list[list[Any]]:
    """Extend per-partition source ranges ``[[topic, partition, first, last, count]]`` by one."""
    out = [list(s) for s in src or ()]
    for s in out:
        if s[0] == e.topic and s[1] == e.partition:
            s[2] = min(s[2], e.offset)
            s[3] = max(s[3], e.offset)
            s[4] += 1
            return out
    out.append([e.topic, e.partition, e.offset, e.offset, 1])
    out.sort()
    return out


def params_of(mapping: Mapping[str, Any] | None) -> dict[str, Any]:
    return dict(mapping or {})


# -- model predictions (issue 14): hub.predictions as a view analysts can query -------------------
def prediction_key(e: Event) -> tuple[Any, ...]:
    return (e.tenant, e.value["model"], e.value["version"], e.value["subject"])


def fold_prediction(state: Row | None, e: Event, ctx: FoldContext) -> Row:
    """One row per model version and subject; a subject scored again (a request after the
    consumer) keeps its latest score and counts the scorings."""
    v = e.value
    return {
        "tenant": e.tenant,
        "model": v["model"],
        "version": v["version"],
        "subject": v["subject"],
        "variant": v["variant"],
        "entity": v["entity"],
        "source": v["source"],
        "feature_digest": v["feature_digest"],
        "score": Decimal(repr(float(v["score"]))).quantize(Q8, ROUND_HALF_EVEN),
        "decision": v["decision"],
        "latency_us": v["latency_us"],
        "scored_at": to_micros(v["scored_at"]),
        "scorings": (state["scorings"] if state else 0) + 1,
    }
