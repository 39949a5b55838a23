"""Session 23 auditor review: a system clock stepped back, unremarked
(docs/benchmarks/s23-redteam-auditor23.md).

A checkpoint's time never goes back (``Ledger._make_checkpoint``), so the ledger remembers the
latest time its signer's clock showed. A clock stepped back afterwards (by hand, a bad NTP
source, a restored VM snapshot) revives expired keys and enrolment tokens and moves approval
windows and retention cut-offs, and nothing said so: ``hub ledger verify`` answered a plain OK
over checkpoints dated a day after its own clock. It now warns, naming the checkpoint, both
times and what reads the clock; a clock in step says nothing.
"""

from __future__ import annotations

import time
from pathlib import Path

from tests.service.test_ledger import cli, make_hub, publish

DAY_US = 86_400 * 1_000_000


def _hub_signed_with(data: Path, lead_us: int) -> None:
    h = make_hub(data, checkpoint_every_leaves=8)
    try:
        h.ledger._clock_us = lambda: time.time_ns() // 1000 + lead_us  # the clock then
        publish(h, 10)
        h.ledger.sync(force_checkpoint=True)
    finally:
        h.close()


def test_verify_warns_when_the_clock_is_behind_the_newest_checkpoint(tmp_path: Path) -> None:
    data = tmp_path / "data"
    _hub_signed_with(data, DAY_US)  # signed a day ahead; the clock is now "stepped back"
    code, out, err = cli(data, "ledger", "verify")
    assert code == 0, err
    assert "warning: the newest checkpoint (size " in out, out
    assert "after this machine's clock" in out and "stepped back" in out, out


def test_verify_says_nothing_of_a_clock_in_step(tmp_path: Path) -> None:
    data = tmp_path / "data"
    _hub_signed_with(data, 0)
    code, out, err = cli(data, "ledger", "verify")
    assert code == 0, err
    assert "machine's clock" not in out, out
