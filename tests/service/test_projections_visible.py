"""Publish -> visible on the analytics views (issue 13): the follower of ``market_bars`` (chDB,
the SQL path) is woken by the append, and a live step asks the log only what it needs.

The follower polls once an hour here: only the append's wake-up can make the view show a publish
within the test's seconds, so a follower that fell back to polling fails.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from core.events import OutgoingEvent
from core.ports.eventlog import EventLog
from core.ports.views import Target
from hub.bootstrap import Hub, bootstrap
from hub.settings import load_settings
from projections.catalog import by_name
from projections.runner import Bound

HOUR_S = 3600.0


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[Hub]:
    h = bootstrap(load_settings(environ={}, data_dir=tmp_path / "d", projection_autostart=False))
    try:
        yield h
    finally:
        h.close()


def trades(n: int, start: int) -> list[OutgoingEvent]:
    return [
        OutgoingEvent(
            value={
                "trade_id": f"V-{i}",
                "account_id": f"ACC-{i % 7}",
                "instrument": "AAPL",
                "side": "BUY",
                "quantity": "100",
                "price": "12.5",
                "currency": "USD",
                "executed_at": f"2026-11-25T14:{(i // 60) % 60:02d}:{i % 60:02d}.000000Z",
            }
        )
        for i in range(start, start + n)
    ]


def covered(runner: Any, meta: list[Any]) -> bool:
    """Whether the runner's committed checkpoint covers every published record."""
    positions = runner.checkpoint.positions
    return all(
        (m.topic, m.partition) in positions
        and positions[(m.topic, m.partition)].next_offset > m.offset
        for m in meta
    )


def wait_until(done: Callable[[], bool], timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while not done():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True


def bar_volume(h: Hub) -> int:
    """The trades the 1-minute bars count (the rows a reader of the view sees)."""
    proj = by_name("market_bars")
    rows = h.projections.store(proj.store).rows(Target(proj.name), proj.table("ohlcv_1m"))
    return sum(int(r["events"]) for r in rows)


def test_an_append_wakes_the_market_bars_follower_that_polls_once_an_hour(hub: Hub) -> None:
    runner = hub.projections.runner("market_bars")
    runner.catch_up()
    stop = threading.Event()
    follower = threading.Thread(target=runner.follow, args=(stop, HOUR_S), daemon=True)
    follower.start()
    try:
        time.sleep(0.3)  # idle: waiting for an append
        for round_, n in enumerate((40, 1, 250)):
            before = bar_volume(hub)
            t0 = time.monotonic()
            meta = hub.publisher.publish("trades", trades(n, 1000 * round_), "test", "acme")
            assert wait_until(partial(covered, runner, meta), 20.0), (
                f"round {round_}: the follower did not see the publish (it polled instead of "
                "being woken by the append)"
            )
            assert time.monotonic() - t0 < 20.0
            assert bar_volume(hub) == before + n  # the view shows every trade, once
            assert runner.columnar_batches > 0  # the SQL path folded them
            time.sleep(0.2)  # idle again before the next round
    finally:
        stop.set()
        hub.publisher.publish("trades", trades(1, 10**6), "test", "acme")  # wakes it to stop
        follower.join(20)
    assert not follower.is_alive()


class CountingLog:
    """The real log, counting the calls of some methods (a spy, not a stand-in)."""

    def __init__(self, log: EventLog, names: tuple[str, ...]) -> None:
        self._log = log
        self.calls = dict.fromkeys(names, 0)

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._log, name)
        if name not in self.calls:
            return attr

        def counted(*a: Any, **kw: Any) -> Any:
            self.calls[name] += 1
            return attr(*a, **kw)

        return counted


def test_a_live_step_that_finds_records_asks_for_no_stable_offsets(hub: Hub) -> None:
    """On Kafka every ``stable_offsets`` is a ListOffsets round trip to the broker, and it is
    needed only to step over marker offsets after an empty read: a step that found records for
    every partition it read must not ask; an empty read still asks (markers are still
    skipped: ``test_projections_log_columns``)."""
    runner = hub.projections.runner("market_bars")
    runner.catch_up()
    spy = CountingLog(runner.log, ("stable_offsets", "end_offsets"))
    runner.log = spy  # type: ignore[assignment]
    try:
        meta = hub.publisher.publish("trades", trades(300, 0), "test", "acme")
        touched = {(m.topic, m.partition) for m in meta}
        # read only the partitions that got records: a bound at their new ends
        ends = {(m.topic, m.partition): 0 for m in meta}
        for m in meta:
            ends[(m.topic, m.partition)] = max(ends[(m.topic, m.partition)], m.offset + 1)
        cp = runner.checkpoint
        bound = Bound(
            offsets={
                tp: (ends[tp] if tp in touched else pos.next_offset)
                for tp, pos in cp.positions.items()
            }
        )
        got = runner.step(bound)
        assert got.events == 300
        assert covered(runner, meta)
        assert spy.calls["stable_offsets"] == 0
        assert spy.calls["end_offsets"] == 0
        # no record left: the empty reads ask (the marker check), and the positions step over
        # the offsets that hold none (the publish's transaction markers) to the end
        assert runner.step().events == 0
        assert spy.calls["stable_offsets"] >= 1
        assert runner.lag() == 0
    finally:
        runner.log = spy._log
