"""Event patterns (complex event processing) as data, and the embedded engine that finds them.

A pattern definition is the single source of truth for both engines: ``projections.flink.cep``
compiles it to a Flink SQL ``MATCH_RECOGNIZE`` job, and ``find_matches`` here evaluates it over
the same events in Python. Both MUST produce the same alert rows (``tests/differential``).

Shared semantics (what Flink's ``MATCH_RECOGNIZE`` does, written down so Python does the same):
- **Event time** is the envelope's occurred-at (``ce_time`` header, CloudEvents ``time``),
  truncated to milliseconds (Flink's time attributes are ``TIMESTAMP(3)``).
- **Order** per partition key: event time, then (for several kinds) the kind's rank, then the
  source partition and offset: ties are broken the same way in both engines.
- **Window**: a match's last event is *less than* ``within_ms`` after its first (Flink prunes a
  partial match when ``t - start >= within``, so a gap of exactly ``within_ms`` does not match).
- **After a match** the search resumes after its last event (``AFTER MATCH SKIP PAST LAST ROW``):
  matches never share events.
- **Out of order**: both engines sort events by event time before matching. Both drop events
  that arrive at or behind their watermark (the smallest, over the source partitions, of the
  newest event time minus ``max_delay_ms``): Flink's is emitted periodically, so *which* of
  those it drops depends on timing; the embedded engine's rule is in
  ``projections.pattern_state``. An event less than ``max_delay_ms`` behind every earlier
  record of its partition is dropped by neither: such events give identical matches.
  ``find_matches`` here is the reference over the events kept; the detector runs it
  incrementally with bounded state (``projections.pattern_state.PatternState``).

Patterns:
- ``Structuring`` (AML): ``count`` payments of one account, each in the near-threshold band
  ``[threshold * (1 - band), threshold)``, within ``within_ms``.
- ``PriceSpike`` (market abuse / fat finger): a trade whose price is more than ``pct`` percent
  above the ask of the latest quote of its instrument, less than ``within_ms`` after that quote
  (a later quote replaces the earlier one; after an alert a new quote is needed).

``read_events`` reads a pattern's topics from the event log and decodes them; the rest is pure.
"""

from __future__ import annotations

import decimal
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from functools import reduce
from typing import Any

from core.errors import ConfigError
from core.ports.eventlog import EventLog, StoredRecord
from domain.envelope import duplicated_envelope_header

PAYMENT_INITIATED = "hub.payments.PaymentInitiated"
TRADE_EXECUTED = "hub.trading.TradeExecuted"
QUOTE_PUBLISHED = "hub.market.QuotePublished"
_EXACT = decimal.Context(prec=80)  # products of 18-digit decimals stay exact
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class PatternEvent:
    """One event as the patterns read it: envelope, position, event time (ms) and fields."""

    topic: str
    partition: int
    offset: int
    event_type: str
    tenant: str
    at_ms: int
    value: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Structuring:
    name: str = "aml_structuring"
    topic: str = "payments"
    threshold: Decimal = Decimal("10000")
    band: Decimal = Decimal("0.1")
    count: int = 3
    within_ms: int = 86_400_000
    max_delay_ms: int = 3_600_000

    def __post_init__(self) -> None:
        if self.count < 2:
            raise ConfigError(
                f"Pattern {self.name!r} has count={self.count}; structuring needs at least 2 "
                "payments (one payment under the threshold is not a pattern)."
            )
        _check_window(self.name, self.within_ms, self.max_delay_ms)
        if not Decimal(0) < self.band < Decimal(1):
            raise ConfigError(
                f"Pattern {self.name!r} has band={self.band}; give a fraction between 0 and 1 "
                "(0.1 = the 10 % just under the threshold)."
            )

    @property
    def floor(self) -> Decimal:
        return _EXACT.multiply(self.threshold, 1 - self.band)

    def near(self, amount: Decimal) -> bool:
        return self.floor <= amount < self.threshold


