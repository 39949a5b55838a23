"""``Ledger.sync`` and ``verify_ledger`` with two builds of ``hub_native`` in ONE process,
alternating round by round (issue 13, session 14): the machine is shared, so two processes
run minutes apart see different loads; here both sides see the same. Each side also picks the
side index's zstd level (``--old-level``/``--new-level``). Rates are per CPU second
(``time.process_time``), beside raw SHA-256 of the same leaf inputs (``hashlib``, one call per
leaf) timed in the same rounds; both sides must give the same checkpoint root.

Build the other side from another tree, e.g.::

    git archive main | tar -x -C /tmp/old && (cd /tmp/old/native && \\
        CARGO_TARGET_DIR=/tmp/old-target cargo build --release)
    .venv/bin/python -m benchmarks.ledger_native_ab /tmp/old-target/release/libhub_native.so \\
        .venv/lib/python3.11/site-packages/hub_native.abi3.so --events 200000 --rounds 6
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.machinery
import importlib.util
import os
import tempfile
import time
from pathlib import Path
from types import ModuleType

import pyarrow as pa

import adapters.tile_sideindex as sideindex
import ledger.leaves as leaves_module
from adapters.local_signer import LocalKeyFileSigner
from adapters.sqlite_log import SqliteEventLog
from adapters.tile_ledgerstore import TileLedgerStore
from benchmarks.e2e_common import ledger_records
from ledger.leaves import LeafEncoder
from ledger.service import Ledger, LedgerConfig
from ledger.verify import verify_ledger

KEY = b"m" * 32


def _load(path: str) -> ModuleType:
    """A ``hub_native`` build from ``path`` (each file is its own extension module)."""
    loader = importlib.machinery.ExtensionFileLoader("hub_native", path)
    spec = importlib.util.spec_from_file_location("hub_native", path, loader=loader)
    assert spec is not None, path
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("old")
    ap.add_argument("new")
    ap.add_argument("--events", type=int, default=100_000)
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--old-level", type=int, default=sideindex.LEVEL)
    ap.add_argument("--new-level", type=int, default=sideindex.LEVEL)
    args = ap.parse_args()
    sides = {
        "old": (_load(args.old).stored_leaf_batch, pa.Codec("zstd", args.old_level)),
        "new": (_load(args.new).stored_leaf_batch, pa.Codec("zstd", args.new_level)),
    }
    pa.array(("warm-up",))
    tmp = Path(tempfile.mkdtemp(prefix="ledger-native-ab-"))
    log = SqliteEventLog(tmp / "log.sqlite", synchronous="OFF", mac_key=KEY)
    log.create_topic("trades", 3)
    for start in range(0, args.events, 4096):
        log.append("trades", ledger_records(min(4096, args.events - start), start))
    inputs = LeafEncoder().leaf_inputs([r for p in range(3) for r in log.scan("trades", p)])
    log.close()
    signer = LocalKeyFileSigner(tmp / "keys" / "ledger.key", "bench/ledger")
    best: dict[str, float] = {}
    roots: dict[str, set[bytes]] = {"old": set(), "new": set()}

    def note(name: str, seconds: float) -> None:
        best[name] = min(best.get(name, float("inf")), seconds)

    for r in range(args.rounds):
        t0 = time.process_time()
        _ = [hashlib.sha256(d).digest() for d in inputs]
        note("raw", time.process_time() - t0)
        for side in ("old", "new") if r % 2 == 0 else ("new", "old"):
            native_batch, sideindex._ZSTD = sides[side]
            setattr(leaves_module, "_native_stored_batch", native_batch)  # noqa: B010
            slog = SqliteEventLog(tmp / "log.sqlite", mac_key=KEY)
            path = tmp / f"{side}-{r}.sqlite"
            store = TileLedgerStore(path)
            ledger = Ledger(slog, store, signer, LedgerConfig(origin="bench/ledger"))
            t0 = time.process_time()
            ledger.sync(force_checkpoint=True)
            note(f"sync {side}", time.process_time() - t0)
            t0 = time.process_time()
            rep = verify_ledger(ledger)
            note(f"verify {side}", time.process_time() - t0)
            assert rep.ok, rep.first
            cp = store.latest_checkpoint()
            assert cp is not None
            roots[side].add(cp.root)
            store.close()
            slog.close()
            for f in tmp.glob(path.name + "*"):
                f.unlink()
    assert roots["old"] == roots["new"] and len(roots["old"]) == 1, "the roots differ"
    n = len(inputs)
    raw = n / best["raw"]
    print(f"{n} leaves, best of {args.rounds}; raw {raw:,.0f}/CPU s; load {os.getloadavg()}")
    for name in ("sync old", "sync new", "verify old", "verify new"):
        rate = n / best[name]
        print(f"{name:11} {rate:>10,.0f}/CPU s  {rate / raw:.3f}x raw")
    for what in ("sync", "verify"):
        print(f"{what} new/old {best[f'{what} old'] / best[f'{what} new']:.3f}x")


if __name__ == "__main__":
    main()
