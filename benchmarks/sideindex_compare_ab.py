"""``hub ledger verify``'s side-index comparison per stored batch (issue 13, session 21), the
decoded way vs the encoded way, alternating in one process on one 50k-leaf batch.

- decoded (session 20, still the fallback and the port's default): the stored batch decoded
  whole (``sideindex.decode_body``) and compared with the recomputed columns (``equals``);
- encoded (``TileLedgerStore.iter_stored_batches``): the key columns decoded
  (``sideindex.keys_of``) and the recomputed batch's version-2 body (``sideindex.body_of``
  from the encoder's dictionaries) compared with the stored inflated body.

The batch: ``--events`` records of the ledger benchmarks (``e2e_common.ledger_records``)
appended to a MAC-keyed log, one ``Ledger.sync``; the recomputed batch from the log's stored
batches by the sync's encoder (``LeafEncoder.column_batch``). Thread CPU, best of
``--repeat`` per round.

    .venv/bin/python -m benchmarks.sideindex_compare_ab --rounds 6

``--recompute`` (session 22) times verify's whole step per batch instead, the recomputation
included: ``column_batch`` from the log's stored batches, then the encoded comparison; old =
the recomputed batch with its string columns built (``strings=True``, before session 22), new
= without (``strings=False``: each string column from its dictionary only when read).
"""

from __future__ import annotations

import argparse
import sqlite3
import tempfile
from collections.abc import Callable
from pathlib import Path

from benchmarks.ab_common import print_ratios, thread_cpu


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=50_000)
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--repeat", type=int, default=20)
    ap.add_argument("--recompute", action="store_true", help="strings=True vs strings=False")
    args = ap.parse_args()

    from adapters import tile_sideindex as sideindex
    from adapters.local_signer import LocalKeyFileSigner
    from adapters.sqlite_log import SqliteEventLog
    from adapters.tile_ledgerstore import TileLedgerStore
    from benchmarks.e2e_common import ledger_records
    from ledger.leaves import LeafEncoder
    from ledger.service import Ledger, LedgerConfig

    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        log = SqliteEventLog(d / "log.sqlite", synchronous="OFF", mac_key=b"m" * 32)
        log.create_topic("t", 1)
        for s in range(0, args.events, 10_000):
            log.append("t", ledger_records(min(10_000, args.events - s), s))
        signer = LocalKeyFileSigner(d / "keys" / "ledger.key", "bench/ledger")
        ledger = Ledger(
            log, TileLedgerStore(d / "ledger.sqlite"), signer, LedgerConfig("bench/ledger")
        )
        ledger.sync(force_checkpoint=True)
        with sqlite3.connect(d / "ledger.sqlite") as conn:
            blob = conn.execute("SELECT cols FROM batches ORDER BY first LIMIT 1").fetchone()[0]
        again = LeafEncoder().column_batch([log.read_encoded("t", 0, 0, args.events)], 0)
        got = sideindex.inflated(blob, 0)
        assert got is not None
        rows, body = got

        def decoded() -> bool:
            return bool(sideindex.decode_body(rows, body, 0).equals(again.columns))

        def encoded() -> bool:
            sideindex.keys_of(rows, body, 0)
            return sideindex.body_of(again.columns, again.dictionaries) == body

        assert decoded() and encoded(), "the recomputed batch differs from the stored one"
        if args.recompute:
            chunks = [log.read_encoded("t", 0, 0, args.events)]

            def recomputed(strings: bool) -> Callable[[], bool]:
                def step() -> bool:
                    b = LeafEncoder().column_batch(chunks, 0, strings=strings)
                    sideindex.keys_of(rows, body, 0)
                    return sideindex.body_of(b.columns, b.dictionaries) == body

                return step

            decoded, encoded = recomputed(True), recomputed(False)
            assert decoded() and encoded(), "the recomputed batch differs from the stored one"
        ratios: dict[str, list[float]] = {"compare CPU": []}
        for k in range(args.rounds):
            if k % 2:
                new, old = thread_cpu(encoded, args.repeat), thread_cpu(decoded, args.repeat)
            else:
                old, new = thread_cpu(decoded, args.repeat), thread_cpu(encoded, args.repeat)
            print(
                f"round {k}: {'strings' if args.recompute else 'decoded'} {old * 1e3:.3f} ms, "
                f"{'none' if args.recompute else 'encoded'} {new * 1e3:.3f} ms per "
                f"{rows:,}-row batch ({(old - new) / rows * 1e9:.1f} ns/leaf saved)"
            )
            ratios["compare CPU"].append(new / old)
        print_ratios(ratios)
        ledger.close()
        log.close()


if __name__ == "__main__":
    main()