@dataclass(frozen=True, slots=True)
class PriceSpike:
    name: str = "price_spike"
    trades_topic: str = "trades"
    quotes_topic: str = "quotes"
    pct: Decimal = Decimal("5")
    within_ms: int = 60_000
    max_delay_ms: int = 60_000

    def __post_init__(self) -> None:
        _check_window(self.name, self.within_ms, self.max_delay_ms)
        if self.pct <= 0:
            raise ConfigError(
                f"Pattern {self.name!r} has pct={self.pct}; give a positive percentage (5 = a "
                "trade more than 5 % above the quote's ask)."
            )

    def spike(self, price: Decimal, ask: Decimal) -> bool:
        """``price > ask * (1 + pct / 100)``, compared exactly as ``price*100 > ask*(100+pct)``."""
        return _EXACT.multiply(price, 100) > _EXACT.multiply(ask, 100 + self.pct)


Pattern = Structuring | PriceSpike


def _check_window(name: str, within_ms: int, max_delay_ms: int) -> None:
    for what, value in (("within_ms", within_ms), ("max_delay_ms", max_delay_ms)):
        if not 0 < value < 100 * 86_400_000:
            raise ConfigError(
                f"Pattern {name!r} has {what}={value}; give a positive number of milliseconds "
                "under 100 days."
            )


def ms_of(ce_time: str) -> int:
    """Milliseconds since the epoch of an RFC 3339 UTC ``ce_time``, truncated (not rounded)."""
    when = datetime.fromisoformat(ce_time.replace("Z", "+00:00"))
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return (when - _EPOCH) // timedelta(milliseconds=1)  # floors before 1970 too, as Flink


def pattern_events(
    records: Iterable[StoredRecord], decode: Callable[[bytes], tuple[str, Mapping[str, Any]]]
) -> list[PatternEvent]:
    """Stored records as ``PatternEvent``; ``decode(value)`` gives (record name, datum).
    Records without a ``ce_time`` header are skipped (they have no event time), and so are
    records carrying an envelope header twice (no copy is picked; the views quarantine them) and
    records without a ``ce_tenant`` (not the hub's: ``pattern_batch.claimed``)."""
    out = []
    for rec in records:
        headers = {k: v.decode("utf-8", "replace") for k, v in rec.headers}
        if len(headers) != len(rec.headers) and duplicated_envelope_header(rec.headers):
            continue
        if "ce_time" not in headers or "ce_tenant" not in headers or rec.value is None:
            continue
        name, datum = decode(rec.value)
        out.append(
            PatternEvent(
                rec.topic,
                rec.partition,
                rec.offset,
                headers.get("ce_type", name),
                headers["ce_tenant"],
                ms_of(headers["ce_time"]),
                datum,
            )
        )
    return out


def topics_of(pattern: Pattern) -> tuple[str, ...]:
    if isinstance(pattern, Structuring):
        return (pattern.topic,)
    return (pattern.quotes_topic, pattern.trades_topic)


def read_events(
    log: EventLog,
    pattern: Pattern,
    decode: Callable[[bytes], tuple[str, Mapping[str, Any]]],
    batch: int = 5000,
) -> list[PatternEvent]:
    """Every committed record of the pattern's topics up to the current end offsets."""
    out: list[PatternEvent] = []
    for topic in topics_of(pattern):
        starts = log.beginning_offsets(topic)
        for partition, end in sorted(log.end_offsets(topic).items()):
            offset = starts.get(partition, 0)
            while offset < end:
                records = log.read(topic, partition, offset, batch)
                if not records:
                    break
                out += pattern_events(records, decode)
                offset = records[-1].offset + 1
    return out


# -- the embedded engine -------------------------------------------------------------------------
def find_matches(pattern: Pattern, events: Sequence[PatternEvent]) -> list[dict[str, Any]]:
    """The alert rows of ``pattern`` over ``events``, sorted by ``alert_key(pattern)``."""
    rows = (
        _structuring(pattern, events)
        if isinstance(pattern, Structuring)
        else _price_spike(pattern, events)
    )
    key = alert_key(pattern)
    return sorted(rows, key=lambda r: tuple(r[k] for k in key))


