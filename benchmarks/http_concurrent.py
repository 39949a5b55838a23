"""Concurrent HTTP batches against ``hub serve``: several clients at once, as ``benchmarks/e2e.py``
posts them, with an old tree alternating with this checkout in the same run.

1. A fresh data folder per run (``http_ingest._prepare``: 500 accounts, an admin key).
2. ``hub serve`` from a source tree (this checkout, or ``--against DIR``: an unpacked
   ``git archive`` of another commit, same virtualenv), SQLite at its default durability (FULL),
   alert rules at their default, projections not started.
3. ``--clients`` threads, each with its own keep-alive ``httpx`` client, post
   ``{"events": [{"value": trade}, ...]}`` bodies of ``--batch`` trades flat out for
   ``--seconds``; with ``--arrow``, this checkout is run a second time with the same trades as
   Arrow IPC stream bodies (the old tree stays on JSON). Reported: events per wall second,
   events per server CPU second (``psutil``, all the server's threads), acknowledgement p50 /
   p99, and the load average.

Run: ``.venv/bin/python -m benchmarks.http_concurrent [--against /tmp/old] [--rounds 2] [--arrow]``
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import psutil

from benchmarks.e2e_common import ACCOUNTS, trade_rows
from benchmarks.http_ingest import _prepare, healthy, load

ROOT = Path(__file__).resolve().parent.parent


def _serve(data: Path, port: int, tree: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "HUB_DATA_DIR": str(data),
        "HUB_PROJECTION_AUTOSTART": "false",
        "HUB_LOG_LEVEL": "WARNING",
        "PYTHONPATH": str(tree),  # ``-c`` puts the working folder first on sys.path
    }
    cmd = [sys.executable, "-c", "from hub.cli import main; main()", "serve", "--port", str(port)]
    return healthy(subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, cwd=tree), port, 180)


def run(
    name: str, tree: Path, port: int, clients: int, batch: int, seconds: float, arrow: bool = False
) -> None:
    with tempfile.TemporaryDirectory(prefix="hub-http-concurrent-") as tmp:
        data = Path(tmp) / "data"
        token = _prepare(data, "FULL")
        proc = _serve(data, port, tree)
        try:
            _load(name, proc, token, port, clients, batch, seconds, arrow)
        finally:
            proc.terminate()
            proc.wait(60)


def _load(
    name: str,
    proc: subprocess.Popen[bytes],
    token: str,
    port: int,
    clients: int,
    batch: int,
    seconds: float,
    arrow: bool = False,
) -> None:
    auth = "Basic " + base64.b64encode(token.encode()).decode()
    ctype = "application/vnd.apache.arrow.stream" if arrow else "application/json"
    headers = {"Authorization": auth, "Content-Type": ctype}
    url = f"http://127.0.0.1:{port}"
    lock = threading.Lock()
    counter = [0]
    acks: list[int] = []
    lat: list[float] = []
    errors: list[str] = []

    def body() -> bytes:
        with lock:
            i = counter[0]
            counter[0] += batch
        if arrow:
            return arrow_trades(batch, i)
        return json.dumps({"events": [{"value": r} for r in trade_rows(batch, i)]}).encode()

    sessions = [httpx.Client(base_url=url, headers=headers, timeout=120) for _ in range(clients)]
    sessions[0].post("/v1/ingest/trades", content=body())  # first request: route set-up
    began = [0.0]

    def client(c: httpx.Client) -> None:
        while time.perf_counter() - began[0] < seconds:
            payload = body()
            t0 = time.perf_counter()
            r = c.post("/v1/ingest/trades", content=payload)
            t1 = time.perf_counter()
            with lock:
                if r.status_code != 200:
                    errors.append(r.text[:200])
                    continue
                acks.append(r.json()["accepted"])
                lat.append(t1 - t0)

    server = psutil.Process(proc.pid)
    cpu0 = sum(server.cpu_times()[:2])
    began[0] = time.perf_counter()
    threads = [threading.Thread(target=client, args=(c,)) for c in sessions]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall, cpu = time.perf_counter() - began[0], sum(server.cpu_times()[:2]) - cpu0
    for c in sessions:
        c.close()
    n = sum(acks)
    lat.sort()
    p50 = 1000 * lat[len(lat) // 2] if lat else float("nan")
    p99 = 1000 * lat[min(len(lat) - 1, int(len(lat) * 0.99))] if lat else float("nan")
    print(
        f"  {name}: {n / wall:,.0f} events/s, {n / cpu:,.0f} events/server-CPU-s, "
        f"{1e6 * cpu / max(n, 1):.1f} us CPU/event, ack p50 {p50:,.0f} / p99 {p99:,.0f} ms, "
        f"{len(lat)} requests, {len(errors)} failed ({load()})",
        flush=True,
    )


_CONSTANT: dict[int, dict[str, Any]] = {}


def arrow_trades(n: int, start: int) -> bytes:
    """``trade_rows(n, start)`` as an Arrow IPC stream body, cheaply: the columns every trade
    shares are built once per size (the client runs beside the server on the same cores)."""
    import pyarrow as pa

    from benchmarks.http_ingest import arrow_body

    if n not in _CONSTANT:
        shared = pa.ipc.open_stream(arrow_body(trade_rows(n, 0))).read_all()
        _CONSTANT[n] = {c: shared.column(c) for c in shared.column_names}
    cols = dict(_CONSTANT[n])
    rows = range(start, start + n)
    cols["trade_id"] = pa.chunked_array([pa.array([f"T-{i}" for i in rows])])
    cols["account_id"] = pa.chunked_array([pa.array([f"ACC-{i % ACCOUNTS}" for i in rows])])
    table = pa.table(cols)
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as w:
        w.write_table(table)
    out: bytes = sink.getvalue().to_pybytes()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--port", type=int, default=42082)
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--batch", type=int, default=500, help="events per request")
    ap.add_argument("--seconds", type=float, default=30)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--against", type=Path, help="an old source tree to alternate with")
    ap.add_argument("--arrow", action="store_true", help="this checkout also with Arrow bodies")
    args = ap.parse_args()
    trees = [("this checkout", ROOT, False)]
    if args.against:
        trees.insert(0, ("old tree", args.against.resolve(), False))
    if args.arrow:
        trees.append(("this checkout, Arrow bodies", ROOT, True))
    for _ in range(args.rounds):
        for name, tree, arrow in trees:
            run(name, tree, args.port, args.clients, args.batch, args.seconds, arrow)


if __name__ == "__main__":
    main()
