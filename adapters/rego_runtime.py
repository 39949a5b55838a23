"""Bounded decisions of the embedded engine: each evaluation on an evaluator thread, bounded in
CPU time (``HUB_POLICY_DECISION_BOUND_MS``) and, for the never-ending case only, in wall time
(``HUB_POLICY_DECISION_WALL_MS``).

rego-cpp has no way to stop an evaluation (no cancel call, no step limit), and the proposal-time
timing (``adapters.rego_deadline``) only times the bundle's own policy cases: a branch slow for
an input no case has still reaches the serving path. regopy calls rego-cpp through ``ctypes``,
which releases the GIL, so the caller can wait for an evaluator thread with a deadline:

1. the caller hands the input to the engine's evaluator thread and waits until it answers, or
   until that thread has spent the bound in CPU time (its own CPU clock,
   ``time.pthread_getcpuclockid``: the work the policy did, whatever the machine's load), or
   until the wall limit has passed (an evaluation that spends no CPU, or a machine so starved
   that the thread gets less than bound / wall limit of a core). Waiting costs one lock
   hand-off each way (a few microseconds of CPU, measured in
   ``docs/benchmarks/s21-policyrt21.md``) plus one wake-up per time the thread could have
   spent the rest of the bound. Session 21 bounded the wall time the caller waited: on a
   machine at load 14+ an ordinary decision of a few milliseconds of CPU waited past it and
   was denied (seen in a CI trial and in sessions 23-25);
2. past either limit, the evaluator is set aside (``lost``): it finishes its evaluation on its
   own thread, its answer is dropped, and it ends; the decision is denied
   (``policy_eval_timeout``, naming the limit passed);
3. the next decision gets a fresh evaluator (its own interpreter and compiled bundle: a compiled
   bundle is never used by two threads at once); but a bundle version that has timed out, and
   every decision while ``stuck_max`` set-aside evaluations are still running, is evaluated in
   a child process killed at the same limits (its process CPU time, read from ``/proc``:
   ``ChildEvaluator``), so slow inputs cannot pile up threads and CPU without end, nor deny
   the other decisions until a stuck one ends.

A process could kill a stuck evaluation, but costs a pipe round trip and a copy of the input
per decision (measured in the same page): the thread serves a version until it has timed out,
the child from then on.
"""

from __future__ import annotations

import json
import os
import selectors
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Literal

from core.childenv import child_environment
from core.policybundle import PolicyBundle

SETTING = "HUB_POLICY_DECISION_BOUND_MS"  # CPU time of one decision
WALL_SETTING = "HUB_POLICY_DECISION_WALL_MS"  # wall time of one decision: the never-ending case
DEFAULT_WALL_MS = 30_000
MIN_WAIT_S = 0.001  # the shortest wait between two reads of the evaluator's CPU clock
START_BOUND_S = 60.0  # starting Python, importing rego-cpp and compiling the bundle
MEMORY_POLL_S = 0.05  # how often a child's resident memory (and CPU time) is read while waiting
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")  # the unit of utime and stime in /proc/<pid>/stat
ROOT = Path(__file__).resolve().parents[1]  # the folder holding the adapters package


@dataclass(frozen=True)
class Limits:
    """The bounds of one decision: ``cpu_s`` of the evaluator's CPU time, ``wall_s`` of wall
    time (the never-ending case; the engine makes it at least ``cpu_s``)."""

    cpu_s: float
    wall_s: float


Passed = Literal["cpu", "wall"]  # which limit a decision passed


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
        self.passed: Passed | None = None  # the limit that set this thread aside
        self._thread = threading.Thread(target=self._loop, name="rego-evaluator", daemon=True)
        self._thread.start()
        assert self._thread.ident is not None
        self._cpu_clock = time.pthread_getcpuclockid(self._thread.ident)

    def cpu_ns(self) -> int:
        """The CPU time this thread has spent, in nanoseconds, since it started."""
        return time.clock_gettime_ns(self._cpu_clock)

    def run(self, job: Any, limits: Limits) -> tuple[bool, Any] | None:
        """(ok, value or exception) of ``work(job)``; None when this thread spent more than
        ``limits.cpu_s`` of CPU time on it, or it did not end within ``limits.wall_s`` (the
        thread is then lost, ``passed`` names the limit: never call ``run`` on it again)."""
        self._job = job
        cpu_start, wall_start = self.cpu_ns(), time.monotonic()
        self._go.release()
        # the thread's CPU time grows at most as fast as wall time: wait for the CPU time left
        wait = limits.cpu_s
        while not self._done.acquire(timeout=wait):
            cpu_left = limits.cpu_s - (self.cpu_ns() - cpu_start) / 1e9
            wall_left = limits.wall_s - (time.monotonic() - wall_start)
            if cpu_left <= 0 or wall_left <= 0:
                with self._state:
                    if not self._done.acquire(blocking=False):  # not answered in the meantime
                        self.lost = True
                        self.passed = "cpu" if cpu_left <= 0 else "wall"
                        return None
                break
            wait = max(min(cpu_left, wall_left), MIN_WAIT_S)
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


