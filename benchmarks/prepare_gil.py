"""Session 25: how much of the native column-append preparation
(``hub_native.prepare_stored_columns``, native/src/prepare_columns.rs) holds the GIL.

One process, one 10,000-record batch shaped like a file publish's (keys of 5,000 accounts,
180-byte values, a shared header column and two varying ones), ``--calls`` calls into a topic
of ``--partitions`` partitions. Printed per call: wall, CPU of the calling thread
(``time.thread_time``) and, with ``--spin``, the loops a second Python thread made meanwhile:
it runs only while the call has released the GIL (the ledger follower and the next batch's read
in a running hub), so more loops per call is more of the call run without the GIL.

The extension is compiled, so old and new are two processes, alternated: build the older tree's
extension into a folder of its own (``native/build.sh`` with a Python whose ``platlib`` is that
folder) and run ``PYTHONPATH=<folder> .venv/bin/python -m benchmarks.prepare_gil --spin`` beside
``.venv/bin/python -m benchmarks.prepare_gil --spin``.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import threading
import time
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--calls", type=int, default=150)
    ap.add_argument("--partitions", type=int, default=12)
    ap.add_argument("--spin", action="store_true", help="a second Python thread counts meanwhile")
    args = ap.parse_args(argv)
    import hub_native

    prepare = hub_native.prepare_stored_columns
    rng = random.Random(1)
    n = 10_000
    keys = [f"acct-{rng.randrange(5000)}".encode() for _ in range(n)]
    values = [rng.randbytes(180) for _ in range(n)]
    names = [b"tenant", b"schema", b"trace"]
    columns = [
        b"t1",
        [str(rng.randrange(3)).encode() for _ in range(n)],
        [rng.randbytes(16) for _ in range(n)],
    ]
    stop = threading.Event()
    loops = 0

    def spin() -> None:
        nonlocal loops
        while not stop.is_set():
            loops += 1

    spinner = threading.Thread(target=spin, daemon=True)
    if args.spin:
        spinner.start()
    w0, c0, k0 = time.perf_counter(), time.thread_time(), loops
    for _ in range(args.calls):
        got = prepare(
            keys, values, names, columns, 1_700_000_000_000, args.partitions, 4096, 8 << 20, True
        )
        assert got is not None
    w1, c1, k1 = time.perf_counter(), time.thread_time(), loops
    stop.set()
    if args.spin:
        spinner.join()
    calls = args.calls
    print(
        f"{hub_native.__file__}: load {os.getloadavg()[0]:.1f} | per call: wall "
        f"{(w1 - w0) / calls * 1e3:.2f} ms, caller CPU {(c1 - c0) / calls * 1e3:.2f} ms, "
        f"other thread {(k1 - k0) / calls:,.0f} loops"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
