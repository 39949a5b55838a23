"""Data quality rules as data: definitions, parsing from plain mappings, pure evaluation.

A subject's rule set is a mapping (shipped as YAML in ``domain/rules/<subject>.yaml``, changed at
runtime through ``hub.config`` events)::

    subject: trades-value
    rules:
      - {id: trade.quantity.positive, kind: range, field: quantity, min: "0", min_exclusive: true}
      - {id: trade.instrument.format, kind: regex, field: instrument, pattern: "^[A-Z0-9.]{1,12}$"}
      - {id: trade.currency.known, kind: enum, field: currency, values: [USD, EUR, GBP]}
      - {id: trade.ids.required, kind: required, fields: [trade_id, account_id]}
      - {id: settled.after, kind: compare, left: settled_at, op: ">=", right: initiated_at}
      - {id: trade.fresh, kind: freshness, field: executed_at, max_age: 7d, max_future: 5m}
      - {id: trade.unique, kind: unique, fields: [trade_id], window: 24h}
      - {id: trade.account.known, kind: ref, field: account_id, topic: accounts}

Kinds: ``required`` (present, not null, not an empty string), ``range`` (``min``/``max``, bounds
inclusive unless ``*_exclusive``; numbers as strings compare exactly as decimals), ``regex``
(full match, RE2/Python common syntax), ``enum`` (membership), ``compare`` (cross-field, ops
``< <= == != >= >``), ``freshness`` (late arrival: the field is at most ``max_age`` older than the
receipt time and at most ``max_future`` ahead of it), ``unique`` (the natural key made of
``fields`` is not repeated within ``window``: stateful, so evaluated by the ingest's dedupe
window, not here), ``ref`` (referential: the value is the key of some record on ``topic``, e.g.
a trade's ``account_id`` names an account opened on ``accounts``; stateful, so checked by the
ingest against an index of that topic's record keys, ``ingest/refs.py``, not here).
Fields are paths with ``/`` or ``.`` separators into the record. A rule whose field is absent
or null passes, except ``required``: combine them to require a value.

Evaluation is pure: ``evaluate(rule_set, record, now)`` returns one ``Violation`` (rule id,
field path, sentence) per failed rule. No I/O.
"""

from __future__ import annotations

import importlib
import operator
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any, Literal

from domain.shown import shown, shown_str

RuleKind = Literal["required", "range", "regex", "enum", "compare", "freshness", "unique", "ref"]
KINDS: tuple[str, ...] = (
    "required",
    "range",
    "regex",
    "enum",
    "compare",
    "freshness",
    "unique",
    "ref",
)
STATEFUL: tuple[str, ...] = ("unique", "ref")  # checked by the ingest, not by ``evaluate``
OPS: Mapping[str, Callable[[Any, Any], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    "==": operator.eq,
    "!=": operator.ne,
    ">=": operator.ge,
    ">": operator.gt,
}
_DURATION = re.compile(r"^(\d+)(ms|s|m|h|d)$")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}


class RuleError(ValueError):
    """A rule set is malformed; the message names the rule and the fix."""


@dataclass(frozen=True, slots=True)
class Violation:
    rule_id: str
    field_path: str
    message: str


@dataclass(frozen=True, slots=True)
class Rule:
    """One rule. Only the attributes of its ``kind`` are used (see the module docstring)."""

    id: str
    kind: RuleKind
    fields: tuple[str, ...] = ()
    min: Decimal | None = None
    max: Decimal | None = None
    min_exclusive: bool = False
    max_exclusive: bool = False
    pattern: str | None = None
    values: tuple[Any, ...] = ()
    op: str = ">="
    max_age: timedelta | None = None
    max_future: timedelta | None = None
    window: timedelta | None = None
    topic: str | None = None  # ``ref``: the topic whose record keys the value must be among
    _regex: re.Pattern[str] | None = field(default=None, compare=False, repr=False)

    @property
    def field(self) -> str:
        return self.fields[0]

    def as_dict(self) -> dict[str, Any]:
        """The rule in the same shape ``parse_rule`` reads."""
        out: dict[str, Any] = {"id": self.id, "kind": self.kind}
        if self.kind == "compare":
            out.update(left=self.fields[0], op=self.op, right=self.fields[1])
        elif self.kind in ("required", "unique"):
            out["fields"] = list(self.fields)
        else:
            out["field"] = self.fields[0]
        for name in ("min", "max"):
            value = getattr(self, name)
            if value is not None:
                out[name] = str(value)
                if getattr(self, f"{name}_exclusive"):
                    out[f"{name}_exclusive"] = True
        if self.pattern is not None:
            out["pattern"] = self.pattern
        if self.kind == "enum":
            out["values"] = list(self.values)
        for name in ("max_age", "max_future", "window"):
            value = getattr(self, name)
            if value is not None:
                out[name] = f"{int(value.total_seconds())}s"
        if self.topic is not None:
            out["topic"] = self.topic
        return out


