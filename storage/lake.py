"""The lake: raw topics and projection views exported as Apache Iceberg tables.

Tables go to a pyiceberg SQL catalog (SQLite by default, PostgreSQL with a URL) whose warehouse
is a folder (``file://``) or an S3 bucket, so that Spark, Flink, DuckDB, Trino or ClickHouse
(``icebergLocal`` / ``icebergS3``) read them directly. Two namespaces:

- ``raw.<topic>``: every record as stored: partition, offset, timestamp, key, headers (JSON),
  schema id, the value's bytes (Confluent wire format, PII fields still ciphertext) and the
  value decoded to JSON with PII masked (``"***"``). A record carrying an envelope header
  (``ce_*``, ``hub_*``, ``content-type``) twice keeps no copy of it in ``headers`` and has no
  ``value_json``: the views quarantine it, so the lake's jobs leave it out too. Appended
  incrementally: the table property ``hub.next_offsets`` holds where the last export stopped, so
  each export adds only new records, and records that retention removed from the log are never
  re-exported.
- ``views.<projection>__<table>``: the view's rows, PII columns NULL (the lake is outside the
  erasure path, so it never holds plaintext PII), replaced on each export (one Iceberg snapshot
  per export: time travel over exports comes with Iceberg).
Every table carries ``hub.ledger_size`` (the ledger's tree size at the export): which checkpoint
the data was cut at.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import pyarrow as pa

from core.errors import HubError
from core.ports.eventlog import EventLog, StoredRecord
from domain.envelope import duplicated_envelope_header

RAW_NS = "raw"
VIEWS_NS = "views"
NEXT_OFFSETS = "hub.next_offsets"
LEDGER_SIZE = "hub.ledger_size"
BATCH = 20_000

RAW_SCHEMA = pa.schema(
    [
        pa.field("partition", pa.int32(), nullable=False),
        pa.field("offset", pa.int64(), nullable=False),
        pa.field("timestamp", pa.timestamp("ms"), nullable=False),
        pa.field("key", pa.string()),
        pa.field("headers", pa.string()),
        pa.field("schema_id", pa.int32()),
        pa.field("value", pa.binary()),
        pa.field("value_json", pa.string()),
    ]
)


class LakeTampered(HubError):
    """A lake table contradicts the log or the ledger; the message names the first problem."""

    code = "lake_tampered"


def lake_tampered(table: str, text: str) -> LakeTampered:
    return LakeTampered(
        f"The lake table {table} does not match the log and the ledger: {text}. Restore the "
        "table from a backup, or drop it and export again (`hub lake export`), and find who "
        "changed the object store from its access log."
    )


@dataclass
class LakeReport:
    tables: dict[str, int] = field(default_factory=dict)  # table -> rows written
    warehouse: str = ""
    catalog: str = ""
    ledger_size: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "warehouse": self.warehouse,
            "catalog": self.catalog,
            "ledger_size": self.ledger_size,
            "tables": self.tables,
        }


def open_catalog(uri: str, warehouse: str, properties: Mapping[str, str] | None = None) -> Any:
    from pyiceberg.catalog.sql import SqlCatalog

    catalog = SqlCatalog("hub", uri=uri, warehouse=warehouse, **dict(properties or {}))
    for ns in (RAW_NS, VIEWS_NS):
        if (ns,) not in catalog.list_namespaces():
            catalog.create_namespace(ns)
    return catalog


def _table_name(name: str) -> str:
    return name.replace(".", "_").replace("-", "_")


def _raw_rows(
    records: Iterable[StoredRecord], decode: Callable[[StoredRecord], dict[str, Any]]
) -> pa.Table:
    cols: dict[str, list[Any]] = {f.name: [] for f in RAW_SCHEMA}
    for r in records:
        d = decode(r)
        headers = {k: v.decode("utf-8", "replace") for k, v in r.headers}
        twice = None
        if len(headers) != len(r.headers):
            twice = duplicated_envelope_header(r.headers)
            if twice is not None:  # no copy is written (domain.envelope)
                del headers[twice]
        cols["partition"].append(r.partition)
        cols["offset"].append(r.offset)
        cols["timestamp"].append(r.timestamp_ms)
        cols["key"].append(None if r.key is None else r.key.decode("utf-8", "replace"))
        cols["headers"].append(json.dumps(headers, sort_keys=True))
        cols["schema_id"].append(d.get("schema_id"))
        cols["value"].append(r.value)
        # a record with a repeated envelope header is quarantined by the views: no decoded
        # value, so the lake's jobs (projections/spark_job.py) leave it out as well
        value = None if twice is not None else d.get("value")
        cols["value_json"].append(None if value is None else json.dumps(value, default=str))
    return pa.table(cols, schema=RAW_SCHEMA)


def export_topic(
    catalog: Any,
    log: EventLog,
    topic: str,
    decode: Callable[[StoredRecord], dict[str, Any]],
    ledger_size: int | None,
) -> int:
    """Append the topic's records since the last export to ``raw.<topic>``; rows appended."""
    from pyiceberg.exceptions import NoSuchTableError

    ident = f"{RAW_NS}.{_table_name(topic)}"
    try:
        table = catalog.load_table(ident)
    except NoSuchTableError:
        table = catalog.create_table(ident, schema=RAW_SCHEMA)
    done = json.loads(table.properties.get(NEXT_OFFSETS, "{}"))
    starts = log.beginning_offsets(topic)
    ends = log.end_offsets(topic)
    check_position(table, ident, log, topic, done, starts, ends)
    written = 0
    batch: list[StoredRecord] = []
    for part, end in sorted(ends.items()):
        start = max(int(done.get(str(part), 0)), starts.get(part, 0))
        for r in log.scan(topic, part, start):
            batch.append(r)
            if len(batch) >= BATCH:
                table.append(_raw_rows(batch, decode))
                written += len(batch)
                batch = []
        done[str(part)] = end
    if batch:
        table.append(_raw_rows(batch, decode))
        written += len(batch)
    with table.transaction() as tx:
        tx.set_properties(
            {NEXT_OFFSETS: json.dumps(done, sort_keys=True), LEDGER_SIZE: str(ledger_size)}
        )
    return written


