"""Session 24 (trustleft24): a clock stepped back does not bring an expired key back.

Key expiry (and enrolment windows, approval times, retention cut-offs) read the system clock
as it was: whoever could step it back (an operator, a bad NTP source, root on the host) made an
expired API key valid again, in the running server and after a restart. ``hub ledger verify``
only warned. The hub's time is now never earlier than the latest time it knows has passed: its
start plus monotonic time in a running process, the newest signed checkpoint's time after a
restart (``core.clock``); the step back is counted (``hub_clock_behind_seconds``).
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from core import clock
from hub.bootstrap import Hub
from tests.adversarial._api import quiet_hub

HOUR_NS = 3600 * 10**9
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[Hub]:
    yield from quiet_hub(tmp_path / "d")


@pytest.fixture
def stepped_back() -> Iterator[None]:
    """The wall clock an hour behind the real time (restored after)."""
    previous = clock.use_wall_clock(lambda: time.time_ns() - HOUR_NS)
    try:
        yield
    finally:
        clock.use_wall_clock(previous)


def _short_key(hub: Hub) -> tuple[str, str]:
    issued = hub.keys.create(
        ["analyst"], principal="ann", expires_at=datetime.now(UTC) + timedelta(seconds=1.5)
    )
    return issued.key_id, issued.secret


# A child process whose whole clock (time.time_ns, datetime.now) reads STEP ns behind the real
# one once STEP is set: the machine's clock cannot be stepped here (other work shares it).
CLOCK = """
import datetime as _dt, sys, time
STEP = [0]
_real_ns = time.time_ns
time.time_ns = lambda: _real_ns() - STEP[0]
time.time = lambda: time.time_ns() / 1e9
class _Stepped(_dt.datetime):
    @classmethod
    def now(cls, tz=None):
        return _dt.datetime.fromtimestamp(time.time_ns() / 1e9, tz)
_dt.datetime = _Stepped
sys.path.insert(0, ROOT)
from hub.bootstrap import bootstrap
from tests.adversarial._api import quiet_settings
from core.errors import Unauthenticated
def verdict(hub, key_id, secret):
    try:
        hub.keys.verify(key_id, secret)
        return "VALID"
    except Unauthenticated as exc:
        return "REFUSED " + str(exc)
"""


def _child(body: str, **values: object) -> list[str]:
    script = f"ROOT = {str(ROOT)!r}\n" + CLOCK + textwrap.dedent(body).format(**values)
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300, cwd=ROOT
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout.splitlines()


def test_an_expired_key_stays_expired_when_the_clock_steps_back(tmp_path: Path) -> None:
    lines = _child(
        """
        from datetime import UTC, datetime, timedelta
        hub = bootstrap(quiet_settings(__import__("pathlib").Path({data!r})))
        issued = hub.keys.create(
            ["analyst"], principal="ann", expires_at=datetime.now(UTC) + timedelta(seconds=1.5)
        )
        print(verdict(hub, issued.key_id, issued.secret))
        time.sleep(2.0)
        print(verdict(hub, issued.key_id, issued.secret))
        STEP[0] = {back}  # the clock is stepped back an hour
        print(verdict(hub, issued.key_id, issued.secret))
        line = [x for x in hub.metrics.render().decode().splitlines()
                if x.startswith("hub_clock_behind_seconds ")]
        print(line[0] if line else "no gauge")
        hub.close()
        """,
        data=str(tmp_path / "d"),
        back=HOUR_NS,
    )
    assert lines[0] == "VALID", lines
    assert lines[1].startswith("REFUSED") and "expired" in lines[1], lines
    assert lines[2].startswith("REFUSED") and "expired" in lines[2], lines
    assert float(lines[3].split()[1]) > 3000, lines


def test_a_key_is_not_expired_early_by_the_floor(hub: Hub, stepped_back: None) -> None:
    """The floor is a time that has passed, not a guess: a key valid for another hour in real
    time stays valid while the clock reads behind."""
    issued = hub.keys.create(
        ["analyst"], principal="bo", expires_at=datetime.now(UTC) + timedelta(minutes=30)
    )
    assert hub.keys.verify(issued.key_id, issued.secret).id == "bo"


def test_a_restart_with_the_clock_stepped_back_still_knows_how_late_it_was(
    tmp_path: Path,
) -> None:
    data = tmp_path / "d"
    gen = quiet_hub(data)
    hub = next(gen)
    try:
        key_id, secret = _short_key(hub)
        time.sleep(2.0)
        hub.ledger.sync()  # a checkpoint signed after the key expired
        newest = hub.ledger.store.latest_checkpoint()
        assert newest is not None and newest.time_us * 1000 > time.time_ns() - 10**9
    finally:
        hub.close()
    (line,) = _child(
        """
        STEP[0] = {back}  # the clock was stepped back an hour before this start
        from core import clock
        clock.reset()  # the process started on it (its floor began at the real time: s26)
        hub = bootstrap(quiet_settings(__import__("pathlib").Path({data!r})))
        print(verdict(hub, {key_id!r}, {secret!r}))
        hub.close()
        """,
        back=HOUR_NS,
        data=str(data),
        key_id=key_id,
        secret=secret,
    )
    assert line.startswith("REFUSED") and "expired" in line, line
