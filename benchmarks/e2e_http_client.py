"""One HTTP client of the load harness's HTTP rows (``benchmarks.e2e.http_run``), in its own
process: ``python -m benchmarks.e2e_http_client URL KIND BATCH SECONDS INTERVAL CLIENT``.

Before, the harness's clients were 4 ``httpx`` threads of the harness process itself, each
encoding its next body (``json.dumps`` of 500 envelopes) inside the timed loop: on two shared
cores the clients' GIL and CPU were part of what was measured. Here each client is a process
with one keep-alive connection and its bodies made before the clock starts:

1. One body of ``BATCH`` trades of ``KIND`` (``json``: ``{"events": [...]}`` of bare records;
   ``envelope``: the same with each record as ``{"value": {...}}``, the harness's body before;
   ``ndjson``; ``arrow``: an uncompressed Arrow IPC stream) whose trade ids hold a fixed-width
   request number; request ``n``'s body is that template with ``n`` written in (one
   ``bytes.replace``: every trade of the run has its own id, and the cost per request is a copy).
2. One warm-up request (not counted), then ``ready`` on stdout; the client waits for a line on
   stdin (the harness starts every client's clock at once), then posts for ``SECONDS``, one
   request at a time, each due ``INTERVAL`` seconds after the last (0: back to back).
3. One JSON line on stdout: per request its end (``time.time()``), accepted count and latency in
   ms; failed requests; the client's own CPU seconds while posting.

The API key is read from the ``HUB_BENCH_TOKEN`` environment variable (not the command line,
where other users of the machine could read it).
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any

import httpx

CTYPES = {
    "json": "application/json",
    "envelope": "application/json",
    "ndjson": "application/x-ndjson",
    "arrow": "application/vnd.apache.arrow.stream",
}
MARK = "#########"  # the request number's place in every trade id (9 digits)


def rows(batch: int, client: int) -> list[dict[str, Any]]:
    """The template's trades: ids ``H<client>-<MARK>-<k>``, accounts and times varying as the
    harness's ``trade`` does."""
    from benchmarks.e2e_common import trade

    out = []
    for k in range(batch):
        r = trade(k)
        r["trade_id"] = f"H{client:03d}-{MARK}-{k:06d}"
        out.append(r)
    return out


def template(kind: str, batch: int, client: int) -> bytes:
    rs = rows(batch, client)
    if kind == "ndjson":
        return b"".join(json.dumps(r).encode() + b"\n" for r in rs)
    if kind == "arrow":
        from benchmarks.http_ingest import arrow_body

        return arrow_body(rs)
    if kind == "envelope":
        return json.dumps({"events": [{"value": r} for r in rs]}).encode()
    if kind == "json":
        return json.dumps({"events": rs}).encode()
    raise SystemExit(f"unknown body kind {kind!r}: one of {', '.join(CTYPES)}")


def body(tpl: bytes, n: int) -> bytes:
    return tpl.replace(MARK.encode(), b"%09d" % n)


def main(argv: list[str]) -> int:
    url, kind, batch_s, seconds_s, interval_s, client_s = argv
    batch, seconds, interval, client = (
        int(batch_s),
        float(seconds_s),
        float(interval_s),
        int(client_s),
    )
    token = os.environ["HUB_BENCH_TOKEN"]
    headers = {"Authorization": f"Bearer {token}", "Content-Type": CTYPES[kind]}
    tpl = template(kind, batch, client)
    done: list[tuple[float, int, float]] = []
    failed = 0
    with httpx.Client(base_url=url, headers=headers, timeout=120) as c:
        r = c.post("/v1/ingest/trades", content=body(tpl, 999_999_999))  # warm-up, not counted
        if r.status_code != 200:
            raise SystemExit(f"warm-up request answered {r.status_code}: {r.text[:300]}")
        print("ready", flush=True)
        sys.stdin.readline()
        cpu0, began = time.process_time(), time.perf_counter()
        n = 0
        while time.perf_counter() - began < seconds:
            if interval:
                due = began + n * interval
                now = time.perf_counter()
                if now < due:
                    time.sleep(due - now)
            payload = body(tpl, n)
            t0 = time.perf_counter()
            try:
                r = c.post("/v1/ingest/trades", content=payload)
                ok = r.status_code == 200
            except httpx.HTTPError:
                ok = False
            t1 = time.perf_counter()
            n += 1
            if ok:
                done.append((time.time(), int(r.json()["accepted"]), (t1 - t0) * 1000))
            else:
                failed += 1
        cpu = time.process_time() - cpu0
    print(json.dumps({"done": done, "failed": failed, "cpu": cpu}), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
