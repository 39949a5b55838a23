"""How cost grows with the log (issue 13, item 4): ``make bench-scale`` or
``python -m benchmarks.scale --events 1000000,10000000``.

For each size N, on a fresh embedded data folder (SQLite log, ``synchronous=FULL``):
  1. ingest N trades from one Parquet file (``publish_file``: validation, quality rules, Avro,
     one append per batch);
  2. ``Ledger.sync`` (one Merkle leaf per event, a signed checkpoint);
  3. bytes stored per event: the log's and the ledger's files (with their WAL) over N, beside
     the raw Avro bytes of the same events (the binary datum, no framing; and in an Avro
     container file, the smallest self-describing form);
  4. inclusion proofs at tree size N for 200 random leaves (p50, p99);
  5. ``hub ledger verify --full`` (the whole log re-read and re-hashed);
  6. replay: the ``market_bars`` view built from the log, then ``rebuild`` (copy and swap);
  7. ``hub ledger verify`` as it runs by default, incremental: the full run's checkpoint
     remembered (``save_verified``), ``--increment`` more events ingested and synced, then
     verified from that checkpoint (the same increment at every size: its cost per new entry
     must not grow with N);
Each phase reports its time, its cost per event (microseconds), the process's CPU seconds and
its own peak RSS (reset before each phase). Cost per event should stay flat as N grows: the
report prints each size's per-event cost as a ratio to the smallest size of the same run.

1M and 10M run here; 100M (``--events 100000000``) runs outside CI by hand: hours on two
cores, and the disk the last size measured per event times 100M (refused above
``--max-disk-gb``, default 25; the first size of a run is estimated at ``--bytes-per-event``).
Every ``--progress`` seconds a line says the phase, its time and CPU, events ingested, RSS and
the data folder's bytes. Output: ``<out>/scale.md`` (a summary per size, then the storage and
per-phase tables), ``scale.csv`` (one row per size and phase) and ``scale.json`` (default
``.bench/scale``, git-ignored). The ledger alone to 100M leaves: ``benchmarks.ledger_proof_scale``.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import io
import json
import os
import random
import shutil
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa  # before chDB and regopy (STACK-NOTES)
import pyarrow.parquet as pq

from benchmarks.e2e_common import (
    bulk_hub,
    peak_rss_reset,
    self_cpu,
    self_peak_rss_mb,
    trade,
)

CHUNK = 500_000


@dataclass
class Phase:
    name: str
    seconds: float
    events: int
    cpu_s: float
    peak_rss_mb: float
    extra: dict[str, Any] = field(default_factory=dict)
    rss_start_mb: float = float("nan")  # what the phase found: its growth is peak minus this
    # The resident memory split (``MemorySampler``): anonymous (heaps, Arrow pools) and mapped
    # files (SQLite's mmap of the log and the ledger, up to 2 GiB per connection), each the
    # highest sample of the phase; the kernel keeps a high-water mark of their sum only.
    peak_anon_mb: float = float("nan")
    peak_file_mb: float = float("nan")

    @property
    def us_per_event(self) -> float:
        return self.seconds / self.events * 1e6 if self.events else float("nan")


class Progress:
    """A background line every ``every`` seconds while a phase runs: its name, wall and CPU
    seconds, the events ingested so far (``count``), RSS and the bytes under ``folder``."""

    def __init__(self, folder: Path, every: float) -> None:
        self.folder, self.every = folder, every
        self.name, self.count = "", 0
        self._t0 = self._c0 = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, name: str) -> None:
        self.name, self._t0, self._c0 = name, time.perf_counter(), self_cpu()
        if self.every > 0 and self._thread is None:
            self._thread = threading.Thread(target=self._run, name="scale-progress", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            size = folder_bytes(self.folder)
            print(
                f"    .. {self.name}: {time.perf_counter() - self._t0:,.0f} s, CPU "
                f"{self_cpu() - self._c0:,.0f} s, ingested {self.count:,}, RSS "
                f"{self_rss_now_mb():,.0f} MiB, data {size / 2**30:,.2f} GiB, load "
                f"{os.getloadavg()[0]:.1f}",
                flush=True,
            )

    def stop(self) -> None:
        self._stop.set()


def folder_bytes(folder: Path) -> int:
    """The bytes of the files under ``folder`` as found now; a file or folder removed while it
    is walked (chDB merges parts away) counts nothing: the progress line must not die of it."""
    total = 0
    for root, _dirs, files in os.walk(folder, onerror=lambda _e: None):
        for name in files:
            with contextlib.suppress(FileNotFoundError):
                total += os.stat(os.path.join(root, name), follow_symlinks=False).st_size
    return total


def self_rss_now_mb() -> float:
    return self_rss_parts_mb().get("VmRSS", float("nan"))


def self_rss_parts_mb() -> dict[str, float]:
    """This process's resident memory now, in MiB: ``VmRSS`` (all), ``RssAnon`` (heaps, Arrow's
    pool), ``RssFile`` (mapped files: SQLite's mmap of the log and the ledger) and ``RssShmem``."""
    wanted = ("VmRSS:", "RssAnon:", "RssFile:", "RssShmem:")
    return {
        line.split(":")[0]: int(line.split()[1]) / 1024
        for line in Path("/proc/self/status").read_text().splitlines()
        if line.startswith(wanted)
    }


class MemorySampler:
    """The highest anonymous and file-backed resident memory seen while a phase runs, sampled
    every ``every`` seconds in a thread (and once more at the end): a phase's peak RSS alone
    cannot tell a heap that grows with N from SQLite's mapped pages, which the kernel drops
    under pressure."""

    def __init__(self, every: float = 0.25) -> None:
        self.every = every
        self.anon = self.file = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="scale-memory", daemon=True)

    def __enter__(self) -> MemorySampler:
        self.sample()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.sample()

    def sample(self) -> None:
        parts = self_rss_parts_mb()
        self.anon = max(self.anon, parts.get("RssAnon", 0.0))
        self.file = max(self.file, parts.get("RssFile", 0.0) + parts.get("RssShmem", 0.0))

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            self.sample()


