"""``Ledger.cover`` with the appended records handed over (what the HTTP ingest route does),
old vs new in ONE process, alternating round by round (issue 13, session 15), beside the same
log synced by reading it back and raw SHA-256 of the same leaf inputs.

"Old" is another tree's ``hub_native`` build and its ``ledger/service.py`` (``Ledger``), loaded
next to this tree's; the rest (``ledger.leaves``, the log, the tile store) is this tree's, and
each side's ``column_leaf_batch``/``stored_leaf_batch`` is swapped into ``ledger.leaves`` for
its turn. Records are appended ``--append`` at a time (as ``appended_columns`` hands them:
shared envelope headers as one repeated object, fresh ids per record, keys from 5,000 accounts)
and covered in one call, in sync batches of ``--sync-batch`` (the hub's default 50,000: a
handed chunk that a batch cuts is handed on in the new tree, read back in the old). Rates are
leaves per CPU second of this process (``time.process_time``), best of the rounds; every side
must give the same checkpoint root.

    git archive main | tar -x -C /tmp/old && (cd /tmp/old/native && \\
        CARGO_TARGET_DIR=/tmp/old-target cargo build --release)
    .venv/bin/python -m benchmarks.ledger_cover_ab /tmp/old \\
        /tmp/old-target/release/libhub_native.so \\
        .venv/lib/python3.11/site-packages/hub_native.abi3.so --events 200000 --rounds 6
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import os
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import ledger.leaves as leaves_module
import ledger.service as new_service
from adapters.local_signer import LocalKeyFileSigner
from adapters.sqlite_log import SqliteEventLog
from adapters.tile_ledgerstore import TileLedgerStore
from benchmarks.e2e_common import ledger_records
from benchmarks.ledger_native_ab import _load
from core.ports.eventlog import RecordColumns, appended_columns
from ledger.leaves import LeafEncoder

KEY = b"m" * 32


def _old_service(tree: Path) -> ModuleType:
    """The other tree's ``ledger/service.py`` as a module of its own (its imports: this tree's)."""
    spec = importlib.util.spec_from_file_location("old_ledger_service", tree / "ledger/service.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def _append(log: SqliteEventLog, n: int, step: int, first: int = 0) -> list[RecordColumns]:
    """``n`` records (from number ``first``) appended ``step`` at a time; what each append
    hands over."""
    handed: list[RecordColumns] = []
    for start in range(first, first + n, step):
        recs = ledger_records(min(step, first + n - start), start)
        metas = log.append("trades", recs)
        names = tuple(name for name, _ in recs[0].headers)
        cols: list[list[bytes]] = [
            list(c) for c in zip(*[[v for _, v in r.headers] for r in recs], strict=True)
        ]
        cols = [c[:1] if c.count(c[0]) == len(c) else c for c in cols]  # shared: one object
        keys, values = [r.key for r in recs], [r.value for r in recs]
        handed += appended_columns("trades", metas, keys, values, names, cols)
    return handed


def _none(*_: object, **__: object) -> None:
    return None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("old_tree", type=Path)
    ap.add_argument("old_so")
    ap.add_argument("new_so")
    ap.add_argument("--events", type=int, default=200_000)
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--append", type=int, default=10_000)
    ap.add_argument("--sync-batch", type=int, default=50_000)
    ap.add_argument(
        "--each",
        action="store_true",
        help="cover after each append (the HTTP route's shape: a new log per side and round, "
        "only the covers timed), instead of once after all of them",
    )
    ap.add_argument(
        "--no-stored",
        action="store_true",
        help="the log hands no stored batches (as Kafka or a cold tier): handed columns are used",
    )
    args = ap.parse_args()
    old_so, new_so = _load(args.old_so), _load(args.new_so)
    sides: dict[str, tuple[Any, ModuleType]] = {
        "old": (old_so, _old_service(args.old_tree)),
        "new": (new_so, new_service),
        "read": (new_so, new_service),  # the same log read back (no handoff), new tree
    }
    tmp = Path(tempfile.mkdtemp(prefix="ledger-cover-ab-"))
    log = SqliteEventLog(tmp / "log.sqlite", synchronous="OFF", mac_key=KEY)
    log.create_topic("trades", 1)
    handed = _append(log, args.events, args.append)
    inputs = LeafEncoder().leaf_inputs(list(log.scan("trades", 0)))
    signer = LocalKeyFileSigner(tmp / "keys" / "ledger.key", "bench/ledger")
    best: dict[str, float] = {}
    roots: set[bytes] = set()
    for r in range(args.rounds):
        t0 = time.process_time()
        _ = [hashlib.sha256(d).digest() for d in inputs]
        best["raw"] = min(best.get("raw", 1e9), time.process_time() - t0)
        order = ["old", "new", "read"] if r % 2 == 0 else ["read", "new", "old"]
        for side in order:
            so, service = sides[side]
            leaves_module._native_column_batch = so.column_leaf_batch  # type: ignore[attr-defined]
            leaves_module._native_stored_batch = so.stored_leaf_batch  # type: ignore[attr-defined]
            path = tmp / f"{side}-{r}.sqlite"
            store = TileLedgerStore(path)
            config = service.LedgerConfig(origin="bench/ledger", sync_batch=args.sync_batch)
            ledger = service.Ledger(log, store, signer, config)
            if args.each:
                each = SqliteEventLog(
                    tmp / f"each-{side}-{r}.sqlite", synchronous="OFF", mac_key=KEY
                )
                each.create_topic("trades", 1)
                ledger = service.Ledger(each, store, signer, config)
                spent = 0.0
                for start in range(0, args.events, args.append):
                    cols = _append(each, min(args.append, args.events - start), args.append, start)
                    t0 = time.process_time()
                    got = ledger.cover(handed=[] if side == "read" else cols)
                    spent += time.process_time() - t0
                    assert got["covered"], got
                best[side] = min(best.get(side, 1e9), spent)
            else:
                if args.no_stored and side != "read":
                    log.read_encoded = _none  # type: ignore[method-assign,assignment]
                elif "read_encoded" in vars(log):
                    del log.read_encoded
                t0 = time.process_time()
                got = ledger.cover(handed=[] if side == "read" else handed)
                best[side] = min(best.get(side, 1e9), time.process_time() - t0)
                assert got["covered"] and got["tree_size"] == len(inputs), got
            ledger.sync(force_checkpoint=True)
            cp = store.latest_checkpoint()
            assert cp is not None
            if not args.each:  # (each side's own log with --each: other random values)
                roots.add(cp.root)
            store.close()
            for f in tmp.glob(path.name + "*"):
                f.unlink()
    assert len(roots) <= 1, "the sides' checkpoint roots differ"
    n = len(inputs)
    raw = n / best["raw"]
    print(
        f"{n} leaves, best of {args.rounds}; raw SHA-256 {raw:,.0f}/CPU s; load {os.getloadavg()}"
    )
    for side in ("old", "new", "read"):
        rate = n / best[side]
        label = {"old": "cover handed, old", "new": "cover handed, new", "read": "sync read back"}
        print(f"{label[side]:18} {rate:>10,.0f}/CPU s  {rate / raw:.3f}x raw")
    print(f"cover handed new/old {best['old'] / best['new']:.3f}x")
    log.close()


if __name__ == "__main__":
    main()
