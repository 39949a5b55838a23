"""Debezium change events (Kafka Connect) through the ingest pipeline.

Debezium's PostgreSQL connector (``infra/connect.sh capture``) writes one Kafka record per row
change to ``<prefix>.<schema>.<table>``: key = the primary key, value = the change, both JSON
without embedded schemas (Connect's ``JsonConverter``, ``schemas.enable=false``)::

    {"op": "c"|"u"|"d"|"r", "before": {...}|null, "after": {...}|null,
     "source": {"lsn": 26378936, "txId": 734, "ts_us": ..., "schema": "public", "table": ...}}

JSON, not Avro: Debezium's Avro path needs Confluent's serializer jars (not on Maven Central),
and the hub checks every change against its own registered schema anyway; the JSON bytes are
what a rejected change keeps in quarantine.

Mapping (``change_record``): each change becomes one record of the hub topic's registered
schema, which declares ``before`` and ``after`` (nullable records of the row's columns) and may
declare any of ``op`` (c, u, d, or r for a snapshot read), ``lsn`` (long), ``tx_id`` (nullable
long), ``committed_at`` (timestamp, the transaction's commit time) and ``source_table``
(``schema.table``). The record key is the primary key (one column: its value; several: their
JSON); the envelope's occurred-at is the commit time. Column values arrive as Debezium encodes
them: numbers, strings, ``numeric`` as a decimal string (``decimal.handling.mode=string``),
``timestamptz`` as RFC 3339, ``timestamp`` as epoch microseconds, ``date`` as days: the Avro
JSON forms of the matching logical types. The schema's quality rules apply as to any record (paths
such as ``after/email``); a change that is not JSON, not a Debezium change, or fails a rule goes to
quarantine with its reason and its original bytes.

Exactly once, in two halves:
1. Kafka topic -> hub log: the source's position (the next Kafka offset of each partition) is
   stored in the same log transaction as each batch (``ingest.pipeline``), so a restarted source
   resumes after the last committed batch, never before, never after. Kafka's consumer-group
   offset is committed too, after the hub's commit, for lag tools only; it is never read back.
2. PostgreSQL -> Kafka topic: Connect resumes from its own stored offset (the last LSN it
   flushed), so a crash between its produce and its offset flush re-emits changes. Each change's
   event id is derived from (connector, table, LSN, op, key): a re-emitted change has the id of
   its first copy and is counted as a duplicate by the pipeline's event-id window (24 h).
A snapshot taken again (a new slot) reads rows at a new LSN: those are new events, by design.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from core import jsonkeys, lineage
from core.errors import ConfigError, Conflict, Retryable
from core.events import refuse_internal
from ingest.pipeline import IngestPipeline, IngestResult, RawRecord, tracked_pull

OPS = ("c", "u", "d", "r")
META_FIELDS = ("op", "lsn", "tx_id", "committed_at", "source_table")
# Event ids of changes: UUIDv5 in this namespace (uuid5(NAMESPACE_URL, "hub:debezium")).
ID_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "hub:debezium")


@dataclass(frozen=True)
class DebeziumSourceConfig:
    """One Debezium topic into one hub topic (``kind: debezium`` in ``hub connector run``).

    ``follow``: keep consuming (until stopped) instead of ending at the end offsets seen at the
    start. ``poll_s``: the longest wait for a batch to fill (the added latency in follow mode).
    """

    name: str
    source_topic: str
    topic: str
    bootstrap_servers: str = ""
    event_type: str | None = None
    batch_size: int = 500
    follow: bool = False
    poll_s: float = 0.2
    max_batches: int | None = None
    timeout_s: float = 30.0

    def __post_init__(self) -> None:
        refuse_internal(self.topic)  # before any Kafka client: hub.*, _* and flink.* are the hub's
        if not self.bootstrap_servers:
            raise ConfigError(
                f"Debezium source {self.name!r} has no Kafka bootstrap servers: set "
                "bootstrap_servers in its config or HUB_KAFKA_BOOTSTRAP_SERVERS."
            )
        if not 1 <= self.batch_size <= 100_000:
            raise ConfigError(
                f"Debezium source {self.name!r}: batch_size {self.batch_size} is out of range; "
                "use 1 to 100000."
            )
        if not 1 <= self.timeout_s <= 600:
            raise ConfigError(
                f"Debezium source {self.name!r}: timeout_s {self.timeout_s} is out of range; "
                "use 1 to 600 seconds."
            )
        if not 0 < self.poll_s <= 60:
            raise ConfigError(
                f"Debezium source {self.name!r}: poll_s {self.poll_s} must be above 0 and at "
                "most 60 seconds."
            )


def _rfc3339_us(micros: int) -> str:
    return datetime.fromtimestamp(micros / 1_000_000, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _bad(original: bytes, reason: str, position: Mapping[str, Any]) -> RawRecord:
    return RawRecord(
        original, error=reason, error_code="not_a_change_event", position=dict(position)
    )


def change_record(
    key: bytes | None,
    value: bytes | None,
    declared: frozenset[str],
    position: Mapping[str, Any],
    event_type: str | None = None,
) -> RawRecord | None:
    """The hub record of one Debezium change (see the module docstring); None for a tombstone.

    ``declared`` are the top-level field names of the target schema: of the metadata fields only
    those are filled. A value that is not a change event comes back as a record with an error
    (quarantined with its bytes), never as an exception.
    """
    if value is None:
        return None  # a tombstone (tombstones.on.delete=false avoids them): nothing to ingest
    what = "change"
    try:
        change = _strict_json(value)
        what = "record key"
        row_key = _row_key(key)
    except jsonkeys.DuplicateKey as exc:
        return RawRecord(
            value,
            error=f"The {what} is ambiguous JSON: {exc}.",
            error_code="duplicate_key",
            position=dict(position),
        )
    except RecursionError:
        return _bad(value, f"The {what} nests arrays or objects too deeply to read.", position)
    except (UnicodeDecodeError, ValueError) as exc:  # JSONDecodeError is a ValueError
        return _bad(
            value, f"The {what} is not JSON ({exc}); Connect must use JsonConverter.", position
        )
    if not isinstance(change, dict):
        return _bad(value, "The change is not a JSON object.", position)
    if "schema" in change and "payload" in change:
        return _bad(
            value,
            "The change carries an embedded schema (schema + payload): set "
            "value.converter.schemas.enable=false on the Connect worker.",
            position,
        )
    op, source = change.get("op"), change.get("source")
    if op not in OPS or not isinstance(source, dict):
        return _bad(
            value,
            f"The record is not a Debezium change event: op {op!r} (one of c, u, d, r) and a "
            "source block are required.",
            position,
        )
    before, after = change.get("before"), change.get("after")
    if not isinstance(before, dict | None) or not isinstance(after, dict | None):
        return _bad(value, "before and after must be objects or null.", position)
    if (op in ("c", "r") and after is None) or (op == "d" and before is None):
        return _bad(value, f"A change with op {op!r} has no row image to ingest.", position)
    lsn = source.get("lsn")
    if not isinstance(lsn, int) or isinstance(lsn, bool):
        return _bad(value, f"The change has no integer source.lsn (got {lsn!r}).", position)
    micros = source.get("ts_us")
    if not isinstance(micros, int) or isinstance(micros, bool):
        ms = source.get("ts_ms")
        micros = ms * 1000 if isinstance(ms, int) and not isinstance(ms, bool) else None
    try:
        committed_at = None if micros is None else _rfc3339_us(micros)
    except (ValueError, OverflowError, OSError):  # escaped: the source failed on every run
        return _bad(
            value, f"The change's commit time ({micros} us) is not a representable time.", position
        )
    table = f"{source.get('schema')}.{source.get('table')}"
    meta: dict[str, Any] = {
        "op": op,
        "lsn": lsn,
        "tx_id": source.get("txId"),
        "committed_at": committed_at,
        "source_table": table,
    }
    record = {k: v for k, v in meta.items() if k in declared}
    record["before"], record["after"] = before, after
    identity = f"{source.get('name')}:{source.get('db')}.{table}:{lsn}:{op}:{row_key}"
    return RawRecord(
        value,
        value=record,
        event_type=event_type,
        key=row_key,
        event_id=str(uuid.uuid5(ID_NAMESPACE, identity)),
        occurred_at=committed_at,
        position={**position, "lsn": lsn},
    )


def _strict_json(raw: bytes) -> Any:
    """``raw`` as JSON: a repeated member name raises ``DuplicateKey`` (``core.jsonkeys``: the
    original bytes are kept, so they must have one reading), ``NaN``/``Infinity`` are refused
    as in every other JSON entry point."""
    return json.loads(
        raw,
        parse_float=Decimal,
        parse_constant=_no_constant,
        object_pairs_hook=jsonkeys.unique_members,
    )


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _row_key(key: bytes | None) -> str | None:
    """The primary key: one column's value as text, several columns as canonical JSON.
    ``DuplicateKey`` when the key object names a column twice (which value is the key?)."""
    if key is None:
        return None
    try:
        parsed = _strict_json(key)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return key.decode("utf-8", "replace")
    if isinstance(parsed, dict) and len(parsed) == 1:
        (only,) = parsed.values()
        return str(only)
    return json.dumps(parsed, sort_keys=True, separators=(",", ":"))


class DebeziumSource:
    """Consumes a Debezium topic into a hub topic (see the module docstring)."""

    def __init__(
        self,
        pipeline: IngestPipeline,
        config: DebeziumSourceConfig,
        stop: threading.Event | None = None,
        on_batch: Callable[[IngestResult], None] | None = None,
        *,
        producer: str | None = None,
        tenant: str = "default",
    ) -> None:
        self.pipeline = pipeline
        self.config = config
        self.source = f"debezium:{config.name}"
        self.stop = stop or threading.Event()
        self.on_batch = on_batch
        # who runs the connector: its records are stamped with that key's id and tenant
        self.producer, self.tenant = producer, tenant

    def run(self) -> IngestResult:
        """Consume until the end offsets seen at the start (or, with ``follow``, until ``stop``
        is set); one lineage run. Returns the totals."""
        c = self.config
        return tracked_pull(
            self.pipeline,
            f"ingest.debezium.{c.name}",
            lineage.source_dataset(f"kafka://{c.bootstrap_servers}", table=c.source_topic),
            c.topic,
            self._pull,
            redact={},
        )

    def _declared(self) -> frozenset[str]:
        c = self.config
        target = self.pipeline.target(c.topic, c.event_type)
        schema = target.plain.parsed
        fields = schema.get("fields", []) if isinstance(schema, dict) else []
        names = frozenset(f["name"] for f in fields)
        missing = {"before", "after"} - names
        if missing:
            raise ConfigError(
                f"The schema of {target.subject} has no {' and no '.join(sorted(missing))} field: "
                "a Debezium source writes the row images there. Register a schema with nullable "
                f"record fields before and after (and any of {', '.join(META_FIELDS)})."
            )
        return names

    def _pull(self, total: IngestResult) -> None:
        from confluent_kafka import Consumer, KafkaException, TopicPartition

        c = self.config
        self.pipeline.log.topic(c.topic)  # raises TopicNotFound before anything is consumed
        declared = self._declared()
        consumer = Consumer(
            {
                "bootstrap.servers": c.bootstrap_servers,
                "group.id": f"hub-{c.name}",
                "enable.auto.commit": False,
                "enable.auto.offset.store": False,
                "auto.offset.reset": "earliest",
                "isolation.level": "read_committed",
                "fetch.wait.max.ms": 100,
                "log_level": 3,
            }
        )
        try:
            offsets, consumed = self._assign(consumer, TopicPartition)
            ends = (
                None
                if c.follow
                else {
                    p: consumer.get_watermark_offsets(
                        TopicPartition(c.source_topic, p), timeout=c.timeout_s
                    )[1]
                    for p in offsets
                }
            )
            batches = 0
            last_read = time.monotonic()
            while not self.stop.is_set():
                if c.max_batches is not None and batches >= c.max_batches:
                    break
                if ends is not None and all(offsets[p] >= ends[p] for p in offsets):
                    break
                messages = consumer.consume(c.batch_size, timeout=c.poll_s)
                if messages:
                    last_read = time.monotonic()
                elif ends is not None and time.monotonic() - last_read > c.timeout_s:
                    raise Retryable(
                        f"Reading {c.source_topic} stopped at offsets {offsets} before the end "
                        f"offsets {ends} seen at the start, for {c.timeout_s} s; what was "
                        "ingested is kept, and the source resumes there when run again."
                    )
                records: list[RawRecord] = []
                for m in messages:
                    if m.error() is not None:
                        raise Retryable(
                            f"Reading {c.source_topic} failed: {m.error()}; the source resumes "
                            "from its stored position when run again."
                        )
                    p, o = m.partition(), m.offset()
                    assert p is not None and o is not None  # set on every consumed message
                    if o < offsets.get(p, 0):
                        continue  # already ingested (a fetch overlapping a seek)
                    offsets[p] = o + 1
                    at = {"topic": c.source_topic, "partition": p, "offset": o}
                    rec = change_record(m.key(), m.value(), declared, at, c.event_type)
                    if rec is not None:
                        records.append(rec)
                if not messages:
                    continue
                consumed += len(messages)
                position = {"offsets": {str(p): o for p, o in sorted(offsets.items())}}
                result = self.pipeline.ingest(
                    c.topic,
                    records,
                    source=self.source,
                    producer=self.producer,
                    tenant=self.tenant,
                    position=position,
                    consumed=consumed,
                )
                total.add(result)
                batches += 1
                if self.on_batch is not None:
                    self.on_batch(result)
                consumer.commit(  # informational (lag tools): the hub's own position rules
                    offsets=[TopicPartition(c.source_topic, p, o) for p, o in offsets.items()],
                    asynchronous=True,
                )
        except KafkaException as exc:
            raise Retryable(
                f"Kafka failed while reading {c.source_topic} at {c.bootstrap_servers}: {exc}; "
                "run the source again once the broker answers."
            ) from exc
        finally:
            consumer.close()

    def _assign(self, consumer: Any, tp: Any) -> tuple[dict[int, int], int]:
        """Assign every partition of the source topic at the stored position (or its start)."""
        c = self.config
        md = consumer.list_topics(c.source_topic, timeout=c.timeout_s)
        meta = md.topics.get(c.source_topic)
        if meta is None or meta.error is not None or not meta.partitions:
            raise ConfigError(
                f"Kafka topic {c.source_topic!r} does not exist at {c.bootstrap_servers}: capture "
                "the table first (infra/connect.sh capture NAME SCHEMA.TABLE; topics are named "
                "NAME.SCHEMA.TABLE) and check source_topic."
            )
        last = self.pipeline.positions.get(self.source)
        stored: Mapping[str, Any] = {} if last is None else last.position.get("offsets", {})
        offsets = {p: int(stored.get(str(p), 0)) for p in sorted(meta.partitions)}
        for p, o in offsets.items():
            low, _ = consumer.get_watermark_offsets(tp(c.source_topic, p), timeout=c.timeout_s)
            if o < low:
                if last is not None:
                    raise Conflict(
                        f"Kafka topic {c.source_topic!r} partition {p} starts at offset {low}, "
                        f"after the stored position {o}: changes {o}..{low - 1} were deleted "
                        "before the hub read them. Re-snapshot the table (a new connector) and "
                        "ingest it as a new source.",
                        code="source_gap",
                    )
                offsets[p] = low
        consumer.assign([tp(c.source_topic, p, o) for p, o in offsets.items()])
        return offsets, 0 if last is None else last.records
