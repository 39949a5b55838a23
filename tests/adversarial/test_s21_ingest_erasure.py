"""Session 21 (issue 13, ingest speed): the columnar path skips a batch's erasure look-up while
the key store says nothing was ever erased (``KeyStore.any_erased``). It asks per batch, so an
erasure that lands between two batches of one publish refuses the subject from the next batch
on, as the per-record path does."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from core.ports.policy import Principal
from hub.bootstrap import Hub
from ingest.files import publish_file
from tests.service.test_erasure import load, trade

OPERATOR = Principal("ops", frozenset({"admin"}))


@pytest.mark.parametrize("columnar", [True, False])
def test_an_erasure_between_two_batches_of_one_publish_refuses_the_next_batch(
    hub: Hub, tmp_path: Path, columnar: bool
) -> None:
    load(hub)  # accounts ACC-A and ACC-B, nothing erased yet
    keystore = hub.publisher.pii.keystore if hub.publisher.pii else None
    assert keystore is not None and not keystore.for_tenant("default").any_erased()
    rows = [trade(f"T-{i}", ("ACC-A", "ACC-B")[i % 2]) for i in range(8)]
    f = tmp_path / "trades.jsonl"
    f.write_text("".join(json.dumps(r) + "\n" for r in rows))
    seen: list[tuple[int, int, int]] = []

    def after(n: int, result: Any) -> None:
        seen.append((n, result.accepted, result.rejected))
        if len(seen) == 1:  # after the first batch's commit, before the second's checks
            hub.eraser.erase(OPERATOR, "ACC-A", "DSR-21", tenant_scope=None)

    done = publish_file(hub.ingest, f, "trades", batch_size=4, on_batch=after, columnar=columnar)
    assert [(a, r) for _, a, r in seen] == [(4, 0), (2, 2)], seen
    assert (done.result.accepted, done.result.rejected) == (6, 2), done.result
    assert {r.reason_code for r in done.result.rejections} == {"key_destroyed"}
    stored = [
        r.key.decode()
        for p, end in hub.log.end_offsets("trades").items()
        for r in hub.log.read("trades", p, 0, end + 1)
    ]
    assert sorted(stored) == ["ACC-A", "ACC-A", "ACC-B", "ACC-B", "ACC-B", "ACC-B"]
