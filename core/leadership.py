"""Leader election with fencing for the hub's single-writer parts (the Leadership port).

Several hub processes serve one distributed footprint (Kafka + PostgreSQL); each serves reads and
publishes, but the parts that must have ONE writer (the ledger appender and checkpointer, the
projection runners, the scoring consumers) run only in the elected leader.

Contract of a :class:`Leadership` adapter (one named lease shared by the processes):
- :meth:`Leadership.try_acquire` MUST grant the lease to at most one holder at a time, and only
  when it is free or expired; each grant MUST return an epoch strictly greater than every epoch
  granted before for that name (the fencing token). Expiry MUST be judged by one clock (the
  store's), never by comparing two machines' clocks.
- :meth:`Leadership.renew` extends the holder's lease; it MUST return False once another holder
  was granted the lease (the caller then stops its single-writer parts).
- Leases are time-bound: a leader that stops renewing (crashed, paused by SIGSTOP, cut off from
  the store) loses the lease after ``lease_s`` and another process takes over.
- :meth:`Leadership.fenced` is a fence kept beside the lease, for writers whose store cannot
  check an epoch itself (appends to the event log): entering it MUST record ``token.epoch`` as
  the writer's epoch, or raise ``Fenced`` when a newer epoch is recorded, and MUST hold the
  writer's fence until the block ends, so that a newer epoch's ``fenced`` waits for the block
  (the write inside either finishes first, or never starts).

Election alone cannot stop a paused leader that resumes and writes before it notices it lost
(its renewal is the next thing it would do, and a pause can strike between any two
instructions). So every write of a single-writer part carries a :class:`WriterFence` (writer name,
epoch) and the STORE refuses it, in the same transaction as the write, when it has already taken
a write of that writer under a newer epoch (``Fenced``). Kafka writes are fenced by Kafka itself:
a producer's ``transactional.id`` is stable per single-writer part, so the new leader's
``init_transactions`` bumps the producer epoch and the old producer's next write is refused.
The loops that append events through the shared publisher (alerts, reports, retrains) write to a
log that checks no epoch: they append inside :meth:`Leadership.fenced`, which the new leader
enters once BEFORE it folds what was appended (``hub.ha.while_leader``), so an old leader's
append is either folded by the new one or refused.

:class:`LeaderElector` runs the acquire/renew loop in a thread and calls back when this process
is elected or loses the lease; :meth:`LeaderElector.fence` gives the token to write with (None
when this process is not the leader, judged by its own monotonic clock with a safety margin: the
store's fence is what makes a wrong judgement harmless).
"""

from __future__ import annotations

import abc
import logging
import queue
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass

from core.errors import Conflict, HubError

log = logging.getLogger("hub.leadership")


@dataclass(frozen=True, slots=True)
class WriterFence:
    """The fencing token a single-writer part writes with: its name and the leader's epoch."""

    writer: str
    epoch: int


@dataclass(frozen=True, slots=True)
class LeaseHolder:
    """Who holds a lease now, as the store sees it."""

    holder: str
    epoch: int
    expires_in_s: float


class Fenced(Conflict):
    """A store refused a write: a newer leader already wrote as this writer."""

    code = "fenced"
    http_status = 409


class NotLeader(HubError):
    """A single-writer part was asked to write in a process that is not the leader."""

    code = "not_leader"
    http_status = 503


