"""Regression (issue 13 item 5): ``POST /v1/ledger/verify`` answered ok=false right after heavy
decision recording. Cause: verify read the store while the ledger follower appended (the verify
request's own recorded decisions wake it): the right-edge chunk, the chunk count and the
positions it compared had grown past the leaves it had read. Verify now holds the ledger's sync
lock (no in-process sync meanwhile) and checks the tree as of the size it read first."""

from __future__ import annotations

import threading
from pathlib import Path

from hub.bootstrap import Hub
from ledger.verify import verify_ledger
from tests.service.test_ledger import make_hub, publish


def test_verify_is_not_fooled_by_a_sync_running_beside_it(tmp_path: Path) -> None:
    h: Hub = make_hub(tmp_path / "data", checkpoint_every_leaves=64)
    stop = threading.Event()
    errors: list[BaseException] = []

    def writer() -> None:
        i = 1000
        try:
            while not stop.is_set():
                publish(h, 7, start=i)
                i += 7
                h.ledger.sync()
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    try:
        publish(h, 300)
        h.ledger.sync(force_checkpoint=True)
        t = threading.Thread(target=writer)
        t.start()
        try:
            reports = [verify_ledger(h.ledger) for _ in range(6)]
        finally:
            stop.set()
            t.join(60)
        assert not errors, errors
        bad = [r.as_dict()["first_problem"] for r in reports if not r.ok]
        assert not bad, bad
    finally:
        h.close()
