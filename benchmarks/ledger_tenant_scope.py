"""What the tenant scope costs a ledger list: ``python -m benchmarks.ledger_tenant_scope``.

One tile store and one SQLite store of N synthetic leaves (tenants acme 45 %, globex 45 %, none
10 %), each read in pages of 10,000 from the start to the end: without a scope (the baseline:
what an admin, or any reader before this change, pays) and with ``tenant_scope="globex"``,
the two alternated round by round in the same process. Figures: CPU seconds of this process
per full read, best of the rounds, and their ratio; with ``uptime`` load beside them.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path
from typing import Any

from benchmarks.e2e_common import self_cpu


def build(store: Any, n: int, batch: int = 50_000) -> None:
    """N leaves appended in batches (rows and hashes synthetic, tree nodes real)."""
    import hashlib

    from core.ports.ledgerstore import LeafBatch
    from ledger.tree import TreeBuilder

    tenants = ("acme",) * 9 + ("globex",) * 9 + (None,) * 2
    for first in range(0, n, batch):
        rows = []
        hashes = []
        for i in range(first, min(n, first + batch)):
            h = hashlib.sha256(i.to_bytes(8, "big")).digest()
            hashes.append(h)
            tenant = tenants[i % len(tenants)]
            rows.append((i, "trades", 0, i, 1_700_000_000_000 + i, "desk-1", "Trade", f"T{i}",
                         tenant, h))  # fmt: skip
        with store.write() as w:
            data = b"".join(hashes)
            w.append_batch(LeafBatch.of_rows(rows), TreeBuilder(first, w.chunk).append(data))


def read_all(store: Any, scope: str | None) -> int:
    from core.ports.ledgerstore import LeafQuery

    after, seen = -1, 0
    while rows := store.find(LeafQuery(tenant_scope=scope), after=after, limit=10_000):
        seen += len(rows)
        after = rows[-1][0]
    return seen


def main() -> None:
    from adapters.sqlite_ledgerstore import SqliteLedgerStore
    from adapters.tile_ledgerstore import TileLedgerStore

    ap = argparse.ArgumentParser()
    ap.add_argument("--leaves", type=int, default=200_000)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for name, cls in (("tiles", TileLedgerStore), ("sqlite", SqliteLedgerStore)):
            store = cls(Path(tmp) / f"{name}.sqlite")
            try:
                build(store, args.leaves)
                best = {None: float("inf"), "globex": float("inf")}
                counts = {}
                for _ in range(args.rounds):
                    for scope in (None, "globex"):
                        t0 = self_cpu()
                        counts[scope] = read_all(store, scope)
                        best[scope] = min(best[scope], self_cpu() - t0)
                load = os.getloadavg()[0]
                print(
                    f"{name}: {args.leaves} leaves; all {best[None]:.3f} CPU-s "
                    f"({counts[None]} rows), globex {best['globex']:.3f} CPU-s "
                    f"({counts['globex']} rows), ratio {best['globex'] / best[None]:.2f}; "
                    f"load {load:.1f}"
                )
            finally:
                store.close()


if __name__ == "__main__":
    main()