def alert_key(pattern: Pattern) -> tuple[str, ...]:
    """The columns that identify one alert row (the sink's primary key)."""
    if isinstance(pattern, Structuring):
        return ("tenant", "account_id", "first_partition", "first_offset")
    return ("instrument", "trade_partition", "trade_offset")


def structuring_row(key: tuple[str, str], run: Sequence[tuple[Any, ...]]) -> dict[str, Any]:
    """One structuring match: ``run`` the payments (at_ms, partition, offset, amount) in order."""
    return {
        "tenant": key[0],
        "account_id": key[1],
        "first_partition": run[0][1],
        "first_offset": run[0][2],
        "last_offset": run[-1][2],
        "first_at": run[0][0],
        "last_at": run[-1][0],
        "payments": len(run),
        "amount": reduce(_EXACT.add, (r[3] for r in run), Decimal(0)),
    }


def _structuring(p: Structuring, events: Sequence[PatternEvent]) -> list[dict[str, Any]]:
    streams: dict[tuple[str, str], list[tuple[int, int, int, Decimal]]] = defaultdict(list)
    for e in events:
        if e.topic != p.topic or e.event_type != PAYMENT_INITIATED:
            continue
        amount = Decimal(e.value["amount"])
        if p.near(amount):
            streams[(e.tenant, e.value["account_id"])].append(
                (e.at_ms, e.partition, e.offset, amount)
            )
    rows = []
    for (tenant, account), stream in streams.items():
        stream.sort()
        next_start = 0
        for i in range(p.count - 1, len(stream)):
            start = i - p.count + 1
            if start < next_start or stream[i][0] - stream[start][0] >= p.within_ms:
                continue
            rows.append(structuring_row((tenant, account), stream[start : i + 1]))
            next_start = i + 1
    return rows


def _price_spike(p: PriceSpike, events: Sequence[PatternEvent]) -> list[dict[str, Any]]:
    # (at, rank, partition, offset, event): quotes rank before trades at the same millisecond
    streams: dict[str, list[tuple[int, int, int, int, PatternEvent]]] = defaultdict(list)
    for e in events:
        if e.topic == p.quotes_topic and e.event_type == QUOTE_PUBLISHED:
            rank = 0
        elif e.topic == p.trades_topic and e.event_type == TRADE_EXECUTED:
            rank = 1
        else:
            continue
        streams[e.value["instrument"]].append((e.at_ms, rank, e.partition, e.offset, e))
    rows = []
    for instrument, stream in streams.items():
        stream.sort(key=lambda s: s[:4])
        quote: PatternEvent | None = None
        for at, rank, _, _, e in stream:
            if rank == 0:
                quote = e  # a new quote ends the partial match of the previous one
                continue
            if quote is None:
                continue
            if at - quote.at_ms >= p.within_ms:  # the partial match timed out
                quote = None
                continue
            ask, price = Decimal(quote.value["ask"]), Decimal(e.value["price"])
            if p.spike(price, ask):
                rows.append(
                    {
                        "instrument": instrument,
                        "trade_partition": e.partition,
                        "trade_offset": e.offset,
                        "tenant": e.tenant,
                        "trade_id": e.value["trade_id"],
                        "quote_at": quote.at_ms,
                        "trade_at": e.at_ms,
                        "ask": ask,
                        "price": price,
                    }
                )
                quote = None  # skip past the match: the next alert needs a new quote
    return rows


def normalise(rows: Iterable[Mapping[str, Any]]) -> list[tuple[tuple[str, str], ...]]:
    """Alert rows in a form both engines' outputs compare equal in (decimals normalised)."""
    out = []
    for r in rows:
        items = []
        for k, v in sorted(r.items()):
            if isinstance(v, Decimal):
                v = format(v.normalize(), "f")
            items.append((k, str(v)))
        out.append(tuple(items))
    return sorted(out)
