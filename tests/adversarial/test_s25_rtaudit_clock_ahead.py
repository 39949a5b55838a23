"""Session 25 (redteam-auditor25): a checkpoint dated ahead moves the hub's time ahead for good.

The clock floor of session 24 (``core.clock``) raises the hub's "now" at start to the newest
signed checkpoint's time. A checkpoint signed while the clock read far ahead (a bad NTP source
for a minute, or an insider with the data folder and the ledger key in it signing one note)
then sets the hub's time ahead after every restart: a key valid for another month is refused
as expired at once, and retention cut-offs read that later time. `hub ledger verify` warns
(``clock_behind``) but the start does not. Open: see docs/benchmarks/s25-redteam-auditor25.md
(proposed: refuse to start, naming the checkpoint and the clock, when the newest checkpoint
leads the clock by more than a bound, unless the operator acknowledges it)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.adversarial.test_s24_trustleft_clock_floor import _child

YEAR_NS = 365 * 24 * 3600 * 10**9


@pytest.mark.xfail(strict=True, reason="open: the floor follows a checkpoint dated ahead")
def test_a_checkpoint_signed_a_year_ahead_does_not_expire_every_key(tmp_path: Path) -> None:
    data = str(tmp_path / "d")
    _child(
        """
        STEP[0] = -{ahead}  # this process's clock reads a year ahead
        hub = bootstrap(quiet_settings(__import__("pathlib").Path({data!r})))
        hub.ledger.sync(force_checkpoint=True)
        hub.close()
        """,
        ahead=YEAR_NS,
        data=data,
    )
    (line,) = _child(
        """
        from datetime import UTC, datetime, timedelta
        from core import clock
        hub = bootstrap(quiet_settings(__import__("pathlib").Path({data!r})))
        issued = hub.keys.create(
            ["analyst"], principal="ann", expires_at=datetime.now(UTC) + timedelta(days=30)
        )
        print(verdict(hub, issued.key_id, issued.secret))
        hub.close()
        """,
        data=data,
    )
    # the clock is right again, the key has 30 days to run: refused "expired" today
    assert line == "VALID", line
