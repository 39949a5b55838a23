"""The access review reads ``hub.decisions`` from the first decision of its period, found with
the ledger's side index (its log-time column), then decodes records from the log. Whoever can
write ``ledger-tiles.sqlite`` moved the log time of the period's first decisions out of the
period (the batch digest recomputed; the default incremental verify does not re-read old
batches): the review started after them and left those decisions, denials included, out of
the signed report. The review now checks the side index's answer against the log (the record
before the start must be older than the period) and reads the partition from its beginning
when the log contradicts it."""

from __future__ import annotations

import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from fastapi.testclient import TestClient

from hub.api.app import create_app
from hub.reports_access import DECISIONS, _decisions
from tests.adversarial._api import basic
from tests.adversarial.test_side_index_readers import rewrite
from tests.service.test_ledger import make_hub


def test_decisions_moved_out_of_the_period_in_the_side_index_stay_in_the_review(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HUB_LEDGER_STORE", "tiles")
    data = tmp_path / "data"
    h = make_hub(data, ledger_store="tiles")
    try:
        since = int(time.time() * 1000) - 1
        with TestClient(create_app(h), raise_server_exceptions=False) as client:
            producer = h.keys.create(["publisher"], principal="p").token
            for _ in range(6):  # six denials in the period
                resp = client.get("/v1/ledger/checkpoints", headers=basic(producer))
                assert resp.status_code == 403
        h.policy.committer.flush()  # type: ignore[attr-defined]
        h.ledger.sync(force_checkpoint=True)
        until = int(time.time() * 1000) + 60_000
        c = SimpleNamespace(hub=h, tenant_scope=None)
        honest = _decisions(c, since, until)
        denied = [d for d in honest if not d["allow"]]
        assert len(denied) >= 6
        rows = [
            r
            for r in h.ledger.store.query(topic=DECISIONS, since_ms=since, until_ms=until)
            if r[2] == 0
        ]
        assert len(rows) >= 6
    finally:
        h.close()
    for row in rows[:4]:  # the period's first decisions, dated to 1970 in the side index
        rewrite(data, row[0], lambda cols: cols.update(ts_ms=1000))
    h = make_hub(data)
    try:
        c = SimpleNamespace(hub=h, tenant_scope=None)
        got = _decisions(c, since, until)
    finally:
        h.close()
    assert [d["decision_id"] for d in got] == [d["decision_id"] for d in honest]
