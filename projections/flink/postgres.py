"""The PostgreSQL side of Flink projections: partial-row tables, merged views, rows and digests.

``FlinkViews(url, schema)`` (a SQLAlchemy URL, ``postgresql+psycopg://...``):
- ``ensure(tables)`` creates, in ``schema``, ``<table>__flink_p`` (what the Flink job upserts,
  see ``projections.flink.compile``) and the VIEW ``<table>`` that merges the partial rows per
  key: sums, minima and maxima by each column's ``agg``, timestamps as ``timestamptz``, and
  ``src_offsets`` as JSON ``[[topic, partition, first, last, count], ...]`` ordered by topic and
  partition (the embedded views' format);
- ``rows(table)`` reads the merged view ordered by the key in code-point order (PostgreSQL's
  collation may order text differently from the embedded stores; the digest needs one order),
  PII values opened by the hub's key store (the jobs only ever held their ciphertext);
- ``digest(table)`` is ``projections.digest.digest`` over those rows, so it compares byte for
  byte with the embedded runner's digest of the same view.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from core.errors import ConfigError, HubError
from core.projection import Column, Row, Table, to_micros
from projections.digest import digest
from projections.flink.compile import SPANNING, partial_name
from projections.flink.sealed import SEALED
from projections.patterns import Pattern, alert_key

_IDENT = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def ident(name: str) -> str:
    """A PostgreSQL identifier the hub generates (lower case, unquoted), or ``ConfigError``."""
    if not _IDENT.fullmatch(name):
        raise ConfigError(
            f"{name!r} is not usable as a PostgreSQL name here: use lower-case letters, digits "
            "and underscores (at most 63), starting with a letter or underscore."
        )
    return name


def pg_type(c: Column) -> str:
    return {
        "string": "text",
        "int": "bigint",
        "timestamp": "bigint",
        "decimal": f"numeric(38, {c.scale})",
    }[c.type]


def partial_ddl(schema: str, t: Table) -> str:
    cols = [c for c in t.columns if c.agg != "derived"]
    body = [f"{ident(c.name)} {pg_type(c)}{'' if c.nullable else ' NOT NULL'}" for c in cols]
    if t.kind == "append":  # one row per event: the key is its log position
        key = list(t.key)
    else:
        body += [
            "src_topic text NOT NULL",
            "src_partition bigint NOT NULL",
            "src_first bigint NOT NULL",
            "src_last bigint NOT NULL",
        ]
        if t.kind == "entity":
            body.append("src_events bigint NOT NULL")
        key = [*t.key, "src_topic", "src_partition"]
    return (
        f"CREATE TABLE IF NOT EXISTS {schema}.{partial_name(t)} (\n  "
        + ",\n  ".join(body)
        + f",\n  PRIMARY KEY ({', '.join(key)})\n)"
    )


def _merge(c: Column) -> str:
    if c.agg == "sum":
        return f"sum({c.name})" + ("::bigint" if c.type == "int" else "")
    if c.agg in ("min", "max"):
        return f"{c.agg}({c.name})"
    # first/last by (time, log position): ClickHouse's argMin/argMax in the embedded views
    if c.agg == "first":
        return f"(array_agg({c.name} ORDER BY first_at, first_pos))[1]"
    if c.agg == "last":
        return f"(array_agg({c.name} ORDER BY last_at DESC, last_pos DESC))[1]"
    raise ConfigError(
        f"Column {c.name!r} merges with {c.agg!r}, which the Flink views do not support yet "
        "(sum, min, max, first and last do)."
    )


def _time(expr: str) -> str:
    return f"timestamptz 'epoch' + {expr} * interval '1 microsecond'"


def view_ddl(schema: str, t: Table) -> str:
    """The merged read view of ``t`` over its partial rows."""
    if t.kind == "entity":
        return _entity_view_ddl(schema, t)
    if t.kind == "append":
        select = [
            f"{_time(c.name) if c.type == 'timestamp' else c.name} AS {c.name}" for c in t.columns
        ]
        return (
            f"CREATE OR REPLACE VIEW {schema}.{ident(t.name)} AS\nSELECT "
            + ", ".join(select)
            + f"\nFROM {schema}.{partial_name(t)}"
        )
    if t.kind != "aggregate":
        raise ConfigError(
            f"Table {t.name!r} is {t.kind}; the Flink views hold aggregate, entity and append "
            "tables."
        )
    select = []
    for c in t.columns:
        if c.agg == "derived":
            a, b = c.expr.split("/")
            select.append(
                f"CASE WHEN sum({b}) = 0 THEN NULL ELSE trunc(sum({a}) / sum({b}), {c.scale}) "
                f"END AS {c.name}"
            )
            continue
        expr = c.name if c.agg == "key" else _merge(c)
        select.append(f"{_time(expr) if c.type == 'timestamp' else expr} AS {c.name}")
    src = (
        "json_agg(json_build_array(src_topic, src_partition, src_first, src_last, events) "
        "ORDER BY src_topic, src_partition)::text AS src_offsets"
    )
    return (
        f"CREATE OR REPLACE VIEW {schema}.{ident(t.name)} AS\nSELECT "
        + ", ".join([*select, src])
        + f"\nFROM {schema}.{partial_name(t)}\nGROUP BY {', '.join(t.key)}"
    )


def _entity_view_ddl(schema: str, t: Table) -> str:
    """An entity's row is the one Flink wrote for its key (a key's events live in one
    partition, so there is one partial row per key), or, for a table in ``SPANNING``, the
    merge of its partial rows."""
    merges = SPANNING.get(t.name, {})
    select = []
    for c in t.columns:
        expr = (
            c.name
            if c.agg == "key"
            else merges.get(c.name, f"(array_agg({c.name} ORDER BY src_last DESC))[1]")
        )
        select.append(f"{_time(expr) if c.type == 'timestamp' else expr} AS {c.name}")
    src = (
        "json_agg(json_build_array(src_topic, src_partition, src_first, src_last, src_events) "
        "ORDER BY src_topic, src_partition)::text AS src_offsets"
    )
    return (
        f"CREATE OR REPLACE VIEW {schema}.{ident(t.name)} AS\nSELECT "
        + ", ".join([*select, src])
        + f"\nFROM {schema}.{partial_name(t)}\nGROUP BY {', '.join(t.key)}"
    )


class FlinkViews:
    def __init__(
        self, url: str, schema: str = "public", unseal: Callable[..., Any] | None = None
    ) -> None:
        """``unseal`` opens the PII values the jobs wrote sealed (``projections.flink.sealed``);
        without it ``rows`` returns them sealed (ciphertext, never plaintext)."""
        self.schema = ident(schema)
        self.unseal = unseal
        self._engine = sa.create_engine(url, pool_pre_ping=True)

    def close(self) -> None:
        self._engine.dispose()

    def _run(self, what: str, statements: Sequence[str]) -> None:
        try:
            with self._engine.begin() as conn:
                for statement in statements:
                    conn.exec_driver_sql(statement)
        except sa.exc.SQLAlchemyError as exc:
            raise HubError(f"PostgreSQL failed while {what}: {exc}", code="views_failed") from exc

    def ensure(self, tables: Sequence[Table]) -> None:
        statements = [f"CREATE SCHEMA IF NOT EXISTS {self.schema}"]
        for t in tables:
            statements += [partial_ddl(self.schema, t), view_ddl(self.schema, t)]
        self._run("creating the Flink view tables", statements)

    def drop(self, tables: Sequence[Table]) -> None:
        statements = []
        for t in tables:
            statements += [
                f"DROP VIEW IF EXISTS {self.schema}.{ident(t.name)}",
                f"DROP TABLE IF EXISTS {self.schema}.{partial_name(t)}",
            ]
        self._run("dropping the Flink view tables", statements)

    def rows(self, t: Table) -> list[Row]:
        """The merged view rows of ``t``: timestamps as integer µs, ``src_offsets`` as lists,
        ordered by the key in code-point order."""
        try:
            with self._engine.connect() as conn:
                result = conn.exec_driver_sql(f"SELECT * FROM {self.schema}.{ident(t.name)}")
                out = [dict(r) for r in result.mappings()]
        except sa.exc.SQLAlchemyError as exc:
            raise HubError(
                f"PostgreSQL failed while reading view {t.name!r}: {exc}", code="views_failed"
            ) from exc
        # only the columns the table declares PII hold the job's sealed values: any other
        # string is a record's text as sent, which a publisher may make look sealed (another
        # tenant's ciphertext off the shared topic) to have it opened in its own row
        pii = [c.name for c in t.columns if c.pii]
        for row in out:
            for k, v in row.items():
                if isinstance(v, datetime):
                    row[k] = to_micros(v)
            if self.unseal is not None:
                tenant = row.get("tenant")
                for k in pii:
                    v = row.get(k)
                    if isinstance(v, str) and v.startswith(SEALED):
                        row[k] = self.unseal(v, tenant if isinstance(tenant, str) else None)
            if t.kind != "append":
                row["src_offsets"] = json.loads(row["src_offsets"])
        out.sort(key=lambda r: _sort_key(t, r))
        return out

    def alert_rows(self, pattern: Pattern) -> list[dict[str, Any]]:
        """The alert rows a pattern's Flink job upserted (``projections.flink.cep``), in key
        order; none when its table does not exist yet."""
        from projections.flink.cep import alert_table

        table = f"{self.schema}.{ident(alert_table(pattern))}"
        try:
            with self._engine.connect() as conn:
                if conn.exec_driver_sql(f"SELECT to_regclass('{table}')").scalar() is None:
                    return []
                result = conn.exec_driver_sql(f"SELECT * FROM {table}")
                rows = [dict(r) for r in result.mappings()]
        except sa.exc.SQLAlchemyError as exc:
            raise HubError(
                f"PostgreSQL failed while reading the alerts of {pattern.name!r}: {exc}",
                code="views_failed",
            ) from exc
        key = alert_key(pattern)
        return sorted(rows, key=lambda r: tuple(r[k] for k in key))

    def digest(self, t: Table) -> dict[str, Any]:
        d, n = digest(t, self.rows(t))
        return {"digest": d, "rows": n}


def _sort_key(t: Table, row: Row) -> tuple[Any, ...]:
    return tuple((row[k] is not None, row[k]) for k in t.key)
