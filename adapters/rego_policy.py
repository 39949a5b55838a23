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
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from core.decisioncache import DecisionCache
from core.policybundle import (
    ENTRYPOINT,
    QUERY,
    UNSAFE_TEXT,
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


class RegoPolicyEngine(InputDocumentEngine):
    """Evaluates ``data.hub.authz.decision`` in-process. Thread-safe (one evaluation at a time)."""

    def __init__(
        self,
        bundle: PolicyBundle | None = None,
        *,
        cache: DecisionCache | None = None,
        clock_ns: Callable[[], int] = time.time_ns,
    ) -> None:
        self.cache = cache
        self._clock_ns = clock_ns
        self._lock = threading.Lock()
        self._interp = regopy.Interpreter()
        self._interp.strict_built_in_errors = True
        self._bundle: PolicyBundle
        self._compiled: Any
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
            self._bundle, self._compiled = bundle, compiled
        if self.cache is not None:
            self.cache.clear()

    def evaluate(self, doc: Mapping[str, Any]) -> Any:
        """The raw answer of the entrypoint for an input document (None when undefined)."""
        with self._lock:
            return self._evaluate_locked(self._compiled, doc)

    def _evaluate_locked(self, compiled: Any, doc: Mapping[str, Any]) -> Any:
        refuse_unsafe_text(doc)
        self._interp.set_input(rego_input(doc))
        return _read(*query_entrypoint(self._interp, compiled, ENTRYPOINT))

    def _evaluate_with(self, compiled: Any) -> Callable[[Mapping[str, Any]], Any]:
        """An evaluator pinned to ``compiled``, whatever ``load`` switches to meanwhile."""

        def evaluate(doc: Mapping[str, Any]) -> Any:
            with self._lock:
                return self._evaluate_locked(compiled, doc)

        return evaluate

    def decide_input(self, doc: Mapping[str, Any], *, key: str | None = None) -> Decision:
        """Decide on an input document as is (malformed documents are denied with a reason).

        The bundle and its compiled form are read together under the lock, and the evaluation
        uses that compiled form: a decision records exactly the version that evaluated it, even
        when ``load`` switches bundles in between.
        """
        with self._lock:
            bundle, compiled = self._bundle, self._compiled
        return decide_cached(
            ENGINE, doc, bundle, self.cache, self._evaluate_with(compiled), _explain, key
        )


def _explain(exc: Exception) -> str:
    """Why an evaluation failed (rego-cpp or JSON errors), for the fail-closed denial."""
    return exc.message if isinstance(exc, PolicyError) else repr(exc)
