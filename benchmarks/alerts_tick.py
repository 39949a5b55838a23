"""The alert engine's cost per tick (issue 13): ``python -m benchmarks.alerts_tick``.

On a fresh data folder (projections not started, as ``benchmarks.e2e`` runs ``hub serve``):
``--events`` trades through the file path, the ledger synced, then the engine ``hub serve``
builds (``engine_for``, the shipped rules) evaluated:
  1. the first tick (no remembered verification: the engine's ledger verify starts from it);
  2. a tick with nothing new;
  3. ``--rounds`` ticks each after ``--batch`` more trades (the ledger synced before each).
Reported: CPU seconds of the process per tick (``time.process_time``: chDB runs threads of
its own) and the load average.
``--profile`` prints the top cumulative frames of cProfile over the ticks of step 3.
Run it from any tree (``PYTHONPATH=<tree>``) to compare two trees in the same run.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import tempfile
import time
from pathlib import Path

import pyarrow  # noqa: F401  (before chDB and regopy: STACK-NOTES)

from benchmarks.e2e_common import ACCOUNTS, trade_rows


def _file(folder: Path, n: int, start: int) -> Path:
    path = folder / f"trades-{start}.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in trade_rows(n, start)))
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--events", type=int, default=200_000)
    ap.add_argument("--batch", type=int, default=5_000)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--profile", action="store_true")
    args = ap.parse_args()

    from hub.bootstrap import bootstrap
    from hub.console.alerts import engine_for
    from hub.settings import load_settings
    from ingest.files import publish_file
    from tests.service.accounts import open_accounts

    with tempfile.TemporaryDirectory(prefix="alerts-tick-") as tmp:
        folder = Path(tmp)
        h = bootstrap(
            load_settings(environ={}, data_dir=folder / "data", projection_autostart=False)
        )
        try:
            open_accounts(h, [f"ACC-{i}" for i in range(ACCOUNTS)])
            publish_file(h.ingest, _file(folder, args.events, 0), "trades")
            h.ledger.sync(force_checkpoint=True)
            engine = engine_for(h)

            def tick() -> float:
                t0 = time.process_time()
                engine.evaluate()
                return time.process_time() - t0

            load = "load {:.1f} {:.1f} {:.1f}".format(*os.getloadavg())
            print(f"{args.events} events; {load}")
            print(f"first tick: {tick():.3f} CPU-s")
            print(f"nothing new: {tick():.3f} CPU-s")
            prof = cProfile.Profile() if args.profile else None
            costs = []
            start = args.events
            for _ in range(args.rounds):
                publish_file(h.ingest, _file(folder, args.batch, start), "trades")
                start += args.batch
                h.ledger.sync(force_checkpoint=True)
                if prof is not None:
                    prof.enable()
                costs.append(tick())
                if prof is not None:
                    prof.disable()
            costs.sort()
            print(
                f"after {args.batch} new: median {costs[len(costs) // 2]:.3f} CPU-s "
                f"(min {costs[0]:.3f}, max {costs[-1]:.3f}); "
                "load {:.1f} {:.1f} {:.1f}".format(*os.getloadavg())
            )
            if prof is not None:
                out = io.StringIO()
                pstats.Stats(prof, stream=out).sort_stats("cumulative").print_stats(40)
                print(out.getvalue())
        finally:
            h.close()


if __name__ == "__main__":
    main()
