"""Session 25 (redteam-auditor25, fixed by the merge): a checkpoint dated ahead no longer moves
the hub's time ahead for good.

The clock floor of session 24 (``core.clock``) raises the hub's "now" at start to the newest
signed checkpoint's time. A checkpoint signed while the clock read far ahead (a bad NTP source
for a minute, or an insider with the data folder and the ledger key in it signing one note)
then set the hub's time ahead after every restart: a key valid for another month was refused
as expired at once, and retention cut-offs read that later time, with no word at start.

Now a start whose newest checkpoint leads the clock by more than ``HUB_CLOCK_MAX_AHEAD_S``
(default a day) is refused, naming the checkpoint and both times: a clock stepped back that far
and a checkpoint signed ahead look the same, and only the operator can tell them apart. The
operator who knows the checkpoint was signed ahead sets ``HUB_CLOCK_ACCEPT_AHEAD_UNTIL``: the
hub then starts on the wall clock and records ``clock.ahead_accepted`` on the ledger at every
such start. ``hub ledger verify`` still opens the folder.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from core.errors import ConfigError
from hub.settings import load_settings
from tests.adversarial.test_s24_trustleft_clock_floor import _child

YEAR_NS = 365 * 24 * 3600 * 10**9

SIGN_AHEAD = """
STEP[0] = -{ahead}  # this process's clock reads a year ahead
hub = bootstrap(quiet_settings(__import__("pathlib").Path({data!r})))
hub.ledger.sync(force_checkpoint=True)
print(hub.ledger.store.latest_checkpoint().time_us)
hub.close()
"""

# the clock is right again; a key with 30 days to run is asked about
RESTART = """
import os
from datetime import UTC, datetime, timedelta
from hub.settings import load_settings
from ledger.errors import LedgerIntegrityError
env = {{"HUB_PROJECTION_AUTOSTART": "false", **{env!r}}}
try:
    hub = bootstrap(load_settings(environ=env, data_dir=__import__("pathlib").Path({data!r})))
except LedgerIntegrityError as exc:
    print("START-REFUSED", str(exc))
    raise SystemExit(0)
issued = hub.keys.create(
    ["analyst"], principal="ann", expires_at=datetime.now(UTC) + timedelta(days=30)
)
print(verdict(hub, issued.key_id, issued.secret))
hub.ledger.sync()
print("ACCEPTED-ENTRIES", len(hub.ledger.entries(action="clock.ahead_accepted")))
hub.close()
"""


def _signed_ahead(tmp_path: Path) -> tuple[str, int]:
    data = str(tmp_path / "d")
    (time_us,) = _child(SIGN_AHEAD, ahead=YEAR_NS, data=data)
    return data, int(time_us)


def _iso(time_us: int) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(time_us / 1e6, tz=UTC).isoformat()


def test_a_start_after_a_checkpoint_signed_a_year_ahead_is_refused_naming_it(
    tmp_path: Path,
) -> None:
    data, time_us = _signed_ahead(tmp_path)
    (line,) = _child(RESTART, data=data, env={})
    assert line.startswith("START-REFUSED"), line
    assert "newest signed checkpoint" in line and _iso(time_us) in line, line
    assert "ahead of this machine's clock" in line and "HUB_CLOCK_ACCEPT_AHEAD_UNTIL" in line


def test_the_operator_accepts_it_the_key_keeps_its_30_days_and_the_ledger_says_so(
    tmp_path: Path,
) -> None:
    data, time_us = _signed_ahead(tmp_path)
    env = {"HUB_CLOCK_ACCEPT_AHEAD_UNTIL": _iso(time_us + 1)}
    lines = _child(RESTART, data=data, env=env)
    assert lines == ["VALID", "ACCEPTED-ENTRIES 1"], lines
    # at every start it is used (the ledger's checkpoints stay dated ahead until the clock
    # catches up: times never go back)
    lines = _child(RESTART, data=data, env=env)
    assert lines == ["VALID", "ACCEPTED-ENTRIES 2"], lines


def test_an_acceptance_older_than_the_checkpoint_does_not_cover_it(tmp_path: Path) -> None:
    data, time_us = _signed_ahead(tmp_path)
    (line,) = _child(
        RESTART, data=data, env={"HUB_CLOCK_ACCEPT_AHEAD_UNTIL": _iso(time_us - 10**6)}
    )
    assert line.startswith("START-REFUSED"), line


def test_a_checkpoint_within_the_bound_still_raises_the_floor(tmp_path: Path) -> None:
    # an hour ahead (the s24 case: a clock stepped back an hour) is within the default day:
    # the start goes on, on the checkpoint's time, as before
    data = str(tmp_path / "d")
    _child(SIGN_AHEAD, ahead=3600 * 10**9, data=data)
    lines = _child(RESTART, data=data, env={})
    assert lines == ["VALID", "ACCEPTED-ENTRIES 0"], lines


def test_ledger_verify_opens_the_folder_and_names_the_clock(tmp_path: Path) -> None:
    data, _ = _signed_ahead(tmp_path)
    lines = _child(
        """
        from hub.settings import load_settings
        env = {{"HUB_PROJECTION_AUTOSTART": "false"}}
        s = load_settings(environ=env, data_dir=__import__("pathlib").Path({data!r}))
        hub = bootstrap(s, witness_refuses=False, check_erasures=False, clock_refuses=False)
        from ledger.verify import clock_behind
        print("OPENED", clock_behind(hub.ledger, time.time_ns() // 1000) is not None)
        hub.close()
        """,
        data=data,
    )
    assert lines == ["OPENED True"], lines


def test_an_acceptance_without_its_zone_is_refused_by_name() -> None:
    with pytest.raises(ConfigError, match=r"clock_accept_ahead_until|CLOCK_ACCEPT_AHEAD_UNTIL"):
        load_settings(environ={"HUB_CLOCK_ACCEPT_AHEAD_UNTIL": "2027-01-01T00:00:00"})


def test_a_checkpoint_dated_past_any_calendar_is_refused_by_name() -> None:
    # a forged checkpoint's time (2**60 us: the year 38504) is named, not a crash of the start
    from hub.bootstrap import checkpoint_ahead
    from ledger.errors import LedgerIntegrityError

    with pytest.raises(LedgerIntegrityError, match=r"size 7, time 1152921504606846976 us after"):
        checkpoint_ahead(load_settings(environ={}), 7, 2**60)
