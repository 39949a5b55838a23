"""The embedded pattern engine with bounded state: ``find_matches`` incrementally, with pruning.

``PatternState(pattern)`` takes a pattern's events as the log delivers them, partition batch by
partition batch (``offer``), and returns the alert rows each batch makes. It keeps per partition
key only what can still take part in a match, so its memory is bounded by the events of one
window plus the allowed lateness, not by the history.

Contract (checked against the unpruned reference in ``tests/unit/test_pattern_state.py``):
1. **Watermark** (Flink's ``WATERMARK FOR ts AS ts - max_delay``, a source-level watermark: every
   record of the pattern's topics with an event time moves it, whatever its type):
   ``W = min over the pattern's partitions holding records of (latest event time - max_delay_ms)``.
   ``expect(partitions)`` names the partitions that hold records before they are read: one not
   read yet holds ``W`` at minus infinity (a restart reading partition 0 first drops nothing of
   partition 1); one that held no record until now enters at the current ``W`` (it never moves
   ``W`` back), so its events behind ``W`` are late.
2. **Late events**: an event at or behind ``W`` when it arrives (Flink's CEP operator drops
   ``timestamp <= watermark``) is dropped and counted (``late``). An event less than
   ``max_delay_ms`` behind the latest event time of its own partition is never late.
3. **Matches**: the rows are exactly those of ``find_matches(pattern, accepted events so far)``:
   after every ``offer`` the union of the rows returned so far equals the union over the
   prefixes so far of ``find_matches`` (rows returned early stay returned: the detector raises a
   match as soon as the events so far make it, as the unpruned detector did).
4. **Pruning**: an event at or behind ``W`` is *settled* (every accepted future event sorts after
   it): it is folded into the key's settled state and kept only while a future event could still
   complete a match with it (``at > W + 1 - within_ms``). Events ahead of ``W`` wait in the key's
   tail, sorted; the state at the end of the tail is cached, so an in-order event costs one
   step of the pattern's automaton, an out-of-order one a replay of its key's tail.
5. **Forward-dated events**: given the records' append times, an event time moves its
   partition's watermark at most ``max_delay_ms`` past the append time, so one record dated
   years ahead cannot make every later event late (blind the detector); the event itself is
   matched as usual. The Flink jobs bound their watermark the same way (since session 19:
   ``LEAST(ts, src_ts + max_delay)``, ``projections.flink.cep.timed_source``).
6. **Idle partitions** (Flink's ``table.exec.source.idle-timeout``, which the unbounded CEP jobs
   set to ``IDLE_TIMEOUT_MS``, ``projections.flink.cep``): ``expect(partitions, unread, now_ms)``
   at the start of each pass names, with the processing time, the partitions that have records
   not read yet. A partition that had none since ``idle_timeout_ms`` ago is *idle*: it stops
   holding ``W`` back, which becomes the minimum of 1 over the partitions that are not (if every
   partition is idle, ``W`` stays where it is, as Flink's does). A partition with records to
   read is never idle, however long the pass reading another one takes. When an idle partition
   has records again it counts again, but ``W`` never moves back: its events at or behind ``W``
   are late (2). Without ``now_ms`` no partition is ever idle (the reference behaviour).
"""

from __future__ import annotations

import heapq
from bisect import bisect_right
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import numpy as np
import numpy.typing as npt

from projections.patterns import Pattern, PriceSpike, Structuring, structuring_row, topics_of

NEVER = -(2**62)  # the watermark of a partition not read yet: minus infinity
# Processing time (ms) after which a partition with no records to read stops holding the
# watermark back (contract 6); the Flink CEP jobs' ``table.exec.source.idle-timeout``.
IDLE_TIMEOUT_MS = 10_000
Item = tuple[Any, ...]  # a pattern event as the automaton reads it; sorts in match order
Row = dict[str, Any]
Step = Callable[[Any, Item, Any, "list[Row] | None"], Any]  # (state, event, key, rows) -> state


@dataclass(slots=True)
class _Key:
    settled: Any = None  # the automaton's state after every settled event of the key
    tail: list[Item] = field(default_factory=list)  # accepted events ahead of W, sorted
    end: Any = None  # the automaton's state after the first ``simmed`` events of the tail
    simmed: int = 0  # 0: ``end`` is not valid, the tail is run from ``settled``


