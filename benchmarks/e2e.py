"""One load harness, end to end (issue 13): ``make bench-e2e`` or ``python -m benchmarks.e2e``.

Runs, for a fixed time each, on a fresh data folder (SQLite log, ``synchronous=FULL``):
  1. baselines of the same run, on the very bytes the hub stores per event: raw SQLite append
     (WAL, ``synchronous=FULL``, one transaction per batch) and raw SHA-256;
  2. the file path: JSONL, CSV, Parquet and Avro files through ``publish_file`` (validation,
     quality rules, encoding, one append per batch), each format's 1,000-row warm-up file
     published first (a process's one-time costs: the Parquet decoder child's start, ~0.2
     CPU-s in the child and more wall on a loaded machine, was the quiet run's "Parquet at 0.41
     CPU s/s"; pyarrow's first pandas import); then the full path of each format (a fresh
     file, the ledger's follower running as ``hub serve`` runs it, the clock stopped once a
     last sync covers every record: validate, encode, log, ledger leaf);
  3. embedded publishing (``Publisher.publish``) at fixed rates (default 10k, 50k, 100k events/s)
     and as fast as it goes, from ``--publishers`` concurrent threads (default 8, like HTTP
     clients; a batch due every 5 ms), with the ``market_bars`` projection following the log:
     publish->acknowledged and publish->visible in the view per batch;
  4. HTTP (``hub serve`` in its own process, ``POST /v1/ingest/trades`` batches from client
     processes, ``benchmarks/e2e_http_client.py``: bodies made before the clock, one keep-alive
     connection each), fixed rate and as fast as it goes, per request size and body kind
     (``--http-shapes``: JSON, NDJSON, Arrow IPC): publish->acknowledged per request, the
     server's CPU and the clients' CPU.
Each run reports throughput, latency percentiles, CPU seconds per second and peak RSS, beside
the baselines, into ``<out>/report.md`` with SVG plots (throughput over time, latency CDF). The
output folder (default ``.bench/e2e``) is git-ignored.
  5. the Kafka footprint (``benchmarks/e2e_kafka.py``): kafka-producer-perf-test and raw
     librdkafka baselines, the hub publishing to Kafka at fixed rates and flat out with a view
     following, a py-spy profile; skipped loudly when this checkout's broker is not running
     (outside CI).
Publishing runs (embedded and Kafka) also measure publish->on the ledger with the ledger's
follower running as ``hub serve`` runs it (``Ledger.start``): the batch's leaves committed, and a
signed checkpoint that includes them committed, so readers of the store see it (its witness
copy follows; each checkpoint is read back from the store and its signature checked).
``--ledger-baseline`` adds, per embedded rate, a run with the ledger followed as before it was
woken by appends (polled every second) just before it.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa  # before chDB and regopy (STACK-NOTES)
import pyarrow.parquet as pq

from benchmarks.e2e_common import (
    ACCOUNTS,
    FOLLOW_MS,
    PUBLISHERS,
    ROOT,
    Run,
    buckets,
    embedded_run,
    pct,
    peak_rss_reset,
    proc_cpu,
    proc_peak_rss_mb,
    self_cpu,
    self_peak_rss_mb,
    trade,
)


def write_files(folder: Path, n: int, start: int) -> dict[str, Path]:
    """The same ``n`` trades as JSONL, CSV and Parquet files (Avro: ``write_avro``)."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = [trade(i) for i in range(start, start + n)]
    paths = {}
    p = folder / "trades.jsonl"
    p.write_text("".join(json.dumps(r) + "\n" for r in rows))
    paths["JSONL"] = p
    p = folder / "trades.csv"
    with p.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows({**r, "trade_id": "C" + r["trade_id"]} for r in rows)
    paths["CSV"] = p
    from decimal import Decimal

    p = folder / "trades.parquet"
    table = pa.table(
        {
            "trade_id": ["P" + r["trade_id"] for r in rows],
            "account_id": [r["account_id"] for r in rows],
            "instrument": [r["instrument"] for r in rows],
            "side": [r["side"] for r in rows],
            "quantity": pa.array([Decimal(r["quantity"]) for r in rows], pa.decimal128(18, 4)),
            "price": pa.array([Decimal(r["price"]) for r in rows], pa.decimal128(18, 8)),
            "currency": [r["currency"] for r in rows],
            "executed_at": pa.array([1_795_600_000_000_000 + i for i in range(n)], pa.int64()).cast(
                pa.timestamp("us", tz="UTC")
            ),
        }
    )
    pq.write_table(table, p)
    paths["Parquet"] = p
    return paths


