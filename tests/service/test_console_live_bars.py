"""The Markets stream's merged bars equal the query (issue 15): ``hub.console.live_bars`` keeps
the bars from the market-bars commits; after every commit of random trades (several windows,
out-of-order times, two tenants, the SQL fold and the Python fold) its bars must be exactly what
``/markets/bars`` answers under the same grant, batch number included. What it cannot merge
(a skipped batch, a bar its snapshot's limit cut off) marks it stale, so the stream queries.

No server: a bootstrapped hub whose runner is stepped by the test (2.6 s at load 3, 24 s at
load 25-29)."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from core.events import OutgoingEvent
from core.ports.policy import Principal
from hub.bootstrap import Hub, bootstrap
from hub.console import data as console_data
from hub.console import live_bars
from hub.console.live_bars import LiveBars
from hub.settings import load_settings

MINUTE_US = 60_000_000
T0 = 1_767_225_600_000_000


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[Hub]:
    h = bootstrap(
        load_settings(
            environ={"HUB_PROJECTION_AUTOSTART": "false", "HUB_ALERT_INTERVAL_S": "0"},
            data_dir=tmp_path / "data",
        )
    )
    try:
        yield h
    finally:
        h.close()


def _publish(hub: Hub, rng: random.Random, n: int, tenant: str, start: int) -> None:
    events = [
        OutgoingEvent(
            value={
                "trade_id": f"{tenant}-{start + i}",
                "account_id": f"A{rng.randrange(7)}",
                "instrument": rng.choice(["LIVE", "LIVE", "OTHER"]),
                "side": rng.choice(["BUY", "SELL"]),
                "quantity": f"{rng.randrange(1, 500)}.{rng.randrange(10_000):04d}",
                "price": f"{rng.randrange(90, 110)}.{rng.randrange(100_000_000):08d}",
                "currency": rng.choice(["USD", "USD", "EUR"]),
                # mostly recent windows, some late trades into older ones, equal times too
                "executed_at": T0 + rng.randrange(6) * MINUTE_US + rng.randrange(3) * 1000,
            }
        )
        for i in range(n)
    ]
    hub.publisher.publish("trades", events, "test", tenant)


def _query(hub: Hub, grants: Any, limit: int) -> dict[str, Any]:
    found: dict[str, Any] = console_data._bars(
        hub, Principal("x", frozenset()), "LIVE", "USD", limit, grants
    )
    return found


def _snapshot(hub: Hub, grants: Any, limit: int) -> LiveBars:
    runner = hub.projections.runner("market_bars")
    with runner.between_batches() as cp:
        table = hub.projections.store("analytics").query(
            live_bars.snapshot_sql("LIVE", "USD", limit), grants
        )
    return LiveBars("LIVE", "USD", limit, console_data._tenant_of(grants), table, cp.batch_seq)


def test_merged_bars_equal_the_query_after_every_commit(hub: Hub) -> None:
    """Two streams at once: an admin's (every tenant) and an analyst's (tenant ``default``)."""
    rng = random.Random(15)
    grants = [
        hub.projections.grants(
            hub.policy, Principal("v", frozenset({role}), "default"), "analytics"
        )
        for role in ("admin", "analyst")
    ]
    assert [console_data._tenant_of(g) for g in grants] == [None, "default"]
    assert all(live_bars.mergeable(g) for g in grants)
    runner = hub.projections.runner("market_bars")
    _publish(hub, rng, 40, "default", 0)
    runner.catch_up()
    lives = [_snapshot(hub, g, 120) for g in grants]
    commits: list[tuple[int, Any]] = []
    unsubscribe = runner.on_commit_rows(lambda seq, rows: commits.append((seq, rows)))
    try:
        for batch in range(5):
            runner.columnar = batch != 2  # the Python fold's rows once
            _publish(hub, rng, rng.randrange(1, 60), rng.choice(["default", "other"]), batch * 100)
            runner.catch_up()
            for live, g in zip(lives, grants, strict=True):
                for seq, rows in commits:
                    live.apply(seq, rows)
                assert not live.stale
                want = _query(hub, g, 120)
                got = console_data._rows(live.shown())
                assert live.seq == want["batch_seq"]
                assert got["columns"] == want["columns"]
                key = lambda r: (r["window_start"], r["open"], r["events"])  # noqa: E731
                assert sorted(got["rows"], key=key) == sorted(want["rows"], key=key), batch
            commits.clear()
    finally:
        unsubscribe()
    assert runner.columnar_batches > 0
    assert lives[0].shown().num_rows > lives[1].shown().num_rows  # the other tenant's bars


def test_what_cannot_be_merged_makes_the_bars_stale(hub: Hub) -> None:
    rng = random.Random(7)
    grants = hub.projections.grants(hub.policy, Principal("a", frozenset({"admin"})), "analytics")
    runner = hub.projections.runner("market_bars")
    _publish(hub, rng, 60, "default", 0)
    runner.catch_up()
    # a skipped batch number: the bars cannot tell what it held
    live = _snapshot(hub, grants, 120)
    assert not live.apply(live.seq + 2, {}) and live.stale
    # a limit that cut the snapshot: a trade into a window at or before its oldest bar
    live = _snapshot(hub, grants, 2)
    assert len(live.bars) == 2
    commits: list[tuple[int, Any]] = []
    unsubscribe = runner.on_commit_rows(lambda seq, rows: commits.append((seq, rows)))
    try:
        old = OutgoingEvent(
            value={
                "trade_id": "late",
                "account_id": "A1",
                "instrument": "LIVE",
                "side": "BUY",
                "quantity": "1",
                "price": "100",
                "currency": "USD",
                "executed_at": T0,
            }
        )
        hub.publisher.publish("trades", [old], "test", "default")
        runner.catch_up()
    finally:
        unsubscribe()
    ((seq, rows),) = commits
    live.apply(seq, rows)
    assert live.stale
    # a grant that masks a column the merge reads is not merged
    masked = [
        g if g.name != "ohlcv_1m" else type(g)(g.name, g.columns, None, frozenset({"open"}))
        for g in grants
    ]
    assert not live_bars.mergeable(masked)
