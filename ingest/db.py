"""Database source: incremental pull from any SQLAlchemy URL by a cursor column.

Rows are read in ``(cursor, key)`` order, ``key`` being a unique tie-breaker (the primary key),
with the keyset predicate ``cursor > :c OR (cursor = :c AND key > :k)``: rows sharing a cursor
value are never skipped nor repeated, even when a batch boundary falls between them. After each
batch the last row's ``(cursor, key)`` is the source's position, stored in the same log
transaction as the batch (``ingest.pipeline``), so a restart resumes exactly. Rows that
arrive later with a cursor below the stored position are not seen: the cursor column must only
grow (an insertion time or a sequence).

Each row becomes a JSON record (column names = field names; ``columns`` renames; datetimes as
RFC 3339 assuming UTC when naive); its original bytes are that JSON. The source is
``db:<name>``. Tested with SQLite files; PostgreSQL works through the same SQLAlchemy code.

Lineage: each ``run()`` is one run of ``ingest.db.<name>`` reading
``hub://sources/<url without user, password or query>#<table>`` and writing the topic (plus
``hub.quarantine`` once a row was quarantined); a failed pull ends with FAIL.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from core import jsonkeys, lineage
from core.errors import ConfigError, HubError
from ingest.pipeline import IngestPipeline, IngestResult, RawRecord, tracked_pull


@dataclass(frozen=True)
class DbSourceConfig:
    name: str
    url: str
    table: str
    topic: str
    cursor: str
    key: str
    batch_size: int = 1000
    event_type: str | None = None
    columns: dict[str, str] = field(default_factory=dict)
    max_batches: int | None = None


def _tagged(value: Any) -> Any:
    """A cursor value as JSON, keeping its type so it binds back the same."""
    if isinstance(value, datetime):
        return {"datetime": value.isoformat()}
    if isinstance(value, date):
        return {"date": value.isoformat()}
    if isinstance(value, Decimal):
        return {"decimal": str(value)}
    return value


def _untagged(value: Any) -> Any:
    if isinstance(value, dict):
        if "datetime" in value:
            return datetime.fromisoformat(value["datetime"])
        if "date" in value:
            return date.fromisoformat(value["date"])
        if "decimal" in value:
            return Decimal(value["decimal"])
    return value


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    return value


# JSON columns are read marking an object with a repeated member name, or a number Python will
# not take, instead of keeping its last value or failing the batch (``core.jsonkeys``): that
# row is quarantined, the others kept. One reader for the process, and every row walked: psycopg
# caches its JSON loader class by the function's code, so the first engine's ``loads`` serves
# every later one and a per-run reader's ``found`` count would miss marks.
_JSON = jsonkeys.Lenient()


def _refuse_merged_columns(c: DbSourceConfig, names: list[str]) -> None:
    """``columns`` must not give two columns one field name (one value would be dropped)."""
    seen: dict[str, str] = {}
    for name in names:
        field_name = c.columns.get(name, name)
        if field_name in seen:
            raise ConfigError(
                f"Connector {c.name!r}: columns {seen[field_name]!r} and {name!r} of table "
                f"{c.table!r} would both become field {field_name!r}, and one value would be "
                "lost; rename one of them to another field in 'columns'."
            )
        seen[field_name] = name


def _ambiguous(value: dict[str, Any], repeated: jsonkeys.Marked, key: Any) -> RawRecord:
    """The row whose JSON column repeats a member name (or holds a number that cannot be
    read), for quarantine with its JSON as the database gave it."""
    return RawRecord(
        jsonkeys.dumps_kept(value, sort_keys=True).encode(),
        error=f"The row with key {_jsonable(key)!r} holds JSON that is not acceptable: "
        f"{repeated.problem()}.",
        error_code=repeated.code,
        position={"key": _tagged(key)},
    )


class DbConnector:
    def __init__(
        self,
        pipeline: IngestPipeline,
        config: DbSourceConfig,
        *,
        producer: str | None = None,
        tenant: str = "default",
    ) -> None:
        self.pipeline = pipeline
        self.config = config
        self.source = f"db:{config.name}"
        # who runs the connector: its records are stamped with that key's id and tenant
        self.producer, self.tenant = producer, tenant

    def run(self) -> IngestResult:
        """Pull until no row is left after the stored position (one lineage run); returns the
        totals."""
        c = self.config
        return tracked_pull(
            self.pipeline,
            f"ingest.db.{c.name}",
            lineage.source_dataset(c.url, table=c.table),
            c.topic,
            self._pull,
            redact={c.url: lineage.redact_url(c.url)},
        )

    def _pull(self, total: IngestResult) -> None:
        import sqlalchemy as sa

        c = self.config
        try:
            engine = sa.create_engine(c.url, json_deserializer=_JSON.loads)
        except Exception as exc:  # bad URL or missing driver
            raise ConfigError(f"Cannot open database URL for connector {c.name!r}: {exc}") from exc
        md = sa.MetaData()
        try:
            with engine.connect() as conn:
                try:
                    table = sa.Table(c.table, md, autoload_with=conn)
                except sa.exc.NoSuchTableError as exc:
                    raise ConfigError(
                        f"Connector {c.name!r}: table {c.table!r} does not exist in the database."
                    ) from exc
                missing = [n for n in (c.cursor, c.key) if n not in table.c]
                if missing:  # a KeyError here was an internal error naming only the column
                    raise ConfigError(
                        f"Connector {c.name!r}: table {c.table!r} has no column "
                        f"{' and no column '.join(map(repr, missing))} (cursor and key must be "
                        f"columns of it; it has {', '.join(map(repr, table.c.keys()))})."
                    )
                _refuse_merged_columns(c, list(table.c.keys()))
                cur, key = table.c[c.cursor], table.c[c.key]
                last = self.pipeline.positions.get(self.source)
                pos = None if last is None else last.position
                consumed = 0 if last is None else last.records
                batches = 0
                while c.max_batches is None or batches < c.max_batches:
                    q = sa.select(table).order_by(cur, key).limit(c.batch_size)
                    if pos is not None:
                        pc, pk = _untagged(pos["cursor"]), _untagged(pos["key"])
                        q = q.where(sa.or_(cur > pc, sa.and_(cur == pc, key > pk)))
                    rows = conn.execute(q).mappings().all()
                    conn.commit()  # end the read transaction so later polls see new rows
                    if not rows:
                        break
                    records = []
                    for row in rows:
                        value = {c.columns.get(k, k): _jsonable(v) for k, v in row.items()}
                        repeated = jsonkeys.marked_in(value)  # every row: see _JSON
                        if repeated is not None:
                            records.append(_ambiguous(value, repeated, row[c.key]))
                            continue
                        original = json.dumps(value, sort_keys=True, default=str).encode()
                        records.append(
                            RawRecord(
                                original,
                                value=json.loads(original, parse_float=Decimal),
                                event_type=c.event_type,
                                position={"key": _tagged(row[c.key])},
                            )
                        )
                    consumed += len(rows)
                    pos = {"cursor": _tagged(rows[-1][c.cursor]), "key": _tagged(rows[-1][c.key])}
                    total.add(
                        self.pipeline.ingest(
                            c.topic,
                            records,
                            source=self.source,
                            producer=self.producer,
                            tenant=self.tenant,
                            position=pos,
                            consumed=consumed,
                        )
                    )
                    batches += 1
        except HubError:
            raise
        except sa.exc.SQLAlchemyError as exc:
            raise ConfigError(f"Connector {c.name!r}: the database query failed: {exc}") from exc
        finally:
            engine.dispose()