def write_avro(path: Path, schema_text: str, parsed: Any, n: int, start: int) -> Path:
    import fastavro

    from core.avro import serde

    datums = [
        serde.from_json({**trade(i), "trade_id": f"A-{i}"}, parsed)
        for i in range(start, start + n)  # before session 24: range(n), whatever ``start``
    ]
    with path.open("wb") as f:
        fastavro.writer(f, fastavro.parse_schema(json.loads(schema_text)), datums)
    return path


# -- the runs ---------------------------------------------------------------------------------
def baselines(payloads: Sequence[bytes], seconds: float, folder: Path) -> list[Run]:
    """Raw SQLite append and raw SHA-256 of the bytes the hub stores per event."""
    db = folder / "raw-baseline.db"
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("CREATE TABLE r (id INTEGER PRIMARY KEY, data BLOB NOT NULL)")
    out = []
    for batch in (1_000,):
        run = Run(f"raw SQLite append, batches of {batch:,} (baseline)")
        acks: list[tuple[float, int]] = []
        peak_rss_reset()
        cpu0, began, i = self_cpu(), time.perf_counter(), 0
        while time.perf_counter() - began < seconds:
            chunk = [(payloads[(i + k) % len(payloads)],) for k in range(batch)]
            t0 = time.perf_counter()
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany("INSERT INTO r (data) VALUES (?)", chunk)
            conn.execute("COMMIT")
            t1 = time.perf_counter()
            run.ack_ms.append((t1 - t0) * 1000)
            acks.append((t1, batch))
            i += batch
        run.seconds = time.perf_counter() - began
        run.events = i
        run.cpu_per_s = (self_cpu() - cpu0) / run.seconds
        run.peak_rss_mb = self_peak_rss_mb()
        run.per_second = buckets(acks, began, run.seconds)
        out.append(run)
    conn.close()
    db.unlink()
    run = Run("raw SHA-256 of the same bytes (baseline)")
    cpu0, began, i = self_cpu(), time.perf_counter(), 0
    sha = hashlib.sha256
    while time.perf_counter() - began < seconds:
        for p in payloads:
            sha(p).digest()
        i += len(payloads)
    run.seconds = time.perf_counter() - began
    run.events = i
    run.cpu_per_s = (self_cpu() - cpu0) / run.seconds
    out.append(run)
    return out


def file_runs(h: Any, files: dict[str, Path], followed: bool = False) -> list[Run]:
    """One run per file. ``followed``: the full path (the ledger's follower runs during the
    publish, as ``hub serve`` runs it; the clock stops when a last sync covered every record;
    CPU s/s counts every thread of this process, the Parquet decoder child's not)."""
    from ingest.files import publish_file

    out = []
    for fmt, path in files.items():
        run = Run(
            f"file: {fmt} -> publish_file"
            + (" + ledger leaves (follower running: full path)" if followed else "")
        )
        acks: list[tuple[float, int]] = []

        def on_batch(n: int, r: Any, acks: list[tuple[float, int]] = acks) -> None:
            acks.append((time.perf_counter(), r.accepted))

        peak_rss_reset()
        if followed:
            h.ledger.start()
        cpu0, began = self_cpu(), time.perf_counter()
        try:
            result = publish_file(
                h.ingest,
                path,
                "trades",
                batch_size=10_000,
                on_batch=on_batch,
            )
            if followed:
                h.ledger.sync()  # the last records' leaves
        finally:
            if followed:
                h.ledger.stop()
        run.seconds = time.perf_counter() - began
        run.events = result.result.accepted
        run.note = f"{result.result.rejected} rejected" if result.result.rejected else ""
        run.cpu_per_s = (self_cpu() - cpu0) / run.seconds
        run.peak_rss_mb = self_peak_rss_mb()
        run.per_second = buckets(acks, began, run.seconds)
        out.append(run)
    return out


