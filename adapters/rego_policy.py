"""RegoPolicyEngine: the hub's policies evaluated in-process by rego-cpp (``regopy``).

The embedded default of the PolicyEngine port. ``load(bundle)`` compiles the bundle's modules
and data once into a rego-cpp bundle with one entrypoint, ``hub/authz/decision``; each decision
is then ``set_input`` + ``query_bundle_entrypoint`` (the fastest rego-cpp path, ≈ 10x a plain
``query()``). Pitfalls this module steers around (see STACK-NOTES):

- a bare rule query is undefined on rego-cpp, and ``Output.expressions()`` on an undefined result
  aborts the process: the output is read as its JSON text only, never ``expressions()``;
- rego-cpp's time built-ins are incomplete: the policy never calls them, ``context.now`` (Unix
  ns) is set here when the caller did not set it;
- built-in errors are forwarded (``strict_built_in_errors``) so that they deny with a reason
  instead of silently turning a rule undefined.

Fail closed: any rego-cpp error, undefined or malformed answer is a deny with a reason, never an
exception. An optional ``DecisionCache`` answers repeated inputs without evaluating.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from adapters.rego_runtime import (
    DEFAULT_WALL_MS,
    WALL_SETTING,
    ChildEvaluator,
    EvaluatorThread,
    Limits,
    Passed,
    StuckCount,
)
from adapters.rego_runtime import SETTING as BOUND_SETTING
from core.decisioncache import DecisionCache
from core.policybundle import (
    ENTRYPOINT,
    QUERY,
    UNSAFE_TEXT,
    EvaluationTimeout,
    InputDocumentEngine,
    PolicyBundle,
    PolicyError,
    decide_cached,
    refuse_unsafe_data,
    refuse_unsafe_input,
)
from core.ports.policy import Decision

# pyarrow FIRST: with regopy 1.5.2 loaded first, a later `import pyarrow` (also through pandas or
# chdb) aborts the process ("double free or corruption"); this order is safe.
with contextlib.suppress(ImportError):
    import pyarrow  # noqa: F401

try:
    import regopy
    from regopy import rego_shared
except ImportError as exc:  # pragma: no cover - the lock file installs it
    raise ImportError("The embedded policy engine needs regopy: pip install regopy==1.5.2") from exc

ENGINE = "rego-cpp"
log = logging.getLogger(__name__)


def compile_bundle(bundle: PolicyBundle, *, with_tests: bool = False) -> Any:
    """Compile ``bundle`` into a rego-cpp bundle; raises ``PolicyError`` with rego-cpp's message,
    or naming a string of the bundle's data that holds a quote or backslash (never loaded:
    rego-cpp would echo it unescaped; ``PolicyBundle.from_files`` refuses such data already)."""
    refuse_unsafe_data(bundle.data)
    interp = regopy.Interpreter()
    try:
        interp.add_data(dict(bundle.data))
        modules = bundle.files if with_tests else bundle.modules
        for path, text in sorted(modules.items()):
            if path.endswith(".rego"):
                interp.add_module(path, text)
        return interp.build(QUERY, [ENTRYPOINT])
    except regopy.RegoError as exc:
        raise PolicyError(
            f"The policy bundle {bundle.version[:12]} does not compile: {exc}"
        ) from exc


# rego-cpp 1.5.2 writes string values into its JSON answer without escaping them: a quote in a
# string the policy echoes (a resource, a principal or case id in the reason) could end the
# string and add keys (`topics/x", "allow": true, "z": "` made a denial read as an allow), and a
# backslash could swallow the policy's own closing quote. So an input holding a quote or a
# backslash is refused before it is evaluated (denied, fail closed: such a name has no place in
# a decision), and an answer whose objects repeat a key is refused as well. A raw control
# character cannot add structure: the strict JSON reader refuses the answer (denied). The
# bundle's own data is held to the same rule when it is read (core.policybundle.UNSAFE_TEXT).
_UNSAFE = UNSAFE_TEXT


# The input check runs in ``decide_cached`` for every adapter (OPA too, so both footprints
# answer alike); ``evaluate`` called directly checks it here as well.
refuse_unsafe_text = refuse_unsafe_input


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(pairs)
    if len(out) != len(pairs):
        raise PolicyError("rego-cpp answered an object with a repeated key; refused")
    return out


def _read(ok: bool, text: str) -> Any:
    """The JSON value of a single-expression rego-cpp output; None when undefined."""
    if not ok:
        raise PolicyError(f"rego-cpp answered an error: {text[:300]}")
    if text == "undefined":
        return None
    doc = json.loads(text, object_pairs_hook=_unique_keys)
    exprs = doc.get("expressions") if isinstance(doc, dict) else None
    if not isinstance(exprs, list) or len(exprs) != 1:
        return None
    return exprs[0]


def query_entrypoint(interp: Any, compiled: Any, entrypoint: str) -> tuple[bool, str]:
    """``interp.query_bundle_entrypoint`` read once: (ok, its JSON text or error).

    regopy's ``Output`` fetches the text twice and parses it into ``Result`` objects on
    creation; the adapter needs the text once, parsed once.
    """
    output = rego_shared.rego_bundle_query_entrypoint(interp._impl, compiled._impl, entrypoint)
    try:
        return bool(rego_shared.rego_output_ok(output)), rego_shared.rego_output_string(output)
    finally:
        rego_shared.rego_free_output(output)


_LIB = rego_shared.rego  # librego's C API, as regopy 1.5.2 declares it (ctypes)
_NEW_INPUT, _FREE_INPUT = _LIB.regoNewInput, _LIB.regoFreeInput
_STR, _INT, _FLOAT = _LIB.regoInputString, _LIB.regoInputInt, _LIB.regoInputFloat
_BOOL, _NULL = _LIB.regoInputBoolean, _LIB.regoInputNull
_ITEM, _OBJECT, _ARRAY = _LIB.regoInputObjectItem, _LIB.regoInputObject, _LIB.regoInputArray


def rego_input(doc: Any) -> Any:
    """``regopy.Input(doc)``, built in about half its CPU time (the same C calls, in the same
    order, without regopy's per-value buffer copies, ABC checks and wrappers).

    Exact JSON types only (dict with str keys, list, str, int, float, bool, None); anything
    else (a Mapping, a tuple, a set, an int past 64 bits, a failed call) falls back to
    ``regopy.Input``, which decides what such a value becomes or raises.
    """
    handle = _NEW_INPUT()
    try:
        _push(handle, doc)
    except Exception:
        _FREE_INPUT(handle)
        return regopy.Input(doc)
    built = regopy.Input.__new__(regopy.Input)
    built._impl = handle  # freed by regopy.Input.__del__
    return built


def _push(handle: Any, value: Any) -> None:
    kind = type(value)
    if kind is str:
        code = _STR(handle, value.encode("utf-8"))
    elif kind is dict:
        for key, item in value.items():
            if type(key) is not str:
                raise TypeError(f"input object key {key!r} is not a string")
            if _STR(handle, key.encode("utf-8")):
                raise ValueError("rego-cpp refused an input object key")
            _push(handle, item)
            if _ITEM(handle):
                raise ValueError("rego-cpp refused an input object item")
        code = _OBJECT(handle, len(value))
    elif kind is list:
        for item in value:
            _push(handle, item)
        code = _ARRAY(handle, len(value))
    elif kind is bool:
        code = _BOOL(handle, value)
    elif kind is int:
        if not -(2**63) <= value < 2**63:
            raise OverflowError(f"input integer {value} does not fit 64 bits")
        code = _INT(handle, value)
    elif value is None:
        code = _NULL(handle)
    elif kind is float:
        code = _FLOAT(handle, value)
    else:
        raise TypeError(f"input value of type {kind.__name__} is not an exact JSON type")
    if code:
        raise ValueError(f"rego-cpp refused an input value (code {code})")


class _Evaluation:
    """A rego-cpp interpreter and the compiled form of one bundle, used by one thread at a time
    (a compiled bundle is never shared by two evaluators: one may still run, set aside)."""

    def __init__(self, bundle: PolicyBundle, compiled: Any = None) -> None:
        self.interp = regopy.Interpreter()
        self.interp.strict_built_in_errors = True
        self.version = bundle.version
        self.compiled = compile_bundle(bundle) if compiled is None else compiled

    def evaluate(self, job: tuple[PolicyBundle, Mapping[str, Any]]) -> Any:
        """The raw answer of the entrypoint of ``bundle`` for ``doc`` (None when undefined)."""
        bundle, doc = job
        if bundle.version != self.version:  # ``load`` switched bundles: compile it here
            self.compiled, self.version = compile_bundle(bundle), bundle.version
        refuse_unsafe_text(doc)
        self.interp.set_input(rego_input(doc))
        return _read(*query_entrypoint(self.interp, self.compiled, ENTRYPOINT))


class RegoPolicyEngine(InputDocumentEngine):
    """Evaluates ``data.hub.authz.decision`` in-process. Thread-safe (one evaluation at a time).

    With ``decision_bound_ms`` (the serving path: ``HUB_POLICY_DECISION_BOUND_MS``), each
    evaluation runs on an evaluator thread and a decision whose evaluation spends more than the
    bound in CPU time, or is not answered within ``decision_wall_ms`` of wall time
    (``HUB_POLICY_DECISION_WALL_MS``: the never-ending case, at least the bound), is denied with
    the reason ``policy_eval_timeout`` naming the limit (``adapters.rego_runtime``);
    ``on_timeout`` is called then (a metric). A bundle version that has timed out once is
    evaluated from then on in a child process killed at the same limits
    (``adapters.rego_runtime.ChildEvaluator``), and so is every decision while ``stuck_max``
    set-aside evaluations still run (every decision with ``stuck_max=0``): a slow input costs
    the bound, not its whole work, and does not deny the other decisions. Without
    ``decision_bound_ms``, the caller's own thread evaluates (the timing child of
    ``adapters.rego_deadline``, which measures that thread's CPU time).
    """

    def __init__(
        self,
        bundle: PolicyBundle | None = None,
        *,
        cache: DecisionCache | None = None,
        clock_ns: Callable[[], int] = time.time_ns,
        decision_bound_ms: int | None = None,
        decision_wall_ms: int = DEFAULT_WALL_MS,
        stuck_max: int = 2,
        on_timeout: Callable[[], None] | None = None,
        child_memory_mb: int = 1024,
    ) -> None:
        if decision_bound_ms is not None and decision_bound_ms < 1:
            raise ValueError(f"{BOUND_SETTING} must be at least 1 (got {decision_bound_ms})")
        if decision_bound_ms is not None and decision_wall_ms < decision_bound_ms:
            raise ValueError(
                f"{WALL_SETTING} ({decision_wall_ms}) must be at least {BOUND_SETTING} "
                f"({decision_bound_ms}): the wall limit is for evaluations that never end"
            )
        if stuck_max < 0:
            raise ValueError(f"HUB_POLICY_STUCK_MAX must be at least 0 (got {stuck_max})")
        self.cache = cache
        self._clock_ns = clock_ns
        self._lock = threading.Lock()
        self.decision_bound_ms = decision_bound_ms
        self.decision_wall_ms = decision_wall_ms
        self.stuck_max = stuck_max
        self.timeouts = 0  # decisions denied past the bound, since start
        self._on_timeout = on_timeout
        self._stuck = StuckCount()
        self._worker: tuple[EvaluatorThread, _Evaluation] | None = None
        self._child_memory_mb = child_memory_mb
        self._child: ChildEvaluator | None = None  # the killable evaluator, once needed
        self._timed_out_versions: set[str] = set()  # evaluated in the child from then on
        self._bundle: PolicyBundle
        self._inline: _Evaluation | None = None
        self.load(bundle or PolicyBundle.from_dir())

    @property
    def version(self) -> str:
        return self._bundle.version

    @property
    def bundle(self) -> PolicyBundle:
        return self._bundle

    def load(self, bundle: PolicyBundle) -> None:
        """Compile and switch to ``bundle`` atomically; the old one stays on a compile error."""
        compiled = compile_bundle(bundle)
        with self._lock:
            self._bundle = bundle
            if self.decision_bound_ms is None:
                self._inline = _Evaluation(bundle, compiled)
            elif self._worker is None:
                self._worker = self._new_worker(bundle, compiled)
            else:  # idle (the lock is held): it evaluates the new bundle from now on
                self._worker[1].compiled, self._worker[1].version = compiled, bundle.version
        if self.cache is not None:
            self.cache.clear()

    def close(self) -> None:
        """End the idle evaluator thread (set-aside ones end with their evaluation) and the
        evaluation child."""
        with self._lock:
            if self._worker is not None:
                self._worker[0].stop()
                self._worker = None
            if self._child is not None:
                self._child.close()
                self._child = None

    def _new_worker(
        self, bundle: PolicyBundle, compiled: Any = None
    ) -> tuple[EvaluatorThread, _Evaluation]:
        evaluation = _Evaluation(bundle, compiled)
        return EvaluatorThread(evaluation.evaluate, self._stuck.end), evaluation

    def evaluate(self, doc: Mapping[str, Any]) -> Any:
        """The raw answer of the entrypoint for an input document (None when undefined)."""
        with self._lock:
            bundle = self._bundle
        return self._evaluate_with(bundle)(doc)

    def _evaluate_with(self, bundle: PolicyBundle) -> Callable[[Mapping[str, Any]], Any]:
        """An evaluator pinned to ``bundle``, whatever ``load`` switches to meanwhile."""

        def evaluate(doc: Mapping[str, Any]) -> Any:
            with self._lock:
                if self._inline is not None:
                    return self._inline.evaluate((bundle, doc))
                return self._evaluate_bounded(bundle, doc)

        return evaluate

    def _evaluate_bounded(self, bundle: PolicyBundle, doc: Mapping[str, Any]) -> Any:
        """``doc`` evaluated within the limits (held: ``self._lock``): on the evaluator thread,
        or in the killable child for a version that timed out or while ``stuck_max``
        set-aside evaluations still run."""
        if (
            self.stuck_max == 0
            or bundle.version in self._timed_out_versions
            or (self._worker is None and self._stuck.running >= self.stuck_max)
        ):
            return self._evaluate_in_child(bundle, doc)
        if self._worker is None:
            self._worker = self._new_worker(bundle)
        thread = self._worker[0]
        answer = thread.run((bundle, doc), self._limits())
        if answer is None:  # set aside: it ends on its own thread
            self._worker = None
            self._stuck.add()
            self._timed_out_versions.add(bundle.version)
            raise self._slow(bundle, doc, thread.passed or "wall")
        ok, value = answer
        if not ok:
            raise value
        return value

    def _limits(self) -> Limits:
        return Limits((self.decision_bound_ms or 0) / 1000, self.decision_wall_ms / 1000)

    def _evaluate_in_child(self, bundle: PolicyBundle, doc: Mapping[str, Any]) -> Any:
        """``doc`` evaluated in the killable child of ``bundle`` (held: ``self._lock``)."""
        if self._child is None or self._child.version != bundle.version:
            if self._child is not None:
                self._child.close()
            self._child = ChildEvaluator(bundle, self._child_memory_mb)
        answer = self._child.run(doc, self._limits())
        if answer is None:  # the child was killed: nothing keeps running
            raise self._slow(bundle, doc, self._child.passed or "wall")
        ok, value = answer
        if not ok:
            raise value
        return value

    def _slow(
        self, bundle: PolicyBundle, doc: Mapping[str, Any], passed: Passed
    ) -> EvaluationTimeout:
        if passed == "cpu":
            where = f"the bound of {self.decision_bound_ms} ms of CPU time ({BOUND_SETTING})"
            why = "the policy has a branch too slow for this input; fix it and propose again"
        else:
            where = (
                f"{self.decision_wall_ms} ms of wall time ({WALL_SETTING}), short of the "
                f"{self.decision_bound_ms} ms of CPU time it may spend ({BOUND_SETTING})"
            )
            why = (
                "the machine gave the evaluation too little CPU, or it waits on something: "
                "retry, and see the machine's load"
            )
        return self._timed_out(
            f"policy_eval_timeout: the policy bundle {bundle.version[:12]} did not decide "
            f"{doc.get('action')!r} on {doc.get('resource')!r} within {where}: denied ({why})."
        )

    def _timed_out(self, message: str) -> EvaluationTimeout:
        self.timeouts += 1
        log.warning(
            message,
            extra={
                "event": "policy_eval_timeout",
                "engine": ENGINE,
                "bound_ms": self.decision_bound_ms,
                "wall_ms": self.decision_wall_ms,
                "stuck": self._stuck.running,
            },
        )
        if self._on_timeout is not None:
            self._on_timeout()
        return EvaluationTimeout(message)

    def decide_input(self, doc: Mapping[str, Any], *, key: str | None = None) -> Decision:
        """Decide on an input document as is (malformed documents are denied with a reason).

        The bundle is read under the lock, and the evaluation uses it: a decision records
        exactly the version that evaluated it, even when ``load`` switches bundles in between.
        """
        with self._lock:
            bundle = self._bundle
        return decide_cached(
            ENGINE, doc, bundle, self.cache, self._evaluate_with(bundle), _explain, key
        )


def _explain(exc: Exception) -> str:
    """Why an evaluation failed (rego-cpp or JSON errors), for the fail-closed denial."""
    return exc.message if isinstance(exc, PolicyError) else repr(exc)
