"""The MAC a Flink job puts on each row it writes to a result topic, and the hub checks.

Anyone able to produce to ``flink.*`` could otherwise write any tenant's view rows or feature
vectors: the loaders take the tenant (and every value) from the record. So the job adds a column
``row_mac``: HMAC-SHA256, under a key only the hub and the jobs it launches hold
(``HUB_FLINK_ROW_KEY`` in the job's environment, never in the spec file; the hub derives it from
its local MAC key with its own label), over the result's name (a table, or ``features.<view>``)
and the row's values in column order. The loaders recompute it and refuse a row without a valid
one (counted and logged), so a forged, edited or moved row (another table, another tenant's
value) is not loaded.

Standard library only: the PyFlink workers import this file (``projections/flink/job.py``) as
well as the hub. Both sides see the same values in different forms (the job: ``int``,
``Decimal``, ``str`` from Flink; the hub: JSON with decimals as plain numbers, so ``12.50`` or
``12``), so a value is canonical before it is MACed: numbers by their value, strings tagged apart
from numbers.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Sequence
from decimal import Context, Decimal, InvalidOperation
from typing import Any

ROW_KEY_ENV = "HUB_FLINK_ROW_KEY"  # hex, in the job's environment
COLUMN = "row_mac"  # the result topics' column holding it
DELETE_HEADER = "hub_row_delete"  # a signed tombstone's header
FUNCTION = "hub_row_mac"  # the job's scalar function computing it
_WIDE = Context(prec=100)  # DECIMAL(38, s) never rounded while normalised


class RowMacInvalid(ValueError):
    """A value the MAC cannot cover (not a string, integer, decimal or null)."""


def canonical(value: Any) -> str | None:
    """``value`` as the MAC covers it: ``s:<text>``, ``n:<plain decimal>`` (12, 12.0 and 12.00
    are one number), or None."""
    if value is None:
        return None
    if type(value) is str:  # the common cases first: the loader checks every row
        return "s:" + value
    if type(value) is int:  # an integer's plain decimal is its str()
        return "n:" + str(value)
    if isinstance(value, str):
        return "s:" + value
    if isinstance(value, bool):  # an int subclass; no result column is boolean
        raise RowMacInvalid(f"a boolean ({value!r}) where a number or text belongs")
    if isinstance(value, int | Decimal | float):
        try:
            number = Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
            if not number.is_finite():
                raise RowMacInvalid(f"a number that is not finite ({value!r})")
            return "n:" + format(number.normalize(_WIDE), "f")
        except InvalidOperation as exc:
            raise RowMacInvalid(f"a number out of range ({value!r})") from exc
    raise RowMacInvalid(f"a {type(value).__name__} where a number or text belongs")


def row_mac(key: bytes, name: str, values: Sequence[Any]) -> str:
    """The hex MAC of a row of result ``name`` (its values in column order)."""
    return canonical_mac(key, name, [canonical(v) for v in values])


def canonical_mac(key: bytes, name: str, canon: Sequence[str | None]) -> str:
    """``row_mac`` of values already made ``canonical``."""
    message = json.dumps(["hub-flink-row/v1", name, canon], separators=(",", ":"))
    return hmac.new(key, message.encode(), hashlib.sha256).hexdigest()


def check(key: bytes | None, name: str, values: Sequence[Any], mac: Any) -> str | None:
    """Why the row cannot be authenticated, or None when its MAC is valid."""
    try:
        canon = [canonical(v) for v in values]
    except RowMacInvalid as exc:
        return f"it holds {exc}"
    return check_canonical(key, name, canon, mac)


def check_canonical(
    key: bytes | None, name: str, canon: Sequence[str | None], mac: Any
) -> str | None:
    """``check`` of values already made ``canonical``."""
    if key is None:
        return "the loader holds no row key, so no row can be authenticated"
    if not isinstance(mac, str) or not mac:
        return f"it carries no {COLUMN} (not written by the hub's Flink job)"
    if not hmac.compare_digest(mac, canonical_mac(key, name, canon)):
        return (
            f"its {COLUMN} does not match its values (forged or edited, or written under another "
            "hub's key)"
        )
    return None


def delete_mac(key: bytes, name: str, key_values: Sequence[Any], version: int) -> str:
    """The hex MAC of a delete of the row of result ``name`` under key columns ``key_values``
    (in key order), as of ``version``."""
    canon = [canonical(v) for v in key_values]
    message = json.dumps(["hub-flink-delete/v1", name, canon, version], separators=(",", ":"))
    return hmac.new(key, message.encode(), hashlib.sha256).hexdigest()


def delete_header(key: bytes, name: str, key_values: Sequence[Any], version: int) -> bytes:
    """The ``DELETE_HEADER`` value of a signed tombstone (see the module docstring)."""
    mac = delete_mac(key, name, key_values, version)
    return json.dumps({"version": version, "mac": mac}, separators=(",", ":")).encode()


def check_delete(
    key: bytes | None, name: str, key_values: Sequence[Any], header: bytes | None
) -> tuple[str | None, int]:
    """(Why a tombstone is not a signed delete, 0), or (None, the version it is as of)."""
    if key is None:
        return "the loader holds no row key, so no delete can be authenticated", 0
    if header is None:
        return f"it carries no {DELETE_HEADER} header (not a delete the hub signed)", 0
    try:
        got = json.loads(header)
        version, mac = got["version"], got["mac"]
    except (ValueError, TypeError, KeyError):
        return f'its {DELETE_HEADER} header is not {{"version": V, "mac": M}}', 0
    if type(version) is not int or not isinstance(mac, str):
        return f'its {DELETE_HEADER} header is not {{"version": V, "mac": M}}', 0
    try:
        want = delete_mac(key, name, key_values, version)
    except RowMacInvalid as exc:
        return f"its key holds {exc}", 0
    if not hmac.compare_digest(mac, want):
        return f"its {DELETE_HEADER} does not match its key and version (forged or edited)", 0
    return None, version