def http_runs(
    data: Path,
    token: str,
    port: int,
    seconds: float,
    targets: Sequence[int | None],
    start: int,
    shapes: Sequence[tuple[int, str]] = ((500, "envelope"),),
    clients: int = 4,
) -> list[Run]:
    """``hub serve`` in its own process; per target rate, per (events per request, body kind)
    of ``shapes``, ``clients`` client processes (``benchmarks.e2e_http_client``) post batches
    of trades. ``start`` is kept for the callers: the clients number their trades themselves
    (ids unique per client process and request)."""
    import httpx

    env = {**os.environ, "HUB_PROJECTION_AUTOSTART": "false"}
    hub_cli = str(Path(sys.executable).parent / "hub")
    server = subprocess.Popen(
        [hub_cli, "--data-dir", str(data), "serve", "--host", "127.0.0.1", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=(data.parent / "serve.log").open("w"),
    )
    out = []
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"hub serve did not start; see {data.parent / 'serve.log'}")
            time.sleep(0.2)
        first = 0
        for target in targets:
            for batch, kind in shapes:
                out.append(
                    http_run(url, token, target, seconds, server.pid, batch, kind, clients, first)
                )
                first += clients
    finally:
        server.terminate()
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()
    return out


def http_run(
    url: str,
    token: str,
    target: int | None,
    seconds: float,
    pid: int,
    batch: int,
    kind: str = "json",
    clients: int = 4,
    first: int = 0,
) -> Run:
    """One HTTP row: ``clients`` client processes numbered from ``first`` (each client number
    once per server: its trade ids are its own), started together once each has made its body
    and sent a warm-up request. Server side: the ``hub serve`` process's CPU (all threads) over
    the run; client side: events acknowledged per wall second, ack latency per request, and the
    client processes' own CPU (in the note)."""
    label = "as fast as it goes" if target is None else f"{target:,}/s"
    run = Run(f"HTTP POST /v1/ingest, {kind}, {batch:,} per request, {label}", target=target)
    interval = 0.0 if target is None else batch * clients / target
    env = {**os.environ, "HUB_BENCH_TOKEN": token}
    cmd = [sys.executable, "-m", "benchmarks.e2e_http_client", url, kind, str(batch)]
    procs = [
        subprocess.Popen(
            [*cmd, str(seconds), str(interval), str(first + k)],
            cwd=ROOT,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for k in range(clients)
    ]
    try:
        for p in procs:  # each has its body and has sent its warm-up request
            assert p.stdout is not None and p.stdin is not None
            line = p.stdout.readline().strip()
            if line != "ready":
                raise SystemExit(f"HTTP client exited before its run (said {line!r})")
        cpu0, began, wall0 = proc_cpu(pid), time.perf_counter(), time.time()
        for p in procs:
            assert p.stdin is not None
            p.stdin.write("go\n")
            p.stdin.flush()
        results = []
        for p in procs:
            assert p.stdout is not None
            results.append(json.loads(p.stdout.readline()))
        run.seconds = time.perf_counter() - began
        run.cpu_per_s = (proc_cpu(pid) - cpu0) / run.seconds
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
            p.wait()
    acks = [(t - wall0 + began, n) for r in results for t, n, _ in r["done"]]
    run.ack_ms = [ms for r in results for _, _, ms in r["done"]]
    run.events = sum(n for _, n in acks)
    run.peak_rss_mb = proc_peak_rss_mb(pid)
    run.per_second = buckets(acks, began, run.seconds)
    failures = sum(int(r["failed"]) for r in results)
    client_cpu = sum(float(r["cpu"]) for r in results) / run.seconds
    run.note = (
        f"server process; {clients} client processes x {batch:,} events/request ({kind}), "
        f"clients {client_cpu:.2f} CPU s/s" + (f"; {failures} failed requests" if failures else "")
    )
    return run


# -- the report -------------------------------------------------------------------------------
COLOURS = (
    "#1f77b4",
    "#d62728",
    "#2ca02c",
    "#9467bd",
    "#ff7f0e",
    "#8c564b",
    "#17becf",
    "#7f7f7f",
    "#bcbd22",
    "#e377c2",
)


def svg_lines(
    title: str, series: Sequence[tuple[str, Sequence[tuple[float, float]]]], xl: str, yl: str
) -> str:
    """A line chart as SVG text (no plotting library in the lock)."""
    w, h, left, bottom, top, right = 760, 380, 70, 50, 30, 230
    pts = [p for _, s in series for p in s]
    if not pts:
        return ""
    x_max = max(x for x, _ in pts) or 1.0
    y_max = max(y for _, y in pts) * 1.05 or 1.0
    sx: Callable[[float], float] = lambda x: left + x / x_max * (w - left - right)  # noqa: E731
    sy: Callable[[float], float] = lambda y: h - bottom - y / y_max * (h - top - bottom)  # noqa: E731
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" '
        'font-family="sans-serif" font-size="11">',
        f'<text x="{w / 2 - right / 2}" y="18" text-anchor="middle" font-size="13">{title}</text>',
        f'<line x1="{left}" y1="{h - bottom}" x2="{w - right}" y2="{h - bottom}" stroke="#000"/>',
        f'<line x1="{left}" y1="{top}" x2="{left}" y2="{h - bottom}" stroke="#000"/>',
        f'<text x="{(w - right + left) / 2}" y="{h - 12}" text-anchor="middle">{xl}</text>',
        f'<text x="14" y="{h / 2}" transform="rotate(-90 14 {h / 2})" '
        f'text-anchor="middle">{yl}</text>',
    ]
    for k in range(5):
        yv, xv = y_max * k / 4, x_max * k / 4
        parts.append(f'<text x="{left - 6}" y="{sy(yv) + 4}" text-anchor="end">{yv:,.4g}</text>')
        parts.append(
            f'<text x="{sx(xv)}" y="{h - bottom + 16}" text-anchor="middle">{xv:.4g}</text>'
        )
    for n, (name, s) in enumerate(series):
        colour = COLOURS[n % len(COLOURS)]
        path = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in s)
        parts.append(
            f'<polyline fill="none" stroke="{colour}" stroke-width="1.5" points="{path}"/>'
        )
        ly = top + 16 * n
        parts.append(f'<rect x="{w - right + 10}" y="{ly}" width="12" height="3" fill="{colour}"/>')
        parts.append(f'<text x="{w - right + 26}" y="{ly + 5}">{name[:34]}</text>')
    parts.append("</svg>")
    return "\n".join(parts)