_PROGRESS: Progress | None = None


def measured(name: str, events: int, fn: Callable[[], Any]) -> tuple[Phase, Any]:
    peak_rss_reset()
    rss0 = self_rss_now_mb()
    if _PROGRESS is not None:
        _PROGRESS.start(name)
    with MemorySampler() as memory:
        cpu0, t0 = self_cpu(), time.perf_counter()
        result = fn()
        took = time.perf_counter() - t0
        cpu = self_cpu() - cpu0
    phase = Phase(
        name,
        took,
        events,
        cpu,
        self_peak_rss_mb(),
        rss_start_mb=rss0,
        peak_anon_mb=memory.anon,
        peak_file_mb=memory.file,
    )
    print(f"  {name}: {took:.1f} s ({phase.us_per_event:.2f} us/event)", flush=True)
    return phase, result


def write_parquet(path: Path, n: int, first: int = 0) -> None:
    """N trades from trade ``first`` on, written in chunks (the file, not the hub, is the only
    copy in memory)."""
    writer: pq.ParquetWriter | None = None
    for start in range(first, first + n, CHUNK):
        idx = range(start, min(first + n, start + CHUNK))
        rows = [trade(i) for i in idx]
        table = pa.table(
            {
                "trade_id": [r["trade_id"] for r in rows],
                "account_id": [r["account_id"] for r in rows],
                "instrument": [r["instrument"] for r in rows],
                "side": [r["side"] for r in rows],
                "quantity": pa.array([Decimal(r["quantity"]) for r in rows], pa.decimal128(18, 4)),
                "price": pa.array([Decimal(r["price"]) for r in rows], pa.decimal128(18, 8)),
                "currency": [r["currency"] for r in rows],
                "executed_at": pa.array(
                    [1_795_600_000_000_000 + i * 1000 for i in idx], pa.int64()
                ).cast(pa.timestamp("us", tz="UTC")),
            }
        )
        if writer is None:
            writer = pq.ParquetWriter(path, table.schema)
        writer.write_table(table)
    if writer is not None:
        writer.close()


def write_parquet_apart(path: Path, n: int, first: int = 0) -> None:
    """:func:`write_parquet` in a child process: building the rows took ~1 GiB at 10M events,
    which glibc and Arrow's pool kept in this process, inflating every later phase's RSS."""
    import multiprocessing

    child = multiprocessing.get_context("spawn").Process(
        target=write_parquet, args=(path, n, first), name="scale-parquet"
    )
    child.start()
    child.join()
    if child.exitcode != 0:
        raise SystemExit(f"writing {path} failed (exit code {child.exitcode})")


