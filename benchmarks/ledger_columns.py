"""The ledger reading the log (issue 13, sessions 8 and 9): ``Ledger.sync``, a full verify and
the log read alone, three ways in the same rounds: the record path (``read`` ->
``StoredRecord`` -> ``leaf_batch``, before session 8), the column path (``read_columns`` ->
native ``column_leaf_batch``, session 8) and the stored path (``read_encoded`` -> native
``stored_leaf_batch`` over the stored batch bodies, session 9), each beside raw SHA-256 of the
same leaf inputs (one ``hashlib.sha256(d).digest()`` per leaf) measured in the same run.

``python -m benchmarks.ledger_columns [--events 100000] [--rounds 3] [--baseline-verify FILE]``

``verify_ledger`` (a full verify) is timed every round on each path's fresh ledger: ``verify
records`` reads through the port's default ``read_columns`` (``read``, records, headers per
record: ``leaf_batch``), ``verify columns`` through SQLite's column decode and native
``column_leaf_batch``, ``verify stored`` through the stored bodies. ``--baseline-verify FILE``
also times another ``ledger/verify.py`` (e.g. ``git show <commit>:ledger/verify.py > FILE``)
on the stored path's ledger in the same rounds, as ``verify before``.

Records as ``benchmarks/test_bench_ledger_goals.py`` makes them: the hub's envelope headers
(``domain.envelope.Envelope``), a 150-byte value, 5,000 accounts as keys, 3 partitions, appends
of 4,096, a MAC key (so sync checks the log's MAC chain, as in production). Each round opens
the log afresh (a cold read cache) and syncs a fresh tile store; rounds alternate between the
paths and the best round counts (the machine is shared). Rates are per CPU second of this
process (``time.process_time``); ``uptime``'s load is printed with them.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import os
import sys
import tempfile
import time
from pathlib import Path

import pyarrow as pa

from adapters.local_signer import LocalKeyFileSigner
from adapters.sqlite_log import SqliteEventLog
from adapters.tile_ledgerstore import TileLedgerStore
from benchmarks.e2e_common import ledger_records
from core.ports.eventlog import EventLog
from ledger.leaves import LeafEncoder
from ledger.service import Ledger, LedgerConfig
from ledger.verify import verify_ledger

KEY = b"m" * 32


class ColumnPathLog(SqliteEventLog):
    """The log read the way the ledger read it in session 8: ``read_columns`` (the stored
    batches decoded into Python columns), no ``read_encoded``."""

    read_encoded = EventLog.read_encoded


class RecordPathLog(SqliteEventLog):
    """The log read the way the ledger read it before: ``read_columns`` is the port's default
    (``read``: one ``StoredRecord`` per record)."""

    read_columns = EventLog.read_columns
    read_encoded = EventLog.read_encoded


def _load() -> str:
    return os.getloadavg().__repr__()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=100_000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--only", choices=("stored", "columns", "records"), default=None)
    ap.add_argument("--baseline-verify", type=Path, default=None)
    args = ap.parse_args()
    before = None
    if args.baseline_verify is not None:
        spec = importlib.util.spec_from_file_location("verify_before", args.baseline_verify)
        assert spec is not None and spec.loader is not None, args.baseline_verify
        before = importlib.util.module_from_spec(spec)
        sys.modules["verify_before"] = before  # its dataclasses look their module up
        spec.loader.exec_module(before)
    pa.array(("warm-up",))
    tmp = Path(tempfile.mkdtemp(prefix="ledger-columns-"))
    path = tmp / "log.sqlite"
    log = SqliteEventLog(path, synchronous="OFF", mac_key=KEY)
    log.create_topic("trades", 3)
    for start in range(0, args.events, 4096):
        log.append("trades", ledger_records(min(4096, args.events - start), start))
    records = [r for p in range(3) for r in log.scan("trades", p)]
    inputs = LeafEncoder().leaf_inputs(records)
    log.close()
    n = len(inputs)
    signer = LocalKeyFileSigner(tmp / "keys" / "ledger.key", "bench/ledger")
    best: dict[str, float] = {}

    def note(name: str, seconds: float) -> None:
        best[name] = min(best.get(name, float("inf")), seconds)

    ways = [args.only] if args.only else ["records", "columns", "stored"]
    logs = {"records": RecordPathLog, "columns": ColumnPathLog, "stored": SqliteEventLog}
    for r in range(args.rounds):
        t0 = time.process_time()
        _ = [hashlib.sha256(d).digest() for d in inputs]
        note("raw", time.process_time() - t0)
        for way in ways:
            cls = logs[way]
            # the log read alone: every partition, 10,000 records a call (cold cache)
            rlog = cls(path, mac_key=KEY)
            t0 = time.process_time()
            for p in range(3):
                pos = 0
                while True:
                    if way == "stored":
                        enc = rlog.read_encoded("trades", p, pos, 10_000)
                        assert enc is not None
                        if not len(enc):
                            break
                        pos = enc.next_offset()
                        continue
                    got = rlog.read_columns("trades", p, pos, 10_000)
                    if not len(got):
                        break
                    pos = got.offsets[-1] + 1
            note(f"read {way}", time.process_time() - t0)
            rlog.close()
            slog = cls(path, mac_key=KEY)
            store = TileLedgerStore(tmp / f"ledger-{way}-{r}.sqlite")
            ledger = Ledger(slog, store, signer, LedgerConfig(origin="bench/ledger"))
            t0 = time.process_time()
            appended = ledger.sync(force_checkpoint=True).appended
            note(f"sync {way}", time.process_time() - t0)
            assert appended == n, (appended, n)
            t0 = time.process_time()
            rep = verify_ledger(ledger)
            note(f"verify {way}", time.process_time() - t0)
            assert rep.ok, rep.first
            if before is not None and way == "stored":
                t0 = time.process_time()
                old = before.verify_ledger(ledger)
                note("verify before", time.process_time() - t0)
                assert old.ok, old.first
            store.close()
            slog.close()
        print(f"round {r + 1}: load {_load()}", flush=True)
    raw = n / best["raw"]
    print(f"{n} leaves; raw SHA-256 of the leaf inputs {raw:,.0f}/CPU s; load {_load()}")
    for name, secs in best.items():
        if name != "raw":
            rate = n / secs
            print(f"{name:16} {rate:>12,.0f}/CPU s  {rate / raw:.3f}x raw")


if __name__ == "__main__":
    main()
