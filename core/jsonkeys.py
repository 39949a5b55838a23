"""One JSON object, one value per member name.

RFC 8259 leaves a repeated member name's meaning to the parser: Python's ``json`` and Arrow keep
the last value, other parsers the first or an error. The hub keeps a record's original bytes, so
a record with ``{"amount": 1, "amount": 1000}`` would be read one way when stored and another way
by whoever re-reads the original: such a record is refused, never resolved (``duplicate_key``).

Two ways to read:
- ``unique_members`` (an ``object_pairs_hook``) raises ``DuplicateKey``: for a text that is one
  record (a JSON line, a request body, a change event).
- ``Lenient`` marks such an object (``Repeated``, every pair kept in order) instead of raising,
  and so a number it cannot take (``Unreadable``: ``NaN``, an integer past the interpreter's
  digit limit): for a text holding many records (an HTTP page, the JSON columns of a database
  batch), so that the one record holding it is quarantined (``marked_in`` finds it,
  ``dumps_kept`` writes its original bytes as sent) and the others are kept.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from decimal import Decimal
from typing import Any


class DuplicateKey(ValueError):
    """A member name appears twice in one JSON object; ``key`` names it."""

    def __init__(self, key: str) -> None:
        super().__init__(f"member {key!r} appears twice in one object: send it once")
        self.key = key


def _first_repeat(pairs: list[tuple[str, Any]]) -> str:
    seen: set[str] = set()
    for k, _ in pairs:
        if k in seen:
            return k
        seen.add(k)
    raise AssertionError("no member name repeats")  # callers compared the lengths first


def unique_members(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """``object_pairs_hook`` for ``json.loads``: the object, or ``DuplicateKey``."""
    out = dict(pairs)
    if len(out) != len(pairs):
        raise DuplicateKey(_first_repeat(pairs))
    return out


class Marked:
    """A value ``Lenient`` could not read as it should: ``code`` (the quarantine reason code)
    and ``problem()`` say why. Not a ``dict`` nor a number: code that missed the mark cannot
    take it for a record's value."""

    __slots__ = ()
    code = "malformed_json"

    def problem(self) -> str:
        raise NotImplementedError


class Repeated(Marked):
    """An object whose member ``key`` appears twice; ``pairs`` as sent."""

    __slots__ = ("key", "pairs")
    code = "duplicate_key"

    def __init__(self, key: str, pairs: list[tuple[str, Any]]) -> None:
        self.key, self.pairs = key, pairs

    def problem(self) -> str:
        return str(DuplicateKey(self.key))


class Unreadable(Marked):
    """A number token that is not a JSON number (``NaN``, ``Infinity``) or that Python will not
    convert (an integer past ``sys.get_int_max_str_digits()``); ``text`` as sent."""

    __slots__ = ("text", "why")

    def __init__(self, text: str, why: str) -> None:
        self.text, self.why = text, why

    def problem(self) -> str:
        return self.why


class Lenient:
    """``json.loads`` that marks each object with a repeated member name (``Repeated``) and each
    number it cannot take (``Unreadable``) instead of failing the whole text; ``found`` counts
    the marks, so a caller walks its records (``marked_in``) only when there is one."""

    def __init__(self) -> None:
        self.found = 0

    def constant(self, name: str) -> Unreadable:
        self.found += 1
        return Unreadable(name, f"{name} is not a JSON number: write a finite number, or a string")

    def integer(self, text: str) -> int | Unreadable:
        try:
            return int(text)
        except ValueError as exc:  # past the interpreter's digit limit
            self.found += 1
            return Unreadable(text, f"an integer of {len(text)} digits cannot be read ({exc})")

    def members(self, pairs: list[tuple[str, Any]]) -> dict[str, Any] | Repeated:
        out = dict(pairs)
        if len(out) == len(pairs):
            return out
        self.found += 1
        return Repeated(_first_repeat(pairs), pairs)

    def loads(self, text: str | bytes, **kw: Any) -> Any:
        return json.loads(
            text,
            object_pairs_hook=self.members,
            parse_constant=self.constant,
            parse_int=self.integer,
            **kw,
        )


def marked_in(value: Any) -> Marked | None:
    """The first ``Marked`` value inside ``value`` (itself included), or None."""
    stack = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, Marked):
            return v
        if isinstance(v, dict):
            stack.extend(v.values())
        elif isinstance(v, list):
            stack.extend(v)
    return None


def dumps_kept(value: Any, *, default: Callable[[Any], Any] = str, sort_keys: bool = False) -> str:
    """``value`` as JSON text, a ``Repeated`` object with every member it was sent with (so
    the quarantined original shows both values, as ``json.dumps`` would not), and a finite
    ``Decimal`` as the number it was read from (``json.dumps(default=str)`` quoted it)."""
    if isinstance(value, Repeated | dict):
        pairs = value.pairs if isinstance(value, Repeated) else list(value.items())
        if sort_keys:
            pairs = sorted(pairs, key=lambda p: p[0])
        inner = (
            f"{json.dumps(k)}: {dumps_kept(v, default=default, sort_keys=sort_keys)}"
            for k, v in pairs
        )
        return "{" + ", ".join(inner) + "}"
    if isinstance(value, list):
        return (
            "["
            + ", ".join(dumps_kept(v, default=default, sort_keys=sort_keys) for v in value)
            + "]"
        )
    if isinstance(value, Unreadable):
        return value.text  # as sent
    if isinstance(value, Decimal) and value.is_finite():
        return str(value)  # a number read with parse_float=Decimal stays a number
    return json.dumps(value, default=default)
