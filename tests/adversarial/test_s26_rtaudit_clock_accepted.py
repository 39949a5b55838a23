"""Red team s26 (rtaudit): accepting a checkpoint dated ahead must not switch off the clock
floor for as long as the acceptance lasts.

Session 25's refusal: a start whose newest checkpoint leads the clock by more than a day is
refused, and the operator who knows it was signed while the clock ran ahead sets
``HUB_CLOCK_ACCEPT_AHEAD_UNTIL`` (the refusal tells them to). The hub then starts on the wall
clock. But checkpoint times never go back, so every later checkpoint keeps that future time
until the clock catches up (up to a year), and every start of that year took no floor at all:
the session-24 attack (step the clock back before a restart, and an expired API key is valid
again) worked again, with nothing said. Whoever can move the clock for a minute (a bad NTP
source) can first get the checkpoint signed ahead, then step the clock back.

Now an accepted start takes as its floor the newest accepted start's time on the ledger
(``clock.ahead_accepted``, dated by the wall clock of a start that had been accepted): a clock
stepped back below it is caught as before.
"""

from __future__ import annotations

from pathlib import Path

from tests.adversarial.test_s24_trustleft_clock_floor import HOUR_NS, _child
from tests.adversarial.test_s25_rtaudit_clock_ahead import _iso, _signed_ahead

# a key that expires 2 s after it is issued, asked about after it expired
ISSUE = """
import time as _t
from datetime import UTC, datetime, timedelta
from hub.settings import load_settings
env = {{"HUB_PROJECTION_AUTOSTART": "false", **{env!r}}}
hub = bootstrap(load_settings(environ=env, data_dir=__import__("pathlib").Path({data!r})))
issued = hub.keys.create(
    ["analyst"], principal="ann", expires_at=datetime.now(UTC) + timedelta(seconds=2)
)
_t.sleep(3)
print(verdict(hub, issued.key_id, issued.secret).split(" ")[0])
hub.ledger.sync(force_checkpoint=True)  # a checkpoint after the expiry
hub.close()
print(issued.key_id)
print(issued.secret)
"""

# the clock stepped back an hour before this start
BACK = """
STEP[0] = {back}
from core import clock
clock.reset()  # this process started on the stepped-back clock (not on the real one at import)
from hub.settings import load_settings
from ledger.errors import LedgerIntegrityError
env = {{"HUB_PROJECTION_AUTOSTART": "false", **{env!r}}}
try:
    hub = bootstrap(load_settings(environ=env, data_dir=__import__("pathlib").Path({data!r})))
except LedgerIntegrityError as exc:
    print("START-REFUSED", str(exc))
    raise SystemExit(0)
print(verdict(hub, {key_id!r}, {secret!r}))
hub.close()
"""


def test_a_clock_stepped_back_under_an_acceptance_does_not_revive_an_expired_key(
    tmp_path: Path,
) -> None:
    data, time_us = _signed_ahead(tmp_path)
    env = {"HUB_CLOCK_ACCEPT_AHEAD_UNTIL": _iso(time_us + 1)}
    verdict, key_id, secret = _child(ISSUE, data=data, env=env)
    assert verdict == "REFUSED"  # expired
    (line,) = _child(BACK, back=HOUR_NS, data=data, env=env, key_id=key_id, secret=secret)
    assert line.startswith("REFUSED") and "expired" in line, line


def test_without_an_acceptance_the_floor_is_the_checkpoint_as_before(tmp_path: Path) -> None:
    data = str(tmp_path / "d")
    verdict, key_id, secret = _child(ISSUE, data=data, env={})
    assert verdict == "REFUSED"
    (line,) = _child(BACK, back=HOUR_NS, data=data, env={}, key_id=key_id, secret=secret)
    assert line.startswith("REFUSED") and "expired" in line, line


def test_a_clock_stepped_back_past_the_bound_under_an_acceptance_is_refused(
    tmp_path: Path,
) -> None:
    # two days back (the bound is a day): the start is refused, naming it, as a checkpoint
    # that far ahead is; the acceptance of the checkpoint's time does not cover it
    data, time_us = _signed_ahead(tmp_path)
    env = {"HUB_CLOCK_ACCEPT_AHEAD_UNTIL": _iso(time_us + 1)}
    _verdict, key_id, secret = _child(ISSUE, data=data, env=env)
    (line,) = _child(BACK, back=48 * HOUR_NS, data=data, env=env, key_id=key_id, secret=secret)
    assert line.startswith("START-REFUSED"), line
    assert "since the last accepted start" in line and "stepped back" in line, line
