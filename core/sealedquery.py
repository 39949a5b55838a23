"""What a query may do with PII columns a store keeps sealed (pure).

A store that keeps PII sealed (``ViewStore.seals_pii``: the PostgreSQL views) holds each value as
ciphertext text that only the hub opens, with the subject's key, after the query ran. SQL over
that text cannot compare, group, order or transform the plaintext, and an answer computed from
ciphertext would be silently wrong (``WHERE email = 'x'`` finding nothing). So a query may name
an unmasked PII column only as a plain result column of its outermost ``SELECT``
(``SELECT email``, ``SELECT a.email AS mail``, or through ``*``); the hub opens those result
columns. Any other use (``WHERE``, ``GROUP BY``, ``ORDER BY``, ``JOIN ... ON``, a function or
aggregate over it, a subquery or CTE that names it, a set operation, or another expression or
renamed column given a PII column's name, anywhere) is refused with ``pii_column_sealed``: result
columns are opened by name, so no other value may carry one. Masked PII columns read as
NULL (``core.sqlguard``) and stay usable anywhere. A column's value reached otherwise, as a field
of a row (``(a).email``) or inside a whole row (``a::text``, ``row_to_json(a)``, ``count(a.*)``,
a column named as a table, subquery or CTE of the query), by its position (``GROUP BY 1``,
``ORDER BY 2``, ``DISTINCT ON (1)``, ``GROUP BY ALL``, a position after a ``*``) or in a join's
column list (``USING (email)``, ``NATURAL JOIN``), is refused alike. The embedded SQLite
views hold plaintext and do not apply this rule.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlglot import exp

from core.sqlguard import Dialect, parse, refuse

SEALED_CODE = "pii_column_sealed"


def sealed_outputs(sql: str, dialect: Dialect, sensitive: Iterable[str]) -> frozenset[str]:
    """The result column names to open: the plain outermost references to a column of
    ``sensitive`` (the grants' unmasked PII columns), under their alias if any, and every
    sensitive name when the outermost ``SELECT`` has a ``*``. Raises ``InvalidInput``
    (``pii_column_sealed``) for any other use of a sensitive column (see the module doc)."""
    names = frozenset(n.lower() for n in sensitive)
    if not names:
        return frozenset()
    tree = parse(sql, dialect)
    plain: set[int] = set()  # the Column nodes a plain outermost result column is
    out: set[str] = set()
    if isinstance(tree, exp.Select):
        for e in tree.expressions:
            inner = e.this if isinstance(e, exp.Alias) else e
            if isinstance(inner, exp.Column) and isinstance(inner.this, exp.Star):
                out |= names  # t.*
            elif isinstance(inner, exp.Star):
                out |= names
            elif isinstance(inner, exp.Column) and inner.name.lower() in names:
                plain.add(id(inner))
                out.add(e.alias_or_name.lower())
            elif e.alias_or_name.lower() in names:
                raise _refused(e.alias_or_name, "as the name of another expression")
    # a result column is opened by its name: no other value may take a sealed column's name
    # (a record's text as sent may look sealed), in a subquery or CTE either
    for alias in tree.find_all(exp.Alias):
        inner = alias.this
        same = isinstance(inner, exp.Column) and inner.name.lower() == alias.alias.lower()
        if alias.alias.lower() in names and not same:
            raise _refused(alias.alias, "as the name of another expression")
    for table_alias in tree.find_all(exp.TableAlias):
        for c in table_alias.columns:
            if c.name.lower() in names:
                raise _refused(c.name, "as a renamed column of a subquery")
        if table_alias.columns and _selects_star(table_alias.parent):
            # s(a, b, x) over SELECT *: a sealed column under another name, never opened
            raise _refused("*", "renamed by a column list")
    for dot in tree.find_all(exp.Dot):  # (a).email: the column as a field of a row
        if dot.name.lower() in names:
            raise _refused(dot.name, f"as a field of a row, in {dot.sql(dialect)!r}")
    for join in tree.find_all(exp.Join):
        for using in join.args.get("using") or []:
            if using.name.lower() in names:
                raise _refused(using.name, "in a JOIN ... USING list")
        if str(join.args.get("method") or "").upper() == "NATURAL":
            raise _refused("*", "through a NATURAL JOIN (it joins on every shared column)")
    for select in tree.find_all(exp.Select):
        _check_positions(select, names, dialect)
    relations = _relation_names(tree)
    for col in tree.find_all(exp.Column):
        if col.name.lower() in names and id(col) not in plain:
            raise _refused(col.name, f"in {col.parent.sql(dialect) if col.parent else sql!r}")
        # a whole row (a, a::text, row_to_json(a), count(a.*)) holds its sealed columns too;
        # t.* is a row's columns only as a SELECT's result columns
        star = isinstance(col.this, exp.Star)
        if (star and not isinstance(col.parent, exp.Select)) or (
            not star and not col.table and col.name.lower() in relations
        ):
            raise _refused(
                "*",
                f"through the whole row {col.sql(dialect)!r} (a column named like a table of "
                f"the query: qualify it, e.g. t.{col.name})",
            )
    return frozenset(out)


def _check_positions(select: exp.Select, names: frozenset[str], dialect: Dialect) -> None:
    """Refuse ``GROUP BY 2``, ``ORDER BY 2``, ``DISTINCT ON (2)`` and ``GROUP BY ALL`` when the
    result column they name may be a sensitive one (it is, or the list holds a ``*``)."""
    items = select.expressions

    def sensitive(e: exp.Expr) -> bool:
        inner = e.this if isinstance(e, exp.Alias) else e
        star = isinstance(inner, exp.Star) or (
            isinstance(inner, exp.Column) and isinstance(inner.this, exp.Star)
        )
        return star or (isinstance(inner, exp.Column) and inner.name.lower() in names)

    group, order, distinct = (select.args.get(k) for k in ("group", "order", "distinct"))
    refs: list[exp.Expr] = []
    if isinstance(group, exp.Group):
        if group.args.get("all") and any(sensitive(e) for e in items):
            raise _refused("*", "through GROUP BY ALL (name the grouping columns)")
        refs += group.expressions
    if isinstance(order, exp.Order):
        refs += [o.this if isinstance(o, exp.Ordered) else o for o in order.expressions]
    on = distinct.args.get("on") if isinstance(distinct, exp.Distinct) else None
    if on is not None:
        refs += on.expressions if isinstance(on, exp.Tuple) else [on]
    for ref in refs:
        if isinstance(ref, exp.Literal) and not ref.is_string and ref.this.isdigit():
            at = int(ref.this)
            if (1 <= at <= len(items) and sensitive(items[at - 1])) or any(
                isinstance(e, exp.Star) or isinstance(e.this, exp.Star) for e in items[:at]
            ):
                raise _refused(
                    items[at - 1].sql(dialect) if at <= len(items) else "*",
                    f"by its position {at} in {ref.parent.sql(dialect) if ref.parent else ''!r}"
                    " (name the column)",
                )


def _relation_names(tree: exp.Expr) -> frozenset[str]:
    """The names a column reference could take as a whole row: every table, subquery and CTE
    of ``tree`` by its alias (or name)."""
    names = {t.alias_or_name.lower() for t in tree.find_all(exp.Table)}
    names |= {n.alias.lower() for n in tree.find_all(exp.Subquery, exp.CTE) if n.alias}
    return frozenset(names)


def _selects_star(node: exp.Expr | None) -> bool:
    """Whether ``node`` (a subquery or CTE) selects ``*`` or ``t.*`` at its own top."""
    inner = node.this if isinstance(node, exp.Subquery | exp.CTE) else None
    if not isinstance(inner, exp.Select):
        return inner is not None  # a set operation: its branches may
    return any(
        isinstance(e, exp.Star) or (isinstance(e, exp.Column) and isinstance(e.this, exp.Star))
        for e in inner.expressions
    )


def _refused(column: str, where: str) -> Exception:
    return refuse(
        f"The query uses the PII column {column!r} {where}: the PostgreSQL views keep PII "
        "sealed (encrypted under each data subject's key, so that an erasure leaves no "
        "plaintext in the database, its WAL or its backups), and SQL cannot filter, group, "
        "order, join or compute on sealed values. Select the column plainly in the outermost "
        "SELECT (the hub opens it in the result), and filter or group on other columns "
        "(e.g. account_id).",
        code=SEALED_CODE,
    )
