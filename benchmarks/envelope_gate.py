"""What the repeated-envelope-header gate costs an append (session 11).

``python -m benchmarks.envelope_gate [--records 4096] [--rounds 7]``

Per round, on batches of the hub's envelope records (``domain.envelope.Envelope`` headers, a
150-byte value, 3 partitions, ``synchronous=OFF``): the CPU time of ``SqliteEventLog.append``
of the batch, and of each gate alone over the same headers: ``embedded`` (what the embedded
log's encoder runs for a batch of one header layout: the first record's names) and ``kafka``
(``check_envelope_headers``, what the Kafka adapter runs: one ``dict`` per record). The best
round counts (the machine is shared). Rates are per CPU second of this process; ``uptime``'s
load is printed with them. Run from a checkout without the gate (``git archive`` of an older
commit), it times the append alone: the same-run baseline.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from adapters.sqlite_log import SqliteEventLog
from core.ports.eventlog import Record
from domain.envelope import Envelope

try:
    from adapters.sqlite_log.batch import repeats_envelope
    from core.ports.eventlog import check_envelope_headers
except ImportError:  # a checkout from before the gate: the append alone
    repeats_envelope = check_envelope_headers = None  # type: ignore[assignment]


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
    best = {"append": float("inf"), "embedded": float("inf"), "kafka": float("inf")}
    n = args.records
    for r in range(args.rounds):
        batch = records(n, r * n)
        heads = [rec.headers for rec in batch]
        if repeats_envelope is not None:
            t0 = time.process_time()
            for _ in range(200):
                repeats_envelope(heads, True)
            best["embedded"] = min(best["embedded"], (time.process_time() - t0) / 200)
            t0 = time.process_time()
            for _ in range(20):
                check_envelope_headers(heads, "trades")
            best["kafka"] = min(best["kafka"], (time.process_time() - t0) / 20)
        t0 = time.process_time()
        log.append("trades", batch)
        best["append"] = min(best["append"], time.process_time() - t0)
    log.close()
    print(f"{n} records a batch; load {os.getloadavg()}")
    for name, secs in best.items():
        if secs != float("inf"):
            print(f"{name:8} {secs * 1e3:8.3f} ms CPU  {n / secs:>14,.0f} records/CPU s")
            print(f"         {secs / best['append']:.1%} of the append")


if __name__ == "__main__":
    main()