@dataclass(frozen=True, slots=True)
class RuleSet:
    subject: str
    rules: tuple[Rule, ...] = ()

    @property
    def unique(self) -> tuple[Rule, ...]:
        return tuple(r for r in self.rules if r.kind == "unique")

    @property
    def refs(self) -> tuple[Rule, ...]:
        return tuple(r for r in self.rules if r.kind == "ref")

    def as_dict(self) -> dict[str, Any]:
        return {"subject": self.subject, "rules": [r.as_dict() for r in self.rules]}


def parse_duration(value: Any, where: str) -> timedelta:
    """``"90s"``, ``"5m"``, ``"24h"``, ``"7d"`` or a number of seconds."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return timedelta(seconds=value)
    m = _DURATION.match(str(value).strip())
    if not m:
        raise RuleError(f"{where}: {value!r} is not a duration; write e.g. 30s, 5m, 24h or 7d.")
    return timedelta(seconds=int(m.group(1)) * _UNITS[m.group(2)])


def _decimal(value: Any, where: str) -> Decimal | None:
    if value is None:
        return None
    try:
        return Decimal(str(value))
    except InvalidOperation as exc:
        raise RuleError(f"{where}: bound {value!r} is not a number.") from exc


def parse_rule(data: Mapping[str, Any], index: int = 0) -> Rule:
    """One rule from its mapping; raises ``RuleError`` naming the rule and the problem."""
    if not isinstance(data, Mapping):
        raise RuleError(f"Rule {index} must be a mapping, got {data!r}.")
    rid = data.get("id")
    where = f"Rule {rid or index!r}"
    if not isinstance(rid, str) or not rid:
        raise RuleError(f"Rule {index} needs an 'id' (a non-empty string).")
    kind = data.get("kind")
    if kind not in KINDS:
        raise RuleError(f"{where}: kind {kind!r} is not one of {', '.join(KINDS)}.")
    known = {
        "id",
        "kind",
        "field",
        "fields",
        "left",
        "right",
        "op",
        "min",
        "max",
        "min_exclusive",
        "max_exclusive",
        "pattern",
        "values",
        "max_age",
        "max_future",
        "window",
        "topic",
        "description",
    }
    unknown = set(data) - known
    if unknown:
        raise RuleError(f"{where}: unknown attribute(s) {', '.join(sorted(unknown))}.")
    kw: dict[str, Any] = {}
    if kind == "compare":
        left, right, op = data.get("left"), data.get("right"), data.get("op", ">=")
        if not isinstance(left, str) or not isinstance(right, str):
            raise RuleError(f"{where}: a compare rule needs 'left' and 'right' field paths.")
        if op not in OPS:
            raise RuleError(f"{where}: op {op!r} is not one of {' '.join(OPS)}.")
        fields: tuple[str, ...] = (left, right)
        kw["op"] = op
    else:
        raw = data.get("fields", data.get("field"))
        if isinstance(raw, str):
            fields = (raw,)
        elif isinstance(raw, Sequence) and raw and all(isinstance(f, str) for f in raw):
            fields = tuple(raw)
        else:
            raise RuleError(f"{where}: give 'field' (a path) or 'fields' (a list of paths).")
    if kind == "range":
        kw["min"] = _decimal(data.get("min"), where)
        kw["max"] = _decimal(data.get("max"), where)
        if kw["min"] is None and kw["max"] is None:
            raise RuleError(f"{where}: a range rule needs 'min', 'max' or both.")
        kw["min_exclusive"] = bool(data.get("min_exclusive", False))
        kw["max_exclusive"] = bool(data.get("max_exclusive", False))
    elif kind == "regex":
        pattern = data.get("pattern")
        if not isinstance(pattern, str):
            raise RuleError(f"{where}: a regex rule needs 'pattern'.")
        try:
            kw["_regex"] = re.compile(pattern)
        except re.error as exc:
            raise RuleError(f"{where}: pattern {pattern!r} does not compile: {exc}.") from exc
        kw["pattern"] = pattern
    elif kind == "enum":
        values = data.get("values")
        if not isinstance(values, Sequence) or isinstance(values, str) or not values:
            raise RuleError(f"{where}: an enum rule needs a non-empty list 'values'.")
        kw["values"] = tuple(values)
    elif kind == "freshness":
        if data.get("max_age") is None and data.get("max_future") is None:
            raise RuleError(f"{where}: a freshness rule needs 'max_age', 'max_future' or both.")
        if data.get("max_age") is not None:
            kw["max_age"] = parse_duration(data["max_age"], where)
        if data.get("max_future") is not None:
            kw["max_future"] = parse_duration(data["max_future"], where)
    elif kind == "unique":
        kw["window"] = parse_duration(data.get("window", "24h"), where)
    elif kind == "ref":
        topic = data.get("topic")
        if not isinstance(topic, str) or not topic:
            raise RuleError(
                f"{where}: a ref rule needs 'topic', the topic whose record keys the value must "
                "be among (e.g. topic: accounts)."
            )
        if len(fields) != 1:
            raise RuleError(f"{where}: a ref rule checks one 'field'.")
        kw["topic"] = topic
    if data.get("topic") is not None and kind != "ref":
        raise RuleError(f"{where}: 'topic' is an attribute of ref rules only.")
    return Rule(id=rid, kind=kind, fields=fields, **kw)


def parse_rule_set(data: Mapping[str, Any], subject: str | None = None) -> RuleSet:
    """A rule set from its mapping; rule ids must be unique within it."""
    if not isinstance(data, Mapping):
        raise RuleError(f"A rule set must be a mapping with 'rules', got {type(data).__name__}.")
    name = data.get("subject", subject)
    if not isinstance(name, str) or not name:
        raise RuleError("A rule set needs its 'subject' (e.g. trades-value).")
    if subject is not None and name != subject:
        raise RuleError(f"The rule set names subject {name!r}, but it is stored for {subject!r}.")
    raw = data.get("rules", [])
    if not isinstance(raw, Sequence) or isinstance(raw, str):
        raise RuleError(f"Rule set {name!r}: 'rules' must be a list.")
    rules = tuple(parse_rule(r, i) for i, r in enumerate(raw))
    ids = [r.id for r in rules]
    dupes = sorted({i for i in ids if ids.count(i) > 1})
    if dupes:
        raise RuleError(f"Rule set {name!r}: rule id(s) {', '.join(dupes)} appear twice.")
    return RuleSet(name, rules)


def get_path(record: Any, path: str) -> Any:
    """The value at ``path`` (``a/b`` or ``a.b``), or None when any step is missing."""
    value = record
    for part in path.replace(".", "/").strip("/").split("/"):
        if not isinstance(value, Mapping):
            return None
        value = value.get(part)
        if value is None:
            return None
    return value


def _as_number(value: Any) -> Decimal | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, Decimal)):
        return Decimal(value)
    if isinstance(value, float):
        return Decimal(repr(value))
    if isinstance(value, str):
        try:
            return Decimal(value)
        except InvalidOperation:
            return None
    return None


def _path(p: str) -> str:
    return "/" + p.replace(".", "/").strip("/")


def check_rule(rule: Rule, record: Any, now: datetime) -> Violation | None:
    """The violation of one stateless rule by ``record``, or None. ``unique`` and ``ref`` always
    pass here (the ingest checks them)."""
    kind = rule.kind
    if kind == "ref":
        return None
    if kind == "required":
        for f in rule.fields:
            v = get_path(record, f)
            if v is None or v == "":
                return Violation(rule.id, _path(f), f"{_path(f)} is required but is missing.")
        return None
    if kind == "compare":
        a, b = get_path(record, rule.fields[0]), get_path(record, rule.fields[1])
        if a is None or b is None:
            return None
        try:
            ok = OPS[rule.op](a, b)
        except TypeError:
            ok = False
        if ok:
            return None
        return Violation(
            rule.id,
            _path(rule.fields[0]),
            f"{_path(rule.fields[0])} ({_show(a)}) must be {rule.op} "
            f"{_path(rule.fields[1])} ({_show(b)}).",
        )
    if kind == "unique":
        return None
    value = get_path(record, rule.field)
    if value is None:
        return None
    where = _path(rule.field)
    if kind == "range":
        n = _as_number(value)
        if n is None:
            return Violation(rule.id, where, f"{where} ({shown(value)}) is not a number.")
        if rule.min is not None and (n <= rule.min if rule.min_exclusive else n < rule.min):
            op = ">" if rule.min_exclusive else ">="
            return Violation(rule.id, where, f"{where} is {n}, but must be {op} {rule.min}.")
        if rule.max is not None and (n >= rule.max if rule.max_exclusive else n > rule.max):
            op = "<" if rule.max_exclusive else "<="
            return Violation(rule.id, where, f"{where} is {n}, but must be {op} {rule.max}.")
        return None
    if kind == "regex":
        assert rule._regex is not None
        if isinstance(value, str) and rule._regex.fullmatch(value):
            return None
        return Violation(
            rule.id, where, f"{where} ({shown(value)}) does not match the pattern {rule.pattern!r}."
        )
    if kind == "enum":
        if value in rule.values:
            return None
        allowed = ", ".join(map(str, rule.values))
        return Violation(rule.id, where, f"{where} ({shown(value)}) is not one of {allowed}.")
    if kind == "freshness":
        if not isinstance(value, datetime):
            return Violation(rule.id, where, f"{where} ({shown(value)}) is not a timestamp.")
        if value.tzinfo is None:
            value = value.replace(tzinfo=now.tzinfo)
        if rule.max_age is not None and now - value > rule.max_age:
            return Violation(
                rule.id,
                where,
                f"{where} ({_show(value)}) arrived late: it is older than {rule.max_age} "
                f"at receipt ({_show(now)}).",
            )
        if rule.max_future is not None and value - now > rule.max_future:
            return Violation(
                rule.id,
                where,
                f"{where} ({_show(value)}) is more than {rule.max_future} in the future "
                f"at receipt ({_show(now)}).",
            )
        return None
    raise AssertionError(kind)  # pragma: no cover - parse_rule admits only KINDS


def evaluate(rule_set: RuleSet, record: Any, now: datetime) -> list[Violation]:
    """Every stateless rule ``record`` fails, in rule order."""
    out = []
    for rule in rule_set.rules:
        v = check_rule(rule, record, now)
        if v is not None:
            out.append(v)
    return out


def natural_key(rule: Rule, record: Any) -> str | None:
    """The natural key a ``unique`` rule reads from ``record`` (None when a part is missing)."""
    parts = [get_path(record, f) for f in rule.fields]
    if any(p is None for p in parts):
        return None
    return "\x1f".join(map(str, parts))


def ref_violation(rule: Rule, value: Any) -> Violation:
    """The violation of a ``ref`` rule whose value is not a key on ``rule.topic``."""
    where = _path(rule.field)
    return Violation(
        rule.id,
        where,
        f"{where} ({shown(value)}) is not the key of any record on topic {rule.topic!r}: publish "
        f"that record to {rule.topic!r} first, or correct the value.",
    )


def _show(value: Any) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    return shown_str(value)


# -- compiled evaluation ------------------------------------------------------------------------
# ``compile_rules`` turns a rule set into closures once (paths pre-split, regexes and bounds
# resolved, messages' fixed parts built) so that the per-record cost is a few dict lookups per
# rule. Its results are identical to ``evaluate`` (same violations, same order, same messages).
Check = Callable[[Any, datetime], "Violation | None"]
Evaluator = Callable[[Any, datetime], list[Violation]]


def split_path(path: str) -> tuple[str, ...]:
    """The steps of a field path, as ``get_path`` walks them."""
    return tuple(path.replace(".", "/").strip("/").split("/"))


def _getter(path: str) -> Callable[[Any], Any]:
    parts = split_path(path)
    if len(parts) == 1:
        (name,) = parts

        def get_one(record: Any) -> Any:
            if type(record) is dict:
                return record.get(name)
            if not isinstance(record, Mapping):
                return None
            return record.get(name)

        return get_one

    def get_nested(record: Any) -> Any:
        value = record
        for part in parts:
            if type(value) is not dict and not isinstance(value, Mapping):
                return None
            value = value.get(part)
            if value is None:
                return None
        return value

    return get_nested


def _compile_rule(rule: Rule) -> Check | None:
    """One stateless rule as a closure; None for ``unique`` and ``ref`` (they pass here)."""
    kind, rid = rule.kind, rule.id
    if kind in STATEFUL:
        return None
    if kind == "required":
        getters = [(_getter(f), _path(f)) for f in rule.fields]

        def required(record: Any, now: datetime) -> Violation | None:
            for get, where in getters:
                v = get(record)
                if v is None or v == "":
                    return Violation(rid, where, f"{where} is required but is missing.")
            return None

        return required
    if kind == "compare":
        get_a, get_b = _getter(rule.fields[0]), _getter(rule.fields[1])
        op, op_name = OPS[rule.op], rule.op
        pa_, pb_ = _path(rule.fields[0]), _path(rule.fields[1])

        def compare(record: Any, now: datetime) -> Violation | None:
            a = get_a(record)
            if a is None:
                return None
            b = get_b(record)
            if b is None:
                return None
            try:
                ok = op(a, b)
            except TypeError:
                ok = False
            if ok:
                return None
            return Violation(rid, pa_, f"{pa_} ({_show(a)}) must be {op_name} {pb_} ({_show(b)}).")

        return compare
    get = _getter(rule.field)
    where = _path(rule.field)
    if kind == "range":
        lo, hi = rule.min, rule.max
        lo_x, hi_x = rule.min_exclusive, rule.max_exclusive
        lo_op, hi_op = (">" if lo_x else ">="), ("<" if hi_x else "<=")

        def in_range(record: Any, now: datetime) -> Violation | None:
            value = get(record)
            if value is None:
                return None
            n = _as_number(value)
            if n is None:
                return Violation(rid, where, f"{where} ({shown(value)}) is not a number.")
            if lo is not None and (n <= lo if lo_x else n < lo):
                return Violation(rid, where, f"{where} is {n}, but must be {lo_op} {lo}.")
            if hi is not None and (n >= hi if hi_x else n > hi):
                return Violation(rid, where, f"{where} is {n}, but must be {hi_op} {hi}.")
            return None

        return in_range
    if kind == "regex":
        assert rule._regex is not None
        fullmatch, pattern = rule._regex.fullmatch, rule.pattern

        def regex(record: Any, now: datetime) -> Violation | None:
            value = get(record)
            if value is None:
                return None
            if isinstance(value, str) and fullmatch(value):
                return None
            return Violation(
                rid, where, f"{where} ({shown(value)}) does not match the pattern {pattern!r}."
            )

        return regex
    if kind == "enum":
        values = rule.values
        allowed = ", ".join(map(str, values))

        def enum(record: Any, now: datetime) -> Violation | None:
            value = get(record)
            if value is None or value in values:
                return None
            return Violation(rid, where, f"{where} ({shown(value)}) is not one of {allowed}.")

        return enum
    if kind == "freshness":
        max_age, max_future = rule.max_age, rule.max_future

        def fresh(record: Any, now: datetime) -> Violation | None:
            value = get(record)
            if value is None:
                return None
            if not isinstance(value, datetime):
                return Violation(rid, where, f"{where} ({shown(value)}) is not a timestamp.")
            if value.tzinfo is None:
                value = value.replace(tzinfo=now.tzinfo)
            if max_age is not None and now - value > max_age:
                return Violation(
                    rid,
                    where,
                    f"{where} ({_show(value)}) arrived late: it is older than {max_age} "
                    f"at receipt ({_show(now)}).",
                )
            if max_future is not None and value - now > max_future:
                return Violation(
                    rid,
                    where,
                    f"{where} ({_show(value)}) is more than {max_future} in the future "
                    f"at receipt ({_show(now)}).",
                )
            return None

        return fresh
    raise AssertionError(kind)  # pragma: no cover - parse_rule admits only KINDS


def compile_rules(rule_set: RuleSet) -> Evaluator:
    """``evaluate`` for one rule set, compiled once: same violations, order and messages."""
    checks = tuple(c for c in map(_compile_rule, rule_set.rules) if c is not None)
    if not checks:
        return lambda record, now: []

    def run(record: Any, now: datetime) -> list[Violation]:
        out: list[Violation] = []
        for check in checks:
            v = check(record, now)
            if v is not None:
                out.append(v)
        return out

    return run


def compile_natural_key(rule: Rule) -> Callable[[Any], str | None]:
    """``natural_key`` for one ``unique`` rule, compiled once."""
    getters = [_getter(f) for f in rule.fields]
    if len(getters) == 1:
        (get,) = getters

        def one(record: Any) -> str | None:
            v = get(record)
            return None if v is None else str(v)

        return one

    def many(record: Any) -> str | None:
        parts = [g(record) for g in getters]
        if any(p is None for p in parts):
            return None
        return "\x1f".join(map(str, parts))

    return many


# -- regex patterns that backtrack without bound ------------------------------------------------
# The standard library's own pattern parser (what ``re.compile`` runs); it has no public name.
_sre: Any = importlib.import_module("re._parser")
_VARIABLE_REPEATS = frozenset({_sre.MAX_REPEAT, _sre.MIN_REPEAT})
_CATEGORY_RE = {
    _sre.CATEGORY_DIGIT: re.compile(r"\d"),
    _sre.CATEGORY_NOT_DIGIT: re.compile(r"\D"),
    _sre.CATEGORY_SPACE: re.compile(r"\s"),
    _sre.CATEGORY_NOT_SPACE: re.compile(r"\S"),
    _sre.CATEGORY_WORD: re.compile(r"\w"),
    _sre.CATEGORY_NOT_WORD: re.compile(r"\W"),
}


def _single_char_can_be(item: Any, ch: int) -> bool:
    """Whether the one-character item ``(op, av)`` may match ``chr(ch)`` (True when unsure)."""
    op, av = item
    if op is _sre.LITERAL:
        return bool(av == ch)
    if op is _sre.NOT_LITERAL:
        return bool(av != ch)
    if op is not _sre.IN:
        return True  # ANY, groups and the rest: assume it may
    hit, negate = False, False
    for sub_op, sub_av in av:
        if sub_op is _sre.NEGATE:
            negate = True
        elif sub_op is _sre.LITERAL:
            hit = hit or sub_av == ch
        elif sub_op is _sre.RANGE:
            hit = hit or sub_av[0] <= ch <= sub_av[1]
        elif sub_op is _sre.CATEGORY and sub_av in _CATEGORY_RE:
            hit = hit or _CATEGORY_RE[sub_av].match(chr(ch)) is not None
        else:
            return True
    return hit != negate


def _backtracking(seq: Any, under: bool) -> str | None:
    """The first construct of a parsed pattern that makes a match backtrack without bound when
    it sits inside a repeat of more than one (``under``), or None."""
    items = list(seq)
    for i, (op, av) in enumerate(items):
        if op in _VARIABLE_REPEATS:
            body = list(av[2])
            if under and av[0] != av[1]:
                nxt = items[i + 1] if i + 1 < len(items) else None
                single = len(body) == 1 and body[0][0] in (_sre.LITERAL, _sre.NOT_LITERAL, _sre.IN)
                fenced = (
                    single
                    and nxt is not None
                    and nxt[0] is _sre.LITERAL
                    and not _single_char_can_be(body[0], nxt[1])
                )  # ``([a-z]+\.)+``: the inner run ends at a character it cannot take
                if not fenced:
                    return "a repeated group holds another repeat of variable length"
            found = _backtracking(body, under or av[1] > 1)
        elif op is _sre.SUBPATTERN:
            found = _backtracking(av[3], under)
        elif op is _sre.BRANCH:
            if under:
                firsts = [b[0] if b else None for b in av[1]]
                if any(f is None or f[0] is not _sre.LITERAL for f in firsts) or len(
                    {f[1] for f in firsts if f is not None}
                ) != len(firsts):
                    return "a repeated group holds alternatives that may start alike"
            found = next((p for b in av[1] if (p := _backtracking(b, under))), None)
        elif op in (_sre.ASSERT, _sre.ASSERT_NOT):
            found = _backtracking(av[1], under)
        elif op is _sre.GROUPREF and under:
            found = "a repeated group holds a back-reference"
        else:
            found = None
        if found:
            return found
    return None


# A repeat of more than this many is a run: three adjacent runs that may take the same text cost
# n^3 steps on a value that does not match (bounded repeats cost at most a constant factor).
_RUN_OVER = 64
# the characters two one-character items are compared on (Latin, punctuation, spaces)
_SAMPLE = range(0x250)
_ONE_CHAR = (_sre.LITERAL, _sre.NOT_LITERAL, _sre.IN, _sre.ANY)


def _may_share(a: Any, b: Any) -> bool:
    """Whether one-character items ``a`` and ``b`` (None: any text) may match one character."""
    if a is None or b is None:
        return True
    return any(_single_char_can_be(a, ch) and _single_char_can_be(b, ch) for ch in _SAMPLE)


def _flat(seq: Any) -> list[Any]:
    """The items of a sequence, groups that are not repeated opened in place."""
    out: list[Any] = []
    for op, av in seq:
        if op is _sre.SUBPATTERN:
            out.extend(_flat(av[3]))
        else:
            out.append((op, av))
    return out


def _adjacent_runs(seq: Any) -> str | None:
    r"""Three or more runs in a row, each able to take a character of the one before and no
    literal between them that they cannot take (``\s*[\w ]+\s*``, ``.+@.+\..+``): a value
    that does not match is tried in every split between them, n^3 steps or more."""
    chain: list[Any] = []  # the one-character item of each run of the current chain
    for op, av in _flat(seq):
        inner: list[Any] = []
        if op in _VARIABLE_REPEATS or op is _sre.BRANCH:
            inner = [av[2]] if op in _VARIABLE_REPEATS else list(av[1])
        found = next((p for body in inner if (p := _adjacent_runs(body))), None)
        if found:
            return found
        if op is _sre.AT:
            continue  # anchors take no text
        one = None
        if op in _VARIABLE_REPEATS and len(av[2]) == 1 and av[2][0][0] in _ONE_CHAR:
            one = av[2][0]
        elif op in _ONE_CHAR:
            one = (op, av)
        if op in _VARIABLE_REPEATS and av[1] > _RUN_OVER:
            chain = [*chain, one] if chain and _may_share(chain[-1], one) else [one]
            if len(chain) >= 3:
                return "three or more adjacent runs may take the same text"
        elif one is not None and not any(_may_share(run, one) for run in chain):
            chain = []  # a character no run of the chain takes: the splits are fixed here
    return None


def backtracking_problem(pattern: str) -> str | None:
    """Why ``pattern`` may take exponential time on a hostile value (Python's ``re``
    backtracks: ``(a+)+b`` against 40 ``a`` runs for hours and holds the interpreter), or None.

    Refused inside a group repeated more than once: a repeat of variable count (unless it is
    one character class ended by a literal it cannot match, as in ``([a-z]+\\.)+``),
    alternatives not all starting with distinct literals, a back-reference. Refused too: three
    or more adjacent runs (repeats of more than 64) that may take the same characters with no
    literal between that they cannot take (``^\\s*[\\w ]+\\s*$``: n^3 steps, a quarter of an
    hour on 10,000 spaces). Two such runs (``.*x.*y``, n^2) pass; value sizes bound them.
    """
    try:
        parsed = _sre.parse(pattern)
    except re.error:
        return None  # compile() reports it
    return _backtracking(parsed, False) or _adjacent_runs(parsed)
