"""One JSON object, one value per member name.

RFC 8259 leaves a repeated member name's meaning to the parser: Python's ``json`` and Arrow keep
the last value, other parsers the first or an error. The hub keeps a record's original bytes, so
a record with ``{"amount": 1, "amount": 1000}`` would be read one way when stored and another way
by whoever re-reads the original: such a record is refused, never resolved (``duplicate_key``).
"""

from __future__ import annotations

from typing import Any


class DuplicateKey(ValueError):
    """A member name appears twice in one JSON object; ``key`` names it."""

    def __init__(self, key: str) -> None:
        super().__init__(f"member {key!r} appears twice in one object: send it once")
        self.key = key


def unique_members(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """``object_pairs_hook`` for ``json.loads``: the object, or ``DuplicateKey``."""
    out = dict(pairs)
    if len(out) != len(pairs):
        seen: set[str] = set()
        for k, _ in pairs:
            if k in seen:
                raise DuplicateKey(k)
            seen.add(k)
    return out