class PatternState:
    """Contract in the module docstring."""

    def __init__(self, pattern: Pattern, idle_timeout_ms: int = IDLE_TIMEOUT_MS) -> None:
        if idle_timeout_ms <= 0:
            raise ValueError(f"idle_timeout_ms must be positive, got {idle_timeout_ms}")
        self.pattern = pattern
        self.topics = topics_of(pattern)
        self.hw: dict[tuple[str, int], int] = {}  # latest event time per partition holding records
        self.watermark = NEVER
        self.idle_timeout_ms = idle_timeout_ms
        self.active_at: dict[tuple[str, int], int] = {}  # last pass start with records to read
        self.idle: set[tuple[str, int]] = set()  # partitions not holding W back (contract 6)
        self.keys: dict[Any, _Key] = {}
        self.pending: list[tuple[int, int, Any]] = []  # (at, sequence, key) of every tail item
        self.late = 0  # events dropped as late
        self._seq = 0
        self._touched: set[Any] = set()  # keys given events since the last flush
        self.expiring: list[tuple[int, int, Any]] = []  # (oldest event time, seq, key) settled
        self._step: Step
        self._expire: Callable[[Any, int], Any]  # the state less what is at or before a time
        self._size: Callable[[Any], int]  # events in a state
        self._oldest: Callable[[Any], int]  # time of the oldest event in a state
        if isinstance(pattern, Structuring):
            self._step, self._expire, self._size = self._structuring, _expire_run, _run_size
            self._oldest = _run_oldest
        else:
            self._step, self._expire, self._size = self._spike, _expire_quote, _quote_size
            self._oldest = _quote_oldest

    # -- the watermark (contract 1, 2 and 6) -----------------------------------------------------
    def expect(
        self,
        partitions: Iterable[tuple[str, int]],
        unread: Iterable[tuple[str, int]] | None = None,
        now_ms: int | None = None,
    ) -> list[Row]:
        """Partitions holding records (about to be read); new ones enter as contract 1 says.
        With ``now_ms`` (processing time) and ``unread`` (those of them with records not read
        yet), the idle partitions are decided (contract 6); the rows of the events a watermark
        released by them settles are returned (as ``offer``'s)."""
        partitions = list(partitions)
        if now_ms is not None:
            waiting = set(partitions if unread is None else unread)
            for tp in self.hw:
                if tp in waiting or tp not in self.active_at:
                    self.active_at[tp] = now_ms
            limit = now_ms - self.idle_timeout_ms
            self.idle = {tp for tp in self.hw if self.active_at.get(tp, now_ms) <= limit}
            self._advance()
        delay = self.pattern.max_delay_ms
        floor = NEVER if self.watermark <= NEVER else self.watermark + delay  # W, not back
        for tp in partitions:
            if tp not in self.hw:
                self.hw[tp] = floor
                if now_ms is not None:
                    self.active_at[tp] = now_ms
        return self._settle() if now_ms is not None else []

    def _counted(self, but: tuple[str, int] | None = None) -> int | None:
        """The smallest latest event time of the partitions holding ``W`` back (not idle),
        ``but`` one; None when there are none."""
        idle = self.idle
        return min((v for k, v in self.hw.items() if k != but and k not in idle), default=None)

    def _advance(self) -> None:
        """``W`` from the partitions holding it back; never back (contract 1 and 6)."""
        low = self._counted()
        if low is not None and low > NEVER:
            self.watermark = max(self.watermark, low - self.pattern.max_delay_ms)

    def on_time(
        self,
        topic: str,
        partition: int,
        at_ms: npt.NDArray[np.int64],
        log_ms: npt.NDArray[np.int64] | None = None,
    ) -> Any:
        """Which of one partition batch's event times (log order, every record with a time) are
        not late (a bool array), moving the partition's latest event time past them. With
        ``log_ms`` (the records' append times) an event time moves it at most ``max_delay_ms``
        past its record's append time (contract 5)."""
        tp = (topic, partition)
        if tp not in self.hw:
            self.expect([tp])
        if not len(at_ms):
            return np.ones(0, bool)
        self.idle.discard(tp)  # it delivers: it holds W back again (contract 6)
        delay = self.pattern.max_delay_ms
        moves = at_ms if log_ms is None else np.minimum(at_ms, log_ms + delay)
        own = self.hw[tp]
        others = self._counted(but=tp)
        before = np.maximum.accumulate(np.concatenate(([own], moves[:-1])))
        # the watermark before each record: hw of each partition holding it back minus the
        # delay, the smallest; never behind W (an idle partition back does not move it back)
        mark = before if others is None else np.minimum(before, others)
        mark = np.maximum(np.where(mark <= NEVER, NEVER, mark - delay), self.watermark)
        ok = at_ms > mark
        self.late += int(len(ok) - ok.sum())
        self.hw[tp] = max(own, int(moves.max()))
        self._advance()
        return ok

    # -- matching (contract 3 and 4) -------------------------------------------------------------
    def offer(self, items: Sequence[tuple[Any, Item]]) -> list[Row]:
        """Accepted (not late) events as (partition key, item), queued in their keys' tails;
        then settle what the watermark passed (the rows returned: final matches) and drop
        settled state no future event can use. ``flush`` returns the other matches."""
        touched, pending = self._touched, self.pending
        for key, item in items:
            k = self.keys.get(key)
            if k is None:
                k = self.keys[key] = _Key()
            heapq.heappush(pending, (item[0], self._seq, key))
            self._seq += 1
            if k.tail and item < k.tail[-1]:
                at = bisect_right(k.tail, item)
                k.tail.insert(at, item)
                if at < k.simmed:
                    k.simmed = 0  # out of order among the events run: run the tail again
            else:
                k.tail.append(item)
            touched.add(key)
        return self._settle()

    def flush(self) -> list[Row]:
        """The rows of every key given events since the last flush, over all its events so far
        (``find_matches`` of the prefix read, for those keys; call at the end of a pass)."""
        rows: list[Row] = []
        for key in self._touched:
            k = self.keys.get(key)
            if k is None or not k.tail:
                continue
            state = k.end if k.simmed else k.settled
            for item in k.tail[k.simmed :]:
                state = self._step(state, item, key, rows)
            k.end, k.simmed = state, len(k.tail)
        self._touched = set()
        return rows

    def _settle(self) -> list[Row]:
        mark, pending, keys = self.watermark, self.pending, self.keys
        rows: list[Row] = []
        due: dict[Any, int] = {}
        while pending and pending[0][0] <= mark:
            key = heapq.heappop(pending)[2]
            due[key] = due.get(key, 0) + 1
        for key, n in due.items():  # a key's n events at or behind W are the first n of its tail
            k = keys[key]
            state = k.settled
            for item in k.tail[:n]:
                state = self._step(state, item, key, rows)
            k.settled = state
            del k.tail[:n]
            k.simmed = max(0, k.simmed - n) if k.tail else 0
        # expire settled state from the oldest: at or before the horizon no future event
        # (at > W) can be within the window of it
        horizon, expiring = mark + 1 - self.pattern.within_ms, self.expiring
        for key in due:
            k = keys[key]
            if k.settled is not None:
                heapq.heappush(expiring, (self._oldest(k.settled), self._seq, key))
                self._seq += 1
            elif not k.tail:
                del keys[key]
        while expiring and expiring[0][0] <= horizon:
            key = heapq.heappop(expiring)[2]
            held = keys.get(key)
            if held is None or held.settled is None:
                continue
            held.settled = self._expire(held.settled, horizon)
            if held.settled is not None:
                heapq.heappush(expiring, (self._oldest(held.settled), self._seq, key))
                self._seq += 1
            elif not held.tail:
                del keys[key]
        return rows

    def retained(self) -> int:
        """Events held (settled state and tails): the ``hub_pattern_state_events`` gauge."""
        return sum(self._size(k.settled) + len(k.tail) for k in self.keys.values())

    # -- the automata: one step of find_matches' loop per event ---------------------------------
    def _structuring(self, run: Any, item: Item, key: Any, rows: list[Row] | None) -> Any:
        """``run``: the last ``count - 1`` near payments since the last match (None: none)."""
        p = self.pattern
        assert isinstance(p, Structuring)
        run = run or ()
        if len(run) == p.count - 1 and item[0] - run[0][0] < p.within_ms:
            if rows is not None:
                rows.append(structuring_row(key, (*run, item)))
            return None
        run = (*run, item)
        return run[-(p.count - 1) :]

    def _spike(self, quote: Any, item: Item, key: Any, rows: list[Row] | None) -> Any:
        """``quote``: the latest quote not used by an alert, not timed out (None: none)."""
        p = self.pattern
        assert isinstance(p, PriceSpike)
        at, rank = item[0], item[1]
        if rank == 0:
            return item
        if quote is None:
            return None
        if at - quote[0] >= p.within_ms:
            return None
        ask, (tenant, trade_id, price) = quote[4], item[4]
        if not p.spike(price, ask):
            return quote
        if rows is not None:
            rows.append(
                {
                    "instrument": key,
                    "trade_partition": item[2],
                    "trade_offset": item[3],
                    "tenant": tenant,
                    "trade_id": trade_id,
                    "quote_at": quote[0],
                    "trade_at": at,
                    "ask": ask,
                    "price": price,
                }
            )
        return None


def _expire_run(run: Any, horizon: int) -> Any:
    """Drop the payments at or before ``horizon`` (dropping the oldest of a run changes no
    later decision: a run with it would be too long anyway)."""
    if not run:
        return None
    kept = tuple(r for r in run if r[0] > horizon)
    return kept or None


def _run_size(run: Any) -> int:
    return len(run) if run else 0


def _run_oldest(run: Any) -> int:
    return int(run[0][0])


def _quote_oldest(quote: Any) -> int:
    return int(quote[0])


def _expire_quote(quote: Any, horizon: int) -> Any:
    return None if quote is None or quote[0] <= horizon else quote


def _quote_size(quote: Any) -> int:
    return 0 if quote is None else 1


def structuring_item(at: int, partition: int, offset: int, amount: Decimal) -> Item:
    return (at, partition, offset, amount)


def spike_quote(at: int, partition: int, offset: int, ask: Decimal) -> Item:
    return (at, 0, partition, offset, ask)


def spike_trade(
    at: int, partition: int, offset: int, tenant: str, trade_id: str, price: Decimal
) -> Item:
    return (at, 1, partition, offset, (tenant, trade_id, price))
