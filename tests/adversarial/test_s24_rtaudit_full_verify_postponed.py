"""Session 24 (redteam-auditor24): the periodic full verify postponed for ever.

`hub ledger verify` runs incrementally from the remembered checkpoint (``ledger-verified.note``)
and becomes a full run when the last full one is older than ``HUB_LEDGER_FULL_VERIFY_EVERY_S``:
the full run is what re-reads the leaves below the remembered size. The state is signed with
the ledger's key, which sits in the data folder, so an insider can sign one whose last full
verify is dated in the future (``full_at_ms``: year 2100). Before: every later run stayed
incremental (``now - full_at_ms`` is negative), so a change below the remembered size was
never looked for again, and each OK line read as usual. Now a last full verify dated after this
machine's clock (beyond the clock slack) makes the run full, saying why."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from ledger.verify import VerifyReport, load_verified, save_verified
from tests.adversarial.test_tile_tamper import synced
from tests.service.test_ledger import cli, make_hub, publish

__all__ = ["synced"]  # the fixture, re-used

YEAR_2100_MS = 4_102_444_800_000


def _sign_state(data: Path, full_at_ms: int) -> None:
    """Sign a remembered state (the ledger key is in the folder) with ``full_at_ms``."""
    h = make_hub(data, checkpoint_every_leaves=128, ledger_store="tiles")
    try:
        publish(h, 10, start=1000)
        h.ledger.sync(force_checkpoint=True)
        path = h.settings.ledger_verified_path
        state, why = load_verified(h.ledger, path)
        assert state is not None, why
        cp = h.ledger.store.latest_checkpoint()
        assert cp is not None and cp.size > state.size
        assert save_verified(h.ledger, path, VerifyReport(), cp, full_at_ms, state) is not None
    finally:
        h.close()


def test_a_last_full_verify_dated_in_the_future_makes_the_run_full(
    synced: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HUB_LEDGER_FULL_VERIFY_EVERY_S", "3600")
    _sign_state(synced, YEAR_2100_MS)
    code, out, err = cli(synced, "ledger", "verify")
    assert code == 0, err
    # before: "... (...; incremental from checkpoint N)", run after run
    assert "incremental" not in out and "full (" in out, out
    assert "in the future" in out, out


def test_a_recent_full_verify_still_runs_incrementally(
    synced: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HUB_LEDGER_FULL_VERIFY_EVERY_S", "3600")
    _sign_state(synced, time.time_ns() // 1_000_000)
    code, out, err = cli(synced, "ledger", "verify")
    assert code == 0, err
    assert "incremental from checkpoint" in out, out
