"""The hub's "now" for validity and expiry: the wall clock, never earlier than a floor.

API key and enrolment expiry, approval and proposal times, retention cut-offs and legal-hold
times read :func:`now`. A system clock stepped back (an operator, a bad NTP source, someone with
root on the host) must not make an expired key valid again, reopen an enrolment window or keep
rows past their retention. So ``now`` is the later of

- the wall clock, and
- the floor: the latest time this process knows has passed, carried forward by the monotonic
  clock (which is never stepped): the wall clock when the process started, raised by the
  composition root to the newest signed checkpoint's time (a checkpoint's time never goes back,
  so a restart after the clock was stepped back still knows how late it was), and by any later
  call of :func:`raise_floor`.

A wall clock behind the floor by more than :data:`SLACK_NS` is counted
(:func:`behind_seconds`, the ``hub_clock_behind_seconds`` gauge; ``hub ledger verify`` warns too)
and logged once per step back. A clock that was AHEAD when the process started (then corrected)
keeps the hub's time ahead until it restarts: expiry then comes early, never late.

The floor is process-wide (every hub of the process shares one machine clock).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime

SLACK_NS = 2_000_000_000  # wall clock jitter below this is not "behind"

_log = logging.getLogger("hub.clock")
_lock = threading.Lock()
_wall: Callable[[], int] = time.time_ns
_base_wall_ns = time.time_ns()  # the floor at _base_mono_ns
_base_mono_ns = time.monotonic_ns()
_behind_ns = 0  # how far the wall clock was behind the floor at the last reading
_reported = False  # the current step back was logged


def now_ns() -> int:
    """Nanoseconds since the epoch: ``max(wall clock, floor)``."""
    global _behind_ns, _reported
    wall = _wall()
    floor = _base_wall_ns + (time.monotonic_ns() - _base_mono_ns)
    if wall >= floor - SLACK_NS:
        if _behind_ns:
            _behind_ns, _reported = 0, False
        return max(wall, floor)
    _behind_ns = floor - wall
    if not _reported:
        _reported = True
        _log.warning(
            "the system clock reads %.0f s behind the latest time this hub knows has passed "
            "(a clock stepped back): key and enrolment expiry, approvals and retention use "
            "that later time; check the clock (NTP)",
            _behind_ns / 1e9,
        )
    return floor


def wall_ns() -> int:
    """The system clock as it reads (nanoseconds since the epoch), without the floor: for
    comparing the two (the start's check of a checkpoint dated ahead)."""
    return _wall()


def now() -> datetime:
    """:func:`now_ns` as an aware UTC datetime."""
    return datetime.fromtimestamp(now_ns() / 1e9, tz=UTC)


def now_ms() -> int:
    return now_ns() // 1_000_000


def raise_floor(at_ns: int) -> None:
    """The hub knows ``at_ns`` has passed (a signed checkpoint's time): ``now`` is never
    earlier from here on. Lower values are ignored."""
    global _base_wall_ns, _base_mono_ns
    with _lock:
        mono = time.monotonic_ns()
        if at_ns > _base_wall_ns + (mono - _base_mono_ns):
            _base_wall_ns, _base_mono_ns = at_ns, mono


def behind_seconds() -> float:
    """How far the wall clock read behind the floor at the last :func:`now` (0: not behind)."""
    now_ns()
    return _behind_ns / 1e9


def use_wall_clock(wall: Callable[[], int]) -> Callable[[], int]:
    """Read the wall clock from ``wall`` (nanoseconds) from now on; the previous reader is
    returned. For tests that step the clock without root (the floor is not reset)."""
    global _wall
    with _lock:
        previous, _wall = _wall, wall
    return previous


def reset() -> None:
    """Forget the floor: from now on it starts at the wall clock as it reads now. For a process
    that opens unrelated hubs one after another (the test suite, benchmarks): a hub's newest
    checkpoint is a floor for that hub's data only."""
    global _base_wall_ns, _base_mono_ns, _behind_ns, _reported
    with _lock:
        _base_wall_ns, _base_mono_ns = _wall(), time.monotonic_ns()
        _behind_ns, _reported = 0, False