def raw_avro_bytes(h: Any, sample: int = 20_000) -> tuple[float, float]:
    """Mean bytes per event of the raw Avro datum and of an Avro container file (null codec),
    over a sample of the same trades, with the schema the hub stores them under."""
    import fastavro

    from core.avro import serde

    sv = h.registry.get_version("trades-value", "latest")
    parsed = h.registry.parsed(sv.id).parsed
    schema = fastavro.parse_schema(json.loads(sv.schema.text))
    datums = [serde.from_json(trade(i), parsed) for i in range(sample)]
    datum_bytes = 0
    for d in datums:
        buf = io.BytesIO()
        fastavro.schemaless_writer(buf, schema, d)
        datum_bytes += buf.tell()
    buf = io.BytesIO()
    fastavro.writer(buf, schema, datums, codec="null")
    return datum_bytes / sample, buf.tell() / sample


def stored_bytes(data: Path) -> dict[str, int]:
    """Bytes on disk of the log, the ledger and the views (each with its WAL and side files)."""
    out = {"log": 0, "ledger": 0, "views": 0, "other": 0}
    for p in data.rglob("*"):
        if not p.is_file():
            continue
        name = p.relative_to(data).as_posix()
        size = p.stat().st_size
        if name.startswith("log"):
            out["log"] += size
        elif name.startswith("ledger"):
            out["ledger"] += size
        elif "view" in name or name.startswith(("chdb", "analytics", "transactional")):
            out["views"] += size
        else:
            out["other"] += size
    return out


