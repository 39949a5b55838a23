"""A reader of the console's Markets stream (``/ui/api/markets/stream``, Server-Sent Events), as
the Markets page reads it: used by ``tests/service/test_console_stream.py`` and
``benchmarks/test_bench_console.py``.

``read_bars`` runs in a thread of its own: it opens the stream with a console session cookie and
calls ``on_bars(arrived_at, trades_on_the_chart)`` for every ``bars`` message (the time from
``time.perf_counter()``, the trades as the sum of the bars' ``events``) until ``on_bars`` returns
True or ``stop`` is set (seen after the next line of the stream)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable

import httpx

from hub.console.sessions import COOKIE


def read_bars(
    base: str,
    token: str,
    instrument: str,
    on_bars: Callable[[float, int], bool],
    stop: threading.Event | None = None,
    currency: str = "USD",
) -> None:
    url = f"{base}/ui/api/markets/stream?instrument={instrument}&currency={currency}"
    with (
        httpx.Client(cookies={COOKIE: token}, timeout=None) as client,
        client.stream("GET", url) as r,
    ):
        assert r.status_code == 200, r.read()
        event = ""
        for line in r.iter_lines():
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: ") and event == "bars":
                rows = json.loads(line[6:])["rows"]
                if on_bars(time.perf_counter(), sum(x["events"] for x in rows)):
                    return
            if stop is not None and stop.is_set():
                return
