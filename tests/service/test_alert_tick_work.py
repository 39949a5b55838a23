"""What one alert pass costs (issue 13): a pass with nothing new reads no records of the log,
makes no views and runs no ledger verify; the quarantine rate reads only what was appended
since the last pass; SQL alerts still fire, also after their views were dropped meanwhile."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from core.ports.views import Target
from domain.alerts import AlertRule
from hub.bootstrap import Hub, bootstrap
from hub.console.alerts import AlertEngine, engine_for
from hub.settings import load_settings
from ingest.pipeline import RawRecord
from projections.service import projection
from tests.service.accounts import publish_trades


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[Hub]:
    h = bootstrap(
        load_settings(environ={"HUB_PROJECTION_AUTOSTART": "false"}, data_dir=tmp_path / "data")
    )
    try:
        yield h
    finally:
        h.close()


def _trades(hub: Hub, n: int, instrument: str = "TCK") -> None:
    publish_trades(hub, (f"T-{instrument}-{i}" for i in range(n)), instrument=instrument)


def _quarantine_one(hub: Hub) -> None:
    bad = {"trade_id": "Q-1", "account_id": "NOBODY", "instrument": "KND", "side": "BUY"}
    raw = RawRecord(json.dumps(bad).encode(), value=bad, content_type="application/json")
    assert hub.ingest.ingest("trades", [raw], source="test").rejected == 1


class Work:
    """Spies on the real log, view stores and ledger of ``hub``: which records were read
    (topic, partition, from offset), how many views were made, how many verifies ran."""

    def __init__(self, hub: Hub, monkeypatch: pytest.MonkeyPatch) -> None:
        self.reads: list[tuple[str, int, int]] = []
        self.ensures = 0
        self.verifies = 0
        log = hub.log
        for name in ("read", "read_columns", "read_encoded"):
            monkeypatch.setattr(log, name, self._reading(getattr(log, name)))
        for kind in ("analytics", "transactional"):
            store = hub.projections.store(kind)
            monkeypatch.setattr(store, "ensure", self._counting(store.ensure, "ensures"))
        ledger = hub.ledger
        monkeypatch.setattr(ledger, "syncs_paused", self._counting(ledger.syncs_paused, "verifies"))

    def _reading(self, f: Callable[..., Any]) -> Callable[..., Any]:
        def read(topic: str, partition: int, offset: int, *args: Any, **kw: Any) -> Any:
            self.reads.append((topic, partition, offset))
            return f(topic, partition, offset, *args, **kw)

        return read

    def _counting(self, f: Callable[..., Any], counter: str) -> Callable[..., Any]:
        def call(*args: Any, **kw: Any) -> Any:
            setattr(self, counter, getattr(self, counter) + 1)
            return f(*args, **kw)

        return call

    def reset(self) -> None:
        self.reads.clear()
        self.ensures = self.verifies = 0


def test_a_pass_with_nothing_new_reads_no_records_makes_no_views_and_verifies_nothing(
    hub: Hub, monkeypatch: pytest.MonkeyPatch
) -> None:
    _trades(hub, 50)
    hub.ledger.sync(force_checkpoint=True)
    engine = engine_for(hub)  # the shipped rules: SQL, lag, quarantine rate, drift, ledger
    work = Work(hub, monkeypatch)
    assert engine.evaluate() == []
    assert work.verifies == 1  # the first pass verifies the ledger (in full: nothing remembered)
    assert work.ensures > 0  # and makes the views once

    work.reset()
    assert engine.evaluate() == []
    assert (work.ensures, work.verifies) == (0, 0)
    assert not [r for r in work.reads if not r[0].startswith("hub.alerts")]

    ends = hub.log.end_offsets("trades")
    _trades(hub, 3, "NEW")
    _quarantine_one(hub)
    work.reset()
    engine.evaluate()
    trades = [r for r in work.reads if r[0] == "trades"]
    assert trades and all(off >= ends[part] for _, part, off in trades)  # only the new ones
    assert (work.ensures, work.verifies) == (0, 0)


def test_the_quarantine_rate_counts_what_arrived_between_passes(hub: Hub) -> None:
    _trades(hub, 40)  # before the engine's first sample: not part of any rate
    rule = AlertRule(
        "qrate", "q", "", threshold=Decimal(10), kind="metric", metric="quarantine_rate"
    )
    engine = AlertEngine(hub, [rule])
    assert engine.evaluate() == []
    _trades(hub, 3, "QR")
    _quarantine_one(hub)
    (fired,) = engine.evaluate()
    assert fired["value"] == "25.00"  # 1 of the 4 received since the first pass


def test_a_sql_alert_fires_after_its_views_were_dropped_meanwhile(hub: Hub) -> None:
    rule = AlertRule("bars", "bars", "SELECT count() AS bars FROM ohlcv_1m", severity="info")
    engine = AlertEngine(hub, [rule])
    assert engine.evaluate() == []  # makes the views (once per process)
    bars = projection("market_bars")
    hub.projections.store(bars.store).drop(Target(bars.name), bars.tables)  # another process
    _trades(hub, 2, "DRP")
    hub.projections.run(["market_bars"])
    (fired,) = engine.evaluate()
    assert fired["event_type"] == "hub.AlertFired" and fired["value"] == "1"
