"""HTTP ingest into ``hub serve`` with the alert engine on (issue 13):
``python -m benchmarks.alerts_serve``.

The e2e harness's HTTP row (``benchmarks.e2e.http_runs``: 4 clients x 500 trades per request,
as fast as it goes) on a data folder that already holds ``--events`` trades (the e2e runs its
file and embedded rows first, so its server starts on a few hundred thousand records), with
``HUB_ALERT_INTERVAL_S=--interval`` so that several alert passes fall inside ``--seconds``.
Reported: events/s, server CPU-s per wall second, events per server CPU-second, load.
Run it from any tree (``PYTHONPATH=<tree>``: the server inherits it) to compare two trees.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pyarrow  # noqa: F401  (before chDB and regopy: STACK-NOTES)

from benchmarks.e2e_common import ACCOUNTS, trade_rows


def _profile(out: str, seconds: float) -> None:
    """py-spy over the server (``hub serve``, this process's child) in the second half of the
    run: past the first alert pass (a full ledger verify when none is remembered, the views
    opened) and the first request's dedupe window read, both once per data folder or process."""
    import psutil

    time.sleep(seconds / 2)
    (server,) = [c for c in psutil.Process().children() if "serve" in " ".join(c.cmdline())]
    spy = Path(sys.executable).parent / "py-spy"
    cmd = [str(spy), "record", "--nonblocking", "-r", "50", "-f", "raw", "-o", out]
    cmd += ["-d", str(int(seconds / 2 - 5)), "-p", str(server.pid)]
    subprocess.run(cmd, capture_output=True, check=False)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--events", type=int, default=300_000)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--interval", type=float, default=10.0, help="HUB_ALERT_INTERVAL_S")
    ap.add_argument("--profile", help="py-spy collapsed stacks of the server into this file")
    ap.add_argument("--port", type=int, default=int(os.environ.get("HUB_BENCH_PORT", "45081")))
    args = ap.parse_args()

    from benchmarks.e2e import http_runs
    from hub.bootstrap import bootstrap
    from hub.cli import init_admin_key
    from hub.settings import load_settings
    from ingest.files import publish_file
    from tests.service.accounts import open_accounts

    with tempfile.TemporaryDirectory(prefix="alerts-serve-") as tmp:
        folder = Path(tmp)
        data = folder / "data"
        h = bootstrap(load_settings(environ={}, data_dir=data, projection_autostart=False))
        try:
            token = init_admin_key(h, folder / "admin.key")
            open_accounts(h, [f"ACC-{i}" for i in range(ACCOUNTS)])
            path = folder / "trades.jsonl"
            path.write_text("".join(json.dumps(r) + "\n" for r in trade_rows(args.events)))
            publish_file(h.ingest, path, "trades")
            h.ledger.sync(force_checkpoint=True)
        finally:
            h.close()
        os.environ["HUB_ALERT_INTERVAL_S"] = str(args.interval)
        load0 = "{:.1f} {:.1f} {:.1f}".format(*os.getloadavg())
        if args.profile:
            spy = threading.Thread(target=_profile, args=(args.profile, args.seconds), daemon=True)
            spy.start()
        (run,) = http_runs(data, token, args.port, args.seconds, [None], 10**8)
        load1 = "{:.1f} {:.1f} {:.1f}".format(*os.getloadavg())
        cpu = run.cpu_per_s * run.seconds
        print(
            f"{run.events} events in {run.seconds:.1f} s: {run.rate:,.0f}/s; server "
            f"{run.cpu_per_s:.2f} CPU-s/s, {run.events / cpu:,.0f} events per server CPU-s; "
            f"{run.note}; load {load0} -> {load1}"
        )


if __name__ == "__main__":
    main()