class Leadership(abc.ABC):
    """One named, time-bound lease among hub processes (see the module's contract)."""

    name: str
    holder: str
    lease_s: float

    @abc.abstractmethod
    def try_acquire(self) -> int | None:
        """The new epoch when this holder got the lease, None when another holds it."""

    @abc.abstractmethod
    def renew(self, epoch: int) -> bool:
        """Extend the lease held under ``epoch``; False when it was lost."""

    @abc.abstractmethod
    def release(self, epoch: int) -> None:
        """Give the lease up now (a clean shutdown hands over without waiting for expiry)."""

    @abc.abstractmethod
    def current(self) -> LeaseHolder | None:
        """The live lease's holder, None when the lease is free or expired."""

    @abc.abstractmethod
    def fenced(self, token: WriterFence) -> AbstractContextManager[None]:
        """Hold ``token.writer``'s fence under ``token.epoch`` while the block writes; raises
        ``Fenced`` on entry when a newer epoch of that writer was recorded (see the contract)."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""


Callback = Callable[[int], None]


class LeaderElector:
    """Keeps trying for the lease and renews it while held, in a daemon thread.

    ``on_elected(epoch)`` runs in the elector's thread when this process becomes the leader;
    ``on_lost(epoch)`` when it stops being the leader (renewal refused, store unreachable for
    longer than the lease, or ``stop``). Renewal runs every ``lease_s / 3``; this process
    considers itself the leader until ``lease_s - margin`` after its last successful renewal
    (monotonic clock, which keeps counting while the process is paused).
    """

    def __init__(
        self,
        leadership: Leadership,
        *,
        on_elected: Callback | None = None,
        on_lost: Callback | None = None,
        margin_s: float | None = None,
    ) -> None:
        self.leadership = leadership
        self.on_elected: list[Callback] = [on_elected] if on_elected else []
        self.on_lost: list[Callback] = [on_lost] if on_lost else []
        self.lease_s = leadership.lease_s
        self.margin_s = self.lease_s / 3 if margin_s is None else margin_s
        self._lock = threading.Lock()
        self._epoch: int | None = None
        self._valid_until = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._worker: threading.Thread | None = None
        self._transitions: queue.Queue[Callable[[], None] | None] = queue.Queue()
        self.elections = 0  # how many times this process was elected

    # -- what writers ask ----------------------------------------------------------------------
    @property
    def epoch(self) -> int | None:
        """The epoch this process leads under, None when it is not (or no longer sure it is)."""
        with self._lock:
            if self._epoch is not None and time.monotonic() < self._valid_until:
                return self._epoch
            return None

    def is_leader(self) -> bool:
        return self.epoch is not None

    def fence(self, writer: str) -> WriterFence | None:
        """``writer``'s token, None when this process is not the leader. A process that runs no
        election loop (a CLI command) takes the lease on demand when it is free, and keeps it
        while it asks again within the lease; ``stop`` hands it back."""
        epoch = self.epoch
        if epoch is None and self._thread is None:
            self.step()
            epoch = self.epoch
        return None if epoch is None else WriterFence(writer, epoch)

    def fence_of(self, writer: str) -> Callable[[], WriterFence | None]:
        """A supplier of ``writer``'s token, for a single-writer part to call before each write."""
        return lambda: self.fence(writer)

    # -- the loop --------------------------------------------------------------------------------
    def start(self) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self._worker = threading.Thread(
            target=self._apply_transitions, name="leader-transitions", daemon=True
        )
        self._worker.start()
        self._thread = threading.Thread(target=self._run, name="leader-elector", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the loop; a leader runs ``on_lost`` and releases the lease (prompt handover)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None
            self._transitions.put(None)  # after the transitions already queued
            if self._worker is not None:
                self._worker.join(timeout=60)
                self._worker = None
        with self._lock:
            epoch, self._epoch = self._epoch, None
        if epoch is not None:
            self._lost(epoch)
            try:
                self.leadership.release(epoch)
            except HubError as exc:
                log.warning("releasing the lease failed: %s", exc.message)

    def step(self) -> None:
        """One round: renew when leading, else try to acquire (the loop's body; tests call it)."""
        with self._lock:
            epoch = self._epoch
        now = time.monotonic()
        if epoch is not None:
            try:
                kept = self.leadership.renew(epoch)
            except HubError as exc:
                log.warning("renewing the lease failed: %s", exc.message)
                kept = time.monotonic() < self._valid_until  # keep trying until it runs out
                if kept:
                    return
            if kept:
                with self._lock:
                    self._valid_until = now + self.lease_s - self.margin_s
                return
            with self._lock:
                self._epoch = None
            log.warning(
                "this process lost the leadership",
                extra={"lease": self.leadership.name, "epoch": epoch},
            )
            self._lost(epoch)
            return
        try:
            got = self.leadership.try_acquire()
        except HubError as exc:
            log.warning("acquiring the lease failed: %s", exc.message)
            return
        if got is None:
            return
        with self._lock:
            self._epoch, self._valid_until = got, now + self.lease_s - self.margin_s
        self.elections += 1
        log.info(
            "this process is the leader",
            extra={"lease": self.leadership.name, "holder": self.leadership.holder, "epoch": got},
        )
        self._elected(got)

    def _elected(self, epoch: int) -> None:
        self._transition(self.on_elected, epoch, "starting")

    def _lost(self, epoch: int) -> None:
        self._transition(self.on_lost, epoch, "stopping")

    def _transition(self, callbacks: list[Callback], epoch: int, doing: str) -> None:
        """Run callbacks in order; in the transitions thread while the loop runs (starting the
        projection runners can take seconds: it must never delay a renewal, or the lease runs
        out while this process starts to lead)."""

        def run() -> None:
            for cb in callbacks:
                try:
                    cb(epoch)
                except Exception:  # a failing part must not stop the elector
                    log.exception("%s a single-writer part failed", doing)

        if self._thread is None or threading.current_thread() is not self._thread:
            run()
            return
        self._transitions.put(run)

    def _apply_transitions(self) -> None:
        while True:
            job = self._transitions.get()
            if job is None:
                return
            job()

    def _run(self) -> None:
        every = self.lease_s / 3
        while not self._stop.is_set():
            self.step()
            self._stop.wait(every)