class PipeLines:
    """Lines of a child's pipe, each awaited with a deadline, the child's resident memory
    under a cap meanwhile (``adapters.rego_deadline``, ``ChildEvaluator``) and, when asked,
    its CPU time under a bound (``ChildEvaluator``)."""

    def __init__(self, pipe: IO[bytes], pid: int, memory_mb: int) -> None:
        self._status = f"/proc/{pid}/statm"
        self._stat = f"/proc/{pid}/stat"
        self._cap_pages = memory_mb * 2**20 // os.sysconf("SC_PAGE_SIZE")
        self.over_memory = False  # the writer's resident memory passed the cap (then None)
        self.over_cpu = False  # the writer spent more than ``cpu_s`` on the line (then None)
        self._fd = pipe.fileno()
        self._buffer = b""
        self._selector = selectors.DefaultSelector()
        self._selector.register(self._fd, selectors.EVENT_READ)

    def __enter__(self) -> PipeLines:
        return self

    def __exit__(self, *exc: object) -> None:
        self._selector.close()

    def next(self, timeout_s: float, cpu_s: float | None = None) -> str | None:
        """The next line, or None at end of file, when none came within ``timeout_s`` of wall
        time, or (``cpu_s``) once the writer has spent more than ``cpu_s`` of CPU time since
        this call (read from ``/proc`` at each poll: to the clock tick)."""
        deadline = time.monotonic() + timeout_s
        cpu_start = self._cpu_s() if cpu_s is not None else 0.0
        self.over_cpu = False
        while b"\n" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0 or self._over_memory():
                return None
            if cpu_s is not None and self._cpu_s() - cpu_start > cpu_s:
                self.over_cpu = True
                return None
            if not self._selector.select(min(left, MEMORY_POLL_S)):
                continue
            chunk = os.read(self._fd, 65536)
            if not chunk:
                return None
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        return line.decode("utf-8")

    def _over_memory(self) -> bool:
        try:
            with open(self._status, "rb") as f:
                resident = int(f.read().split()[1])
        except (OSError, ValueError, IndexError):
            return False  # ended: the pipe says so
        self.over_memory = resident > self._cap_pages
        return self.over_memory

    def _cpu_s(self) -> float:
        """The writer's CPU time (user + system, all its threads), 0 once it has ended."""
        try:
            with open(self._stat, "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()  # after the command's name
            return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
        except (OSError, ValueError, IndexError):
            return 0.0  # ended: the pipe says so


class ChildEvaluator:
    """Decisions of one bundle version in a child process (``run``), killed past a bound."""

    def __init__(self, bundle: PolicyBundle, memory_mb: int) -> None:
        self.version = bundle.version
        self._files = dict(bundle.files)
        self._memory_mb = memory_mb
        self._child: subprocess.Popen[bytes] | None = None
        self._lines: PipeLines | None = None
        self.started = 0  # children started, since this evaluator was made
        self.passed: Passed | None = None  # the limit the last ``run`` passed, if any

    def run(self, doc: Mapping[str, Any], limits: Limits) -> tuple[bool, Any] | None:
        """(ok, value or exception) of the entrypoint for ``doc``; None when the child spent
        more than ``limits.cpu_s`` of CPU time or no answer came within ``limits.wall_s`` (the
        child is then killed; ``passed`` names the limit), or the child passed its memory cap."""
        if self._child is None:
            self._start()
        assert self._child is not None and self._child.stdin is not None
        assert self._lines is not None
        self.passed = None
        try:
            self._child.stdin.write(json.dumps(doc).encode("utf-8") + b"\n")
            self._child.stdin.flush()
        except BrokenPipeError:
            self.close()
            return False, RuntimeError("the policy evaluation child ended unexpectedly")
        line = self._lines.next(limits.wall_s, limits.cpu_s)
        if line is None:
            over, cpu = self._lines.over_memory, self._lines.over_cpu
            ended = self._child.poll() is not None  # on its own: before ``close`` kills it
            self.close()
            if ended and not over:
                return False, RuntimeError("the policy evaluation child ended unexpectedly")
            if over:
                return False, MemoryError(
                    f"the policy evaluation passed {self._memory_mb} MiB "
                    "(HUB_POLICY_EVAL_MEMORY_MB) and was stopped"
                )
            self.passed = "cpu" if cpu else "wall"
            return None
        answer = json.loads(line)
        if answer.get("ok") is True:
            return True, answer.get("value")
        return False, RuntimeError(str(answer.get("error")))

    def _start(self) -> None:
        child = subprocess.Popen(
            [sys.executable, "-m", "adapters.rego_child"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,  # the bundle's print(): never among the answers
            cwd=ROOT,
            env=child_environment(),  # a bundle's code: none of the hub's secrets
        )
        assert child.stdin is not None and child.stdout is not None
        self._child, self._lines = child, PipeLines(child.stdout, child.pid, self._memory_mb)
        self.started += 1
        child.stdin.write(json.dumps(self._files).encode("utf-8") + b"\n")
        child.stdin.flush()
        if self._lines.next(START_BOUND_S) != "ready":
            self.close()
            raise RuntimeError(
                f"a policy evaluation child did not compile the bundle {self.version[:12]} "
                f"within {START_BOUND_S:.0f} s"
            )

    def close(self) -> None:
        """Kill the child, if any (the next ``run`` starts another)."""
        child, lines, self._child, self._lines = self._child, self._lines, None, None
        if lines is not None:
            lines.__exit__()
        if child is not None:
            if child.poll() is None:
                child.kill()
            child.wait()
            for pipe in (child.stdin, child.stdout):
                if pipe is not None:
                    pipe.close()
