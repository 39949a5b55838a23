"""What recording the tenants of data subjects costs a publish: ``python -m
benchmarks.subject_tenants_cost``.

One embedded hub (SQLite log, local keyring); batches of B ``AccountOpened`` (3 PII fields each,
B distinct subjects, all already known: the steady state) published with the hub's
``SubjectTenants`` (``Publisher.subject_tenants``) and without it (the baseline: the publish path
before this change), the two alternated round by round in the same process. Also the first
naming of B new subjects with it (one SQLite transaction for the batch's pairs;
no keys were made for them, so one keyring query asks whether any has an older key). Figures: CPU
seconds of this process per batch, best of the rounds, and their ratio; with ``uptime`` load.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from hub.bootstrap import bootstrap
from hub.settings import load_settings
from tests.service.accounts import account_opened


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=500)
    ap.add_argument("--rounds", type=int, default=15)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        env = {"HUB_PROJECTION_AUTOSTART": "false"}
        h = bootstrap(load_settings(environ=env, data_dir=Path(d) / "data"))
        try:
            tenants = h.publisher.subject_tenants
            events = [account_opened(f"ACC-{i:06d}") for i in range(a.batch)]
            h.publisher.publish("accounts", events, "bench")  # keys made, pairs recorded
            best = {"with": float("inf"), "without": float("inf")}
            for _ in range(a.rounds):
                for name, st in (("without", None), ("with", tenants)):
                    h.publisher.subject_tenants = st
                    t = time.process_time()
                    h.publisher.publish("accounts", events, "bench")
                    best[name] = min(best[name], time.process_time() - t)
            h.publisher.subject_tenants = tenants
            fresh = [account_opened(f"NEW-{i:06d}") for i in range(a.batch)]
            t = time.process_time()
            tenants.name("default", [ev.value["account_id"] for ev in fresh])  # type: ignore[union-attr]
            first = time.process_time() - t
        finally:
            h.close()
    print(f"load {os.getloadavg()[0]:.1f}; batch {a.batch}, best of {a.rounds} rounds (CPU s)")
    print(
        f"publish, known subjects: without {best['without'] * 1e3:.2f} ms, "
        f"with {best['with'] * 1e3:.2f} ms, ratio {best['with'] / best['without']:.3f}"
    )
    print(f"first naming of {a.batch} new subjects (one transaction): {first * 1e3:.2f} ms")


if __name__ == "__main__":
    main()
