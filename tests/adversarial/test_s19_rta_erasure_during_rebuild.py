"""An erasure made while a projection was being rebuilt came back in the live views (session 19
red team, finding 5).

``hub erase`` scrubs the subject's rows from the live views (``governance.erasure``
``_erase_views``, under the live runner's lock). ``hub projection rebuild`` replays the log into
a copy (step 1, outside that lock, minutes on a real log), then swaps the copy in. A copy that
folded the subject's records before the key was destroyed held the plaintext, nothing scrubbed
it, and the swap made it the live views: the erased name was served again to every reader with
``pii.read``, while the ledger recorded the erasure as done (only a ``hub projection verify``
replay would show the difference). An operator rebuilding after an upgrade while an officer
handles a data subject request is all it takes.

Now a rebuild's copy is known to erasures while it fills (``ProjectionService.copies``), and the
eraser scrubs it as it scrubs the live views.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from core.ports.policy import Principal
from hub.bootstrap import Hub
from tests.service.test_erasure import ALICE, load, secrets, views_text

from ._api import quiet_hub

OPERATOR = Principal("ops", frozenset({"admin"}))


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[Hub]:
    yield from quiet_hub(tmp_path / "data")


def _copy_filled(views: Path, rows: int) -> bool:
    """Whether a rebuild copy of ``payment_status`` holds ``rows`` rows (its step 1 is done)."""
    db = sqlite3.connect(f"file:{views}?mode=ro", uri=True)
    try:
        names = [
            r[0]
            for r in db.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' "
                "AND name LIKE 'payment_status__rebuild_%'"
            )
        ]
        return any(db.execute(f'SELECT count(*) FROM "{n}"').fetchone()[0] >= rows for n in names)
    finally:
        db.close()


def test_a_subject_erased_during_a_rebuild_stays_erased(hub: Hub, tmp_path: Path) -> None:
    load(hub)
    hub.projections.run(["accounts", "payments"])
    views = tmp_path / "data" / "views" / "transactional.sqlite"
    live = hub.projections.runner("payments")
    done: dict[str, Any] = {}
    # The live runner is busy with a batch (its lock held) while the rebuild's copy replays the
    # log; the officer's erasure comes in then.
    with live.lock:
        rebuild = threading.Thread(
            target=lambda: done.setdefault("rebuilt", hub.projections.rebuild("payments"))
        )
        rebuild.start()
        deadline = time.monotonic() + 60
        while not _copy_filled(views, 2):
            assert time.monotonic() < deadline, "the rebuild's copy was never filled"
            time.sleep(0.05)
        erased = hub.eraser.erase(OPERATOR, "ACC-A", "DSR-31", tenant_scope=None)
        assert erased.rows_scrubbed["payments"] == {"payment_status": 1}
        assert not [s for s in secrets(ALICE) if s in views_text(hub)]  # the premise
    rebuild.join(60)
    assert "rebuilt" in done, "the rebuild did not finish"
    back = [s for s in secrets(ALICE) if s in views_text(hub)]
    assert not back, f"the erased subject's {back} came back with the rebuilt views"
