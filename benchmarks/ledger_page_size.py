"""The tile store's SQLite page size and WAL checkpoint placement against sync CPU, verify CPU
and file size (issue 13, session 20): ``python -m benchmarks.ledger_page_size``.

Two levers named in docs/benchmarks/s19-ledger.md, measured before either is changed:

- ``PAGE_SIZE`` (1 KiB since store version 2, chosen for storage in s8-storage.md): an 8 KiB
  tile is 9 pages, each a WAL frame and copied again by the checkpoint. Variants 4 and 8 KiB.
- the WAL auto-checkpoint runs inside the commit that crosses 1,000 pages (each 50k-leaf sync
  step here). Variant ``ckpt-end``: ``wal_autocheckpoint=0`` for the sync, then ONE passive
  checkpoint after it, inside the timed CPU (the copy still has to happen).

One variant per fresh subprocess, the variants' order rotated each round; the same ledger
records (``benchmarks.e2e_common.ledger_records``) appended ``--append`` at a time, then one
``Ledger.sync`` (CPU s of the process), a forced checkpoint, the WAL checkpointed away
(TRUNCATE) and the file's size, then a full ``verify_ledger`` (CPU s).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from statistics import median

KEY = b"m" * 32
VARIANTS = ("1k", "4k", "8k", "1k-ckpt-end")


def one_round(variant: str, events: int, step: int) -> dict[str, float]:
    import pyarrow.acero  # noqa: F401  (paid outside the timed phases, see ledger_stored_ab)

    import adapters.tile_ledgerstore as tiles
    from adapters.local_signer import LocalKeyFileSigner
    from adapters.sqlite_log import SqliteEventLog
    from benchmarks.e2e_common import ledger_records
    from ledger.service import Ledger, LedgerConfig
    from ledger.verify import verify_ledger

    tiles.PAGE_SIZE = {"4k": 4096, "8k": 8192}.get(variant, 1024)
    tmp = Path(tempfile.mkdtemp(prefix="ledger-page-size-"))
    log = SqliteEventLog(tmp / "log.sqlite", synchronous="OFF", mac_key=KEY)
    log.create_topic("trades", 1)
    signer = LocalKeyFileSigner(tmp / "keys" / "ledger.key", "bench/ledger")
    store = tiles.TileLedgerStore(tmp / "ledger.sqlite")
    ledger = Ledger(log, store, signer, LedgerConfig(origin="bench/ledger"))
    for s in range(0, events, step):
        log.append("trades", ledger_records(min(step, events - s), s))
    conn = store._conn  # the store's one connection (benchmark only)
    t0 = time.process_time()
    if variant.endswith("ckpt-end"):
        conn.execute("PRAGMA wal_autocheckpoint=0")
        ledger.sync()
        conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
        conn.execute("PRAGMA wal_autocheckpoint=1000")
    else:
        ledger.sync()
    sync = time.process_time() - t0
    ledger.sync(force_checkpoint=True)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    size = os.path.getsize(tmp / "ledger.sqlite")
    t0 = time.process_time()
    report = verify_ledger(ledger)
    verify = time.process_time() - t0
    assert report.ok and report.leaves == events, report.as_dict()
    ledger.close()
    log.close()
    return {"sync": sync, "verify": verify, "size": size}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=200_000)
    ap.add_argument("--append", type=int, default=10_000)
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--child", default="", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(one_round(args.child, args.events, args.append)))
        return
    got: dict[str, list[dict[str, float]]] = {v: [] for v in VARIANTS}
    for r in range(args.rounds):
        order = VARIANTS[r % len(VARIANTS) :] + VARIANTS[: r % len(VARIANTS)]
        for v in order:
            flags = [f"--child={v}", f"--events={args.events}", f"--append={args.append}"]
            out = subprocess.run(
                [sys.executable, "-m", "benchmarks.ledger_page_size", *flags],
                capture_output=True,
                text=True,
                check=True,
            )
            got[v].append(json.loads(out.stdout.strip().splitlines()[-1]))
    n = args.events
    print(f"{n} leaves, {args.rounds} rounds, order rotated; load {os.getloadavg()}")
    for v, rs in got.items():
        sync = [x["sync"] / n * 1e6 for x in rs]
        ver = [x["verify"] / n * 1e6 for x in rs]
        print(
            f"{v:>12}: sync us/leaf {min(sync):.3f}-{max(sync):.3f} (median {median(sync):.3f}); "
            f"verify us/leaf {min(ver):.3f}-{max(ver):.3f} (median {median(ver):.3f}); "
            f"file {median(x['size'] for x in rs) / n:.1f} B/leaf"
        )


if __name__ == "__main__":
    main()
