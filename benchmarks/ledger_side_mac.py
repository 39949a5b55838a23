"""What the side-index MAC costs: ``Ledger.sync``, the full ``verify_ledger`` and the default
(incremental) one, on a tile store written without the key (``side_key=None``: what the store
did before, one SHA-256 per batch) and with it (a MAC per batch, checked on every read), in
ONE process, alternating round by round so both sides see the machine's same load. Rates are
leaves per CPU second (``time.process_time``), beside raw SHA-256 of the same leaf inputs
(``hashlib``, one call per leaf) timed in the same rounds; both sides must give the same root.

``--sync-batch`` sets the ledger's batch (one side-index batch each): small batches are the
MAC's worst case (the most batches per leaf).

    .venv/bin/python -m benchmarks.ledger_side_mac --events 100000 --rounds 5 --sync-batch 2000
"""

from __future__ import annotations

import argparse
import hashlib
import os
import tempfile
import time
from pathlib import Path

import pyarrow as pa

from adapters.local_signer import LocalKeyFileSigner
from adapters.sqlite_log import SqliteEventLog
from adapters.tile_ledgerstore import TileLedgerStore
from benchmarks.e2e_common import ledger_records
from ledger.leaves import LeafEncoder
from ledger.service import Ledger, LedgerConfig
from ledger.verify import load_verified, save_verified, verify_ledger

KEY = b"m" * 32
SIDE_KEY = b"s" * 32


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=100_000)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--sync-batch", type=int, default=50_000)
    args = ap.parse_args()
    pa.array(("warm-up",))
    tmp = Path(tempfile.mkdtemp(prefix="ledger-side-mac-"))
    log = SqliteEventLog(tmp / "log.sqlite", synchronous="OFF", mac_key=KEY)
    log.create_topic("trades", 3)
    for start in range(0, args.events, 4096):
        log.append("trades", ledger_records(min(4096, args.events - start), start))
    inputs = LeafEncoder().leaf_inputs([r for p in range(3) for r in log.scan("trades", p)])
    log.close()
    more = max(1, args.events // 100)
    signer = LocalKeyFileSigner(tmp / "keys" / "ledger.key", "bench/ledger")
    config = LedgerConfig(origin="bench/ledger", sync_batch=args.sync_batch)
    best: dict[str, float] = {}
    roots: dict[str, set[bytes]] = {"unkeyed": set(), "keyed": set()}
    batches: dict[str, int] = {}

    def note(name: str, seconds: float) -> None:
        best[name] = min(best.get(name, float("inf")), seconds)

    for r in range(args.rounds):
        t0 = time.process_time()
        _ = [hashlib.sha256(d).digest() for d in inputs]
        note("raw", time.process_time() - t0)
        for side in ("unkeyed", "keyed") if r % 2 == 0 else ("keyed", "unkeyed"):
            work = tmp / f"{side}-{r}"
            work.mkdir()
            for f in tmp.glob("log.sqlite*"):  # each side appends its 1% to its own copy
                (work / f.name).write_bytes(f.read_bytes())
            slog = SqliteEventLog(work / "log.sqlite", mac_key=KEY)
            store = TileLedgerStore(
                work / "tiles.sqlite", side_key=SIDE_KEY if side == "keyed" else None
            )
            ledger = Ledger(slog, store, signer, config)
            t0 = time.process_time()
            ledger.sync(force_checkpoint=True)
            note(f"sync {side}", time.process_time() - t0)
            t0 = time.process_time()
            rep = verify_ledger(ledger)
            note(f"verify full {side}", time.process_time() - t0)
            assert rep.ok, rep.first
            cp = store.latest_checkpoint()
            assert cp is not None
            roots[side].add(cp.root)
            state = work / "verified.note"
            save_verified(ledger, state, rep, cp, 0, None)
            slog.append("trades", ledger_records(more, args.events))
            ledger.sync(force_checkpoint=True)
            since, why = load_verified(ledger, state)
            assert since is not None, why
            t0 = time.process_time()
            rep = verify_ledger(ledger, since=since)
            note(f"verify incremental {side}", time.process_time() - t0)
            assert rep.ok, rep.first
            assert (rep.unkeyed_batches == 0) == (side == "keyed"), rep.unkeyed_batches
            batches[side] = sum(1 for _ in store.side_batches())
            store.close()
            slog.close()
    assert roots["unkeyed"] == roots["keyed"] and len(roots["keyed"]) == 1, "the roots differ"
    n = len(inputs)
    raw = n / best["raw"]
    print(
        f"{n} leaves in {batches['keyed']} side-index batches (+{more} for the incremental "
        f"run), best of {args.rounds}; raw {raw:,.0f}/CPU s; load {os.getloadavg()}"
    )
    for what in ("sync", "verify full", "verify incremental"):
        count = more if what == "verify incremental" else n  # what the run re-checks by leaf
        for side in ("unkeyed", "keyed"):
            rate = count / best[f"{what} {side}"]
            print(f"{what + ' ' + side:28} {rate:>12,.0f} leaves/CPU s  {rate / raw:.3f}x raw")
        ratio = best[f"{what} unkeyed"] / best[f"{what} keyed"]
        print(f"{what} keyed/unkeyed {ratio:.3f}x (CPU s {best[f'{what} keyed']:.3f})")


if __name__ == "__main__":
    main()
