"""The ledger alone as it grows to 100M leaves (issue 13, item 4: proof < 1 ms at 100M).

One tile store (``TileLedgerStore``, the embedded ledger's store) grown to each size in turn,
the way ``Ledger.sync`` appends: batches of 50k leaves, each one write transaction with
``TreeBuilder`` over the stored right edge and ``append_batch`` of the leaf hashes and their
side-index columns (topic, partition, offset, time, actor, action, resource, tenant, built as
Arrow columns like the ledger's). Leaf inputs are 32 random bytes, the same for a batch on
every run (seeded by its first index), so verify can recompute them. No event log: this is the
ledger's cost alone; ``benchmarks.scale`` runs the whole path (ingest, sync, verify, replay).

At each size:
  - append: leaves per second (wall and per CPU second of this process) since the last size;
  - bytes per leaf: the SQLite file with its WAL, over the tree size;
  - inclusion proofs of ``--proofs`` random leaves at that size, warm (caches kept) and cold
    (caches cleared before each proof: every tile read from SQLite), p50 and p99 of wall time
    (and p50 of this process's CPU time: the fairer figure on a loaded machine), each proof
    checked against the root (RFC 9162 ``verify_inclusion``), beside the same-run time of
    log2(n) raw SHA-256 calls (the baseline: what checking one proof hashes);
  - consistency proofs from a random older size to this size, warm and cold, each checked
    (``verify_consistency``);
  - verify: the last ``--verify-leaves`` leaves' inputs recomputed, hashed, the tree rebuilt
    from the stored edge at that point and every chunk compared with the stored tiles, and the
    root compared (leaves per second);
  - rebuild: the first ``--verify-leaves`` leaves copied, hashes and side index read back from
    the store, into a new tile store (leaves per second; the new root checked);
  - peak RSS of each phase (reset before it) and the load average.

Run: ``.venv/bin/python -m benchmarks.ledger_proof_scale --sizes 1000000,10000000,100000000
--work /path/with/4GiB/free`` (100M leaves: ~3.3 GB of disk). Output: a markdown table and a
CSV in ``--out`` (default ``.bench/ledger-scale``), one JSON line per size on stdout.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import random
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from adapters.tile_ledgerstore import TileLedgerStore
from audit.merkle import HASH_SIZE, verify_consistency, verify_inclusion
from benchmarks.e2e_common import peak_rss_reset, self_cpu, self_peak_rss_mb
from core.hashing import leaf_hashes
from core.ports.ledgerstore import LeafBatch, leaf_schema
from ledger.tree import TreeBuilder, edge_chunks

BATCH = 50_000
SEED = 3
_SCHEMA = leaf_schema()
_ACCOUNTS = pa.array([f"account-{i}" for i in range(5000)], pa.string())


def leaf_inputs(first: int, n: int) -> list[bytes]:
    """The 32-byte inputs of leaves ``[first, first + n)`` (``first`` a multiple of BATCH):
    the same bytes on every run."""
    data = random.Random(SEED * 1_000_003 + first).randbytes(n * 32)
    return [data[i : i + 32] for i in range(0, len(data), 32)]


def _const(value: str, n: int) -> pa.Array:
    codes = pa.array(np.zeros(n, np.int32))
    return pa.DictionaryArray.from_arrays(codes, pa.array([value])).cast(pa.string())


def side_columns(first: int, n: int) -> pa.Table:
    """Side-index columns of ``n`` trades from leaf ``first``: three partitions, one offset per
    leaf, a millisecond apart, 5,000 accounts (as ``test_bench_ledger_tiles`` rows)."""
    idx = np.arange(first, first + n, dtype=np.int64)
    accounts = pa.DictionaryArray.from_arrays(
        pa.array((idx % 5000).astype(np.int32)), _ACCOUNTS
    ).cast(pa.string())
    return pa.Table.from_arrays(
        [
            _const("trades", n),
            pa.array((idx % 3).astype(np.int32)),
            pa.array(idx),
            pa.array(idx + 1_700_000_000_000),
            _const("ingest-api", n),
            _const("hub.trading.TradeExecuted", n),
            accounts,
            _const("acme", n),
        ],
        schema=_SCHEMA,
    )


def append_batch(store: TileLedgerStore, hashes: bytes, columns: pa.Table) -> None:
    """One ledger write as ``Ledger._sync_batch`` makes it."""
    with store.write() as txn:
        size = txn.size()
        chunks = TreeBuilder(size, txn.chunk).append(hashes)
        txn.append_batch(LeafBatch(size, hashes, columns), chunks)


def grow(store: TileLedgerStore, have: int, n: int, progress: Callable[[int], None]) -> None:
    for first in range(have, n, BATCH):
        k = min(BATCH, n - first)
        append_batch(store, leaf_hashes(leaf_inputs(first, k)), side_columns(first, k))
        progress(first + k)


def edge_loader(store: TileLedgerStore, size: int) -> Callable[[int, int], bytes]:
    """The exact right edge of the tree of ``size`` leaves, cut from the stored chunks (they
    may hold more nodes: the store has grown since)."""
    counts = {(lv, ch): c for lv, ch, c in edge_chunks(size)}
    got = store.read_chunks(list(counts))

    def load(level: int, chunk: int) -> bytes:
        return got[(level, chunk)][: counts[(level, chunk)] * HASH_SIZE]

    return load


def verify_range(store: TileLedgerStore, start: int, n: int) -> None:
    """Leaves ``[start, n)`` recomputed from their inputs, the tree rebuilt from the stored edge
    at ``start``; every chunk MUST be a prefix of the stored one and the roots MUST match."""
    builder = TreeBuilder(start, edge_loader(store, start) if start else None)
    for first in range(start, n, BATCH):
        k = min(BATCH, n - first)
        dirty = builder.append(leaf_hashes(leaf_inputs(first, k)))
        stored = store.read_chunks([(lv, ch) for lv, ch, _ in dirty])
        for lv, ch, data in dirty:
            if not stored.get((lv, ch), b"").startswith(data):
                raise SystemExit(f"verify: chunk ({lv}, {ch}) differs from the stored tiles")
    if builder.size != n:
        raise SystemExit(f"verify rebuilt {builder.size} leaves, not {n}")


def rebuild(store: TileLedgerStore, n: int, path: Path) -> bytes:
    """Leaves ``[0, n)``, hashes and side index read back from ``store``, appended into a new
    tile store at ``path``; its root of ``n``."""
    new = TileLedgerStore(path)
    try:
        for first, table in _side_batches(store, n):
            k = table.num_rows
            append_batch(new, store.leaf_hashes(first, k), table)
        return new.root(n)
    finally:
        new.close()


def _side_batches(store: TileLedgerStore, n: int) -> Iterator[tuple[int, pa.Table]]:
    for first, table in store.side_batches():
        if first >= n:
            return
        yield first, table.slice(0, n - first)


def quantiles(t: list[float]) -> tuple[float, float]:
    q = statistics.quantiles(t, n=100, method="inclusive")
    return round(q[49] * 1e6, 1), round(q[98] * 1e6, 1)


def proof_times(store: TileLedgerStore, n: int, count: int, rnd: random.Random) -> dict[str, float]:
    """p50/p99 microseconds of ``count`` inclusion and consistency proofs at size ``n``, warm
    and cold, every proof checked; beside the same-run time of log2(n) raw SHA-256 calls (what
    checking a proof hashes), the baseline."""
    root = store.root(n)
    leaves = rnd.sample(range(n), min(count, n))
    olds = [rnd.randrange(1, n) for _ in range(count)]
    old_roots = {m: store.root(m) for m in olds}
    depth = n.bit_length()
    t0 = time.perf_counter()
    for _ in range(2000):
        for _ in range(depth):
            hashlib.sha256(b"x" * 65).digest()
    out: dict[str, float] = {"log2n_sha256_us": round((time.perf_counter() - t0) / 2000 * 1e6, 1)}
    for cold in (False, True):
        name = "cold" if cold else "warm"
        t: list[float] = []
        cpu: list[float] = []
        for i in leaves:
            if cold:
                store.clear_caches()
            c0, t0 = time.process_time(), time.perf_counter()
            proof = store.inclusion_proof(i, n)
            t.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
            verify_inclusion(store.leaf_hashes(i, 1), i, n, proof, root)
        out[f"incl_{name}_p50_us"], out[f"incl_{name}_p99_us"] = quantiles(t)
        out[f"incl_{name}_cpu_p50_us"] = quantiles(cpu)[0]
        t = []
        for m in olds:
            if cold:
                store.clear_caches()
            t0 = time.perf_counter()
            proof = store.consistency_proof(m, n)
            t.append(time.perf_counter() - t0)
            verify_consistency(m, n, old_roots[m], root, proof)
        out[f"cons_{name}_p50_us"], out[f"cons_{name}_p99_us"] = quantiles(t)
    return out


def file_bytes(path: Path) -> int:
    return sum(
        p.stat().st_size for p in (path, Path(f"{path}-wal"), Path(f"{path}-shm")) if p.exists()
    )


def load() -> float:
    return round(os.getloadavg()[0], 1)


def phase(fn: Callable[[], Any]) -> tuple[float, float, float, Any]:
    """(wall s, CPU s, peak RSS MiB, result) of ``fn``."""
    peak_rss_reset()
    c0, t0 = self_cpu(), time.perf_counter()
    result = fn()
    return time.perf_counter() - t0, self_cpu() - c0, self_peak_rss_mb(), result


COLUMNS = (
    ("leaves", "leaves", "{:,}"),
    ("append_per_s", "append leaves/s", "{:,.0f}"),
    ("append_per_cpu_s", "append leaves/CPU-s", "{:,.0f}"),
    ("append_rss_mib", "append peak RSS MiB", "{:,.0f}"),
    ("bytes_per_leaf", "B/leaf", "{:.2f}"),
    ("log2n_sha256_us", "log2(n) SHA-256 us (baseline)", "{:,.0f}"),
    ("incl_warm_p50_us", "incl. warm p50 us", "{:,.0f}"),
    ("incl_warm_p99_us", "incl. warm p99 us", "{:,.0f}"),
    ("incl_cold_p50_us", "incl. cold p50 us", "{:,.0f}"),
    ("incl_cold_p99_us", "incl. cold p99 us", "{:,.0f}"),
    ("incl_warm_cpu_p50_us", "incl. warm CPU p50 us", "{:,.0f}"),
    ("incl_cold_cpu_p50_us", "incl. cold CPU p50 us", "{:,.0f}"),
    ("cons_warm_p50_us", "cons. warm p50 us", "{:,.0f}"),
    ("cons_warm_p99_us", "cons. warm p99 us", "{:,.0f}"),
    ("cons_cold_p50_us", "cons. cold p50 us", "{:,.0f}"),
    ("cons_cold_p99_us", "cons. cold p99 us", "{:,.0f}"),
    ("verify_per_cpu_s", "verify leaves/CPU-s", "{:,.0f}"),
    ("rebuild_per_cpu_s", "rebuild leaves/CPU-s", "{:,.0f}"),
    ("peak_rss_mib", "peak RSS MiB (all phases)", "{:,.0f}"),
    ("load", "load (start-end)", "{}"),
)


def table(rows: list[dict[str, Any]]) -> str:
    head = "| " + " | ".join(c[1] for c in COLUMNS) + " |"
    rule = "|" + "|".join("---:" for _ in COLUMNS) + "|"
    body = [
        "| " + " | ".join(fmt.format(r[key]) if key in r else "" for key, _, fmt in COLUMNS) + " |"
        for r in rows
    ]
    return "\n".join([head, rule, *body])


def one_size(
    store: TileLedgerStore, path: Path, have: int, n: int, args: argparse.Namespace
) -> dict[str, Any]:
    row: dict[str, Any] = {"leaves": n}
    start_load = load()
    last = [time.perf_counter()]

    def progress(done: int) -> None:
        if time.perf_counter() - last[0] >= 30 or done == n:
            last[0] = time.perf_counter()
            print(f"  {done:,}/{n:,} leaves, load {load()}", flush=True)

    wall, cpu, rss, _ = phase(lambda: grow(store, have, n, progress))
    row.update(
        append_s=round(wall, 1),
        append_cpu_s=round(cpu, 1),
        append_per_s=(n - have) / wall,
        append_per_cpu_s=(n - have) / cpu if cpu else float("nan"),
        append_rss_mib=rss,
        bytes_per_leaf=file_bytes(path) / n,
    )
    rsses = [rss]
    wall, cpu, rss, times = phase(lambda: proof_times(store, n, args.proofs, random.Random(n)))
    row.update(times)
    rsses.append(rss)
    m = min(n, args.verify_leaves)
    wall, cpu, rss, _ = phase(lambda: verify_range(store, n - m, n))
    row.update(verify_leaves=m, verify_s=round(wall, 1), verify_per_cpu_s=m / cpu)
    rsses.append(rss)
    if args.rebuild:
        copy = path.with_name("rebuild.sqlite")
        wall, cpu, rss, got = phase(lambda: rebuild(store, m, copy))
        for p in (copy, Path(f"{copy}-wal"), Path(f"{copy}-shm")):
            p.unlink(missing_ok=True)
        if got != store.root(m):
            raise SystemExit(f"the rebuilt tree of {m:,} leaves has another root")
        row.update(rebuild_leaves=m, rebuild_s=round(wall, 1), rebuild_per_cpu_s=m / cpu)
        rsses.append(rss)
    row["peak_rss_mib"] = max(rsses)
    row["load"] = f"{start_load}-{load()}"
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=(__doc__ or "").split("\n\n")[0],
        formatter_class=argparse.RawTextHelpFormatter,
    )
    parser.add_argument("--sizes", default="1000000,4000000", help="comma list of tree sizes")
    parser.add_argument("--work", type=Path, default=None, help="folder (default: a temp one)")
    parser.add_argument("--out", type=Path, default=Path(".bench/ledger-scale"))
    parser.add_argument("--proofs", type=int, default=300, help="proofs of each kind per size")
    parser.add_argument(
        "--verify-leaves", type=int, default=10_000_000, help="leaves verified/rebuilt per size"
    )
    parser.add_argument("--no-rebuild", dest="rebuild", action="store_false")
    args = parser.parse_args(argv)
    sizes = sorted(int(s) for s in args.sizes.split(","))
    args.out.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="hub-ledger-scale-", dir=args.work) as tmp:
        path = Path(tmp) / "ledger.sqlite"
        store = TileLedgerStore(path)
        try:
            have = 0
            for n in sizes:
                print(f"{n:,} leaves...", flush=True)
                rows.append(one_size(store, path, have, n, args))
                have = n
                print(json.dumps(rows[-1]), flush=True)
                (args.out / "ledger-scale.md").write_text(table(rows) + "\n")
                with (args.out / "ledger-scale.csv").open("w", newline="") as f:
                    w = csv.DictWriter(f, fieldnames=sorted({k for r in rows for k in r}))
                    w.writeheader()
                    w.writerows(rows)
        finally:
            store.close()
    print(table(rows))
    print(f"report: {args.out / 'ledger-scale.md'}, {args.out / 'ledger-scale.csv'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
