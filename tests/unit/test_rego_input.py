"""``rego_input`` builds the same rego-cpp input as ``regopy.Input``, and falls back to it."""

from __future__ import annotations

import random
from collections import OrderedDict
from types import MappingProxyType
from typing import Any

import regopy
from regopy import rego_shared

from adapters.rego_policy import rego_input


def _seen(make: Any, doc: Any) -> str:
    """What rego-cpp holds as ``input`` after ``set_input(make(doc))``, as it prints it (raw:
    rego-cpp 1.5.2 does not escape quotes or newlines in strings, so it is not always JSON)."""
    interp = regopy.Interpreter()
    interp.set_input(make(doc))
    output = rego_shared.rego_query(interp._impl, "x = input")
    try:
        return str(rego_shared.rego_output_string(output))
    finally:
        rego_shared.rego_free_output(output)


def _value(rnd: random.Random, depth: int = 0) -> Any:
    kind = rnd.randrange(9 if depth < 3 else 6)
    if kind == 0:
        return "".join(rnd.choice("ab é'\"\\\n✓𝄞") for _ in range(rnd.randrange(6)))
    if kind == 1:
        return rnd.choice([0, -1, 7, 2**62, -(2**63), 2**63 - 1, 1764000000000000000])
    if kind == 2:
        return rnd.choice([0.5, -1.25, 1e300, 3.0])
    if kind == 3:
        return rnd.choice([True, False])
    if kind in (4, 5):
        return None if kind == 4 else ""
    if kind in (6, 7):
        return {f"k{i}{rnd.choice('xyé')}": _value(rnd, depth + 1) for i in range(rnd.randrange(4))}
    return [_value(rnd, depth + 1) for _ in range(rnd.randrange(4))]


def test_same_input_as_regopy_on_random_documents() -> None:
    rnd = random.Random(11)
    for _ in range(300):
        doc = {"principal": _value(rnd), "action": _value(rnd), "context": _value(rnd)}
        assert _seen(rego_input, doc) == _seen(regopy.Input, doc), doc


def test_unusual_values_fall_back_to_regopy() -> None:
    for doc in (
        {"roles": ("a", "b")},  # a tuple
        OrderedDict(a=1),  # a dict subclass
        {"m": MappingProxyType({"a": 1})},  # another Mapping
        {"s": frozenset({"x"})},  # a set
        {"n": 2**63},  # past 64 bits: regopy raises, as before
    ):
        try:
            expected = _seen(regopy.Input, doc)
        except Exception as exc:  # the same failure is expected of rego_input
            try:
                _seen(rego_input, doc)
            except Exception as mine:
                assert type(mine) is type(exc)
                continue
            raise AssertionError(f"{doc!r} was accepted, regopy refuses it") from None
        assert _seen(rego_input, doc) == expected