def one_size(
    n: int, data: Path, batch: int, ledger_store: str = "tiles", increment: int = 0
) -> dict[str, Any]:
    from ingest.files import publish_file
    from ledger.verify import verify_ledger

    if data.exists():
        shutil.rmtree(data)
    data.mkdir(parents=True)
    src = data.parent / f"trades-{n}.parquet"
    if _PROGRESS is not None:
        _PROGRESS.folder, _PROGRESS.count = data, 0
    if not src.exists():
        print(f"  writing {n:,} trades to {src.name}...", flush=True)
        if _PROGRESS is not None:  # the progress line names this step, not the last size's phase
            _PROGRESS.start(f"writing {src.name} (in a child process: its CPU is not counted)")
        write_parquet_apart(src, n)
    h = bulk_hub(data / "hub", ledger_store)
    phases: list[Phase] = []

    def counted(batch_records: int, _res: Any) -> None:
        if _PROGRESS is not None:
            _PROGRESS.count += batch_records

    try:
        ph, res = measured(
            "ingest (Parquet file -> log)",
            n,
            lambda: publish_file(h.ingest, src, "trades", batch_size=batch, on_batch=counted),
        )
        accepted = res.result.accepted
        if accepted != n:
            raise SystemExit(f"{n - accepted} of {n} trades were rejected; see the quarantine")
        phases.append(ph)
        ph, sync = measured(
            "ledger sync (leaves + checkpoint)", n, lambda: h.ledger.sync(force_checkpoint=True)
        )
        phases.append(ph)
        size = sync.size
        stored = stored_bytes(data / "hub")
        datum, container = raw_avro_bytes(h)
        rng = random.Random(13)
        leaves = [rng.randrange(size) for _ in range(200)]
        times: list[float] = []
        cpus: list[float] = []  # process_time: ns resolution, unlike the phase's os.times

        def proofs() -> None:
            for i in leaves:
                t0, c0 = time.perf_counter(), time.process_time()
                h.ledger.proof(i, size)
                cpus.append((time.process_time() - c0) * 1e6)
                times.append((time.perf_counter() - t0) * 1e6)

        ph, _ = measured(f"{len(leaves)} inclusion proofs at size {size:,}", len(leaves), proofs)
        times.sort()
        ph.extra = {
            "p50_us": times[len(times) // 2] if times else None,
            "p99_us": times[int(len(times) * 0.99)] if times else None,
            "cpu_p50_us": sorted(cpus)[len(cpus) // 2] if cpus else None,
            "cpu_p99_us": sorted(cpus)[int(len(cpus) * 0.99)] if cpus else None,
        }
        phases.append(ph)
        covered = h.ledger.store.latest_checkpoint()  # what `hub ledger verify` remembers
        ph, rep = measured("ledger verify (whole log)", size or n, lambda: verify_ledger(h.ledger))
        ph.extra = {"ok": rep.ok}
        if not ph.extra["ok"]:
            raise SystemExit(f"ledger verify failed at {n:,} events: {rep}")
        phases.append(ph)
        runner = h.projections.runner("market_bars")
        ph, _ = measured("replay into market_bars (first build)", n, runner.catch_up)
        phases.append(ph)
        ph, _ = measured(
            "rebuild market_bars (copy + swap)", n, lambda: h.projections.rebuild("market_bars")
        )
        phases.append(ph)
        if increment:
            phases.append(incremental_verify(h, data, n, increment, batch, rep, covered))
    finally:
        h.close()
        du = sum(p.stat().st_size for p in data.rglob("*") if p.is_file())
    return {
        "events": n,
        "tree_size": size,
        "stored": stored,
        "avro_datum_bytes": datum,
        "avro_container_bytes": container,
        "data_bytes": du + src.stat().st_size,
        "phases": [{**p.__dict__, "us_per_event": p.us_per_event} for p in phases],
    }


def incremental_verify(
    h: Any, data: Path, n: int, increment: int, batch: int, full: Any, covered: Any
) -> Phase:
    """``hub ledger verify`` as it runs by default: from the checkpoint the full verify covered
    (``save_verified``), after ``increment`` more events were ingested and synced. The same
    increment at every size: its cost should depend on the new entries only, not on ``n``."""
    from ingest.files import publish_file
    from ledger.verify import save_verified, verify_ledger

    state = save_verified(
        h.ledger, data / "verified.note", full, covered, time.time_ns() // 1_000_000, None
    )
    if state is None:
        raise SystemExit(f"nothing to remember after the full verify at {n:,} events")
    more = data / f"trades-{n}+{increment}.parquet"
    write_parquet_apart(more, increment, first=n)
    got = publish_file(h.ingest, more, "trades", batch_size=batch).result.accepted
    if got != increment:
        raise SystemExit(f"{increment - got} of {increment} more trades were rejected")
    h.ledger.sync(force_checkpoint=True)
    new = h.ledger.store.tree_size() - state.size
    ph, rep = measured(
        "ledger verify (incremental)",
        new,
        lambda: verify_ledger(h.ledger, since=state),
    )
    if not rep.ok or rep.incremental_from != state.size:
        raise SystemExit(f"incremental verify at {n:,} events: {rep.as_dict()}")
    ph.extra = {"from size": state.size, "new entries checked": rep.leaves}
    return ph


SUMMARY = (
    "events",
    "ingest events/s",
    "ingest events/CPU-s",
    "log+ledger B/event",
    "vs raw Avro datum",
    "proof p50 us",
    "proof p99 us",
    "verify events/s",
    "verify events/CPU-s",
    "incremental verify new entries/CPU-s",
    "rebuild events/s",
    "peak RSS MiB",
    "load (start-end)",
)


def _phase(r: dict[str, Any], prefix: str) -> dict[str, Any]:
    return next((p for p in r["phases"] if p["name"].startswith(prefix)), {})


def summary_row(r: dict[str, Any]) -> dict[str, Any]:
    """The figures issue 13 asks per size, as numbers (CSV) keyed by :data:`SUMMARY`."""
    n, st = r["events"], r["stored"]
    both = (st["log"] + st["ledger"]) / n

    def rate(p: dict[str, Any], key: str = "seconds") -> float:
        return p["events"] / p[key] if p and p[key] else float("nan")

    ing, ver = _phase(r, "ingest"), _phase(r, "ledger verify")
    proof = _phase(r, "200 inclusion proofs").get("extra", {})
    return dict(
        zip(
            SUMMARY,
            (
                n,
                rate(ing),
                rate(ing, "cpu_s"),
                both,
                both / r["avro_datum_bytes"],
                proof.get("p50_us") or float("nan"),
                proof.get("p99_us") or float("nan"),
                rate(ver),
                rate(ver, "cpu_s"),
                rate(_phase(r, "ledger verify (incremental"), "cpu_s"),
                rate(_phase(r, "rebuild")),
                max((p["peak_rss_mb"] for p in r["phases"]), default=float("nan")),
                r.get("load", ""),
            ),
            strict=True,
        )
    )


def report(results: Sequence[dict[str, Any]], meta: dict[str, Any]) -> str:
    lines = [
        "# Scaling run: how cost grows with the log",
        "",
        f"{meta['when']}, {meta['cpus']} CPUs, load average at start {meta['load']}, at end "
        f"{meta['load_end']}. Embedded (SQLite log, `synchronous=FULL`), one Parquet file per "
        f"size, batches of {meta['batch']:,}. Per-event costs are compared with the smallest "
        "size of this same run (flat = 1.00x).",
        "",
        "## Summary",
        "",
        "| " + " | ".join(SUMMARY) + " |",
        "|" + "---:|" * len(SUMMARY),
    ]
    for r in results:
        row = summary_row(r)
        lines.append(
            "| "
            + " | ".join(
                f"{v:,.2f}x"
                if k == "vs raw Avro datum"
                else f"{v:,.1f}"
                if k == "log+ledger B/event"
                else f"{v:,.0f}"
                if isinstance(v, (int, float))
                else str(v)
                for k, v in row.items()
            )
            + " |"
        )
    lines += [
        "",
        "## Storage",
        "",
        "| events | log B/event | ledger B/event | log+ledger B/event | raw Avro datum B "
        "| vs raw Avro | Avro container B | vs container |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        n, st = r["events"], r["stored"]
        both = (st["log"] + st["ledger"]) / n
        lines.append(
            f"| {n:,} | {st['log'] / n:,.1f} | {st['ledger'] / n:,.1f} | {both:,.1f} "
            f"| {r['avro_datum_bytes']:.1f} | {both / r['avro_datum_bytes']:.2f}x "
            f"| {r['avro_container_bytes']:.1f} | {both / r['avro_container_bytes']:.2f}x |"
        )
    lines += [
        "",
        "## Time and memory per phase",
        "",
        "| events | phase | seconds | events/s | us/event | vs smallest | CPU s "
        "| CPU us/event | CPU vs smallest | RSS at start MiB | peak RSS MiB "
        "| peak anon MiB | peak mapped-file MiB | detail |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    first = {p["name"].split(" at size")[0]: p for p in results[0]["phases"]} if results else {}
    for r in results:
        for p in r["phases"]:
            key = p["name"].split(" at size")[0]
            ref = first.get(key)
            vs = f"{p['us_per_event'] / ref['us_per_event']:.2f}x" if ref else ""
            cpu_us = p["cpu_s"] / p["events"] * 1e6 if p["events"] else 0.0
            ref_cpu = ref["cpu_s"] / ref["events"] * 1e6 if ref and ref["events"] else 0.0
            vs_cpu = f"{cpu_us / ref_cpu:.2f}x" if ref_cpu else ""
            rate = p["events"] / p["seconds"] if p["seconds"] else 0
            detail = ", ".join(
                f"{k} {v:,.1f}" if isinstance(v, float) else f"{k} {v}"
                for k, v in p["extra"].items()
            )
            lines.append(
                f"| {r['events']:,} | {p['name']} | {p['seconds']:,.2f} | {rate:,.0f} "
                f"| {p['us_per_event']:,.2f} | {vs} | {p['cpu_s']:,.1f} | {cpu_us:,.2f} "
                f"| {vs_cpu} | {p.get('rss_start_mb', float('nan')):,.0f} "
                f"| {p['peak_rss_mb']:,.0f} | {p.get('peak_anon_mb', float('nan')):,.0f} "
                f"| {p.get('peak_file_mb', float('nan')):,.0f} | {detail} |"
            )
    lines += [
        "",
        "Proof rows: events = proofs made, us/event = microseconds per proof. CPU us/event "
        "(this process's user + system CPU over the events) is the fairer flatness measure on a "
        "shared machine, where wall time depends on the share of a core the process got. "
        "Log and ledger bytes include their SQLite WAL files as found after the phase. "
        "Peak RSS is the "
        "process's high-water mark during that phase alone (reset before each phase); peak anon "
        "(heaps, Arrow's pool) and peak mapped-file (SQLite's mmap of the log and the ledger, "
        "which the kernel drops under pressure) are the highest of samples taken every 0.25 s, "
        "so their sum may be below the peak RSS. The views' "
        "and key store's bytes are not counted as stored log bytes.",
        "",
    ]
    return "\n".join(lines)


def disk_estimate(n: int, results: Sequence[dict[str, Any]], bytes_per_event: float) -> float:
    """Bytes a size of ``n`` events needs (data folder and Parquet file): the last measured
    size's bytes per event times ``n``, else ``bytes_per_event`` times ``n``."""
    done = [r for r in results if r.get("data_bytes")]
    per = done[-1]["data_bytes"] / done[-1]["events"] if done else bytes_per_event
    return per * n


def write_csv(path: Path, results: Sequence[dict[str, Any]]) -> None:
    """One row per size and phase, with the size's summary figures."""
    fields = [
        *SUMMARY,
        "phase",
        "seconds",
        "cpu_s",
        "phase_events",
        "us_per_event",
        "rss_mib",
        "anon_mib",
        "file_mib",
    ]
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(fields)
        for r in results:
            head = list(summary_row(r).values())
            for p in r["phases"]:
                figures = (p["seconds"], p["cpu_s"], p["events"], p["us_per_event"])
                memory = (p["peak_rss_mb"], p.get("peak_anon_mb"), p.get("peak_file_mb"))
                w.writerow([*head, p["name"], *figures, *memory])


def main(argv: Sequence[str] | None = None) -> int:
    global _PROGRESS
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--events", default="1000000,10000000", help="comma list of sizes")
    ap.add_argument("--out", default=".bench/scale", help="report folder (git-ignored)")
    ap.add_argument("--batch", type=int, default=50_000, help="events per append")
    ap.add_argument(
        "--increment",
        type=int,
        default=100_000,
        help="events added after the full verify, then verified incrementally (0: skip)",
    )
    ap.add_argument("--keep", action="store_true", help="keep each size's data folder")
    ap.add_argument(
        "--ledger-store", default="tiles", choices=("sqlite", "tiles"), help="HUB_LEDGER_STORE"
    )
    ap.add_argument("--progress", type=float, default=60.0, help="seconds between progress lines")
    ap.add_argument("--max-disk-gb", type=float, default=25.0, help="refuse a size needing more")
    ap.add_argument(
        "--bytes-per-event",
        type=float,
        default=800.0,
        help="disk estimate of the first size (data folder + Parquet; measured after it)",
    )
    args = ap.parse_args(argv)
    sizes = [int(x) for x in args.events.split(",") if x]
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    meta: dict[str, Any] = {
        "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "cpus": os.cpu_count(),
        "load": ", ".join(f"{x:.1f}" for x in os.getloadavg()),
        "batch": args.batch,
        "ledger_store": args.ledger_store,
    }
    _PROGRESS = Progress(out, args.progress)
    results: list[dict[str, Any]] = []
    try:
        for n in sizes:
            need = disk_estimate(n, results, args.bytes_per_event)
            free = shutil.disk_usage(out).free
            print(
                f"{n:,} events (needs ~{need / 1e9:,.1f} GB; {free / 1e9:,.1f} GB free)...",
                flush=True,
            )
            if need > args.max_disk_gb * 1e9 or need > free * 0.8:
                print(
                    f"  skipped: ~{need / 1e9:,.1f} GB is over --max-disk-gb "
                    f"{args.max_disk_gb:g} or 80% of the free disk.",
                    flush=True,
                )
                continue
            data = out / f"data-{n}"
            load0 = f"{os.getloadavg()[0]:.1f}"
            results.append(one_size(n, data, args.batch, args.ledger_store, args.increment))
            results[-1]["load"] = f"{load0}-{os.getloadavg()[0]:.1f}"
            meta["load_end"] = ", ".join(f"{x:.1f}" for x in os.getloadavg())
            (out / "scale.json").write_text(
                json.dumps({"meta": meta, "results": results}, indent=1)
            )
            (out / "scale.md").write_text(report(results, meta))
            write_csv(out / "scale.csv", results)
            if not args.keep:
                shutil.rmtree(data, ignore_errors=True)
    finally:
        _PROGRESS.stop()
    meta["load_end"] = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    text = report(results, meta)
    (out / "scale.md").write_text(text)
    (out / "scale.json").write_text(json.dumps({"meta": meta, "results": results}, indent=1))
    write_csv(out / "scale.csv", results)
    print(text)
    print(f"report: {out / 'scale.md'}, {out / 'scale.csv'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
