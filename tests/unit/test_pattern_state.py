"""The pruned, incremental pattern engine (``projections.pattern_state``) against the unpruned
reference (``find_matches`` over every event kept so far), on random streams with late events,
ties and times on the window's edges; its state stays bounded over a long stream."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from projections.pattern_state import (
    NEVER,
    PatternState,
    spike_quote,
    spike_trade,
    structuring_item,
)
from projections.patterns import (
    PAYMENT_INITIATED,
    QUOTE_PUBLISHED,
    TRADE_EXECUTED,
    Pattern,
    PatternEvent,
    PriceSpike,
    Structuring,
    find_matches,
    normalise,
    topics_of,
)

W = 100  # the window of the random patterns (ms): times are small multiples and edges of it

# (topic, partition, at, kind, key, number): kind 0 noise (moves time only), 1 near payment or
# quote, 2 far payment or trade
Rec = tuple[str, int, int, int, str, int]


def reference_kept(p: Pattern, steps: list[list[Rec]]) -> list[list[PatternEvent]]:
    """The events kept after each step, by the rule of ``pattern_state``'s contract 1-2,
    written record by record (the partitions holding records are named at each step's start,
    a new one entering at the smallest latest time of the known ones)."""
    hw: dict[tuple[str, int], int] = {}
    offsets: dict[tuple[str, int], int] = {}
    kept: list[PatternEvent] = []
    out = []
    for step in steps:
        floor = min(hw.values()) if hw else NEVER
        for topic, part, *_ in step:
            hw.setdefault((topic, part), floor)
        for topic, part, at, kind, key, n in sorted(step, key=lambda r: (r[0], r[1])):
            tp = (topic, part)
            offset = offsets[tp] = offsets.get(tp, -1) + 1
            low = min(hw.values())
            late = low > NEVER and at <= low - p.max_delay_ms
            hw[tp] = max(hw[tp], at)
            if not late and kind:
                kept.append(_event(p, topic, part, offset, at, kind, key, n))
        out.append(list(kept))
    return out


def _event(p: Pattern, topic: str, part: int, off: int, at: int, kind: int, key: str, n: int):
    if isinstance(p, Structuring):
        amount = Decimal("9500.00") if kind == 1 else Decimal("120.00")
        value = {"account_id": key, "amount": amount}
        tenant = "t2" if n % 5 == 0 else "t1"
        return PatternEvent(topic, part, off, PAYMENT_INITIATED, tenant, at, value)
    if topic == p.quotes_topic:
        v = {"instrument": key, "ask": Decimal(100)}
        return PatternEvent(topic, part, off, QUOTE_PUBLISHED, "t1", at, v)
    price = Decimal(100 + 3 * (n % 4))  # 100, 103, 106, 109: over 5 % from 106
    v = {"instrument": key, "price": price, "trade_id": f"X{topic}{part}-{off}"}
    return PatternEvent(topic, part, off, TRADE_EXECUTED, f"t{n % 2}", at, v)


def reference_kept_idle(
    p: Pattern, steps: list[list[Rec]], nows: list[int], timeout: int
) -> list[list[PatternEvent]]:
    """``reference_kept`` with contract 6, record by record: each step starts at processing
    time ``nows[k]``; a known partition with no record in a step is idle once its last step with
    records (or its first) lies ``timeout`` back; W is the smallest latest time of the others
    less the delay, never moving back, and stays when every partition is idle."""
    hw: dict[tuple[str, int], int] = {}
    active: dict[tuple[str, int], int] = {}
    offsets: dict[tuple[str, int], int] = {}
    mark = NEVER
    kept: list[PatternEvent] = []
    out = []

    def advance(idle: set[tuple[str, int]]) -> int:
        counted = [v for k, v in hw.items() if k not in idle]
        low = min(counted) if counted else NEVER
        return mark if low <= NEVER else max(mark, low - p.max_delay_ms)

    for step, now in zip(steps, nows, strict=True):
        parts = {(r[0], r[1]) for r in step}
        for tp in hw:
            if tp in parts or tp not in active:
                active[tp] = now
        idle = {tp for tp in hw if active[tp] <= now - timeout}
        mark = advance(idle)
        for tp in parts - hw.keys():
            hw[tp] = NEVER if mark <= NEVER else mark + p.max_delay_ms
            active[tp] = now
        for topic, part, at, kind, key, n in sorted(step, key=lambda r: (r[0], r[1])):
            tp = (topic, part)
            idle.discard(tp)
            offset = offsets[tp] = offsets.get(tp, -1) + 1
            mark = advance(idle)
            late = at <= mark
            hw[tp] = max(hw[tp], at)
            mark = advance(idle)
            if not late and kind:
                kept.append(_event(p, topic, part, offset, at, kind, key, n))
        out.append(list(kept))
    return out


def engine_rows(
    p: Pattern, steps: list[list[Rec]], nows: list[int] | None = None, timeout: int = 10_000
) -> tuple[list[list[Any]], PatternState]:
    """The union of the rows the engine returned after each step, fed as the detector does
    (with ``nows``: each step's processing time, contract 6)."""
    state = PatternState(p, idle_timeout_ms=timeout)
    offsets: dict[tuple[str, int], int] = {}
    got: list[Any] = []
    out = []
    for k, step in enumerate(steps):
        parts = {(r[0], r[1]) for r in step}
        got += state.expect(parts, parts, None if nows is None else nows[k])
        for tp in sorted({(r[0], r[1]) for r in step}):
            recs = [r for r in step if (r[0], r[1]) == tp]
            at = np.array([r[2] for r in recs], np.int64)
            ok = state.on_time(tp[0], tp[1], at)
            items = []
            for r, keep in zip(recs, ok.tolist(), strict=True):
                off = offsets[tp] = offsets.get(tp, -1) + 1
                if keep and (r[3] == 1 or (r[3] and isinstance(p, PriceSpike))):
                    e = _event(p, tp[0], tp[1], off, r[2], r[3], r[4], r[5])
                    items.append(_item(p, e))
            got += state.offer(items)
        got += state.flush()
        out.append(list(got))
    return out, state


def _item(p: Pattern, e: PatternEvent) -> tuple[Any, Any]:
    v = e.value
    if isinstance(p, Structuring):
        return (e.tenant, v["account_id"]), structuring_item(
            e.at_ms, e.partition, e.offset, v["amount"]
        )
    if e.event_type == QUOTE_PUBLISHED:
        return v["instrument"], spike_quote(e.at_ms, e.partition, e.offset, v["ask"])
    item = spike_trade(e.at_ms, e.partition, e.offset, e.tenant, v["trade_id"], v["price"])
    return v["instrument"], item


def _stream(topics: tuple[str, ...]) -> Any:
    # times on a grid of W/4 and its neighbours: exact window gaps, one ms under/over, ties
    at = st.builds(
        lambda k, d: max(0, k * (W // 4) + d), st.integers(0, 40), st.sampled_from([-1, 0, 0, 1])
    )
    rec = st.tuples(
        st.sampled_from(topics),
        st.integers(0, 2),
        at,
        st.sampled_from([0, 1, 1, 1, 2]),
        st.sampled_from(["A", "B"]),
        st.integers(0, 9),
    )
    return st.lists(st.lists(rec, max_size=12), min_size=1, max_size=8)


def _check(p: Pattern, steps: list[list[Rec]]) -> PatternState:
    kept = reference_kept(p, steps)
    got, state = engine_rows(p, steps)
    want: set[Any] = set()
    for k, events in enumerate(kept):
        want |= set(normalise(find_matches(p, events)))
        assert set(normalise(got[k])) == want, (k, steps)
    return state


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    steps=_stream(("payments",)),
    count=st.integers(2, 4),
    delay=st.sampled_from([1, W // 4, W, 3 * W]),
)
def test_structuring_pruned_equals_the_unpruned_reference(steps, count, delay) -> None:
    _check(Structuring(count=count, within_ms=W, max_delay_ms=delay), steps)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps=_stream(("quotes", "trades")), delay=st.sampled_from([1, W // 4, W, 3 * W]))
def test_price_spike_pruned_equals_the_unpruned_reference(steps, delay) -> None:
    _check(PriceSpike(pct=Decimal(5), within_ms=W, max_delay_ms=delay), steps)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    steps=_stream(("payments", "quotes", "trades")),
    gaps=st.lists(st.sampled_from([0, 4_000, 9_999, 10_000, 25_000]), min_size=8, max_size=8),
    count=st.integers(2, 3),
    delay=st.sampled_from([1, W // 4, W]),
)
def test_with_idle_partitions_pruned_equals_the_unpruned_reference(
    steps, gaps, count, delay
) -> None:
    """Contract 6 on random streams and processing times (steps 0 to 25 s apart, the timeout
    10 s): the events kept and the matches are the reference's, both patterns."""
    nows = list(np.cumsum(gaps[: len(steps)]).tolist())
    for p in (
        Structuring(count=count, within_ms=W, max_delay_ms=delay),
        PriceSpike(pct=Decimal(5), within_ms=W, max_delay_ms=delay),
    ):
        mine = [[r for r in step if r[0] in topics_of(p)] for step in steps]
        kept = reference_kept_idle(p, mine, nows, 10_000)
        got, state = engine_rows(p, mine, nows, 10_000)
        want: set[Any] = set()
        for k, events in enumerate(kept):
            want |= set(normalise(find_matches(p, events)))
            assert set(normalise(got[k])) == want, (k, mine, nows)
        late = sum(len(s) for s in mine) - len(kept[-1]) if mine else 0
        assert state.late <= late


def test_an_idle_partition_stops_holding_the_watermark_back() -> None:
    """Contract 6, as Flink's ``table.exec.source.idle-timeout``: a partition with nothing to
    read for the timeout no longer holds W back (its held state is settled and pruned); back
    with records it counts again but W does not move back, so its events behind W are late;
    a partition with records to read is never idle; when every partition is idle W stays."""
    p = Structuring(count=2, within_ms=W, max_delay_ms=10)
    s = PatternState(p, idle_timeout_ms=10_000)
    p0, p1 = ("payments", 0), ("payments", 1)

    def near(tp: tuple[str, int], at: list[int]) -> list[Any]:
        ok = s.on_time(*tp, np.array(at, np.int64))
        items = [
            (("t", f"A{tp[1]}"), structuring_item(a, tp[1], i, Decimal("9500.00")))
            for i, (a, keep) in enumerate(zip(at, ok.tolist(), strict=True))
            if keep
        ]
        return s.offer(items)

    assert s.expect([p0, p1], [p0, p1], now_ms=0) == []
    near(p0, [100, 150])
    near(p1, [50])
    assert s.watermark == 40 and s.retained() == 3
    s.expect([p0, p1], [p0], now_ms=9_999)  # p1 quiet 9.999 s: still holds W
    near(p0, [400])
    assert s.watermark == 40 and not s.idle
    s.expect([p0, p1], [p0, p1], now_ms=60_000)  # records to read: never idle
    assert not s.idle
    s.expect([p0, p1], [p0], now_ms=69_999)
    assert s.watermark == 40 and not s.idle
    rows = s.expect([p0, p1], [p0], now_ms=70_000)  # p1 idle: W follows p0 alone
    assert s.idle == {p1} and s.watermark == 390
    assert [(r["first_at"], r["last_at"]) for r in rows] == [(100, 150)]  # settled now
    assert s.retained() == 1  # p0's and p1's old payments pruned; the one at 400 waits
    # p1 back with records: counted again, W does not move back; at or behind W is late
    s.expect([p0, p1], [p1], now_ms=70_500)
    assert not s.idle
    assert s.on_time(*p1, np.array([390, 391, 60], np.int64)).tolist() == [False, True, False]
    assert (s.watermark, s.late) == (390, 2)
    # every partition idle: W stays
    s.expect([p0, p1], [], now_ms=200_000)
    assert s.idle == {p0, p1} and s.watermark == 390
    # a partition that never held a record enters at W, not behind it
    s.expect([p0, p1, ("payments", 2)], [("payments", 2)], now_ms=200_001)
    assert s.on_time("payments", 2, np.array([390, 391], np.int64)).tolist() == [False, True]


def test_late_events_are_dropped_and_counted_and_an_unread_partition_holds_the_watermark() -> None:
    p = Structuring(count=2, within_ms=W, max_delay_ms=10)
    s = PatternState(p)
    s.expect([("payments", 0), ("payments", 1)])
    # partition 1 not read yet: nothing in partition 0 is late, however far behind
    assert s.on_time("payments", 0, np.array([500, 100], np.int64)).tolist() == [True, True]
    assert s.watermark == NEVER
    # partition 1 read: W = min(500, 300) - 10; at W is late, one ms after is not
    assert s.on_time("payments", 1, np.array([300, 290, 291], np.int64)).tolist() == [
        True,
        False,
        True,
    ]
    assert (s.watermark, s.late) == (290, 1)
    # a partition that held nothing enters at W: it does not move W back
    s.expect([("payments", 2)])
    assert s.on_time("payments", 2, np.array([290, 291], np.int64)).tolist() == [False, True]
    assert s.late == 2


def test_state_stays_bounded_over_a_long_stream() -> None:
    """40,000 payments of 200 accounts over 400 windows, a third near the threshold, a few out
    of order: the engine holds at most the near payments of about one window plus the
    lateness, while the unpruned detector held every near payment; the matches are the same."""
    p = Structuring(count=3, within_ms=10_000, max_delay_ms=2_000)
    rng = np.random.default_rng(17)
    n = 40_000
    at = np.cumsum(rng.integers(0, 200, n)) + rng.integers(-3_000, 1, n) * (rng.random(n) < 0.05)
    near = rng.random(n) < 0.33
    accounts = rng.integers(0, 200, n)
    state = PatternState(p)
    state.expect([("payments", 0)])
    peak, rows, events = 0, [], []
    for lo in range(0, n, 500):
        sl = slice(lo, lo + 500)
        ok = state.on_time("payments", 0, at[sl])
        items = []
        for i in np.flatnonzero(ok & near[sl]).tolist():
            off, a, key = lo + i, int(at[lo + i]), ("t", f"A{accounts[lo + i]}")
            items.append((key, structuring_item(a, 0, off, Decimal("9500.00"))))
            events.append(
                PatternEvent(
                    "payments",
                    0,
                    off,
                    PAYMENT_INITIATED,
                    "t",
                    a,
                    {"account_id": key[1], "amount": Decimal("9500.00")},
                )
            )
        rows += state.offer(items)
        peak = max(peak, state.retained())
    span = int(at.max() - at.min())
    per_ms = near.sum() / span
    bound = per_ms * (p.within_ms * 9 / 8 + 2 * p.max_delay_ms) * 1.5
    assert peak < bound, (peak, bound)
    assert peak < len(events) / 50  # the unpruned detector held len(events)
    assert set(normalise(rows)) == set(normalise(find_matches(p, events)))
    assert state.late > 0


def test_settled_state_is_kept_up_to_the_window_edge_of_the_first_possible_event() -> None:
    """A payment ``within - 1`` ms before the first on-time time (``W + 1``) still matches
    with it; one ``within`` ms before is dropped, and could not match anyway."""
    p = Structuring(count=2, within_ms=W, max_delay_ms=10)
    s = PatternState(p)
    s.expect([("payments", 0)])

    def feed(at: list[int], near: list[bool], first: int) -> list[Any]:
        ok = s.on_time("payments", 0, np.array(at, np.int64))
        items = [
            (("t", "A"), structuring_item(a, 0, first + i, Decimal("9500.00")))
            for i, (a, n, keep) in enumerate(zip(at, near, ok.tolist(), strict=True))
            if n and keep
        ]
        return s.offer(items) + s.flush()

    assert feed([0, 1], [True, False], 0) == []
    assert feed([W + 8], [False], 2) == []  # W moves to W - 2: the payment at 0 is settled
    assert (s.watermark, s.retained()) == (W - 2, 1)
    (row,) = feed([W - 1], [True], 3)  # the first on-time time: W - 1 - 0 < within
    assert (row["first_at"], row["last_at"]) == (0, W - 1)
    feed([3 * W], [False], 4)
    assert s.retained() == 0 and not s.keys


def test_a_forward_dated_event_does_not_blind_the_detector() -> None:
    """One payment dated a year ahead of its append time moves the watermark only to its
    append time plus the lateness: the payments after it are still on time, and it matches."""
    p = Structuring(count=2, within_ms=W, max_delay_ms=10)
    s = PatternState(p)
    s.expect([("payments", 0)])
    year = 365 * 86_400_000
    at = np.array([1_000, year, 1_005, 1_010], np.int64)
    log = np.array([1_001, 1_002, 1_006, 1_011], np.int64)
    assert s.on_time("payments", 0, at, log).tolist() == [True] * 4
    assert s.watermark == (1_002 + 10) - 10  # the dated record moved it to its append + 10
    without = PatternState(p)  # what Flink's watermark does (no append times)
    without.expect([("payments", 0)])
    assert without.on_time("payments", 0, at).tolist() == [True, True, False, False]
