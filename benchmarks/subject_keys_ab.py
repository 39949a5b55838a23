"""Per-tenant subject keys (s18): PII publish and read cost, old tree against new, alternating.

Each round runs one child process per tree (``--trees old new``: source trees sharing this
venv and its ``hub_native``), in turn. A child bootstraps a hub data folder and measures, in
process CPU (the machine is shared):

1. ``prepare``: ``Publisher._prepare_batch`` of batches of 1,000 ``AccountOpened`` events
   (four PII fields, ``--subjects`` distinct accounts, keys made in a warm-up batch): the seal
   path (tenant view, scoped key ids, erased checks);
2. ``read``: decoding those records back with their PII opened (``EventReader.read``).

Run: ``.venv/bin/python -m benchmarks.subject_keys_ab --trees /tmp/old . [--rounds 3]``
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

CHILD = r"""
import json, sys, tempfile, time
from pathlib import Path
from hub.bootstrap import bootstrap
from hub.settings import load_settings
from tests.service.accounts import account_opened

subjects, batches = int(sys.argv[1]), int(sys.argv[2])
with tempfile.TemporaryDirectory(prefix="hub-subject-keys-") as tmp:
    hub = bootstrap(load_settings(environ={"HUB_PROJECTION_AUTOSTART": "false"},
                                  data_dir=Path(tmp) / "data"))
    try:
        events = [account_opened(f"ACC-{i % subjects}") for i in range(1000)]
        hub.publisher.publish("accounts", events, "bench", tenant="acme")  # keys made
        p = hub.publisher
        t = time.process_time()
        for _ in range(batches):
            p._prepare_batch("accounts", events, "bench", "acme")
        prepare = (time.process_time() - t) / (batches * len(events)) * 1e6
        parts = hub.log.beginning_offsets("accounts")
        t = time.process_time()
        n = 0
        for _ in range(batches):
            for part in parts:
                n += len(hub.reader.read("accounts", part, 0, 1000))
        read = (time.process_time() - t) / n * 1e6
        print(json.dumps({"prepare_us": prepare, "read_us": read}))
    finally:
        hub.close()
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trees", nargs=2, required=True, metavar=("OLD", "NEW"))
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--subjects", type=int, default=200)
    ap.add_argument("--batches", type=int, default=20)
    args = ap.parse_args()
    results: dict[str, list[dict[str, float]]] = {t: [] for t in args.trees}
    for _ in range(args.rounds):
        for tree in args.trees:
            env = {**os.environ, "PYTHONPATH": str(Path(tree).resolve())}
            out = subprocess.run(
                [sys.executable, "-c", CHILD, str(args.subjects), str(args.batches)],
                cwd=tree,
                env=env,
                capture_output=True,
                text=True,
                check=True,
            )
            results[tree].append(json.loads(out.stdout.strip().splitlines()[-1]))
    old, new = args.trees
    for key in ("prepare_us", "read_us"):
        pairs = [(o[key], n[key]) for o, n in zip(results[old], results[new], strict=True)]
        ratios = ", ".join(f"{n / o:.2f}x" for o, n in pairs)
        print(
            f"{key}: old {[round(o, 2) for o, _ in pairs]} new {[round(n, 2) for _, n in pairs]}"
            f" (new/old per round: {ratios})"
        )


if __name__ == "__main__":
    main()
