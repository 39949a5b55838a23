"""Inclusion-proof time on the tile store as the tree grows (issue 13: proof < 1 ms at 100M).

One tile store grown to each size in turn (random 32-byte leaf inputs, batches of 50k, the
side index of each batch as the ledger writes it); at each size 300 proofs of random leaves,
each verified, timed cold (caches cleared before each proof: every tile read from SQLite) and
warm, beside the same-run cost of log2(n) raw SHA-256 calls. A proof reads at most one tile
per tree level (every eighth level stored), so its cost grows with log2(n); the run prints the
per-level fit and the extrapolation to 100M leaves.

Run: ``.venv/bin/python -m benchmarks.ledger_proof_scale --sizes 1000000,4000000,16000000``
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import statistics
import tempfile
import time
from pathlib import Path

from adapters.tile_ledgerstore import TileLedgerStore
from benchmarks.test_bench_ledger_tiles import _append_all, proof_times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1000000,4000000")
    parser.add_argument("--work", type=Path, default=None, help="folder (default: a temp one)")
    args = parser.parse_args()
    sizes = sorted(int(s) for s in args.sizes.split(","))
    rnd = random.Random(3)
    out: list[tuple[int, dict[str, float]]] = []
    with tempfile.TemporaryDirectory(prefix="hub-proofs-", dir=args.work) as tmp:
        store = TileLedgerStore(Path(tmp) / "proofs.sqlite")
        have = 0
        for n in sizes:
            t0 = time.perf_counter()
            _append_all(store, [rnd.randbytes(32) for _ in range(n - have)])
            build = time.perf_counter() - t0
            have = n
            depth = n.bit_length()
            t0 = time.perf_counter()
            for _ in range(2000):
                for _ in range(depth):
                    hashlib.sha256(b"x" * 65).digest()
            base = (time.perf_counter() - t0) / 2000
            row: dict[str, float] = {"build_s": round(build, 1), "load": os.getloadavg()[0]}
            row["log2n_raw_sha256_us"] = round(base * 1e6, 1)
            for cold in (False, True):
                t = proof_times(store, n, cold, rnd, store.root(n))
                q = statistics.quantiles(t, n=100, method="inclusive")
                name = "cold" if cold else "warm"
                row[f"{name}_p50_us"] = round(q[49] * 1e6, 1)
                row[f"{name}_p99_us"] = round(q[98] * 1e6, 1)
            out.append((n, row))
            print(json.dumps({"leaves": n, **row}), flush=True)
        store.close()
    if len(out) >= 2:  # cost per tree level from the two largest sizes, extrapolated
        (na, a), (nb, b) = out[-2], out[-1]
        levels = nb.bit_length() - na.bit_length()
        for name in ("warm", "cold"):
            per = (b[f"{name}_p50_us"] - a[f"{name}_p50_us"]) / max(levels, 1)
            more = (10**8).bit_length() - nb.bit_length()
            at = b[f"{name}_p50_us"] + max(per, 0) * more
            print(f"{name}: {per:+.1f} us per tree level; p50 at 100M ~ {at:.0f} us (extrapolated)")


if __name__ == "__main__":
    main()
