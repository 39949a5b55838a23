"""The background loop behind the report, retrain and alert schedulers."""

import logging
import threading

import pytest

from core.periodic import Periodic


def test_a_failing_tick_is_logged_and_the_next_one_runs(caplog: pytest.LogCaptureFixture) -> None:
    calls: list[int] = []
    third = threading.Event()

    def tick() -> None:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("transient")
        if len(calls) >= 3:
            third.set()

    loop = Periodic("t-loop", tick, "the tick failed", logging.getLogger("t"))
    with caplog.at_level(logging.ERROR, logger="t"):
        loop.start(0.01)
        loop.start(0.01)  # a second start keeps the one thread
        assert third.wait(10)
        loop.stop()
    assert not loop.running
    assert [t.name for t in threading.enumerate()].count("t-loop") == 0
    assert [r.getMessage() for r in caplog.records] == ["the tick failed"]
    assert caplog.records[0].exc_info is not None
    n = len(calls)
    third.clear()
    assert not third.wait(0.05) and len(calls) == n  # stopped: no more ticks