def check_position(
    table: Any,
    ident: str,
    log: EventLog,
    topic: str,
    done: Any,
    starts: Mapping[int, int],
    ends: Mapping[int, int],
) -> None:
    """Refuse to continue an export from a ``hub.next_offsets`` the log contradicts: it is
    read from a table property anyone with write access to the object store can edit, and a
    raised value makes the export skip records silently, a lowered one exports rows twice.
    Per partition: the position is a known partition's offset within the log; the lake holds
    no row at or past it; and the lake holds the log's last record below it (when the log still
    has one). Two filtered scans per partition, which the data files' offset bounds prune."""
    from pyiceberg.expressions import And, EqualTo, GreaterThanOrEqual

    if not isinstance(done, dict):
        raise lake_tampered(ident, f"its {NEXT_OFFSETS} property is not a JSON map")
    for key, value in sorted(done.items()):
        try:
            p, at = int(key), int(value)
        except (TypeError, ValueError) as exc:
            raise lake_tampered(
                ident, f"its {NEXT_OFFSETS} holds {key!r}: {value!r}, not partition: offset"
            ) from exc
        if p not in ends or not 0 <= at <= ends[p]:
            raise lake_tampered(
                ident,
                f"{NEXT_OFFSETS} says partition {p} was exported up to offset {at}, but the "
                f"log's partition ends at {ends.get(p)}: the property was edited",
            )
        part = EqualTo("partition", p)
        past = table.scan(
            row_filter=And(part, GreaterThanOrEqual("offset", at)),
            selected_fields=("offset",),
            limit=1,
        ).to_arrow()
        if past.num_rows:
            raise lake_tampered(
                ident,
                f"partition {p} offset {past.column(0)[0].as_py()} is in the lake, at or past "
                f"{NEXT_OFFSETS} ({at}): the property was lowered, the export would write "
                "rows again",
            )
        last = None
        for r in log.scan(topic, p, max(starts.get(p, 0), at - 64)):
            if r.offset >= at:
                break
            last = r.offset
        if last is None:
            continue  # nothing below the position is left in the log (or no window hit)
        hit = table.scan(
            row_filter=And(part, EqualTo("offset", last)), selected_fields=("offset",), limit=1
        ).to_arrow()
        if not hit.num_rows:
            raise lake_tampered(
                ident,
                f"{NEXT_OFFSETS} says partition {p} was exported up to offset {at}, but the "
                f"log's record at offset {last} is not in the lake: the property was raised "
                "(the export would skip records) or rows were deleted",
            )


def _arrow_type(col: Any) -> pa.DataType:
    if col.type == "int":
        return pa.int64()
    if col.type == "decimal":
        return pa.decimal128(38, col.scale)
    if col.type == "timestamp":
        return pa.timestamp("us")
    return pa.string()


def view_table(table: Any, rows: Sequence[Mapping[str, Any]]) -> pa.Table:
    """A view's rows as Arrow, PII columns NULL."""
    fields, cols = [], {}
    for c in table.columns:
        if c.agg == "derived":
            continue
        t = _arrow_type(c)
        fields.append(pa.field(c.name, t, nullable=True))
        values = [None if c.pii else r.get(c.name) for r in rows]
        if c.type == "decimal":
            values = [None if v is None else Decimal(str(v)) for v in values]
        cols[c.name] = values
    schema = pa.schema(fields)
    return pa.table(cols, schema=schema)


def export_view(
    catalog: Any,
    projection: str,
    table: Any,
    rows: Sequence[Mapping[str, Any]],
    ledger_size: int | None,
    *,
    written: Callable[[pa.Table], None] | None = None,
) -> int:
    """Replace ``views.<projection>__<table>`` with the view's rows; rows written. ``written``
    sees the Arrow table written (the export records its digest for ``hub lake verify``)."""
    from pyiceberg.exceptions import NoSuchTableError

    data = view_table(table, rows)
    if written is not None:
        written(data)
    ident = f"{VIEWS_NS}.{_table_name(projection)}__{_table_name(table.name)}"
    try:
        iceberg = catalog.load_table(ident)
    except NoSuchTableError:
        iceberg = catalog.create_table(ident, schema=data.schema)
    iceberg.overwrite(data)
    with iceberg.transaction() as tx:
        tx.set_properties({LEDGER_SIZE: str(ledger_size)})
    return int(data.num_rows)