def cdf(values: Sequence[float]) -> list[tuple[float, float]]:
    s = sorted(values)
    step = max(1, len(s) // 400)
    return [(v, (i + 1) / len(s)) for i, v in enumerate(s)][::step] + ([(s[-1], 1.0)] if s else [])


def target_cell(r: Run) -> str:
    """The target rate and the share of it achieved (an honest fixed-rate run)."""
    if r.target is None:
        return "max"
    return f"{r.target:,} ({r.rate / r.target:.0%} achieved)"


def table_row(r: Run, baseline: Run | None, tool: Run | None) -> str:
    def p(values: list[float], key: str, q: float) -> str:
        if values:
            return f"{pct(values, q):.1f}"
        return f"{r.reported[key]:.1f}" if key in r.reported else ""

    vs = f"{r.rate / baseline.rate:.3f}x" if baseline is not None and baseline.rate else ""
    per_cpu = ""
    if baseline is not None and baseline.cpu_per_s and r.cpu_per_s:
        per_cpu = f"{(r.rate / r.cpu_per_s) / (baseline.rate / baseline.cpu_per_s):.4f}x"
    vt = f"{r.rate / tool.rate:.3f}x" if tool is not None and tool.rate else ""
    return (
        f"| {r.name} | {target_cell(r)} | {r.rate:,.0f} | {vs} | {vt} "
        f"| {p(r.ack_ms, 'ack p50', 0.5)} | {p(r.ack_ms, 'ack p99', 0.99)} "
        f"| {ledger_cells(r)} "
        f"| {p(r.visible_ms, 'visible p50', 0.5)} | {p(r.visible_ms, 'visible p99', 0.99)} "
        f"| {r.cpu_per_s:.2f} | {r.rate / r.cpu_per_s if r.cpu_per_s else 0:,.0f} | {per_cpu} "
        f"| {r.peak_rss_mb:,.0f} | {r.note} |"
    )


def ledger_cells(r: Run) -> str:
    """leaf p50, p99 | signed checkpoint p50, p95, p99 (ms), blank without the ledger."""
    cells = [(r.leaf_ms, 0.5), (r.leaf_ms, 0.99)]
    cells += [(r.checkpoint_ms, q) for q in (0.5, 0.95, 0.99)]
    return " | ".join(f"{pct(v, q):.1f}" if v else "" for v, q in cells)


LEDGER_HEADER = (
    "| leaf p50 ms | leaf p99 ms | checkpoint p50 ms | checkpoint p95 ms | checkpoint p99 ms "
)
LEDGER_RULE = "---:|---:|---:|---:|---:|"


def kafka_section(
    out: Path, base: list[Run], runs: list[Run], profile: str, skipped: str
) -> list[str]:
    """The Kafka footprint beside its baselines (``benchmarks.e2e_kafka``)."""
    lines = ["## Kafka footprint", ""]
    if skipped:
        return [*lines, f"**{skipped}**", ""]
    raw = next((r for r in base if r.name.endswith("(baseline)")), None)
    tool = next((r for r in base if r.name.startswith("kafka-producer-perf-test")), None)
    lines += [
        "One broker (`infra/kafka.sh`), one partition per topic. Baselines at their best: "
        "idempotent, `acks=all`, `linger.ms=5`, `batch.size` 1 MiB, no compression (the hub "
        "compresses nothing), one flush at the end; the hub publishes batches of `target/200` "
        "events every 5 ms (or back to back), from N concurrent publishers (several keep "
        "batches in flight; one waits for each acknowledgement), while `market_bars` and the "
        "ledger follow the topic from Kafka (rows marked publish only: nothing follows). "
        "Raw librdkafka ack latency is sampled on every 1,000th record; the perf tool's "
        "percentiles are its own (per record). Visible: publish -> the view's checkpoint "
        "covers the batch. On a shared machine a process gets a varying share of a core, so "
        "the ratio of events per CPU second (all threads of the process: librdkafka's too) is "
        "the steadier comparison; the JVM tool's CPU and memory are its own process's; the "
        "Python runs' peak RSS is this harness process's (it also holds the hub's modules).",
        "",
        "| run | target/s | events/s | vs raw librdkafka | vs kafka-producer-perf-test "
        "| ack p50 ms | ack p99 ms " + LEDGER_HEADER + "| visible p50 ms | visible p99 ms "
        "| CPU s/s | events per CPU s | per CPU s vs raw librdkafka | peak RSS MiB | note |",
        "|---|---:|---:|---:|---:|---:|---:|" + LEDGER_RULE + "---:|---:|---:|---:|---:|---:|---|",
    ]
    lines += [table_row(r, raw, tool) for r in [*base, *runs]]
    lines += [
        "",
        "![Kafka throughput](kafka_throughput.svg)",
        "",
        "![Kafka latency](kafka_latency_cdf.svg)",
        "",
    ]

    def short(name: str) -> str:  # legends hold ~34 characters
        return name.replace("raw librdkafka produce, ", "librdkafka ").replace(
            "hub publish -> Kafka, ", "hub->Kafka "
        )

    thr = [
        (short(r.name), [(i + 0.5, float(n)) for i, n in enumerate(r.per_second)])
        for r in [*base, *runs]
        if r.per_second
    ]
    (out / "kafka_throughput.svg").write_text(
        svg_lines("Kafka: throughput over time", thr, "seconds into the run", "events / s")
    )
    lat = [(f"ack: {short(r.name)}", cdf(r.ack_ms)) for r in [*base, *runs] if r.ack_ms]
    lat += [(f"visible: {short(r.name)}", cdf(r.visible_ms)) for r in runs if r.visible_ms]
    lat += [(f"checkpoint: {short(r.name)}", cdf(r.checkpoint_ms)) for r in runs if r.checkpoint_ms]
    (out / "kafka_latency_cdf.svg").write_text(
        svg_lines("Kafka: latency CDF", lat, "milliseconds", "fraction")
    )
    if profile:
        lines += [
            "### Profile of hub -> Kafka, as fast as it goes (py-spy)",
            "",
            "```",
            profile,
            "```",
            "",
        ]
    return lines


def write_report(
    out: Path,
    runs: list[Run],
    base: list[Run],
    meta: dict[str, Any],
    kafka: tuple[list[Run], list[Run], str, str] | None = None,
) -> Path:
    sql, sha = base[0], base[1]
    lines = [
        "# End-to-end load report",
        "",
        f"{meta['when']}, {meta['cpus']} CPUs, load average at start {meta['load']}; "
        f"{meta['seconds']:g} s per run; SQLite `synchronous=FULL`. Figures are ratios to the "
        "baselines measured in this same run (machines here are shared and noisy).",
        "",
        "| run | target/s | events/s | vs raw SQLite | vs raw SHA-256 | ack p50 ms | ack p99 ms "
        + LEDGER_HEADER
        + "| visible p50 ms | visible p99 ms | CPU s/s | events per CPU s | peak RSS MiB | note |",
        "|---|---:|---:|---:|---:|---:|---:|" + LEDGER_RULE + "---:|---:|---:|---:|---:|---|",
    ]
    for r in [*base, *runs]:
        vis = (
            (f"{pct(r.visible_ms, 0.5):.1f}", f"{pct(r.visible_ms, 0.99):.1f}")
            if r.visible_ms
            else ("", "")
        )
        ack = (f"{pct(r.ack_ms, 0.5):.2f}", f"{pct(r.ack_ms, 0.99):.2f}") if r.ack_ms else ("", "")
        lines.append(
            f"| {r.name} | {target_cell(r)} | {r.rate:,.0f} | {r.rate / sql.rate:.3f}x "
            f"| {r.rate / sha.rate:.4f}x "
            f"| {ack[0]} | {ack[1]} | {ledger_cells(r)} | {vis[0]} | {vis[1]} | {r.cpu_per_s:.2f} "
            f"| {r.rate / r.cpu_per_s if r.cpu_per_s else 0:,.0f} "
            f"| {r.peak_rss_mb:,.0f} | {r.note} |"
        )
    lines += [
        "",
        "ack: publish -> acknowledged (per batch or request; a batch is acknowledged once "
        "durable). leaf: publish -> the ledger transaction holding the batch's leaves "
        "committed; checkpoint: publish -> a signed checkpoint including them committed (its "
        "witness copy follows; the ledger's follower as `hub serve` runs it, with "
        f"HUB_CHECKPOINT_EVERY_MS={FOLLOW_MS} (default 1000); blank for the file "
        "and HTTP runs). File runs: each format's warm-up file is published before the "
        "clock; `publish_file` rows are the publish alone (validate, encode, log: no ledger "
        "leaf); `+ ledger leaves` rows are the full path (a fresh file, the ledger's follower "
        "running, the clock stopped once a last sync covered every record). "
        "visible: publish -> the `market_bars` view's checkpoint covers the batch. "
        "CPU s/s: CPU seconds per wall second of the process that did the work (the hub "
        "server's process for HTTP); on a shared machine a process may get far less than a "
        "core, so events per CPU second compares runs that got different shares. Peak RSS is "
        "the process's high-water mark during that run (reset before each run; for HTTP, the "
        "server process's since it started).",
        "",
        "![throughput](throughput.svg)",
        "",
        "![latency](latency_cdf.svg)",
        "",
    ]
    if kafka is not None:
        lines += kafka_section(out, *kafka)
    thr = [
        (r.name, [(i + 0.5, float(n)) for i, n in enumerate(r.per_second)])
        for r in runs
        if r.per_second
    ]
    (out / "throughput.svg").write_text(
        svg_lines("Throughput over time", thr, "seconds into the run", "events acknowledged / s")
    )
    lat = [(f"ack: {r.name}", cdf(r.ack_ms)) for r in runs if r.ack_ms and r.target is not None]
    lat += [(f"visible: {r.name}", cdf(r.visible_ms)) for r in runs if r.visible_ms]
    lat += [(f"checkpoint: {r.name}", cdf(r.checkpoint_ms)) for r in runs if r.checkpoint_ms]
    (out / "latency_cdf.svg").write_text(
        svg_lines("Latency CDF", lat, "milliseconds", "fraction of batches")
    )
    path = out / "report.md"
    path.write_text("\n".join(lines))
    every = [*base, *runs, *(kafka[0] + kafka[1] if kafka else [])]
    (out / "runs.json").write_text(json.dumps([r.__dict__ for r in every], default=str, indent=1))
    return path


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--out", default=".bench/e2e", help="report folder (git-ignored)")
    ap.add_argument("--seconds", type=float, default=10.0, help="length of each run")
    ap.add_argument("--rates", default="10000,50000,100000,max", help="embedded target rates")
    ap.add_argument(
        "--publishers", type=int, default=PUBLISHERS, help="concurrent embedded publishers"
    )
    ap.add_argument("--http-rates", default="10000,max", help="HTTP target rates")
    ap.add_argument(
        "--http-shapes",
        default="500:json,10000:json,10000:ndjson,10000:arrow",
        help="HTTP requests, comma list of EVENTS:KIND (KIND: json, envelope, ndjson, arrow); "
        "each at every HTTP rate",
    )
    ap.add_argument("--http-clients", type=int, default=4, help="HTTP client processes")
    ap.add_argument("--file-rows", type=int, default=100_000, help="rows per file format")
    ap.add_argument("--port", type=int, default=int(os.environ.get("HUB_BENCH_PORT", "27080")))
    ap.add_argument("--kafka-rates", default="10000,50000,100000,max", help="hub -> Kafka rates")
    ap.add_argument(
        "--kafka-publishers",
        default=os.environ.get("E2E_KAFKA_PUBLISHERS", "1,8"),
        help="concurrent hub -> Kafka publishers, comma list (each rate runs with each)",
    )
    ap.add_argument(
        "--no-publish-only", action="store_true", help="no hub -> Kafka run without followers"
    )
    ap.add_argument("--no-profile", action="store_true", help="no py-spy profile of hub -> Kafka")
    ap.add_argument("--skip", default="", help="comma list of: files,embedded,http,kafka")
    ap.add_argument(
        "--ledger-baseline",
        action="store_true",
        help="per embedded rate, also a run with the ledger polled every second (as before)",
    )
    args = ap.parse_args(argv)
    rates = [None if r == "max" else int(r) for r in args.rates.split(",") if r]
    http_rates = [None if r == "max" else int(r) for r in args.http_rates.split(",") if r]
    http_shapes = [(int(n), k) for n, k in (x.split(":") for x in args.http_shapes.split(",") if x)]
    kafka_rates = [None if r == "max" else int(r) for r in args.kafka_rates.split(",") if r]
    skip = set(args.skip.split(","))
    out = Path(args.out).resolve()
    if out.exists():
        shutil.rmtree(out)
    data = out / "data"
    out.mkdir(parents=True)

    from hub.bootstrap import bootstrap
    from hub.cli import init_admin_key
    from hub.settings import load_settings
    from tests.service.accounts import open_accounts

    meta = {
        "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "cpus": os.cpu_count(),
        "load": ", ".join(f"{x:.1f}" for x in os.getloadavg()),
        "seconds": args.seconds,
    }
    h = bootstrap(load_settings(environ={}, data_dir=data, projection_autostart=False))
    runs: list[Run] = []
    try:
        token = init_admin_key(h, out / "admin.key")
        open_accounts(h, [f"ACC-{i}" for i in range(ACCOUNTS)])
        from core.events import OutgoingEvent

        sample = h.publisher.prepare(
            "trades", [OutgoingEvent(value=trade(i)) for i in range(2_000)], "e2e"
        )
        payloads = [
            (r.value or b"") + (r.key or b"") + b"".join(k.encode() + v for k, v in r.headers)
            for r in sample
        ]
        print(f"baselines ({args.seconds:g} s each)...", flush=True)
        base = baselines(payloads, args.seconds, out)
        start = 10**7
        if "files" not in skip:
            print("file path...", flush=True)
            sv = h.registry.get_version("trades-value", "latest")
            sets = []
            for name, rows, first in (
                ("warm", 1_000, start + 3 * args.file_rows),
                ("files", args.file_rows, start),
                ("full", args.file_rows, start + args.file_rows),
            ):
                made = write_files(out / name, rows, first)
                made["Avro"] = write_avro(
                    out / name / "trades.avro",
                    sv.schema.text,
                    h.registry.parsed(sv.id).parsed,
                    rows,
                    first,
                )
                sets.append(made)
            file_runs(h, sets[0])  # one-time costs, before the clock (see the docstring)
            h.ledger.sync()
            runs += file_runs(h, sets[1])
            h.ledger.sync()  # the publish-only runs' leaves, before the full-path runs
            runs += file_runs(h, sets[2], followed=True)
        start = 2 * 10**7
        if "embedded" not in skip:
            for target in rates:
                modes = ("polled", "woken") if args.ledger_baseline else ("woken",)
                for mode in modes:  # alternating: the baseline beside its run
                    print(f"embedded publish at {target or 'max'} (ledger {mode})...", flush=True)
                    runs.append(
                        embedded_run(
                            h, target, args.seconds, start, ledger=mode, publishers=args.publishers
                        )
                    )
                    start += 10**7
    finally:
        h.close()
    if "http" not in skip:
        print("HTTP...", flush=True)
        runs += http_runs(
            data,
            token,
            args.port,
            args.seconds,
            http_rates,
            start,
            http_shapes,
            args.http_clients,
        )
        start += 10**7
    kafka = None
    if "kafka" not in skip:
        from benchmarks.e2e_kafka import run_all

        kafka = run_all(
            out,
            args.seconds,
            kafka_rates,
            start,
            not args.no_profile,
            [int(n) for n in args.kafka_publishers.split(",") if n.strip()],
            not args.no_publish_only,
        )
    path = write_report(out, runs, base, meta, kafka)
    print("\n".join(x for x in path.read_text().splitlines() if not x.startswith("![")))
    print(f"report: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
