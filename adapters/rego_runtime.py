"""Bounded decisions of the embedded engine: each evaluation on an evaluator thread, awaited
for at most the decision bound (``HUB_POLICY_DECISION_BOUND_MS``).

rego-cpp has no way to stop an evaluation (no cancel call, no step limit), and the proposal-time
timing (``adapters.rego_deadline``) only times the bundle's own policy cases: a branch slow for
an input no case has still reaches the serving path. regopy calls rego-cpp through ``ctypes``,
which releases the GIL, so the caller can wait for an evaluator thread with a deadline:

1. the caller hands the input to the engine's evaluator thread and waits up to the bound
   (one lock hand-off each way: a few microseconds of CPU, measured in
   ``docs/benchmarks/s21-policyrt21.md``);
2. past the bound, the evaluator is set aside (``lost``): it finishes its evaluation on its own
   thread, its answer is dropped, and it ends; the decision is denied
   (``policy_eval_timeout``);
3. the next decision gets a fresh evaluator (its own interpreter and compiled bundle: a compiled
   bundle is never used by two threads at once), unless ``stuck_max`` set-aside evaluations are
   still running: then no evaluation starts (denied, ``policy_eval_timeout``) until one ends, so
   slow inputs cannot pile up threads and CPU without end.

A process pool could kill a stuck evaluation, but costs a pipe round trip and a copy of the input
per decision (measured in the same page); the thread costs a hand-off, and the cap bounds what
a stuck evaluation can hold.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

SETTING = "HUB_POLICY_DECISION_BOUND_MS"


class EvaluatorThread:
    """One daemon thread that runs ``work(job)`` for one caller at a time (``run``)."""

    def __init__(self, work: Callable[[Any], Any], on_lost_end: Callable[[], None]) -> None:
        self._work = work
        self._on_lost_end = on_lost_end
        self._go = threading.Lock()
        self._go.acquire()
        self._done = threading.Lock()
        self._done.acquire()
        self._state = threading.Lock()  # orders "answer handed back" against "set aside"
        self._job: Any = None
        self._stop = False
        self._answer: tuple[bool, Any] = (True, None)
        self.lost = False
        self._thread = threading.Thread(target=self._loop, name="rego-evaluator", daemon=True)
        self._thread.start()

    def run(self, job: Any, timeout_s: float) -> tuple[bool, Any] | None:
        """(ok, value or exception) of ``work(job)``; None when it did not end within
        ``timeout_s`` (the thread is then lost: never call ``run`` on it again)."""
        self._job = job
        self._go.release()
        if not self._done.acquire(timeout=timeout_s):
            with self._state:
                if not self._done.acquire(blocking=False):  # not answered in the meantime
                    self.lost = True
                    return None
        answer, self._answer, self._job = self._answer, (True, None), None
        return answer

    def stop(self) -> None:
        """End the thread once idle (call only when no ``run`` is under way)."""
        self._stop = True
        self._go.release()

    def _loop(self) -> None:
        while True:
            self._go.acquire()
            if self._stop:
                return
            try:
                answer: tuple[bool, Any] = (True, self._work(self._job))
            except Exception as exc:  # handed to the caller, which fails closed
                answer = (False, exc)
            with self._state:
                if self.lost:
                    break
                self._answer = answer
                self._done.release()
        self._job = None
        self._on_lost_end()


class StuckCount:
    """How many set-aside evaluations still run (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.running = 0

    def add(self) -> None:
        with self._lock:
            self.running += 1

    def end(self) -> None:
        with self._lock:
            self.running -= 1
