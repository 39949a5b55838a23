"""Time a policy bundle's decisions in a child process, under a bound: a slow bundle is refused.

rego-cpp cannot cancel an evaluation, and a decision runs on every request: a bundle whose
decision does heavy work (a comprehension over millions of elements) would make every decision
slow once activated. So before a bundle may become an event (``hub policy propose``) and again
before it is activated (``approve``), the composition root hands ``BoundedEvaluation`` to
``governance.changes``: it compiles the bundle in a separate Python process and evaluates each
input (the bundle's policy cases: every role x action, the attribute and malformed cases) there,
and refuses the bundle, naming the case and the bound, when

- an evaluation took more CPU time than the bound (measured by the child on its own thread:
  rego-cpp evaluates on the calling thread, and CPU time does not grow with the machine's load);
- the child did not answer within the bound plus ``WALL_GRACE_S`` of wall time (an evaluation
  that never ends): the child is killed, the only way to stop a rego-cpp evaluation;
- the child did not compile the bundle within ``START_BOUND_S`` or died;
- the child's resident memory passed ``HUB_POLICY_EVAL_MEMORY_MB`` (read from ``/proc`` while
  waiting, every ``MEMORY_POLL_S``): the child is killed. An ``RLIMIT_AS``/``RLIMIT_DATA`` cap
  cannot be used: rego-cpp's allocator (snmalloc) reserves 256 GiB of address space when it
  loads (VmData 268,534,752 kB measured) and fails to start under either limit.

This times the bundle's own cases only: an input no case has can still reach a slow branch,
which the serving path bounds (``adapters.rego_runtime``: ``HUB_POLICY_DECISION_BOUND_MS``).

The decisions' answers are not checked here (the case run in-process does that, after this
check: by then every case is known to be fast). The OPA footprint validates proposals the same
way (the composition root validates on the embedded engine whatever the footprint), and its
server evaluation is bounded besides by ``HUB_OPA_TIMEOUT_MS`` (the request is dropped).

Run as ``python -m adapters.rego_deadline``: reads ``{"files": ..., "cases": [[name, input]]}``
as JSON on stdin, writes ``ready`` once compiled, then ``<index> <cpu ns>`` per evaluation, on
its stdout; what the bundle itself prints (``print()``) goes to its stderr, never among them.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from typing import IO, Any

from adapters.rego_runtime import ROOT, START_BOUND_S, PipeLines
from core.childenv import child_environment
from core.policybundle import PolicyBundle, PolicyError

SETTING = "HUB_POLICY_EVAL_BOUND_MS"
MEMORY_SETTING = "HUB_POLICY_EVAL_MEMORY_MB"
WALL_GRACE_S = 2.0  # wall time past the bound before an evaluation counts as never ending


class BoundedEvaluation:
    """``check(bundle, cases)``: raise ``PolicyError`` unless every case evaluates within
    ``bound_ms`` milliseconds of CPU time; ``cases`` are (name, input document) pairs."""

    def __init__(self, bound_ms: int, *, memory_mb: int = 1024) -> None:
        if bound_ms < 1:
            raise ValueError(f"{SETTING} must be at least 1 (got {bound_ms})")
        if memory_mb < 64:
            raise ValueError(f"{MEMORY_SETTING} must be at least 64 (got {memory_mb})")
        self.bound_ms = bound_ms
        self.memory_mb = memory_mb

    def __call__(self, bundle: PolicyBundle, cases: Sequence[tuple[str, Any]]) -> None:
        payload = json.dumps(
            {
                "files": dict(bundle.files),
                "cases": [list(c) for c in cases],
            }
        )
        with tempfile.TemporaryFile() as errors:
            child = subprocess.Popen(
                [sys.executable, "-m", "adapters.rego_deadline"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=errors,
                cwd=ROOT,
                env=child_environment(),  # a proposed bundle's code: none of the hub's secrets
            )
            try:
                self._watch(child, payload.encode("utf-8"), bundle, cases, errors)
            finally:
                if child.poll() is None:
                    child.kill()
                child.wait()

    def _watch(
        self,
        child: subprocess.Popen[bytes],
        payload: bytes,
        bundle: PolicyBundle,
        cases: Sequence[tuple[str, Any]],
        errors: IO[bytes],
    ) -> None:
        assert child.stdin is not None and child.stdout is not None
        try:
            child.stdin.write(payload)
            child.stdin.close()
        except BrokenPipeError:
            pass  # the child died: reported below as no answer
        with PipeLines(child.stdout, child.pid, self.memory_mb) as lines:
            self._read(child, lines, bundle, cases, errors)

    def _read(
        self,
        child: subprocess.Popen[bytes],
        lines: PipeLines,
        bundle: PolicyBundle,
        cases: Sequence[tuple[str, Any]],
        errors: IO[bytes],
    ) -> None:
        name = f"The proposed policy bundle {bundle.version[:12]}"
        bound = f"the bound of {self.bound_ms} ms ({SETTING})"
        if lines.next(START_BOUND_S) != "ready":
            child.kill()
            child.wait()
            errors.seek(0)
            tail = errors.read()[-300:].decode("utf-8", "replace").strip()
            raise PolicyError(
                f"{name} could not be timed: a child process did not compile it within "
                f"{START_BOUND_S:.0f} s ({tail or 'no error output'}); refused."
            )
        wall_s = self.bound_ms / 1000 + WALL_GRACE_S
        for index, (case, _) in enumerate(cases):
            line = lines.next(wall_s)
            if line is None and lines.over_memory:
                raise PolicyError(
                    f"{name} used more than the memory cap of {self.memory_mb} MiB "
                    f"({MEMORY_SETTING}) deciding the policy case {case!r} (stopped): a decision "
                    "must be small; refused."
                )
            if line is None and _ended(child):
                raise PolicyError(
                    f"{name} ended the timing child (exit {child.returncode}) while deciding the "
                    f"policy case {case!r}: the engine crashed on it; refused."
                )
            if line is None:
                raise PolicyError(
                    f"{name} did not decide the policy case {case!r} within {wall_s:.1f} s of "
                    f"wall time (stopped; {bound}): a decision must be quick; refused."
                )
            at, _, cpu = line.partition(" ")
            if at != str(index) or not cpu.isdigit():
                raise PolicyError(f"{name} could not be timed (answer {line!r}); refused.")
            cpu_ns = int(cpu)
            if cpu_ns > self.bound_ms * 1_000_000:
                raise PolicyError(
                    f"{name} took {cpu_ns / 1e6:.1f} ms of CPU time to decide the policy case "
                    f"{case!r}, over {bound}: a decision must be quick; refused."
                )


def _ended(child: subprocess.Popen[bytes]) -> bool:
    """Whether the child has exited (awaited briefly: its pipe closes just before it exits)."""
    with contextlib.suppress(subprocess.TimeoutExpired):
        child.wait(timeout=1.0)
    return child.returncode is not None


def _child() -> None:
    """Compile the bundle from stdin; evaluate every case, writing its CPU time."""
    # Rego's print() writes to descriptor 1: a bundle that printed "0 1" would forge an answer.
    # The answers go to a copy of it, and descriptor 1 (the bundle's prints) to stderr.
    out = os.fdopen(os.dup(sys.stdout.fileno()), "w", encoding="utf-8")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    request = json.loads(sys.stdin.buffer.read())
    from adapters.rego_policy import RegoPolicyEngine

    engine = RegoPolicyEngine(PolicyBundle.from_files(request["files"]))
    out.write("ready\n")
    out.flush()
    for index, (_, doc) in enumerate(request["cases"]):
        started = time.thread_time_ns()
        with contextlib.suppress(Exception):  # answers are checked in-process; time counts here
            engine.evaluate(doc)
        out.write(f"{index} {time.thread_time_ns() - started}\n")
        out.flush()


if __name__ == "__main__":
    _child()
