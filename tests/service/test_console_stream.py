"""The Markets stream is pushed by the market-bars commit, not by a timer (issue 15): with the
stream's idle wake-up set to a minute, published trades still reach the stream at once.

A real server (uvicorn on an ephemeral port) because the test client buffers a streaming body;
the hub follows only ``market_bars``. Setup is a bootstrap plus a server start (seconds on a
quiet machine; 40 s at load 25)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn

from core.events import OutgoingEvent
from hub.api.app import create_app
from hub.bootstrap import Hub, bootstrap
from hub.console import data as console_data
from hub.console.sessions import COOKIE
from hub.settings import load_settings
from tests.service.bars_stream import read_bars


@pytest.fixture
def served(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Hub, str, str, str]]:
    monkeypatch.setattr(console_data, "STREAM_IDLE_S", 60.0)  # only a commit can wake it in time
    hub = bootstrap(
        load_settings(
            environ={"HUB_ALERT_INTERVAL_S": "0", "HUB_PROJECTION_FOLLOW": "market_bars"},
            data_dir=tmp_path / "data",
        )
    )
    app = create_app(hub)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    assert server.started, "uvicorn did not start"
    port = server.servers[0].sockets[0].getsockname()[1]
    issued = hub.keys.create(["analyst"], principal="stream-test")
    token, _ = app.state.console_sessions.open(issued.key_id, "stream-test")
    try:
        yield hub, f"http://127.0.0.1:{port}", token, issued.key_id
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        hub.close()


def _trade(hub: Hub, n: int) -> None:
    hub.publisher.publish(
        "trades",
        [
            OutgoingEvent(
                value={
                    "trade_id": f"s{n}",
                    "account_id": "A1",
                    "instrument": "STRM",
                    "side": "BUY",
                    "quantity": "1",
                    "price": "10.00",
                    "currency": "USD",
                    "executed_at": 1_767_225_600_000_000 + n,
                }
            )
        ],
        "test",
        "default",
    )


def test_a_commit_pushes_the_stream_without_a_timer(
    served: tuple[Hub, str, str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Then the key is revoked: the stream's re-check (off the push path) ends it."""
    hub, base, token, key_id = served
    got: list[tuple[float, int]] = []  # (arrival, trades on the chart)
    first = threading.Event()
    two = threading.Event()

    def arrived(at: float, trades: int) -> bool:
        got.append((at, trades))
        first.set()
        if trades >= 2:
            two.set()
        return trades >= 2

    def read() -> None:
        read_bars(base, token, "STRM", arrived)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    assert first.wait(30), "no first message"
    _trade(hub, 1)
    _trade(hub, 2)
    published = time.perf_counter()
    assert two.wait(30), f"the stream did not push the published trades: {got}"
    # 60 s idle wake-up: only the commit's wake-up can deliver it in well under that
    assert got[-1][0] - published < 20, got
    reader.join(5)
    monkeypatch.setattr(console_data, "KEY_RECHECK_S", 0.2)
    url = f"{base}/ui/api/markets/stream?instrument=STRM&currency=USD"
    with (
        httpx.Client(cookies={COOKIE: token}, timeout=30) as client,
        client.stream("GET", url) as r,
    ):
        lines = r.iter_lines()
        assert next(lines) == "event: bars"
        hub.keys.revoke(key_id, revoked_by="stream-test", reason="test")
        assert "event: ended" in list(lines)
