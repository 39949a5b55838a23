"""Deterministic view digests: rows ordered by key, canonical text per row, SHA-256.

The canonical text is computed here, not by the store, so that every footprint (chDB,
ClickHouse, SQLite, PostgreSQL) produces the same bytes for the same view contents.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from decimal import Context, Decimal
from typing import Any

from core.projection import Row, Table

_EXACT = Context(prec=80)  # decimals of up to 38 digits, never rounded (the default has 28)


def canonical(value: Any, scale: int | None = None) -> str:
    if value is None:
        return "\\N"
    if isinstance(value, Decimal):
        return (
            f"{value.quantize(Decimal(1).scaleb(-(scale or 0)), context=_EXACT):f}"
            if scale is not None
            else (f"{value:f}")
        )
    if isinstance(value, (list, tuple)):
        return json.dumps(_plain(value), separators=(",", ":"))
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def _plain(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def row_text(table: Table, row: Row) -> str:
    parts = [
        canonical(row.get(c.name), c.scale if c.type == "decimal" else None) for c in table.columns
    ]
    if table.kind != "append":
        parts.append(canonical(row.get("src_offsets")))
    return "\t".join(parts)


def digest(table: Table, rows: Iterable[Row]) -> tuple[str, int]:
    """(hex SHA-256, row count) of rows already ordered by the table key."""
    h = hashlib.sha256()
    n = 0
    for row in rows:
        h.update(row_text(table, row).encode())
        h.update(b"\n")
        n += 1
    return h.hexdigest(), n
