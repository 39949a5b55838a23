"""Replay into the analytics views (issue 13: >= 1,000,000 events/s), beside its same-run floors:
``python -m benchmarks.replay --events 1000000``.

On a fresh embedded data folder the log gets N trades and N payments (10,000 distinct encoded
events repeated, as ``benchmarks/test_bench_projections.py`` does; decode cost is the same). Then,
in this order, each timed on wall clock and on this process's CPU (``time.process_time``: all its
threads, chDB's included), since a shared machine gives a process a varying share of a core:

  1. raw log read (baseline): every partition of the topic read through ``EventLog.read`` in
     batches of ``--batch`` records, nothing else; then the same through ``read_columns`` (what
     the runner read in sessions 9-12) and ``read_encoded`` (the stored batches, checked and
     inflated, not decoded: what the runner's SQL path reads since session 13);
  2. column-wise decode alone (baseline): the same batches (read beforehand, untimed) through
     ``decode_values`` + ``envelope`` into Arrow; then raw chDB insert (baseline): those Arrow
     tables (decoded beforehand, untimed) inserted as they are into a scratch MergeTree table,
     one INSERT per batch (the store's own Arrow insert), i.e. what storing every event costs
     where the views store a few aggregate rows;
  3. replay: the projection's runner catches a scratch target up from offset 0 (the first step of
     ``hub projection rebuild``: read, decode, fold, insert, checkpoint per batch), then the
     scratch views are dropped; first with every fold level in chDB (``sqlfolds.ARROW_PARTIALS``
     off: the runner of session 13, the same-run baseline of the Arrow partials), then as the
     hub runs it, then in chDB again (the two baseline runs bracket the new one);
  4. ``ProjectionService.rebuild`` as the CLI runs it (copy, catch-up, swap, digests), once the
     live views exist.

Projections: ``market_bars`` (trades) and ``payment_aggregates`` (payments), both chDB views folded
column-wise. Output: a Markdown table on stdout (and ``--out`` as JSON), with the load average at
start and end.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa  # before chDB (STACK-NOTES)

from benchmarks.test_bench_projections import fill, payment_events, trade_events
from core.ports.views import Target
from hub.bootstrap import bootstrap
from hub.settings import load_settings
from projections import sqlfolds
from projections.catalog import by_name
from projections.columnar import decode_values, envelope

CASES = (
    ("market_bars", "trades", trade_events),
    ("payment_aggregates", "payments", payment_events),
)


def timed(fn: Callable[[], int]) -> tuple[int, float, float]:
    """(events, wall seconds, CPU seconds of this process) of ``fn``."""
    c0, t0 = time.process_time(), time.perf_counter()
    n = fn()
    return n, time.perf_counter() - t0, time.process_time() - c0


def read_all(h: Any, topic: str, batch: int) -> list[list[Any]]:
    out = []
    for p in range(h.log.topic(topic).partitions):
        off = 0
        while got := h.log.read(topic, p, off, batch):
            off = got[-1].offset + 1
            out.append(got)
    return out


def read_all_columns(h: Any, topic: str, batch: int) -> int:
    n = 0
    for p in range(h.log.topic(topic).partitions):
        off = 0
        while len(got := h.log.read_columns(topic, p, off, batch)):
            off = got.offsets[-1] + 1
            n += len(got)
    return n


def read_all_encoded(h: Any, topic: str, batch: int) -> int:
    n = 0
    for p in range(h.log.topic(topic).partitions):
        off = 0
        while (got := h.log.read_encoded(topic, p, off, batch)) is not None and len(got):
            off = got.next_offset()
            n += len(got)
    return n


_CH_TYPES = {
    pa.int64(): "Int64",
    pa.string(): "String",
    pa.float64(): "Float64",
    pa.bool_(): "Bool",
    pa.binary(): "String",
}


def ch_type(t: pa.DataType) -> str:
    if pa.types.is_decimal(t):
        return f"Decimal({t.precision}, {t.scale})"
    return _CH_TYPES[t]


def raw_insert(store: Any, tables: list[pa.Table]) -> int:
    """Each table in one INSERT into a fresh MergeTree table (the store's Arrow insert)."""
    cols = ", ".join(f"`{f.name}` {ch_type(f.type)}" for f in tables[0].schema)
    store._run("DROP TABLE IF EXISTS bench_raw_insert")
    store._run(f"CREATE TABLE bench_raw_insert ({cols}) ENGINE = MergeTree ORDER BY tuple()")
    try:
        for t in tables:
            store._insert("bench_raw_insert", t.column_names, t)
    finally:
        store._run("DROP TABLE IF EXISTS bench_raw_insert")
    return sum(t.num_rows for t in tables)


def run(events: int, batch: int, data: Path, only: set[str]) -> dict[str, Any]:
    h = bootstrap(
        load_settings(
            environ={},
            data_dir=data,
            sqlite_synchronous="NORMAL",
            projection_batch_records=batch,
            projection_autostart=False,
        )
    )
    rows: list[dict[str, Any]] = []
    try:
        for name, topic, make in CASES:
            if name in only:
                fill(h, topic, events, make)
        ps = h.projections
        schema = ps.decoder.schema
        load_start = os.getloadavg()
        for name, topic, _ in CASES:
            if name not in only:
                continue
            n, wall, cpu = timed(lambda topic=topic: sum(map(len, read_all(h, topic, batch))))
            rows.append(dict(case=name, run="raw log read (baseline)", n=n, wall=wall, cpu=cpu))
            if hasattr(h.log, "read_columns"):
                n, wall, cpu = timed(lambda topic=topic: read_all_columns(h, topic, batch))
                rows.append(
                    dict(case=name, run="log read as columns (floor)", n=n, wall=wall, cpu=cpu)
                )
            if h.log.read_encoded(topic, 0, 0, 1) is not None:
                n, wall, cpu = timed(lambda topic=topic: read_all_encoded(h, topic, batch))
                rows.append(
                    dict(case=name, run="log read encoded (floor)", n=n, wall=wall, cpu=cpu)
                )
            batches = read_all(h, topic, batch)

            def decode(batches: list[list[Any]] = batches) -> int:
                for recs in batches:
                    _, ids = decode_values([r.value for r in recs], lambda i: schema(i)[0])
                    envelope(recs, ids, lambda i: schema(i)[1])
                return sum(map(len, batches))

            n, wall, cpu = timed(decode)
            rows.append(
                dict(case=name, run="column-wise decode alone (baseline)", n=n, wall=wall, cpu=cpu)
            )
            proj = by_name(name)
            store = ps.store(proj.store)
            decoded = []
            for recs in batches:
                fields, ids = decode_values([r.value for r in recs], lambda i: schema(i)[0])
                tenants, types = envelope(recs, ids, lambda i: schema(i)[1])
                decoded.append(
                    fields.append_column("tenant", pa.array(tenants, pa.string())).append_column(
                        "event_type", pa.array(types, pa.string())
                    )
                )
            del batches
            if hasattr(store, "_insert"):
                n, wall, cpu = timed(
                    lambda store=store, decoded=decoded: raw_insert(store, decoded)
                )
                rows.append(
                    dict(case=name, run="raw chDB insert (baseline)", n=n, wall=wall, cpu=cpu)
                )
            del decoded
            target = Target(name, "bench_replay")

            def replay(proj: Any = proj, store: Any = store, target: Target = target) -> int:
                store.drop(target, proj.tables)
                runner = ps._new_runner(proj, target)
                runner.open()
                done = runner.catch_up()
                assert runner.columnar_batches > 0, "the SQL path did not run"
                return done

            before = "replay, folds in chDB (baseline)"
            for run_name, arrow in (
                (before, False),
                ("replay (runner catch-up)", True),
                (before, False),
            ):
                sqlfolds.ARROW_PARTIALS = arrow
                try:
                    n, wall, cpu = timed(replay)
                finally:
                    sqlfolds.ARROW_PARTIALS = True
                store.drop(target, proj.tables)
                rows.append(dict(case=name, run=run_name, n=n, wall=wall, cpu=cpu))
            ps.run([name])
            n, wall, cpu = timed(lambda name=name: int(ps.rebuild(name)["replayed"]))
            rows.append(dict(case=name, run="hub projection rebuild", n=n, wall=wall, cpu=cpu))
        load_end = os.getloadavg()
    finally:
        h.close()
    return {
        "events": events,
        "batch": batch,
        "cpus": os.cpu_count(),
        "load_start": load_start,
        "load_end": load_end,
        "rows": rows,
        "at": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }


def render(res: dict[str, Any]) -> str:
    ls, le = res["load_start"], res["load_end"]
    lines = [
        f"{res['at']}, {res['cpus']} CPUs, load average at start {ls[0]:.1f}, {ls[1]:.1f}, "
        f"{ls[2]:.1f}, at end {le[0]:.1f}, {le[1]:.1f}, {le[2]:.1f}; {res['events']:,} events "
        f"per topic, batches of {res['batch']:,}.",
        "",
        "| projection | run | events | wall s | events/s | vs raw read | vs decode | CPU s "
        "| events per CPU s | per CPU s vs raw read | per CPU s vs decode |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    base: dict[tuple[str, str], dict[str, float]] = {}
    chdb: dict[str, list[dict[str, float]]] = {}
    for r in res["rows"]:
        rate = r["n"] / r["wall"]
        per_cpu = r["n"] / r["cpu"] if r["cpu"] else float("inf")
        r["rate"], r["per_cpu"] = rate, per_cpu
        if r["run"] == "raw log read (baseline)":
            base[(r["case"], "raw")] = r
        elif r["run"] == "column-wise decode alone (baseline)":
            base[(r["case"], "decode")] = r
        elif r["run"] == "replay, folds in chDB (baseline)":
            chdb.setdefault(r["case"], []).append(r)
    for r in res["rows"]:
        raw, dec = base.get((r["case"], "raw")), base.get((r["case"], "decode"))

        def q(a: float, b: dict[str, float] | None, k: str) -> str:
            return f"{a / b[k]:.3f}x" if b else ""

        lines.append(
            f"| {r['case']} | {r['run']} | {r['n']:,} | {r['wall']:.2f} | {r['rate']:,.0f} | "
            f"{q(r['rate'], raw, 'rate')} | {q(r['rate'], dec, 'rate')} | {r['cpu']:.2f} | "
            f"{r['per_cpu']:,.0f} | {q(r['per_cpu'], raw, 'per_cpu')} | "
            f"{q(r['per_cpu'], dec, 'per_cpu')} |"
        )
    lines += [
        "",
        "| projection | replay per CPU s | folds in chDB, runs before and after | ratio |",
    ]
    lines.append("|---|---:|---:|---:|")
    for r in res["rows"]:
        runs = chdb.get(r["case"])
        if r["run"] == "replay (runner catch-up)" and runs:
            mean = sum(b["n"] / b["cpu"] for b in runs) / len(runs)
            around = " / ".join(f"{b['n'] / b['cpu']:,.0f}" for b in runs)
            lines.append(
                f"| {r['case']} | {r['n'] / r['cpu']:,.0f} | {around} | "
                f"{r['n'] / r['cpu'] / mean:.2f}x |"
            )
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--batch", type=int, default=100_000)
    ap.add_argument("--only", default="market_bars,payment_aggregates")
    ap.add_argument("--data", type=Path, default=None, help="data folder (default: a temp one)")
    ap.add_argument("--out", type=Path, default=None, help="also write the figures as JSON")
    a = ap.parse_args()
    only = set(a.only.split(","))
    if a.data is not None:
        res = run(a.events, a.batch, a.data, only)
    else:
        with tempfile.TemporaryDirectory(prefix="hub-replay-") as d:
            res = run(a.events, a.batch, Path(d), only)
    print(render(res))
    if a.out is not None:
        a.out.parent.mkdir(parents=True, exist_ok=True)
        a.out.write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
