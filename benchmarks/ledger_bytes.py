"""Where the tile ledger's bytes go, per event (issue 13, storage <= 1.3x raw Avro):
``python -m benchmarks.ledger_bytes --events 1000000``.

1. N trades ingested from one Parquet file into a fresh embedded hub (as ``benchmarks.scale``);
2. ``Ledger.sync`` into the tile store as this code writes it (store version 2);
3. the same leaves, batch for batch, copied into a store written as version 1 (the previous
   side-index encoding and SQLite settings), in the same run, as the "before";
4. for each store: bytes per event by table (``dbstat``: payload, b-tree and overflow pages,
   unused space), free pages, the WAL file, the file; beside the log's bytes and the raw Avro
   datum of the same events.

Output: a Markdown table on stdout and ``<out>/ledger_bytes.json`` (default ``.bench/ledger``).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks.e2e_common import bulk_hub, self_cpu
from benchmarks.scale import raw_avro_bytes, stored_bytes, write_parquet


def breakdown(path: Path) -> dict[str, int]:
    """Bytes of one SQLite file by table (pages, overflow included) plus ``free``, ``wal`` and
    ``file``; ``tiles_l0`` / ``tiles_up`` split the tiles' payload by level."""
    out: dict[str, int] = {}
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        for name, pages in conn.execute(
            "SELECT name, sum(pgsize) FROM dbstat GROUP BY name ORDER BY name"
        ):
            out[str(name)] = int(pages)
        (page_size,) = conn.execute("PRAGMA page_size").fetchone()
        (free,) = conn.execute("PRAGMA freelist_count").fetchone()
        out["free"] = int(free) * int(page_size)
        out["page_size"] = int(page_size)
        for level, payload in conn.execute(
            "SELECT level > 0, sum(length(data)) FROM tiles GROUP BY level > 0"
        ):
            out["tiles_up_payload" if level else "tiles_l0_payload"] = int(payload)
        (cols,) = conn.execute("SELECT coalesce(sum(length(cols)), 0) FROM batches").fetchone()
        out["side_index_payload"] = int(cols)
    finally:
        conn.close()
    wal = Path(f"{path}-wal")
    out["wal"] = wal.stat().st_size if wal.exists() else 0
    out["file"] = path.stat().st_size
    return out


def copy_as(src: Any, dst: Path, version: int) -> tuple[float, dict[str, int]]:
    """The leaves of ``src`` (a TileLedgerStore) appended, batch for batch, to a new store of
    ``version`` at ``dst``: the CPU seconds of the appends and the copy's breakdown (taken
    while it is open, WAL included, as ``benchmarks.scale`` measures)."""
    import pyarrow as pa

    from adapters.tile_ledgerstore import TileLedgerStore
    from core.ports.ledgerstore import LeafBatch
    from ledger.tree import TreeBuilder

    out = TileLedgerStore(dst, version=version)
    cpu = 0.0
    try:
        for first, table in src.side_batches():
            n = table.num_rows
            hashes = src.leaf_hashes(first, n)
            batch = LeafBatch(first, hashes, pa.Table.from_batches(table.to_batches()))
            t0 = self_cpu()
            with out.write() as w:
                w.append_batch(batch, TreeBuilder(first, w.chunk).append(hashes))
                w.set_positions(src.positions())
                cp = src.latest_checkpoint()
                if cp is not None and first + n == src.tree_size():
                    w.add_checkpoint(cp)
            cpu += self_cpu() - t0
        sizes = breakdown(dst)
    finally:
        out.close()
    return cpu, sizes


