"""The embedded pattern detector before and after issue 17, in the same run.

``python -m benchmarks.pattern_detector [--events N] [--pass-records B] [--before-max M]``

Stored records (real Avro of ``domain/schemas``, wire format, CloudEvents headers) of payments
(a third near the AML threshold, 2,000 accounts), quotes and trades (50 instruments), event
times advancing ~100 ms per record with 2 % out of order (up to 30 s, a quarter of them up
to 120 s: past the 60 s lateness); read a partition batch at a time (``B`` records, one
detector read), matched after each pass (one batch of each of the 9 topic partitions), as
``hub serve``'s detector does on a busy log:

- **before**: the detector of session 6: ``pattern_events`` (fastavro per record, a headers dict,
  ``datetime.fromisoformat``), the usable events kept for ever, ``find_matches`` over all of them
  after every batch (``--before-max`` records at most: it is quadratic);
- **after**: ``PatternBatch`` (column-wise) + ``PatternState`` (incremental, pruned) + ``flush``.

Prints events/s of wall time and per CPU-second (``time.process_time``), the load average, the
peak retained events of each, and checks both raised the same matches (over the ``before``
prefix). Baseline and candidate run in the same process, interleaved.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import fastavro
import numpy as np

from core.ports.eventlog import StoredRecord
from projections.pattern_batch import PatternBatch, items_of
from projections.pattern_state import PatternState
from projections.patterns import (
    PAYMENT_INITIATED,
    Pattern,
    PatternEvent,
    PriceSpike,
    Structuring,
    find_matches,
    ms_of,
    normalise,
    pattern_events,
)

SCHEMAS = Path(__file__).resolve().parents[1] / "domain" / "schemas"
IDS = {"PaymentInitiated": 11, "QuotePublished": 12, "TradeExecuted": 13}
TYPES = {
    "PaymentInitiated": PAYMENT_INITIATED,
    "QuotePublished": "hub.market.QuotePublished",
    "TradeExecuted": "hub.trading.TradeExecuted",
}
T0 = datetime(2026, 3, 2, tzinfo=UTC)
PATTERNS: tuple[Pattern, ...] = (
    Structuring(within_ms=600_000, max_delay_ms=60_000),
    PriceSpike(within_ms=60_000, max_delay_ms=60_000),
)


def schemas() -> dict[int, tuple[Any, str]]:
    out = {}
    for name, sid in IDS.items():
        parsed: Any = fastavro.parse_schema(json.loads((SCHEMAS / f"{name}.avsc").read_text()))
        out[sid] = (parsed, parsed["name"])
    return out


def _wire(sid: int, schema: Any, datum: Mapping[str, Any]) -> bytes:
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, schema, datum)
    return b"\0" + sid.to_bytes(4, "big") + buf.getvalue()


def records(n: int, seed: int = 7, partitions: int = 3) -> dict[str, list[list[StoredRecord]]]:
    """``n`` records per topic family (payments; quotes + trades), per topic and partition."""
    rng = np.random.default_rng(seed)
    sch = schemas()
    at = np.cumsum(rng.integers(0, 200, n))  # ms
    late = rng.random(n) < 0.02  # out of order, 0.5 % of them past the 60 s lateness
    at = at - late * np.where(
        rng.random(n) < 0.25, rng.integers(0, 120_000, n), rng.integers(0, 30_000, n)
    )
    out: dict[str, list[list[StoredRecord]]] = {
        t: [[] for _ in range(partitions)] for t in ("payments", "quotes", "trades")
    }
    near = rng.random(n) < 0.33
    cents = np.where(near, rng.integers(900_000, 1_000_000, n), rng.integers(100, 900_000, n))
    accounts = rng.integers(0, 2_000, n)
    instruments = rng.integers(0, 50, n)
    is_quote = rng.random(n) < 0.4
    ticks = rng.integers(9_000, 11_200, n)
    for i in range(n):
        when = T0 + timedelta(milliseconds=int(at[i]))
        stamp = when.strftime("%Y-%m-%dT%H:%M:%S.%fZ").encode()
        part = i % partitions
        tenant = b"acme" if i % 7 else b"globex"
        # a payment
        sid = IDS["PaymentInitiated"]
        datum = {
            "payment_id": f"P{i}",
            "account_id": f"A{accounts[i]}",
            "amount": Decimal(int(cents[i])).scaleb(-2),
            "currency": "EUR",
            "counterparty_name": "x" * 24,
            "counterparty_iban": "DE00123",
            "counterparty_country": "DE",
            "reference": None,
            "initiated_at": when,
        }
        _add(out["payments"][part], "payments", part, sid, sch, datum, stamp, tenant, "Payment")
        # a quote or a trade
        inst = f"I{instruments[i]}"
        price = Decimal(int(ticks[i])).scaleb(-2)
        if is_quote[i]:
            sid = IDS["QuotePublished"]
            datum = {
                "instrument": inst,
                "venue": "XOFF",
                "bid": price,
                "ask": price,
                "bid_size": Decimal(10),
                "ask_size": Decimal(10),
                "currency": "EUR",
                "quoted_at": when,
            }
            _add(out["quotes"][part], "quotes", part, sid, sch, datum, stamp, tenant, "Quote")
        else:
            sid = IDS["TradeExecuted"]
            datum = {
                "trade_id": f"X{i}",
                "account_id": "T1",
                "instrument": inst,
                "venue": "XOFF",
                "side": "BUY",
                "quantity": Decimal(1),
                "price": price,
                "currency": "EUR",
                "fees": Decimal(0),
                "executed_at": when,
                "trader_id": None,
            }
            _add(out["trades"][part], "trades", part, sid, sch, datum, stamp, tenant, "Trade")
    return out


def _add(into, topic, part, sid, sch, datum, stamp, tenant, kind) -> None:  # type: ignore[no-untyped-def]
    name = {"Payment": "PaymentInitiated", "Quote": "QuotePublished", "Trade": "TradeExecuted"}
    headers = ((("ce_type", TYPES[name[kind]].encode()),) if len(into) % 5 else ()) + (
        ("ce_time", stamp),
        ("ce_tenant", tenant),
    )
    value = _wire(sid, sch[sid][0], datum)
    log_ms = ms_of(stamp.decode()) + 50  # appended just after the event (late ones: later)
    into.append(StoredRecord(topic, part, len(into), log_ms, None, value, headers))


def batches(recs: dict[str, list[list[StoredRecord]]], size: int) -> Iterator[list[StoredRecord]]:
    """Partition batches in the order a detector pass reads them, passes interleaved."""
    longest = max(len(p) for parts in recs.values() for p in parts)
    for lo in range(0, longest, size):
        for topic in sorted(recs):
            for part in recs[topic]:
                if part[lo : lo + size]:
                    yield part[lo : lo + size]


# -- before: the session-6 detector --------------------------------------------------------------
class Before:
    def __init__(self, schema_of: Callable[[int], tuple[Any, str]]) -> None:
        def decode(value: bytes) -> tuple[str, Mapping[str, Any]]:
            schema, name = schema_of(int.from_bytes(value[1:5], "big"))
            datum = fastavro.schemaless_reader(io.BytesIO(value[5:]), schema, None)
            return name, datum if isinstance(datum, dict) else {}

        self.decode = decode
        self.events: dict[str, list[PatternEvent]] = {}
        self.rows: set[Any] = set()
        self.peak = 0

    def _usable(self, e: PatternEvent) -> bool:
        for p in PATTERNS:
            if isinstance(p, Structuring) and e.topic == p.topic:
                if e.event_type == PAYMENT_INITIATED and p.near(Decimal(e.value["amount"])):
                    return True
            elif isinstance(p, PriceSpike) and e.topic in (p.trades_topic, p.quotes_topic):
                return True
        return False

    def batch(self, records: Sequence[StoredRecord]) -> None:
        kept = [e for e in pattern_events(records, self.decode) if self._usable(e)]
        self.events.setdefault(records[0].topic, []).extend(kept)

    def match(self, kept: Callable[[Pattern, PatternEvent], bool]) -> None:
        self.peak = max(self.peak, sum(len(v) for v in self.events.values()))
        for p in PATTERNS:
            events = [e for t in _topics(p) for e in self.events.get(t, []) if kept(p, e)]
            self.rows |= {(p.name, r) for r in normalise(find_matches(p, events))}


def _topics(p: Pattern) -> tuple[str, ...]:
    return (p.topic,) if isinstance(p, Structuring) else (p.quotes_topic, p.trades_topic)


# -- after ---------------------------------------------------------------------------------------
class After:
    def __init__(self, schema_of: Callable[[int], tuple[Any, str]], recs: Any) -> None:
        self.schema_of = schema_of
        self.states = [PatternState(p) for p in PATTERNS]
        for s in self.states:
            s.expect((t, i) for t in s.topics for i in range(len(recs[t])))
        self.rows: set[Any] = set()
        self.peak = 0
        self.dropped: set[tuple[str, str, int, int]] = set()  # (pattern, topic, partition, offset)

    def batch(self, records: Sequence[StoredRecord], track: bool = False) -> None:
        b = PatternBatch.of(records, self.schema_of)
        for s in self.states:
            if b.topic not in s.topics:
                continue
            ok = s.on_time(b.topic, b.partition, b.at_ms, b.log_ms)
            if track:
                self.dropped |= {
                    (s.pattern.name, b.topic, b.partition, int(o)) for o in b.offsets[~ok]
                }
            self.rows |= {
                (s.pattern.name, r) for r in normalise(s.offer(items_of(s.pattern, b, ok)))
            }

    def match(self) -> None:
        for s in self.states:
            self.rows |= {(s.pattern.name, r) for r in normalise(s.flush())}
        self.peak = max(self.peak, sum(s.retained() for s in self.states))


def run(n: int, size: int, before_max: int) -> dict[str, Any]:
    started = time.perf_counter()
    recs = records(n)
    sch = schemas()
    schema_of = sch.__getitem__
    made = time.perf_counter() - started
    total = sum(len(p) for parts in recs.values() for p in parts)
    print(f"{total:,} records made in {made:.1f} s; load average {os.getloadavg()}")

    # the candidate over everything, tracking its late drops (to check the baseline's prefix)
    after = After(schema_of, recs)
    w0, c0 = time.perf_counter(), time.process_time()
    for k, b in enumerate(batches(recs, size)):
        after.batch(b, track=True)
        if k % 9 == 8:  # a pass: 9 partition batches (3 topics x 3 partitions)
            after.match()
    after.match()
    after_wall, after_cpu = time.perf_counter() - w0, time.process_time() - c0

    # what the baseline would hold after all records: every usable event (not timed)
    usable = 0
    for b in batches(recs, size):
        got = PatternBatch.of(b, schema_of)
        every = np.ones(len(got.at_ms), bool)
        usable += sum(len(items_of(p, got, every)) for p in PATTERNS if got.topic in _topics(p))

    # the baseline over the first ``before_max`` records, same passes
    prefix = [b for b in batches(recs, size)]
    limit, seen = [], 0
    for b in prefix:
        if seen >= before_max:
            break
        limit.append(b)
        seen += len(b)
    before = After(schema_of, recs)  # the candidate again over the same prefix, for the check
    old = Before(schema_of)
    dropped = before.dropped

    def kept(p: Pattern, e: PatternEvent) -> bool:
        return (p.name, e.topic, e.partition, e.offset) not in dropped

    w1, c1 = time.perf_counter(), time.process_time()
    for k, b in enumerate(limit):
        old.batch(b)
        if k % 9 == 8:
            old.match(lambda p, e: True)
    old.match(lambda p, e: True)
    old_wall, old_cpu = time.perf_counter() - w1, time.process_time() - c1

    w2, c2 = time.perf_counter(), time.process_time()
    for k, b in enumerate(limit):
        before.batch(b, track=True)
        if k % 9 == 8:
            before.match()
    before.match()
    new_wall, new_cpu = time.perf_counter() - w2, time.process_time() - c2

    # the same matches over the prefix: the baseline's events less the candidate's late drops
    check = Before(schema_of)
    for k, b in enumerate(limit):
        check.batch(b)
        if k % 9 == 8:
            check.match(kept)
    check.match(kept)
    same = check.rows == before.rows
    out = {
        "records": total,
        "load": os.getloadavg(),
        "after_full": {"wall_s": after_wall, "cpu_s": after_cpu, "peak_retained": after.peak},
        "prefix_records": seen,
        "before_prefix": {"wall_s": old_wall, "cpu_s": old_cpu, "peak_retained": old.peak},
        "after_prefix": {"wall_s": new_wall, "cpu_s": new_cpu, "peak_retained": before.peak},
        "before_full_would_hold": usable,
        "late_dropped": len(after.dropped),
        "matches_full": len(after.rows),
        "final_matches_equal_on_prefix": same,
    }
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument(
        "--events", type=int, default=500_000, help="payments (and as many quotes/trades)"
    )
    ap.add_argument("--pass-records", type=int, default=5000)
    ap.add_argument("--before-max", type=int, default=60_000)
    a = ap.parse_args()
    out = run(a.events, a.pass_records, a.before_max)
    print(json.dumps(out, indent=1, default=str))
    full, bp, ap_ = out["after_full"], out["before_prefix"], out["after_prefix"]
    n, m = out["records"], out["prefix_records"]
    print(
        f"after, all {n:,} records: {n / full['wall_s']:,.0f} rec/s wall, "
        f"{n / full['cpu_s']:,.0f} rec/CPU-s, peak retained {full['peak_retained']:,}"
    )
    print(
        f"prefix {m:,}: before {m / bp['cpu_s']:,.0f} rec/CPU-s (peak {bp['peak_retained']:,}); "
        f"after {m / ap_['cpu_s']:,.0f} rec/CPU-s (peak {ap_['peak_retained']:,}); "
        f"ratio {bp['cpu_s'] / ap_['cpu_s']:.1f}x per CPU-s"
    )


if __name__ == "__main__":
    main()
