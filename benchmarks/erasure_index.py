"""Cost per open of the undone-erasure check (session 21: the erasure index).

``build DIR ENTRIES ERASURES``: a data folder with ``ENTRIES`` trades (ledger entries) and
``ERASURES`` ``subject.erase`` ledger entries of subjects without keys, each synced on its own
(as ``hub erase`` does: each erasure in its own side-index batch), recorded straight on the
ledger (``Eraser.erase`` also scrubs views: minutes at 10,000).

``measure DIR ROUNDS``: in this tree (old or new, by ``PYTHONPATH``/working folder), CPU seconds
(``time.process_time``) of ``ROUNDS`` opens (``bootstrap`` + ``close``) without the check and
with it (old: ``check_erasures=True``, ``hub serve``'s full scan; new: the default, through the
index), alternated, and of the check alone (``Eraser.undone()``). Prints one JSON line.
Run: ``.venv/bin/python -m benchmarks.erasure_index build /tmp/x 100000 100``.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from core.ports.policy import Principal
from hub.bootstrap import bootstrap
from hub.settings import load_settings

OPERATOR = Principal("ops", frozenset({"admin"}))


def build(data: Path, entries: int, erasures: int) -> None:
    from tests.service.test_ledger import trade

    h = bootstrap(load_settings(environ={}, data_dir=data))
    try:
        for start in range(0, entries, 10_000):
            batch = [trade(start + i, f"ACC-{i % 50}") for i in range(min(10_000, entries - start))]
            h.publisher.publish("trades", batch, producer="bench")
            h.ledger.sync()
        for i in range(erasures):
            h.ledger.record_action(
                OPERATOR.id, "subject.erase", f"subject:ACC-GONE-{i}", details={}, tenant="default"
            )
            h.ledger.sync()
        h.ledger.sync(force_checkpoint=True)
        print(f"{h.ledger.store.tree_size()} ledger entries, {erasures} erasures")
    finally:
        h.close()


def measure(data: Path, rounds: int) -> None:
    settings = load_settings(environ={}, data_dir=data)
    import hub.bootstrap  # (a namespace package would find the other tree's new module)

    if hasattr(hub.bootstrap, "erasure_index_key"):
        tree, plain, checked = "new", {"check_erasures": False}, {}
    else:
        tree, plain, checked = "old", {}, {"check_erasures": True}
    bootstrap(settings, **checked).close()  # warm: the new tree's index made once
    opens: dict[str, list[float]] = {"without": [], "with": []}
    check: list[float] = []
    for _ in range(rounds):
        for name, kwargs in (("without", plain), ("with", checked)):
            t = time.process_time()
            h = bootstrap(settings, **kwargs)
            opens[name].append(time.process_time() - t)
            h.close()
        h = bootstrap(settings, **plain)
        try:
            t = time.process_time()
            assert h.eraser.undone() == []
            check.append(time.process_time() - t)
        finally:
            h.close()
    ms = {k: [round(v * 1000, 1) for v in vs] for k, vs in {**opens, "check": check}.items()}
    print(json.dumps({"tree": tree, "load": round(os.getloadavg()[0], 1), **ms}))


if __name__ == "__main__":
    mode, folder, *rest = sys.argv[1:]
    if mode == "build":
        build(Path(folder), int(rest[0]), int(rest[1]))
    else:
        measure(Path(folder), int(rest[0]) if rest else 3)
