"""Policy bundles, the decision input both engines see, and reading their answer.

A bundle is the hub's policy: every ``.rego`` module and ``data.json`` document under a folder
(``governance/policies`` ships one), by relative path. Its version is the SHA-256 over the
sorted files, so the same files give the same version on every engine and every machine:

    sha256( for each path in sorted(paths): path "\\0" len(text) "\\0" text )

``data.json`` at ``a/b/data.json`` is the document ``data.a.b`` (OPA's rule for directories);
no other data files are allowed, so the embedded engine and an OPA server loading the same
folder see the same documents, plus one the hub derives: ``data.hub.index`` (``role_index``),
the role table as lookups for the policy's fast path. It is computed from the bundle's own data
whenever a bundle is read, replacing any file's ``index`` key, so it cannot fall out of step;
an engine without it (an OPA server started on the folder) decides by the general rules, with
the same answers.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from audit.printable import first_unsafe
from core import jsonkeys
from core.errors import HubError
from core.ports.policy import Decision, PolicyEngine, Principal
from domain.quality import backtracking_problem

if TYPE_CHECKING:
    from core.decisioncache import DecisionCache

ENTRYPOINT = "hub/authz/decision"
QUERY = "x = data.hub.authz.decision"
INDEX_KEY = "index"  # data.hub.index: see role_index
# The shipped Rego files are data kept beside the governance service that owns them.
DEFAULT_POLICY_DIR = Path(__file__).resolve().parents[1] / "governance" / "policies"


class PolicyError(HubError):
    """A policy bundle is invalid (does not parse, compile, or pass its test cases)."""

    code = "policy_invalid"
    http_status = 422


class EvaluationTimeout(PolicyError):
    """A decision was not evaluated within its bound; the decision is denied with this message,
    which starts with ``policy_eval_timeout:`` (the reason recorded with the decision)."""

    code = "policy_eval_timeout"
    http_status = 503


def bundle_version(files: Mapping[str, str]) -> str:
    """SHA-256 (hex) over the sorted files of a bundle."""
    h = hashlib.sha256()
    for path in sorted(files):
        text = files[path].encode("utf-8")
        h.update(path.encode("utf-8") + b"\0" + str(len(text)).encode() + b"\0")
        h.update(text)
    return h.hexdigest()


def _check_path(path: str) -> None:
    parts = path.split("/")
    if path.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise PolicyError(f"Bundle path {path!r} must be relative, without '.' or '..' parts.")
    if not (path.endswith(".rego") or parts[-1] == "data.json"):
        raise PolicyError(
            f"Bundle file {path!r} is neither a .rego module nor a data.json document; "
            "only those two kinds are loaded by both engines."
        )


def refuse_hidden_text(files: Mapping[str, str]) -> None:
    """Refuse a proposed file holding a character that changes how its text is shown: a
    control (a lone carriage return, an ANSI escape, a backspace), a Unicode line separator or
    a bidirectional override. Printed in the diff an approver reads (``hub policy diff``), it
    can erase or reorder the very rule being approved ("Trojan Source"); a policy's own text
    never needs one (a string value can write it as a JSON or Rego escape, ``\\u202e``).
    Bundles already recorded are not checked again: their diffs are shown escaped."""
    for path in sorted(files):
        found = first_unsafe(files[path])
        if found is not None:
            line, column, escaped = found
            raise PolicyError(
                f"Bundle file {path!r} line {line} column {column} holds the character "
                f"{escaped}, which changes how the text is shown (a control, line separator or "
                "bidirectional override) and could hide a change from its approver: remove it, "
                "or write it as an escape inside a string.",
                code="policy_hidden_text",
            )


# ``data.hub``'s settings the hub itself reads from the data files (the two-person list, the
# role table, grants, cases, the derived index): never a Rego rule's
HUB_SETTINGS = frozenset(
    {
        "roles",
        "actions",
        "role_actions",
        "read_actions",
        "masked_classifications",
        "investigation_purpose",
        "open_cases",
        "grants",
        "two_person",
        INDEX_KEY,
    }
)
_REGO_TOKEN = re.compile(
    r'#[^\n]*|"(?:[^"\\\n]|\\.)*"|`[^`]*`|[{}\[\]()]|\n|[A-Za-z_][A-Za-z0-9_]*|:=|\S'
)
_REGO_KEYWORDS = frozenset({"package", "import", "default", "else", "not", "some", "every"})
_HEAD_FOLLOWS = frozenset({":=", "=", "[", ".", "{", "(", "if", "contains"})


def rule_heads(text: str) -> tuple[list[str], list[str]]:
    """A Rego module's package path and the names its rules define at top level (outside
    every brace, bracket and parenthesis, wherever the line is indented): each name that starts
    a line (or follows ``default``) and is followed by ``:=``, ``=``, ``[``, ``.``, ``{``,
    ``(``, ``if`` or ``contains``. Comments and strings are skipped. A shallow reading, wide
    rather than narrow: a continued expression's first name may be counted too."""
    tokens = [t for t in _REGO_TOKEN.findall(text) if not t.startswith("#")]
    package: list[str] = []
    names: list[str] = []
    depth, line_start = 0, True
    for i, tok in enumerate(tokens):
        if tok == "\n":
            line_start = True
            continue
        starts = line_start or (i > 0 and tokens[i - 1] == "default")
        line_start = False
        if tok in "{[(":
            depth += 1
        elif tok in "}])":
            depth = max(depth - 1, 0)
        elif depth == 0 and tok == "package" and starts:
            for part in tokens[i + 1 :]:
                if part == "\n":
                    break
                if part.startswith('"'):
                    try:
                        package.append(str(json.loads(part)))
                    except ValueError:
                        package.append(part)
                elif part[0].isalpha() or part[0] == "_":
                    package.append(part)
        elif depth == 0 and starts and (tok[0].isalpha() or tok[0] == "_"):
            after = next((t for t in tokens[i + 1 :] if t != "\n"), "")
            if tok not in _REGO_KEYWORDS and after in _HEAD_FOLLOWS:
                names.append(tok)
    return package, names


def refuse_shadowed_data(bundle: PolicyBundle) -> None:
    """Refuse a bundle whose Rego rules define a document its data files define too (or one
    under a data value), and any rule defining one of ``data.hub``'s settings
    (``HUB_SETTINGS``): the hub's own checks (the two-person list, the role index) read the
    data files only, so such a rule would make the engine and the hub read two policies."""
    for path, text in sorted(bundle.modules.items()):
        package, names = rule_heads(text)
        for name in dict.fromkeys(names):
            where = [*package, name]
            node: Any = bundle.data
            shadows = len(where) >= 2 and where[0] == "hub" and where[1] in HUB_SETTINGS
            for part in where:
                if not isinstance(node, dict) or part not in node:
                    shadows = shadows or not isinstance(node, dict)
                    break
                node = node[part]
            else:
                shadows = True  # the data files define this very document
            if shadows:
                raise PolicyError(
                    f"Bundle file {path!r} defines data.{'.'.join(where)} as a Rego rule, "
                    "which the bundle's data files define (or the hub reads from them only: "
                    f"data.hub's {', '.join(sorted(HUB_SETTINGS))}). The engine and the hub's "
                    "own checks would read different values: define it in one place, the "
                    "data file.",
                    code="policy_data_shadowed",
                )


def _merge_data(data: dict[str, Any], at: list[str], doc: dict[str, Any], path: str) -> None:
    """Put ``doc`` at ``data.<at>``, merging objects as OPA does; a value two files define is
    refused (``node.update`` let a parent's member replace a child file's whole document
    silently, where OPA refuses the bundle: the footprints loaded different data)."""
    node: Any = data
    for i, part in enumerate(at):
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise PolicyError(
                f"Bundle data file {path!r} sits under data.{'.'.join(at[: i + 1])}, which "
                "another data file defines as a value: define each value in one file."
            )
    _merge_object(node, doc, path, ".".join(at))


def _merge_object(into: dict[str, Any], doc: dict[str, Any], path: str, where: str) -> None:
    for key, value in doc.items():
        if key not in into:
            into[key] = value
        elif isinstance(into[key], dict) and isinstance(value, dict):
            _merge_object(into[key], value, path, f"{where}.{key}")
        else:
            raise PolicyError(
                f"Bundle data file {path!r} defines data.{where}.{key}, which another data file "
                "of the bundle defines too (OPA refuses such a bundle; the embedded engine kept "
                "one silently): define each value in one file."
            )


# rego-cpp 1.5.2 writes strings into its JSON answer without escaping them, so a quote or a
# backslash in any string a decision may echo (input, or the bundle's own data: a role name, a
# grant id) could end the string and add keys to the answer. Such text is refused wherever it
# could reach a decision, for both footprints alike: in the input by ``decide_cached`` (every
# adapter's ``decide_input``: denied, so OPA answers as the embedded engine must), in a
# bundle's data here.
UNSAFE_TEXT = re.compile(r'["\\]')


def refuse_unsafe_input(doc: Any) -> None:
    """Raise ``PolicyError`` when a string (key or value) anywhere in a decision input holds a
    quote or a backslash (``UNSAFE_TEXT``): no decision input may, whichever engine decides."""
    stack = [doc]
    while stack:
        v = stack.pop()
        if isinstance(v, str):
            if UNSAFE_TEXT.search(v):
                raise PolicyError(
                    f"the decision input holds {v[:80]!r}, with a quote or backslash, which no "
                    "decision input may hold (the embedded engine, rego-cpp, does not escape "
                    "them in its answer; both footprints refuse them alike); refused"
                )
        elif isinstance(v, Mapping):
            stack.extend(v.keys())
            stack.extend(v.values())
        elif isinstance(v, (list, tuple, set, frozenset)):
            stack.extend(v)


def unsafe_text_at(value: Any, path: str = "") -> str | None:
    """Where in ``value`` (keys and values, recursively) a string holds a quote or a backslash:
    a path such as ``grants[0].id`` (``[key 'x"y']`` for a key), or None when nowhere."""
    stack: list[tuple[Any, str]] = [(value, path)]
    while stack:
        v, at = stack.pop()
        if isinstance(v, str):
            if UNSAFE_TEXT.search(v):
                return at or "(the value itself)"
        elif isinstance(v, Mapping):
            for key in sorted(v, key=str, reverse=True):
                if isinstance(key, str) and UNSAFE_TEXT.search(key):
                    return f"{at}[key {key[:80]!r}]"
                stack.append((v[key], f"{at}.{key}" if at else str(key)))
        elif isinstance(v, (list, tuple)):
            stack.extend((item, f"{at}[{i}]") for i, item in reversed(list(enumerate(v))))
    return None


def refuse_unsafe_data(data: Mapping[str, Any], where: str = "The policy bundle's data") -> None:
    """Raise ``PolicyError`` naming the first string of ``data`` holding a quote or backslash."""
    at = unsafe_text_at(data)
    if at is not None:
        raise PolicyError(
            f"{where} holds a quote or backslash at {at}: the embedded engine (rego-cpp) does "
            "not escape such text in its answer, so a decision could fail or be misread; "
            "use names without a quote or a backslash.",
            code="policy_unsafe_text",
        )


# ``opa.runtime()`` answers the evaluating process's whole environment (rego-cpp implements it:
# the hub's own, secrets included), and a decision's reason reaches callers and refusals. No
# policy needs it: a module naming ``opa`` as a reference (``opa.x``, ``opa[...]``, comments and
# line breaks between) or importing it (``import opa as o``) is refused; comments and the text
# of strings are not code (``_code_of``).
_HOST_REF = re.compile(r"\bopa\b\s*[.\[]|\bimport\s+opa\b")
# rego-cpp's regex functions backtrack (``regex.match("^(a+)+$", x)``: 5.5 s on 28 characters),
# and a policy may match what the caller names (``input.resource``). Each call names its function
# and gives a literal pattern that passes ``domain.quality.backtracking_problem``; the argument
# index of the pattern per function; the others (``template_match``, ``globs_match``, an alias,
# ``regex[...]``, ``re_match``) are refused.
_PATTERN_ARG = {"match": 0, "find_n": 0, "find_all_string_submatch_n": 0, "split": 0, "replace": 1}
_REGEX_REF = re.compile(r"\bregex\b|\bre_match\b")
_REGEX_CALL = re.compile(r"regex\s*\.\s*(\w+)\s*\(")


def _code_of(text: str) -> str:
    """``text`` with its comments and the text of its strings blanked (spaces, line breaks kept:
    offsets stay those of ``text``; ``"..."`` ends at its closing quote or the line's end, a raw
    string at its closing backtick), so that a word inside either is never read as code, and
    code after a ``#`` inside a string is still code."""
    out = list(text)
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        i += 1
        if c == "#":
            end = text.find("\n", i)
            end = n if end < 0 else end
        elif c == '"':
            end = i
            while end < n and text[end] not in '"\n':
                end += 2 if text[end] == "\\" else 1
            end = min(end, n)
        elif c == "`":
            end = text.find("`", i)
            end = n if end < 0 else end
        else:
            continue
        if c == "#":
            i -= 1
        for j in range(i, end):
            if out[j] != "\n":
                out[j] = " "
        i = end + (c != "#")
    return "".join(out)


def _arguments(code: str, start: int) -> list[tuple[int, int]]:
    """The spans of the arguments of the call whose ``(`` is just before ``start`` in
    ``code`` (strings blanked: only brackets nest)."""
    spans, depth, begin = [], 0, start
    for i in range(start, len(code)):
        c = code[i]
        if c in "([{":
            depth += 1
        elif c in ")]}":
            if depth == 0:
                spans.append((begin, i))
                return spans
            depth -= 1
        elif c == "," and depth == 0:
            spans.append((begin, i))
            begin = i + 1
    return spans  # unclosed: the engine refuses the module


def _literal(text: str) -> str | None:
    """The value of ``text`` when it is one string literal, else None."""
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] == "`" and "`" not in text[1:-1]:
        return text[1:-1]
    if len(text) >= 2 and text[0] == '"':
        try:
            value = json.loads(text)
        except ValueError:
            return None
        return value if isinstance(value, str) else None
    return None


def _regex_problem(text: str, code: str) -> str | None:
    """Why a module's use of the regex functions could backtrack on a caller's value, or None."""
    calls = {m.start(): m for m in _REGEX_CALL.finditer(code)}
    for ref in _REGEX_REF.finditer(code):
        call = calls.get(ref.start())
        name = call.group(1) if call is not None else None
        if call is None or (name not in _PATTERN_ARG and name != "is_valid"):
            what = f"regex.{name}" if name else ref.group(0)
            return f"{what} (use regex.match, find_n, split or replace by name)"
        if name == "is_valid":
            continue  # compiles, matches nothing
        spans = _arguments(code, call.end())
        at = _PATTERN_ARG[name]
        pattern = _literal(text[slice(*spans[at])]) if len(spans) > at else None
        if pattern is None:
            return f"regex.{name} with a pattern that is not a string literal"
        try:
            re.compile(pattern)
        except re.error:
            return f"regex.{name} with the pattern {pattern[:60]!r}, which the hub cannot check"
        problem = backtracking_problem(pattern)
        if problem:
            return f"regex.{name} with the pattern {pattern[:60]!r} ({problem})"
    return None


def refuse_host_builtins(files: Mapping[str, str]) -> None:
    """Raise ``PolicyError`` naming the first module that refers to the ``opa`` built-ins, or
    uses a regex function a caller's value could make backtrack."""
    for path in sorted(p for p in files if p.endswith(".rego")):
        code = _code_of(files[path])
        found = _HOST_REF.search(code)
        if found is not None:
            raise PolicyError(
                f"Policy module {path!r} refers to the opa built-ins "
                f"({' '.join(found.group(0).split())!r}): opa.runtime() reads the environment "
                "of the process that evaluates the policy (the hub's secrets), and a decision's "
                "reason reaches callers; a policy takes what it needs from its input and data, "
                "never from the host. Remove the reference.",
                code="policy_host_builtin",
            )
        problem = _regex_problem(files[path], code)
        if problem is not None:
            raise PolicyError(
                f"Policy module {path!r} uses {problem}: the policy engine's regexes backtrack, "
                "so a value the caller names could hold a decision for minutes. Give each regex "
                "function a literal pattern with one character class per repeat, or a bounded "
                "count, so each character is tried one way.",
                code="policy_unsafe_regex",
            )


@dataclass(frozen=True)
class PolicyBundle:
    """Immutable set of policy files; ``data`` is the merged data document they define."""

    files: Mapping[str, str]
    version: str
    data: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_files(cls, files: Mapping[str, str]) -> PolicyBundle:
        """Validate paths and data documents; raises ``PolicyError`` naming the bad file."""
        if not any(p.endswith(".rego") for p in files):
            raise PolicyError("A policy bundle needs at least one .rego module.")
        refuse_host_builtins(files)
        data: dict[str, Any] = {}
        for path in sorted(files):
            _check_path(path)
            if not path.endswith("data.json"):
                continue
            try:  # one reading: a repeated member name is refused (core.jsonkeys)
                doc = json.loads(files[path], object_pairs_hook=jsonkeys.unique_members)
            except ValueError as exc:
                raise PolicyError(f"Bundle data file {path!r} is not valid JSON: {exc}.") from exc
            if not isinstance(doc, dict):
                raise PolicyError(f"Bundle data file {path!r} must hold a JSON object.")
            refuse_unsafe_data(doc, f"Bundle data file {path!r}")
            _merge_data(data, path.split("/")[:-1], doc, path)
        hub = data.get("hub")
        if isinstance(hub, dict):  # data.hub.index is the hub's, derived, never a file's
            index = role_index(hub)
            if index is None:
                hub.pop(INDEX_KEY, None)
            else:
                hub[INDEX_KEY] = index
        return cls(dict(files), bundle_version(files), data)

    @classmethod
    def from_dir(cls, root: Path = DEFAULT_POLICY_DIR) -> PolicyBundle:
        """Every ``*.rego`` and ``data.json`` under ``root`` (hidden files skipped)."""
        if not root.is_dir():
            raise PolicyError(f"The policy folder {root} does not exist.")
        files = {
            p.relative_to(root).as_posix(): p.read_text("utf-8")
            for p in sorted(root.rglob("*"))
            if p.is_file()
            and not any(part.startswith(".") for part in p.relative_to(root).parts)
            and (p.suffix == ".rego" or p.name == "data.json")
        }
        return cls.from_files(files)

    @property
    def modules(self) -> dict[str, str]:
        """The policy modules, without the ``*_test.rego`` test modules."""
        return {
            p: t for p, t in self.files.items() if p.endswith(".rego") and not is_test_module(p)
        }

    @property
    def test_modules(self) -> dict[str, str]:
        return {p: t for p, t in self.files.items() if is_test_module(p)}

    @property
    def hub_data(self) -> Mapping[str, Any]:
        """``data.hub``: the role table, two-person resources and the other policy settings."""
        hub = self.data.get("hub", {})
        return hub if isinstance(hub, Mapping) else {}


def role_index(hub: Mapping[str, Any]) -> dict[str, Any] | None:
    """``data.hub.index``: the lookups authz.rego's fast path reads, derived from ``hub``.

    ``actions`` / ``read_actions``: ``{action: true}`` from the arrays of the same names;
    ``role_actions``: ``{role: {action: true}}``; ``mask``: ``masked_classifications`` sorted;
    ``plain``: whether ``grants`` is empty (the fast path decides only then). None when one of
    those is not an array of strings (an object of such arrays for ``role_actions``), or an
    action is empty: such a bundle carries no index and every decision takes the general path.
    """

    def strings(values: Any) -> list[str] | None:
        if not isinstance(values, list) or not all(isinstance(v, str) and v for v in values):
            return None
        return sorted(values)

    def lookup(values: Any) -> dict[str, bool] | None:
        listed = strings(values)
        return None if listed is None else dict.fromkeys(listed, True)

    actions, reads = lookup(hub.get("actions")), lookup(hub.get("read_actions"))
    mask, table = strings(hub.get("masked_classifications")), hub.get("role_actions")
    if actions is None or reads is None or mask is None or not isinstance(table, Mapping):
        return None
    roles = {}
    for role in sorted(table):
        granted = lookup(table[role])
        if granted is None:
            return None
        roles[role] = granted
    return {
        "actions": actions,
        "mask": mask,
        "plain": hub.get("grants") == [],
        "read_actions": reads,
        "role_actions": roles,
    }


def is_test_module(path: str) -> bool:
    return path.endswith("_test.rego")


# -- the decision input ------------------------------------------------------------------------
def decision_input(
    principal: Principal,
    action: str,
    resource: str,
    context: Mapping[str, Any] | None,
) -> dict[str, Any]:
    """The input document of ``data.hub.authz.decision`` (see authz.rego for the shape)."""
    return {
        "principal": {
            "id": principal.id,
            "roles": sorted(principal.roles),
            "tenant": principal.tenant,
            "attributes": dict(principal.attributes),
        },
        "action": action,
        "resource": resource,
        "context": dict(context or {}),
    }


def with_now(context: Mapping[str, Any] | None, clock_ns: Any = time.time_ns) -> dict[str, Any]:
    """``context`` with ``now`` (Unix ns) set when the caller did not set it."""
    ctx = dict(context or {})
    if "now" not in ctx:
        ctx["now"] = clock_ns()
    return ctx


# ``json.dumps`` with these options builds a new encoder per call (most of the cost of a small
# document); one shared encoder gives the same bytes (``encode`` keeps no state between calls).
_CANONICAL = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str
)


def canonical_json(doc: Any) -> bytes:
    """Sorted keys, no spaces, UTF-8: the bytes every digest of an input is taken over
    (``json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
    default=str)``)."""
    return _CANONICAL.encode(doc).encode("utf-8")


def input_digest(doc: Any) -> str:
    return hashlib.sha256(canonical_json(doc)).hexdigest()


def cache_key(doc: Mapping[str, Any]) -> str:
    """The digest of an input without ``context.now`` (expiry is handled by the cache)."""
    ctx = doc.get("context")
    if isinstance(ctx, Mapping) and "now" in ctx:
        doc = {**doc, "context": {k: v for k, v in ctx.items() if k != "now"}}
    return input_digest(doc)


_NOW_MAX = 2**63  # ``now`` is Unix ns: an int64; anything else takes the reference path


def input_digests(doc: Mapping[str, Any]) -> tuple[str, str]:
    """``(cache_key(doc), input_digest(doc))`` from one canonical serialization of the document
    without ``context.now`` (plus the context's keys that sort before ``now``): the full
    document's bytes are those with ``"now":<int>`` put back where sorting places it. Used
    when the document is a ``decision_input`` whose ``now`` is an int64; any other document
    takes the reference path (the two functions themselves), so the answer is always theirs.

    A request seen again (same principal, action, resource and context but ``now``: a busy
    route) reuses its serialization (``_SPLITS``): only the SHA-256 of the full bytes is
    computed. That memo is used only when every key and value of the input is a ``str``, so
    that equal memo keys mean equal bytes (``1 == True == 1.0`` serialize apart).
    """
    ctx = doc.get("context")
    now = ctx.get("now") if isinstance(ctx, dict) else None
    if type(now) is not int or not 0 <= now < _NOW_MAX or not isinstance(doc, dict):
        return cache_key(doc), input_digest(doc)
    assert isinstance(ctx, dict)
    memo = _split_key(doc, ctx)
    split = _SPLITS.get(memo) if memo is not None else None
    if split is None:
        split = _split(doc, ctx)
        if split is None:
            return cache_key(doc), input_digest(doc)
        if memo is not None:
            if len(_SPLITS) >= _SPLITS_MAX:  # bounded: distinct requests cannot grow it
                _SPLITS.clear()
            _SPLITS[memo] = split
    key, head, tail = split
    return key, hashlib.sha256(b"%s%d%s" % (head, now, tail)).hexdigest()


# Serializations of recent inputs without ``now`` (``input_digests``): memo key (``_split_key``)
# -> (cache key, bytes before the value of ``now``, bytes after it).
_SPLITS: dict[tuple[Any, ...], tuple[str, bytes, bytes]] = {}
_SPLITS_MAX = 4096


def _split_key(doc: dict[str, Any], ctx: dict[str, Any]) -> tuple[Any, ...] | None:
    """A key that fixes the canonical bytes of ``doc`` without ``context.now``: its strings in
    order, for a plain ``decision_input`` whose keys and values are all ``str`` (then equal
    keys are equal documents); None for any other document."""
    p = doc.get("principal")
    if len(doc) != 4 or type(p) is not dict or len(p) != 4:
        return None
    roles, attributes = p.get("roles"), p.get("attributes")
    if type(roles) is not list or type(attributes) is not dict:
        return None
    rest = ctx.copy()
    del rest["now"]
    strings = (
        p.get("id"),
        p.get("tenant"),
        doc.get("action"),
        doc.get("resource"),
        *roles,
        *attributes.keys(),
        *attributes.values(),
        *rest.keys(),
        *rest.values(),
    )
    if set(map(type, strings)) != {str}:
        return None
    return len(roles), len(attributes), strings


def _split(doc: dict[str, Any], ctx: dict[str, Any]) -> tuple[str, bytes, bytes] | None:
    """``cache_key(doc)`` and the canonical bytes of ``doc`` before and after the value of
    ``context.now`` (an int64); None when the document is not one ``input_digests`` splits."""
    rest = {k: v for k, v in ctx.items() if k != "now"}
    if not all(type(k) is str for k in rest):
        return None
    without = canonical_json({**doc, "context": rest})
    head = b'{"action":' + canonical_json(doc.get("action")) + b',"context":{'
    if "action" not in doc or not without.startswith(head):
        return None
    # The context object starts right after ``head``; its items are sorted by key, so ``now``
    # goes after the items whose keys sort before it (serialized alike on their own).
    before = [(k, v) for k, v in rest.items() if k < "now"]
    if all(type(v) is str for _, v in before):  # ``"k":"v"`` joined by commas
        size = sum(len(canonical_json(k)) + 1 + len(canonical_json(v)) for k, v in before)
        size += len(before) - 1
    else:
        size = len(canonical_json(dict(before))) - 2
    at = len(head) + (size if before else 0)
    if before:
        prefix, suffix = without[:at] + b',"now":', without[at:]
    else:
        prefix, suffix = without[:at] + b'"now":', (b"," if rest else b"") + without[at:]
    return hashlib.sha256(without).hexdigest(), prefix, suffix


def grants_valid_until(doc: Mapping[str, Any], bundle: PolicyBundle) -> int | None:
    """The earliest expiry (Unix ns) after ``context.now`` of any grant the input could use.

    A cached decision must not outlive it: a grant that allowed it may have expired by then.
    """
    ctx = doc.get("context")
    ctx = ctx if isinstance(ctx, Mapping) else {}
    now = ctx.get("now")
    if not _number(now):
        return None
    grants: list[Any] = []
    # Open cases expire like grants: an unmasked decision must not outlive its case.
    for source in (ctx.get("grants"), bundle.hub_data.get("grants"), ctx.get("open_cases")):
        if isinstance(source, list):
            grants += source
    # Any JSON number, as the policy compares them (`ctx.now < g.expires_at`): a grant written
    # `1.8e18` is a float here and expires all the same.
    ends = [
        g["expires_at"]
        for g in grants
        if isinstance(g, Mapping) and _number(g.get("expires_at")) and g["expires_at"] > now
    ]
    return math.floor(min(ends)) if ends else None  # never later than the policy's own test


def _number(value: Any) -> bool:
    """A JSON number as Rego's ``is_number`` sees it (a bool is not one)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


# -- reading the answer ------------------------------------------------------------------------
def decision_from_result(result: Any, version: str) -> Decision:
    """A ``Decision`` from the policy's JSON answer; a malformed answer is a deny (fail closed)."""
    if not isinstance(result, Mapping):
        return Decision(False, "Access denied: the policy produced no decision.", version)
    allow = result.get("allow")
    reason = result.get("reason")
    mask = result.get("mask", [])
    row_filter = result.get("row_filter", {})
    if (
        not isinstance(allow, bool)
        or not isinstance(reason, str)
        or not isinstance(mask, list)
        or not all(isinstance(m, str) for m in mask)
        or not isinstance(row_filter, Mapping)
    ):
        return Decision(
            False,
            "Access denied: the policy answered a malformed decision "
            f"{json.dumps(result, default=str)[:200]}.",
            version,
        )
    return Decision(
        allow,
        reason,
        version,
        mask=tuple(mask),
        row_filter={str(k): str(v) for k, v in row_filter.items()},
    )


def engine_failure(engine: str, detail: str, version: str) -> Decision:
    """The deny every adapter answers when it cannot decide (fail closed, never raise)."""
    return Decision(
        False,
        f"Access denied because the policy engine ({engine}) failed: {detail}",
        version,
    )


def decide_cached(
    engine: str,
    doc: Mapping[str, Any],
    bundle: PolicyBundle,
    cache: DecisionCache | None,
    evaluate: Callable[[Mapping[str, Any]], Any],
    explain: Callable[[Exception], str] = repr,
    key: str | None = None,
) -> Decision:
    """What every adapter's ``decide_input`` does around its own ``evaluate``: answer from the
    decision cache when it holds the input (under this bundle version, not past a grant's
    expiry), else evaluate, read the answer, and cache it. An evaluation that raises is denied
    with ``explain(exc)`` as the reason (fail closed) and never cached. Identical inputs that
    miss together are evaluated once (the cache's single flight). An input holding a quote or
    a backslash is denied without being evaluated (``refuse_unsafe_input``), by every engine;
    such a denial is never cached, so a cached answer is one for a safe input. ``key``:
    ``cache_key(doc)`` when the caller already has it (``input_digests``)."""
    if cache is None:
        return _evaluated(engine, doc, bundle, evaluate, explain)
    key, version = key or cache_key(doc), bundle.version
    ctx = doc.get("context")
    now = ctx.get("now") if isinstance(ctx, Mapping) else None
    now_ns = now if isinstance(now, int) else None
    found = cache.get_or_claim(key, version, now_ns)
    if isinstance(found, Decision):
        return found
    if found is not None:  # an identical input is being evaluated: share its answer
        shared = cache.wait_shared(found, key, version, now_ns)
        if shared is not None:
            return shared
        return _evaluated(engine, doc, bundle, evaluate, explain, cache, key)
    try:
        return _evaluated(engine, doc, bundle, evaluate, explain, cache, key)
    finally:
        cache.release(key, version)


def _evaluated(
    engine: str,
    doc: Mapping[str, Any],
    bundle: PolicyBundle,
    evaluate: Callable[[Mapping[str, Any]], Any],
    explain: Callable[[Exception], str],
    cache: DecisionCache | None = None,
    key: str = "",
) -> Decision:
    """``evaluate`` read into a decision (cached under ``key``), or the fail-closed deny."""
    try:
        refuse_unsafe_input(doc)
    except PolicyError as exc:  # the same words from every engine
        return engine_failure(engine, exc.message, bundle.version)
    try:
        decision = decision_from_result(evaluate(doc), bundle.version)
    except EvaluationTimeout as exc:  # past the bound: its own reason, never cached
        return Decision(False, exc.message, bundle.version)
    except Exception as exc:  # the engine failed in any way: fail closed
        return engine_failure(engine, explain(exc), bundle.version)
    if cache is not None:
        cache.put(key, bundle.version, decision, grants_valid_until(doc, bundle))
    return decision


class InputDocumentEngine(PolicyEngine):
    """A policy engine that decides the input document ``decision_input`` builds, stamped with
    its own clock (``with_now``): the Rego and OPA adapters. They implement ``decide_input``."""

    _clock_ns: Callable[[], int]

    def decide(
        self,
        principal: Principal,
        action: str,
        resource: str,
        context: Mapping[str, Any] | None = None,
    ) -> Decision:
        doc = decision_input(principal, action, resource, with_now(context, self._clock_ns))
        return self.decide_input(doc)

    def decide_digested(
        self,
        principal: Principal,
        action: str,
        resource: str,
        context: Mapping[str, Any] | None = None,
    ) -> tuple[Decision, str | None]:
        """``decide`` and the input's digest, from one serialization (``input_digests``)."""
        doc = decision_input(principal, action, resource, with_now(context, self._clock_ns))
        key, digest = input_digests(doc)
        return self.decide_input(doc, key=key), digest

    def decide_input(self, doc: Mapping[str, Any], *, key: str | None = None) -> Decision:
        """Decide on an input document as is (``key``: its ``cache_key`` when known)."""
        raise NotImplementedError

    cache: DecisionCache | None = None  # the adapters' decision cache, if any

    def prepare_input(
        self,
        principal: Principal,
        action: str,
        resource: str,
        context: Mapping[str, Any],
    ) -> PreparedInput | None:
        """What ``decide_prepared`` needs to decide this request at any ``now``: computed
        once for a request that repeats (a busy route), kept by the caller. None for an input
        ``input_digests`` would not split (``context`` must not hold ``now``)."""
        if "now" in context:
            return None
        ctx = {**context, "now": 0}
        doc = decision_input(principal, action, resource, ctx)
        split = _split(doc, doc["context"])
        if split is None:
            return None
        key, head, tail = split
        # A copy of the principal's attributes, as of the document serialized: a caller that
        # changes its dict later cannot make a cache miss evaluate another input than this.
        who = Principal(
            principal.id, principal.roles, principal.tenant, doc["principal"]["attributes"]
        )
        return PreparedInput(key, head, tail, who, action, resource, dict(context))

    def decide_prepared(self, prepared: PreparedInput, now: int) -> tuple[Decision, str]:
        """``decide_digested`` of the prepared request with ``context.now = now`` (an int64):
        the same decision and digest, without building the input document when the decision
        cache holds the answer (same key, this bundle version, not expired: the cache's own
        rules, checked against ``now``)."""
        digest = hashlib.sha256(b"%s%d%s" % (prepared.head, now, prepared.tail)).hexdigest()
        cache = self.cache
        if cache is not None:
            # The version read once, as ``decide_input`` reads its bundle once: a ``load``
            # switches the bundle before it clears the cache, so an entry of the old version
            # is served only to a lookup that read the old version (decided before the switch).
            hit = cache.lookup(prepared.key, self.version, now)
            if hit is not None:
                return hit, digest
        ctx = {**prepared.context, "now": now}
        doc = decision_input(prepared.principal, prepared.action, prepared.resource, ctx)
        return self.decide_input(doc, key=prepared.key), digest

    @property
    def version(self) -> str:
        raise NotImplementedError


class PreparedInput:
    """A request's input document without ``context.now``, ready for ``decide_prepared``:
    its cache key and its canonical bytes before and after the value of ``now``."""

    __slots__ = ("action", "context", "head", "key", "principal", "resource", "tail")

    def __init__(
        self,
        key: str,
        head: bytes,
        tail: bytes,
        principal: Principal,
        action: str,
        resource: str,
        context: dict[str, Any],
    ) -> None:
        self.key, self.head, self.tail = key, head, tail
        self.principal, self.action, self.resource = principal, action, resource
        self.context = context
