"""What the outside witness (``ledger.witness_log``, session 19) costs a checkpoint and a start.

``python -m benchmarks.witness_log [--checkpoints 300] [--rounds 5]``

Per round: a hub ledger (tile store, 1,000 records published) signs ``--checkpoints``
checkpoints one sync each (``force_checkpoint``), once with the in-folder witness alone (the
same-run baseline: what every sync did before) and once teed to the outside witness (an
fsync'd append per checkpoint); wall time per sync, best round (the machine is shared). Then
the start-up check (``check_ledger``: an 8 KiB tail read, two roots) on the file written.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

from adapters.local_objectstore import LocalObjectStore
from hub.bootstrap import bootstrap
from hub.settings import load_settings
from ledger.witness_log import WitnessTee, check_ledger, outside_log
from tests.service.test_ledger import publish


def round_once(tmp: Path, n: int, teed: bool) -> float:
    data = tmp / ("teed" if teed else "plain")
    h = bootstrap(load_settings(environ={}, data_dir=data, ledger_store="tiles"))
    try:
        publish(h, 1000)
        h.ledger.sync(force_checkpoint=True)
        if not teed:
            assert isinstance(h.ledger.witness, WitnessTee)
            h.ledger.witness = LocalObjectStore(h.settings.witness_dir)
        t0 = time.perf_counter()
        for i in range(n):
            publish(h, 1, start=10_000 + i)
            h.ledger.sync(force_checkpoint=True)
        return (time.perf_counter() - t0) / n
    finally:
        h.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoints", type=int, default=300)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    best = {"plain": float("inf"), "teed": float("inf")}
    for _ in range(args.rounds):
        for teed in (False, True):
            tmp = Path(tempfile.mkdtemp(prefix="witness-log-"))
            try:
                s = round_once(tmp, args.checkpoints, teed)
                best["teed" if teed else "plain"] = min(best["teed" if teed else "plain"], s)
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
    tmp = Path(tempfile.mkdtemp(prefix="witness-log-"))
    try:
        round_once(tmp, args.checkpoints, True)
        h = bootstrap(load_settings(environ={}, data_dir=tmp / "teed", ledger_store="tiles"))
        try:
            wlog = outside_log(h.ledger.witness)
            assert wlog is not None
            size = wlog.path.stat().st_size
            t0 = time.perf_counter()
            for _ in range(20):
                problem, _head = check_ledger(h.ledger.store, wlog)
                assert problem is None
            check_ms = (time.perf_counter() - t0) / 20 * 1000
        finally:
            h.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(
        f"sync+checkpoint: in-folder witness {best['plain'] * 1000:.2f} ms, teed to the outside "
        f"witness {best['teed'] * 1000:.2f} ms (ratio {best['teed'] / best['plain']:.2f}); "
        f"start-up check {check_ms:.2f} ms on a {size} byte file; load {os.getloadavg()[0]:.1f}"
    )


if __name__ == "__main__":
    main()
