"""What the repeated-envelope-header gate costs an append (session 11).

``python -m benchmarks.envelope_gate [--records 4096] [--rounds 7]``

Per round, on batches of the hub's envelope records (``domain.envelope.Envelope`` headers, a
150-byte value, 3 partitions, ``synchronous=OFF``): the CPU time of ``SqliteEventLog.append``
of the batch, and of ``check_envelope_headers`` (the gate) alone over the same headers; the gate
as a share of the append. Rounds alternate; the best counts (the machine is shared). Rates are
per CPU second of this process; ``uptime``'s load is printed with them.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from adapters.sqlite_log import SqliteEventLog
from core.ports.eventlog import Record, check_envelope_headers
from domain.envelope import Envelope


def records(n: int, start: int) -> list[Record]:
    return [
        Record(
            value=os.urandom(150),
            key=b"acct-%d" % ((start + i) % 5000),
            headers=Envelope("hub.trading.TradeExecuted", "bench", tenant="acme").to_headers(),
        )
        for i in range(n)
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=4096)
    ap.add_argument("--rounds", type=int, default=7)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="envelope-gate-"))
    log = SqliteEventLog(tmp / "log.sqlite", synchronous="OFF")
    log.create_topic("trades", 3)
    best = {"append": float("inf"), "gate": float("inf")}
    n = args.records
    for r in range(args.rounds):
        batch = records(n, r * n)
        heads = [rec.headers for rec in batch]
        t0 = time.process_time()
        for _ in range(20):
            check_envelope_headers(heads, "trades")
        best["gate"] = min(best["gate"], (time.process_time() - t0) / 20)
        t0 = time.process_time()
        log.append("trades", batch)
        best["append"] = min(best["append"], time.process_time() - t0)
    log.close()
    load = os.getloadavg()
    print(f"{n} records a batch; load {load}")
    for name, secs in best.items():
        print(f"{name:8} {secs * 1e3:8.3f} ms CPU  {n / secs:>14,.0f} records/CPU s")
    print(f"gate / append: {best['gate'] / best['append']:.1%}")


if __name__ == "__main__":
    main()
