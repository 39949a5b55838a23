"""Cost of the start-up check for erasures undone by a keyring put back (session 20, red team
audit): ``Eraser.undone()`` (a ledger query by action then; the erasure index since session 21).

A hub gets ``N`` trades (ledger entries) and ``E`` erasures of subjects without keys. Each round
times ``undone()`` alone and a whole open (``bootstrap``) without and with the check
(``check_erasures``: every open since session 21, through the erasure index; see
``benchmarks.erasure_index`` for old against new), alternating in the same process. CPU seconds
(``time.process_time``), min and max over rounds, with the load average.
Run: ``.venv/bin/python -m benchmarks.undone_erasures [entries] [erasures] [rounds]``.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

from core.ports.policy import Principal
from hub.bootstrap import bootstrap
from hub.settings import load_settings
from tests.service.test_ledger import trade

OPERATOR = Principal("ops", frozenset({"admin"}))


def main(n: int, erasures: int, rounds: int) -> None:
    with tempfile.TemporaryDirectory(prefix="undone-bench-") as tmp:
        settings = load_settings(environ={}, data_dir=Path(tmp) / "hub")
        h = bootstrap(settings)
        try:
            for start in range(0, n, 10_000):
                batch = [trade(start + i, f"ACC-{i % 50}") for i in range(min(10_000, n - start))]
                h.publisher.publish("trades", batch, producer="bench")
                h.ledger.sync()
            for i in range(erasures):
                h.eraser.erase(OPERATOR, f"ACC-GONE-{i}", f"bench-{i}", tenant_scope=None)
            h.ledger.sync(force_checkpoint=True)
            size = h.ledger.store.tree_size()
        finally:
            h.close()
        check: list[float] = []
        opens: dict[bool, list[float]] = {False: [], True: []}
        for _ in range(rounds):
            for checked in (False, True):  # without the check, with it (every open)
                t = time.process_time()
                h = bootstrap(settings, check_erasures=checked)
                opens[checked].append(time.process_time() - t)
                h.close()
            h = bootstrap(settings)
            try:
                t = time.process_time()
                assert h.eraser.undone() == []
                check.append(time.process_time() - t)
            finally:
                h.close()
        load = os.getloadavg()[0]
        print(f"{size} entries, {erasures} erasures, {rounds} rounds, load {load:.1f}")
        print(f"undone(): {min(check) * 1000:.1f}-{max(check) * 1000:.1f} ms CPU")
        for checked, times in opens.items():
            name = "with it" if checked else "without"
            print(f"open, {name}: {min(times) * 1000:.0f}-{max(times) * 1000:.0f} ms CPU")


if __name__ == "__main__":
    args = [int(a) for a in sys.argv[1:]]
    main(*(args + [100_000, 50, 5][len(args) :]))
