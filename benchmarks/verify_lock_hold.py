"""How long a full ledger verification holds the ledger's sync, and what an acknowledgement
waits meanwhile (session 20, docs/benchmarks/s20-verifylock20.md).

    python benchmarks/verify_lock_hold.py DATA N [TREE]

Builds a ledger of ``N`` trades in ``DATA`` (tile store) when it is not there, then runs one
full ``verify_ledger`` in a thread while the main thread publishes 5 trades and syncs (what an
acknowledgement waits for) in a loop. Prints one JSON line: the verification's wall and
thread-CPU seconds, how long it held the sync (``Ledger.syncs_paused``), and the syncs'
count and longest wait. ``TREE``: a source tree to import the hub from (an old commit's
``git archive``), for old/new pairs run alternately.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def main() -> None:
    data, n = Path(sys.argv[1]), int(sys.argv[2])
    if len(sys.argv) > 3:
        sys.path.insert(0, sys.argv[3])
    from hub.bootstrap import bootstrap
    from hub.settings import load_settings
    from ledger.verify import verify_ledger
    from tests.service.test_ledger import publish

    build = not data.exists()
    h = bootstrap(load_settings(environ={}, data_dir=data, ledger_store="tiles"))
    try:
        if build:
            for i in range(0, n, 5000):
                publish(h, 5000, start=i)
                h.ledger.sync()
            h.ledger.sync(force_checkpoint=True)
        real = h.ledger.syncs_paused
        held: list[float] = []

        @contextmanager
        def timed() -> Iterator[None]:
            with real():
                t0 = time.perf_counter()
                try:
                    yield
                finally:
                    held.append(time.perf_counter() - t0)

        h.ledger.syncs_paused = timed  # type: ignore[method-assign]
        out: dict[str, object] = {}

        def run() -> None:
            c0, w0 = time.thread_time(), time.perf_counter()
            rep = verify_ledger(h.ledger)
            out.update(wall=time.perf_counter() - w0, cpu=time.thread_time() - c0, ok=rep.ok)

        t = threading.Thread(target=run)
        t.start()
        waits: list[float] = []
        i = 10**7 + int(time.time()) % 10**6 * 100
        while t.is_alive():
            publish(h, 5, start=i)
            i += 5
            t0 = time.perf_counter()
            h.ledger.sync()
            waits.append(time.perf_counter() - t0)
            time.sleep(0.005)
        t.join()
        import ledger.verify

        out.update(
            tree=str(Path(ledger.verify.__file__).parents[1]),
            held=sum(held),
            syncs=len(waits),
            max_wait=max(waits, default=0.0),
            leaves=h.ledger.store.tree_size(),
        )
        print(json.dumps(out))
    finally:
        h.close()


if __name__ == "__main__":
    main()
