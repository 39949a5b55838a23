"""``SHOW TABLES`` and ``DESCRIBE <view>``, answered from the projection catalog (pure).

The store never sees these statements: the answer is the catalog's metadata, cut to the views
the caller's decision grants in that store (``ViewGrant``), so it names no table the caller
could not query. ``SHOW TABLES`` lists ``name, projection, kind, description``; ``DESCRIBE``
(also ``DESC``, ``DESCRIBE TABLE``) lists ``name, type, nullable, masked, description`` per
column, ``masked`` true where the caller reads NULL instead of the value (PII without
``pii.read``). A column without a description has an empty one.
"""

from __future__ import annotations

from collections.abc import Sequence

import pyarrow as pa

from core.errors import NotFound
from core.ports.views import ViewGrant
from core.projection import Column, Projection, Table

SRC_OFFSETS_DOC = (
    "The log positions of the events behind the row: "
    "[[topic, partition, first offset, last offset, count], ...]."
)


def statement(sql: str) -> tuple[str, str | None] | None:
    """``("show", None)``, ``("describe", view)``, or None when ``sql`` is neither."""
    words = sql.strip().rstrip(";").split()
    lower = [w.lower() for w in words]
    if lower == ["show", "tables"]:
        return ("show", None)
    if lower[:1] in (["describe"], ["desc"]):
        rest = words[2:] if lower[1:2] == ["table"] else words[1:]
        if len(rest) == 1:
            return ("describe", rest[0].strip('"`[]'))
    return None


def answer(sql: str, projections: Sequence[Projection], grants: Sequence[ViewGrant]) -> pa.Table:
    """The result of a ``statement`` (checked by the caller) as an Arrow table."""
    kind, view = statement(sql) or ("", None)
    granted = {g.name: g for g in grants}
    tables = {t.name: (p, t) for p in projections for t in p.tables if t.name in granted}
    if kind == "show":
        rows: list[dict[str, object]] = [
            {"name": n, "projection": p.name, "kind": t.kind, "description": t.doc or ""}
            for n, (p, t) in sorted(tables.items())
        ]
        return _table(["name", "projection", "kind", "description"], rows)
    match = {n.lower(): n for n in tables}.get((view or "").lower())
    if match is None:
        raise NotFound(
            f"There is no view {view!r} you may query in this store; ask SHOW TABLES for the list.",
            code="view_not_found",
        )
    grant = granted[match]
    _, table = tables[match]
    columns: list[dict[str, object]] = [
        {
            "name": name,
            "type": _type(table, name),
            "nullable": _nullable(table, name),
            "masked": name in grant.masked,
            "description": _doc(table, name),
        }
        for name in grant.columns
    ]
    return _table(["name", "type", "nullable", "masked", "description"], columns)


def _column(table: Table, name: str) -> Column | None:
    return next((c for c in table.columns if c.name == name), None)


def _type(table: Table, name: str) -> str:
    c = _column(table, name)
    if c is None:
        return "json" if name == "src_offsets" else ""
    return f"decimal(38,{c.scale})" if c.type == "decimal" else c.type


def _nullable(table: Table, name: str) -> bool:
    c = _column(table, name)
    return bool(c.nullable) if c is not None else False


def _doc(table: Table, name: str) -> str:
    c = _column(table, name)
    if c is None:
        return SRC_OFFSETS_DOC if name == "src_offsets" else ""
    # Column descriptions are catalog metadata; read whichever field the catalog provides.
    for field in ("doc", "description"):
        text = getattr(c, field, None)
        if isinstance(text, str) and text:
            return text
    return ""


def _table(names: list[str], rows: list[dict[str, object]]) -> pa.Table:
    types = {"nullable": pa.bool_(), "masked": pa.bool_()}
    schema = pa.schema([(n, types.get(n, pa.string())) for n in names])
    return pa.Table.from_pylist(rows, schema=schema)
