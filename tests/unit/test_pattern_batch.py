"""Batch decoding for the pattern engine (``projections.pattern_batch``): the same items as the
record-by-record reference (``pattern_events`` + the detector's old filter), column-wise and on
the fastavro fallback; event times as ``ms_of`` gives them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import projections.pattern_batch as pb
from benchmarks.pattern_detector import PATTERNS, Before, records, schemas
from projections.columnar import Unsupported
from projections.pattern_state import spike_quote, spike_trade, structuring_item
from projections.patterns import QUOTE_PUBLISHED, PatternEvent, Structuring, ms_of, pattern_events


def _reference_items(p: Any, events: list[PatternEvent]) -> list[tuple[Any, Any]]:
    out = []
    for e in events:
        v = e.value
        if isinstance(p, Structuring):
            payment = e.topic == p.topic and e.event_type == "hub.payments.PaymentInitiated"
            if payment and p.near(Decimal(v["amount"])):
                item = structuring_item(e.at_ms, e.partition, e.offset, v["amount"])
                out.append(((e.tenant, v["account_id"]), item))
        elif e.event_type == QUOTE_PUBLISHED and e.topic == p.quotes_topic:
            out.append((v["instrument"], spike_quote(e.at_ms, e.partition, e.offset, v["ask"])))
        elif e.event_type == "hub.trading.TradeExecuted" and e.topic == p.trades_topic:
            trade = spike_trade(e.at_ms, e.partition, e.offset, e.tenant, v["trade_id"], v["price"])
            out.append((v["instrument"], trade))
    return out


def _compare() -> int:
    sch = schemas()
    old = Before(sch.__getitem__)
    compared = 0
    for topic, parts in records(1500, seed=3).items():
        for part in parts:
            for lo in range(0, len(part), 700):
                recs = part[lo : lo + 700]
                b = pb.PatternBatch.of(recs, sch.__getitem__)
                events = pattern_events(recs, old.decode)
                assert b.at_ms.tolist() == [e.at_ms for e in events]
                ok = np.ones(len(b.at_ms), bool)
                for p in PATTERNS:
                    got = pb.items_of(p, b, ok)
                    want = _reference_items(p, events)
                    assert got == want, (topic, p.name)
                    for (_, g), (_, w) in zip(got, want, strict=True):
                        assert [str(x) for x in g] == [str(x) for x in w]  # same decimal digits
                    compared += len(got)
    return compared


def test_column_wise_items_equal_the_record_by_record_reference() -> None:
    assert _compare() > 1000


def test_the_fastavro_fallback_gives_the_same_items(monkeypatch: pytest.MonkeyPatch) -> None:
    def decline(*_: Any, **__: Any) -> Any:
        raise Unsupported("forced")

    monkeypatch.setattr(pb, "decode_values", decline)
    assert _compare() > 1000


_T0 = datetime(1970, 1, 1, tzinfo=UTC)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(-(10**12), 10**14),  # microseconds around the epoch .. 5138
            st.sampled_from(["%Y-%m-%dT%H:%M:%S.%fZ", "iso", "%Y-%m-%dT%H:%M:%SZ"]),
        ),
        max_size=20,
    )
)
def test_event_times_equal_ms_of(stamps: list[tuple[int, str]]) -> None:
    texts = []
    for us, form in stamps:
        when = _T0 + timedelta(microseconds=us)
        texts.append(when.isoformat() if form == "iso" else when.strftime(form))
    got = pb.event_times([t.encode() for t in texts]).tolist()
    assert got == [ms_of(t) for t in texts]


def test_records_without_a_tenant_claim_are_neither_times_nor_items() -> None:
    """What the Kafka reader hands over for a forged or plain producer's record (its
    ``ce_tenant`` dropped): both paths skip it, its event time included (it must not move the
    watermark: tests/adversarial/test_s18_unverified_records_move_pattern_time.py)."""
    from core.ports.eventlog import StoredRecord

    sch = schemas()
    old = Before(sch.__getitem__)
    part = records(300, seed=5)["payments"][0]
    mixed = [
        StoredRecord(
            r.topic,
            r.partition,
            r.offset,
            r.timestamp_ms,
            r.key,
            r.value,
            tuple(h for h in r.headers if h[0] != "ce_tenant") if i % 3 == 0 else r.headers,
        )
        for i, r in enumerate(part)
    ]
    b = pb.PatternBatch.of(mixed, sch.__getitem__)
    kept = [r for i, r in enumerate(part) if i % 3]
    assert b.offsets.tolist() == [r.offset for r in kept]
    assert b.at_ms.tolist() == [e.at_ms for e in pattern_events(kept, old.decode)]
    assert [e.offset for e in pattern_events(mixed, old.decode)] == b.offsets.tolist()
    ok = np.ones(len(b.at_ms), bool)
    assert pb.items_of(PATTERNS[0], b, ok) == _reference_items(
        PATTERNS[0], pattern_events(mixed, old.decode)
    )
    assert pb.claimed({"ce_tenant": b""}) and not pb.claimed({"ce_time": b"x"})