def reads(path: Path, version: int, proofs: int = 200) -> dict[str, float]:
    """Read costs of one store, opened cold: inclusion proofs at its size (wall p50 and p99,
    microseconds), every leaf row read back and one ``find`` by actor (CPU microseconds per
    leaf)."""
    import random

    from adapters.tile_ledgerstore import TileLedgerStore
    from core.ports.ledgerstore import LeafQuery

    store = TileLedgerStore(path, version=version)
    try:
        size = store.tree_size()
        rng = random.Random(13)
        times = []
        for i in (rng.randrange(size) for _ in range(proofs)):
            t0 = time.perf_counter()
            store.inclusion_proof(i, size)
            times.append((time.perf_counter() - t0) * 1e6)
        times.sort()
        t0 = self_cpu()
        rows = sum(len(chunk) for chunk in store.iter_leaves())
        read_cpu = self_cpu() - t0
        t0 = self_cpu()
        store.find(LeafQuery(actor="nobody"), limit=10)
        find_cpu = self_cpu() - t0
    finally:
        store.close()
    return {
        "proof_p50_us": times[len(times) // 2],
        "proof_p99_us": times[int(len(times) * 0.99)],
        "iter_leaves_cpu_us_per_leaf": read_cpu / rows * 1e6,
        "find_cpu_us_per_leaf": find_cpu / size * 1e6,
    }


def run(n: int, out: Path, batch: int) -> dict[str, Any]:
    from ingest.files import publish_file

    data = out / f"data-{n}"
    shutil.rmtree(data, ignore_errors=True)
    data.mkdir(parents=True)
    src = out / f"trades-{n}.parquet"
    if not src.exists():
        write_parquet(src, n)
    h = bulk_hub(data / "hub", "tiles")
    try:
        res = publish_file(h.ingest, src, "trades", batch_size=batch)
        if res.result.accepted != n:
            raise SystemExit(f"{n - res.result.accepted} of {n} trades were rejected")
        t0 = self_cpu()
        size = h.ledger.sync(force_checkpoint=True).size
        sync_cpu = self_cpu() - t0
        datum, _container = raw_avro_bytes(h)
        store = h.ledger.store
        stored = stored_bytes(data / "hub")  # while open, WAL included (as benchmarks.scale)
        after = breakdown(data / "hub" / "ledger-tiles.sqlite")
        v1_cpu, before = copy_as(store, data / "copy-v1.sqlite", version=1)
        v2_cpu, _ = copy_as(store, data / "copy-v2.sqlite", version=2)
    finally:
        h.close()
    read_v1 = reads(data / "copy-v1.sqlite", 1)
    read_v2 = reads(data / "copy-v2.sqlite", 2)
    return {
        "reads_before": read_v1,
        "reads_after": read_v2,
        "events": n,
        "tree_size": size,
        "log_bytes": stored["log"],
        "ledger_dir_bytes": stored["ledger"],
        "avro_datum_bytes": datum,
        "sync_cpu_s": sync_cpu,
        "v1_append_cpu_s": v1_cpu,
        "v2_append_cpu_s": v2_cpu,
        "before": before,
        "after": after,
    }


ROWS = (
    ("hash tiles, level 0 (payload)", "tiles_l0_payload"),
    ("hash tiles, upper levels (payload)", "tiles_up_payload"),
    ("tiles table (pages, overflow included)", "tiles"),
    ("side index (payload)", "side_index_payload"),
    ("batches table (pages)", "batches"),
    ("ranges table + its pages", "ranges"),
    ("checkpoints table", "checkpoints"),
    ("edges, positions, meta, intents", None),
    ("free pages", "free"),
    ("WAL file", "wal"),
    ("ledger file + WAL", None),
)


def table(r: dict[str, Any]) -> str:
    size = r["tree_size"]
    lines = [
        f"| ledger bytes per event ({size:,} leaves) | before (v1) | after (v2) |",
        "|---|---:|---:|",
    ]
    for label, key in ROWS:
        vals = []
        for side in ("before", "after"):
            b = r[side]
            if key is not None:
                v = b.get(key, 0)
            elif label.startswith("edges"):
                v = sum(
                    b.get(k, 0)
                    for k in ("edges", "positions", "meta", "witness_intents", "sqlite_schema")
                ) + sum(val for k, val in b.items() if k.startswith("sqlite_autoindex"))
            else:
                v = b["file"] + b["wal"]
            vals.append(v / size)
        lines.append(f"| {label} | {vals[0]:.2f} | {vals[1]:.2f} |")
    n, datum = r["events"], r["avro_datum_bytes"]
    log = r["log_bytes"] / n
    for side in ("before", "after"):
        b = r[side]
        led = (b["file"] + b["wal"]) / n
        r[f"{side}_total"] = (log + led, (log + led) / datum)
    lines += [
        "",
        f"| per event ({n:,} events) | before | after |",
        "|---|---:|---:|",
        f"| log (SQLite file + WAL) | {log:.1f} | {log:.1f} |",
        f"| ledger (file + WAL) | {(r['before']['file'] + r['before']['wal']) / n:.1f} "
        f"| {(r['after']['file'] + r['after']['wal']) / n:.1f} |",
        f"| log + ledger | {r['before_total'][0]:.1f} | {r['after_total'][0]:.1f} |",
        f"| raw Avro datum | {datum:.1f} | {datum:.1f} |",
        f"| log + ledger vs raw Avro | {r['before_total'][1]:.3f}x | {r['after_total'][1]:.3f}x |",
        "",
        f"Page size before {r['before']['page_size']}, after {r['after']['page_size']}. "
        f"Ledger sync CPU {r['sync_cpu_s']:.2f} s (after). The store's appends alone (the "
        f"same batches copied): version 1 {r['v1_append_cpu_s']:.2f} s, version 2 "
        f"{r['v2_append_cpu_s']:.2f} s CPU.",
        "",
        "| reads of the same leaves (copies, opened cold) | before (v1) | after (v2) |",
        "|---|---:|---:|",
    ]
    for key in r["reads_before"]:
        lines.append(f"| {key} | {r['reads_before'][key]:,.2f} | {r['reads_after'][key]:,.2f} |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--out", default=".bench/ledger", help="report folder (git-ignored)")
    ap.add_argument("--batch", type=int, default=50_000, help="events per append")
    ap.add_argument("--keep", action="store_true", help="keep the data folder")
    args = ap.parse_args(argv)
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    r = run(args.events, out, args.batch)
    r["load_start"] = load
    r["load_end"] = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    r["when"] = when
    text = table(r)
    (out / "ledger_bytes.json").write_text(json.dumps(r, indent=1))
    print(f"{when}, load average {load} -> {r['load_end']}\n")
    print(text)
    if not args.keep:
        shutil.rmtree(out / f"data-{args.events}", ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
