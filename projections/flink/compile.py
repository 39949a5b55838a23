"""Projection definitions compiled to Flink SQL: Kafka in, PostgreSQL (and result topics) out.

A compiled job (``JobSpec``) is data: Flink settings, the wire-format decoders and Python
functions to register, DDL statements, and the INSERTs that ``projections/flink/job.py`` runs as
one Flink job; ``combine`` makes several compiled jobs (projections, patterns) ONE job.

Layout of an aggregate view in PostgreSQL (the same shape as the ClickHouse views' partial rows,
``adapters/clickhouse_views.py``): Flink upserts one *partial* row per (view key, source topic,
source partition) into ``<table>__flink_p`` (timestamps as integer microseconds), carrying the
partition's ``src_first``/``src_last`` offsets and ``events`` count; the VIEW ``<table>`` merges
them per key and exposes ``src_offsets = [[topic, partition, first, last, count], ...]``
(``projections.flink.postgres``). Per-partition partials are what make the view provable and the
digest equal to the embedded runner's: both record the exact source ranges of every row.

Exactly once: Flink's aggregation state and the Kafka source positions are checkpointed
together; after a restart from a checkpoint the job re-emits the aggregates of the replayed
records as upserts by primary key, which overwrite (never add to) the rows already written. A
partial row holds the running total, not an increment, so replaying it twice writes it twice with
the same value.

Which projections compile: ``payment_aggregates`` (daily corridor volumes and AML aggregates),
``market_bars`` (OHLCV bars, tumbling and hopping windows), ``positions``, ``quotes`` and
``accounts`` (entity folds: the embedded runner's own key and fold functions run inside Flink as
Python functions; PII stays ciphertext, sealed, ``projections.flink.sealed``) and ``payments``
(status and daily limits as entity folds, the history as an append table in SQL).
Others raise ``Unsupported`` naming the ones that do. The embedded runner's ``late_mode="side"``
is refused too: a late side output needs per-partition watermarks (``core.projection.
WindowState``), which Flink SQL does not keep; with the default ``"update"`` a late event updates
its window in both engines, so they agree whatever the arrival order.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from core import tenant_mac
from core.errors import ConfigError
from core.projection import Column, Projection, Table, Windowing
from projections.flink import rowmac

DAY_US = 86_400_000_000
SRC_COLUMNS: tuple[tuple[str, str], ...] = (
    ("src_topic", "STRING"),
    ("src_partition", "BIGINT"),
    ("src_first", "BIGINT"),
    ("src_last", "BIGINT"),
)


class Unsupported(ConfigError):
    """The projection (or one of its settings) has no Flink compilation."""

    code = "flink_unsupported"


@dataclass(frozen=True, slots=True)
class FlinkPlacement:
    """Where a compiled job reads and writes.

    ``topic_prefix`` is the hub's Kafka namespace (``HUB_KAFKA_TOPIC_PREFIX``); ``pg_schema`` the
    PostgreSQL schema holding the job's tables and views. ``bounded`` jobs stop at the end offsets
    seen when they start (tests, backfills); others run until cancelled. ``checkpoint_dir`` turns
    on exactly-once checkpoints every ``checkpoint_interval_ms``; ``restore_from`` resumes from a
    retained checkpoint (a ``chk-N`` folder).
    """

    kafka_bootstrap: str
    registry_url: str
    jdbc_url: str  # jdbc:postgresql://host:port/database
    jdbc_user: str
    jdbc_password: str
    jars: tuple[str, ...]  # file:// URLs
    python: str  # the PyFlink virtualenv's interpreter (Python UDF workers)
    topic_prefix: str = ""
    pg_schema: str = "public"
    bounded: bool = False
    parallelism: int = 1
    checkpoint_dir: str | None = None
    checkpoint_interval_ms: int = 2_000
    restore_from: str | None = None
    extra_config: Mapping[str, str] = field(default_factory=dict)
    group: str | None = None  # one consumer group for every source (jobs combined into one)
    # analytics tables also go to result topics (``projections.flink.results``) for chDB
    result_topics: bool = False
    # topic (without the prefix) -> partition -> the offset below which its records may carry
    # tenant MACs under the hub's unbound key (a prefixed namespace's records of before session
    # 21: ``core.tenant_mac``, the namespace's marker ``KafkaEventLog.bind_namespace``)
    tenant_legacy: Mapping[str, Mapping[int, int]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class JobSpec:
    name: str
    config: dict[str, str]
    decoders: list[dict[str, Any]]
    statements: list[str]
    inserts: list[str]
    tables: tuple[Table, ...]  # the aggregate views the job writes (created by the caller)
    folds: list[dict[str, Any]] = field(default_factory=list)  # entity folds (Python UDAFs)
    keys: list[dict[str, Any]] = field(default_factory=list)  # entity keys (Python UDTFs)
    # ML feature views' functions (``ml.flink_features``)
    features: list[dict[str, Any]] = field(default_factory=list)
    # the job MACs its result rows (``projections.flink.rowmac``: its key in the environment)
    row_macs: bool = False
    # the namespaces (topic prefixes) of the Kafka sources whose tenants the job reads through
    # ``hub_tenant`` (``tenant``): their tenant MAC keys must be in its environment
    tenant_prefixes: tuple[str, ...] = ()
    # (SQL name, class) of the hub's JVM functions the job calls (``projections.flink.jvm``; the
    # jar is on ``pipeline.jars``): they read the same tenant MAC keys from the environment
    java_functions: tuple[tuple[str, str], ...] = ()

    def to_json(self) -> str:
        return json.dumps(
            {
                "name": self.name,
                "config": self.config,
                "decoders": self.decoders,
                "statements": self.statements,
                "inserts": self.inserts,
                "folds": self.folds,
                "keys": self.keys,
                "features": self.features,
                "row_macs": self.row_macs,
                "tenant_prefixes": list(self.tenant_prefixes),
                "java_functions": [list(f) for f in self.java_functions],
            },
            indent=1,
        )


_TEMPORARY = re.compile(r"^CREATE TEMPORARY (?:TABLE|VIEW) `((?:[^`]|``)+)`")


def combine(name: str, specs: Sequence[JobSpec]) -> JobSpec:
    """Several compiled jobs as ONE Flink job: one statement set, so one JVM, one job graph and
    one set of Python workers for all of them (a job's start-up, not its records, is what a
    small bounded run spends its time on). Every job keeps its own sources (and consumer
    group), sinks and functions; their temporary names are prefixed by projection or pattern
    name, and a name declared twice (or a setting given two different values) is refused."""
    if not specs:
        raise Unsupported("There is nothing to combine: name at least one projection or pattern.")
    config: dict[str, str] = {}
    for spec in specs:
        for key, value in spec.config.items():
            if key != "pipeline.name" and config.get(key, value) != value:
                raise Unsupported(
                    f"Jobs {', '.join(x.name for x in specs)} cannot run as one: they set "
                    f"{key!r} differently ({config[key]!r} and {value!r}); run them apart."
                )
            config[key] = value
    config["pipeline.name"] = f"hub projections {name}"
    declared: dict[str, tuple[str, str]] = {}  # temporary name -> (job, its statement)
    statements: list[str] = []
    for spec in specs:
        for st in spec.statements:
            m = _TEMPORARY.match(st)
            if m is None:
                statements.append(st)
                continue
            first = declared.setdefault(m.group(1), (spec.name, st))
            if first[1] == st and first[0] != spec.name:
                continue  # the same source table (same topic and group): one reader for both
            if first != (spec.name, st):
                raise Unsupported(
                    f"Jobs {first[0]!r} and {spec.name!r} both declare {m.group(1)!r} "
                    "differently; they cannot run as one Flink job (give them one consumer group "
                    "with FlinkPlacement.group, or run them apart)."
                )
            statements.append(st)
    functions: dict[str, str] = {}
    for spec in specs:
        for n in [d["function"] for d in [*spec.decoders, *spec.folds, *spec.keys, *spec.features]]:
            if functions.setdefault(n, spec.name) != spec.name:
                raise Unsupported(
                    f"Jobs {functions[n]!r} and {spec.name!r} both declare function {n!r}; they "
                    "cannot run as one Flink job (each projection and pattern may appear once)."
                )
    java: dict[str, str] = {}
    for spec in specs:
        for n, cls in spec.java_functions:
            if java.setdefault(n, cls) != cls:
                raise Unsupported(
                    f"Jobs {', '.join(x.name for x in specs)} cannot run as one: they declare "
                    f"the JVM function {n!r} as {java[n]!r} and {cls!r}; run them apart."
                )
    return JobSpec(
        name=name,
        config=config,
        decoders=[d for spec in specs for d in spec.decoders],
        statements=statements,
        inserts=[i for spec in specs for i in spec.inserts],
        tables=tuple(t for spec in specs for t in spec.tables),
        folds=[f for spec in specs for f in spec.folds],
        keys=[k for spec in specs for k in spec.keys],
        features=[f for spec in specs for f in spec.features],
        row_macs=any(spec.row_macs for spec in specs),
        tenant_prefixes=tuple(sorted({p for spec in specs for p in spec.tenant_prefixes})),
        java_functions=tuple(sorted(java.items())),
    )


def q(name: str) -> str:
    """A Flink SQL identifier, quoted (``day``, ``offset``, ``value`` are reserved there)."""
    return "`" + name.replace("`", "``") + "`"


def s(text: str) -> str:
    """A Flink SQL string literal."""
    return "'" + text.replace("'", "''") + "'"


def flink_type(c: Column) -> str:
    """The Flink SQL type of a partial-row column: timestamps travel as integer microseconds."""
    return {
        "string": "STRING",
        "int": "BIGINT",
        "timestamp": "BIGINT",
        "decimal": f"DECIMAL(38, {c.scale})",
    }[c.type]


RESULT_PREFIX = "flink."


def result_topic(t: Table) -> str:
    """The topic (without the hub's prefix) a Flink job writes ``t``'s partial rows to (here, not
    in ``results``, which imports this module: the sink's name and the loader's are one)."""
    return f"{RESULT_PREFIX}{t.name}"


def partial_columns(t: Table) -> list[tuple[str, str]]:
    """(name, Flink type) of ``<table>__flink_p``: the view's stored columns, then the source."""
    cols = [(c.name, flink_type(c)) for c in t.columns if c.agg != "derived"]
    if t.kind == "append":  # one row per event, keyed by its log position already
        return cols
    extra = [("src_events", "BIGINT")] if t.kind == "entity" else []
    return cols + list(SRC_COLUMNS) + extra


def partial_name(t: Table) -> str:
    return f"{t.name}__flink_p"


def _config(name: str, at: FlinkPlacement) -> dict[str, str]:
    config = {
        "pipeline.name": f"hub projection {name}",
        "pipeline.jars": ";".join(at.jars),
        "python.executable": at.python,
        "python.client.executable": at.python,
        "parallelism.default": str(at.parallelism),
        "table.exec.resource.default-parallelism": str(at.parallelism),
        # one Python worker per slot is plenty for a decode-only UDF
        "python.fn-execution.bundle.size": "1000",
        # the mini-cluster listens on loopback only
        "rest.bind-address": "127.0.0.1",
        "rest.address": "127.0.0.1",
        "jobmanager.bind-host": "127.0.0.1",
        "taskmanager.bind-host": "127.0.0.1",
        "taskmanager.host": "127.0.0.1",
    }
    if at.checkpoint_dir:
        config |= {
            "execution.checkpointing.interval": f"{at.checkpoint_interval_ms} ms",
            "execution.checkpointing.mode": "EXACTLY_ONCE",
            "execution.checkpointing.dir": at.checkpoint_dir,
            "execution.checkpointing.externalized-checkpoint-retention": ("RETAIN_ON_CANCELLATION"),
            "state.backend.type": "hashmap",
        }
    if at.restore_from:
        config["execution.state-recovery.path"] = at.restore_from
    config |= dict(at.extra_config)
    return config


# Kafka client timeouts of the sources: the defaults (60 s) gave up listing the topics' partitions
# on a machine whose two cores ran a load of 40 (seen: "Timed out waiting for a node assignment").
KAFKA_PATIENCE = {
    "properties.default.api.timeout.ms": "300000",
    "properties.request.timeout.ms": "120000",
}


def kafka_source(
    name: str, topic: str, group: str, at: FlinkPlacement, extra: Sequence[str] = ()
) -> str:
    """A Kafka topic of the hub as a Flink table: raw value, headers, partition and offset, then
    the ``extra`` column lines (computed columns, a watermark: ``projections.flink.cep``). The
    record's key and timestamp are there for its tenant MAC: read the tenant with ``tenant``."""
    options = {
        "connector": "kafka",
        "topic": at.topic_prefix + topic,
        "properties.bootstrap.servers": at.kafka_bootstrap,
        "properties.group.id": group,
        # the hub's Kafka log writes multi-partition batches in transactions
        "properties.isolation.level": "read_committed",
        # Always from the beginning: the view rows are totals, so a job without saved state
        # must see every event (a restored checkpoint overrides this with its own positions).
        # The group's committed offsets (on each checkpoint) only report progress and lag.
        "scan.startup.mode": "earliest-offset",
        "value.format": "raw",
        # the record key, raw, as the tenant MAC binds it (``tenant``)
        "key.format": "raw",
        "key.fields": "record_key",
        "value.fields-include": "EXCEPT_KEY",
        **KAFKA_PATIENCE,
    }
    if at.bounded:
        options["scan.bounded.mode"] = "latest-offset"
    columns = [
        f"{q('record_key')} BYTES",
        f"{q('value')} BYTES",
        f"{q('headers')} MAP<STRING, BYTES> METADATA FROM 'headers' VIRTUAL",
        f"{q('src_ts')} TIMESTAMP_LTZ(3) METADATA FROM 'timestamp' VIRTUAL",
        f"{q('src_partition')} INT METADATA FROM 'partition' VIRTUAL",
        f"{q('src_offset')} BIGINT METADATA FROM 'offset' VIRTUAL",
        *extra,
    ]
    body = ",\n".join(f"  {c}" for c in columns)
    return f"CREATE TEMPORARY TABLE {q(name)} (\n{body}\n) WITH (\n{_options(options)}\n)"


def tenant(topic: str, at: FlinkPlacement, alias: str = "") -> str:
    """The SQL of a ``kafka_source`` row's tenant: its ``ce_tenant`` header only when the hub's
    tenant MAC on it verifies, else ``'default'`` (``core.tenant_mac.tenant_of``; what the hub's
    own reader does with a data record whose record MAC fails). ``topic`` without the prefix;
    the prefix names the hub whose key checks it. Its JobSpec lists ``at.topic_prefix`` in
    ``tenant_prefixes``."""
    return f"{q(tenant_mac.FUNCTION)}({tenant_args(topic, at, alias)})"


def tenant_args(topic: str, at: FlinkPlacement, alias: str = "") -> str:
    """The arguments of the jobs' tenant functions (``hub_tenant``, ``hub_tenant_ok``): the
    source row's headers, key, value, partition, timestamp, then the topic (without the prefix),
    the prefix, the row's offset and the topic's legacy offsets (``core.tenant_mac.legacy_text``
    of ``at.tenant_legacy``: below them a record may carry a tenant MAC under the hub's unbound
    key)."""
    e = f"{alias}." if alias else ""
    cols = ("headers", "record_key", "value", "src_partition", "src_ts")
    legacy = tenant_mac.legacy_text(at.tenant_legacy.get(topic, {})) if at.topic_prefix else ""
    tail = [s(topic), s(at.topic_prefix), e + q("src_offset"), s(legacy)]
    return ", ".join([*(e + q(c) for c in cols), *tail])


def jdbc_options(at: FlinkPlacement, table: str) -> dict[str, str]:
    """The JDBC connector's options for ``table`` of the placement's PostgreSQL schema."""
    return {
        "connector": "jdbc",
        "url": at.jdbc_url,
        "table-name": f"{at.pg_schema}.{table}",
        "username": at.jdbc_user,
        "password": at.jdbc_password,
        "sink.buffer-flush.interval": "1s",
    }


def upsert_kafka_options(at: FlinkPlacement, topic: str) -> dict[str, str]:
    """The ``upsert-kafka`` connector's options for a result topic (JSON key and value)."""
    return {
        "connector": "upsert-kafka",
        "topic": at.topic_prefix + topic,
        "properties.bootstrap.servers": at.kafka_bootstrap,
        "key.format": "json",
        "value.format": "json",
    }


def jdbc_sink(t: Table, at: FlinkPlacement) -> str:
    """The partial-row table of ``t`` as an upserting JDBC sink (primary key: view key + source)."""
    cols = partial_columns(t)
    key = list(t.key) if t.kind == "append" else [*t.key, "src_topic", "src_partition"]
    options = {
        **jdbc_options(at, partial_name(t)),
        "sink.buffer-flush.max-rows": "5000",
        "sink.max-retries": "5",
    }
    body = ",\n".join(f"  {q(n)} {ty}" for n, ty in cols)
    return (
        f"CREATE TEMPORARY TABLE {q(partial_name(t) + '__sink')} (\n{body},\n"
        f"  PRIMARY KEY ({', '.join(q(k) for k in key)}) NOT ENFORCED\n"
        f") WITH (\n{_options(options)}\n)"
    )


def _options(options: Mapping[str, str]) -> str:
    return ",\n".join(f"  {s(k)} = {s(v)}" for k, v in options.items())


def aggregate_insert(t: Table, source: str, topic: str, exprs: Mapping[str, str]) -> str:
    """INSERT partial rows of ``t``: grouped by its key columns and the source partition.

    ``exprs`` maps every stored column of ``t`` to its SQL over ``source`` (a key column to a
    plain expression, a value column to an aggregate)."""
    cols = [c for c in t.columns if c.agg != "derived"]
    missing = [c.name for c in cols if c.name not in exprs]
    if missing:
        raise Unsupported(f"Table {t.name!r} has no Flink expression for {', '.join(missing)}.")
    select = [f"CAST({exprs[c.name]} AS {flink_type(c)}) AS {q(c.name)}" for c in cols]
    select += [
        f"CAST({s(topic)} AS STRING) AS {q('src_topic')}",
        f"CAST({q('src_partition')} AS BIGINT) AS {q('src_partition')}",
        f"MIN({q('src_offset')}) AS {q('src_first')}",
        f"MAX({q('src_offset')}) AS {q('src_last')}",
    ]
    group = [exprs[k] for k in t.key] + [q("src_partition")]
    return (
        f"INSERT INTO {q(partial_name(t) + '__sink')}\nSELECT\n  "
        + ",\n  ".join(select)
        + f"\nFROM {q(source)}\nGROUP BY {', '.join(group)}"
    )


def _literal(value: Decimal) -> str:
    scale = max(0, -int(value.as_tuple().exponent))
    return f"CAST({s(format(value, 'f'))} AS DECIMAL(38, {scale}))"


# -- per projection ------------------------------------------------------------------------------
def _decoder(
    name: str, at: FlinkPlacement, fields: list[tuple[str, str]]
) -> tuple[dict[str, Any], str]:
    """A job's decoder of ``fields`` (a ``JobSpec.decoders`` entry, its table function named
    ``<name>__decode``) and the column list of its ``LATERAL TABLE`` alias (``record`` first)."""
    function = f"{name}__decode"
    decoder: dict[str, Any] = {
        "function": function,
        "registry_url": at.registry_url,
        "fields": fields,
    }
    return decoder, ", ".join(q(n) for n in ["record", *(f for f, _ in fields)])


def _payment_aggregates(p: Projection, at: FlinkPlacement, group: str) -> JobSpec:
    """``projections.folds.fold_payment_aggregates`` in Flink SQL: PaymentInitiated events into
    daily volumes per corridor and daily AML aggregates per account (near-threshold counts)."""
    threshold = Decimal(str(p.params.get("aml_threshold", "10000")))
    floor = threshold * (1 - Decimal(str(p.params.get("aml_band", "0.1"))))
    topic = p.topics[0]
    fields = [
        ("account_id", "STRING"),
        ("amount", "STRING"),
        ("currency", "STRING"),
        ("counterparty_country", "STRING"),
        ("initiated_at", "BIGINT"),
    ]
    decoder, names = _decoder(p.name, at, fields)
    function = decoder["function"]
    source, events = f"{topic}__source", f"{p.name}__initiated"
    day = q("initiated_at")
    view = (
        f"CREATE TEMPORARY VIEW {q(events)} AS\n"
        "SELECT * FROM (\n"
        "  SELECT\n"
        f"    {tenant(topic, at, 'e')} AS {q('tenant')},\n"
        f"    COALESCE(CAST(e.{q('headers')}['ce_type'] AS STRING), d.{q('record')}) AS "
        f"{q('event_type')},\n"
        f"    e.{q('src_partition')}, e.{q('src_offset')},\n"
        f"    d.{q('account_id')}, d.{q('currency')}, d.{q('counterparty_country')},\n"
        f"    CAST(d.{q('amount')} AS DECIMAL(38, 18)) AS {q('amount')},\n"
        f"    d.{day} - MOD(MOD(d.{day}, {DAY_US}) + {DAY_US}, {DAY_US}) AS {q('day')}\n"
        f"  FROM {q(source)} AS e,\n"
        f"    LATERAL TABLE({q(function)}(e.{q('value')})) AS d({names})\n"
        ")\n"
        f"WHERE {q('event_type')} = 'hub.payments.PaymentInitiated'"
    )
    near = f"{q('amount')} >= {_literal(floor)} AND {q('amount')} < {_literal(threshold)}"
    volumes, aml = p.table("payment_volumes_1d"), p.table("aml_daily")
    inserts = [
        aggregate_insert(
            volumes,
            events,
            topic,
            {
                "tenant": q("tenant"),
                "day": q("day"),
                "currency": q("currency"),
                "country": q("counterparty_country"),
                "events": "COUNT(*)",
                "amount": f"SUM({q('amount')})",
            },
        ),
        aggregate_insert(
            aml,
            events,
            topic,
            {
                "tenant": q("tenant"),
                "account_id": q("account_id"),
                "day": q("day"),
                "currency": q("currency"),
                "events": "COUNT(*)",
                "amount": f"SUM({q('amount')})",
                "near_threshold": f"SUM(CASE WHEN {near} THEN 1 ELSE 0 END)",
                "near_threshold_amount": (
                    f"SUM(CASE WHEN {near} THEN {q('amount')} ELSE CAST(0 AS DECIMAL(38, 18)) END)"
                ),
            },
        ),
    ]
    return JobSpec(
        name=p.name,
        config=_config(p.name, at),
        decoders=[decoder],
        statements=[
            kafka_source(source, topic, group, at),
            jdbc_sink(volumes, at),
            jdbc_sink(aml, at),
            view,
        ],
        inserts=inserts,
        tables=(volumes, aml),
        tenant_prefixes=(at.topic_prefix,),
    )


def _sort_key(ts: str, offset: str, value: str) -> str:
    """A string whose MIN/MAX within one source partition is the row first/last by (event time,
    offset), carrying ``value`` after 40 fixed-width digits (event times are after 1970)."""
    return (
        f"LPAD(CAST({ts} AS STRING), 20, '0') || LPAD(CAST({offset} AS STRING), 20, '0')"
        f" || CAST({value} AS STRING)"
    )


def _market_bars(p: Projection, at: FlinkPlacement, group: str) -> JobSpec:
    """``projections.folds.fold_bars`` in Flink SQL: trades into OHLCV bars per tenant,
    instrument, currency and window, for every window of ``folds.BAR_WINDOWS`` (tumbling when
    size = hop, hopping otherwise: one row per window holding the trade, from an UNNEST of the
    hop numbers). Open/close are the prices of the first/last trade by (executed_at, log
    position): MIN/MAX of a fixed-width sort key carrying the price, per source partition; the
    PostgreSQL view picks across partitions by (first_at, first_pos) like ClickHouse's argMin.
    Late events update their windows (``late_mode="update"``), as in the embedded runner."""
    from projections.folds import BAR_WINDOWS

    topic = p.topics[0]
    fields = [
        ("instrument", "STRING"),
        ("currency", "STRING"),
        ("price", "STRING"),
        ("quantity", "STRING"),
        ("executed_at", "BIGINT"),
    ]
    decoder, names = _decoder(p.name, at, fields)
    function = decoder["function"]
    source, trades = f"{topic}__source", f"{p.name}__trades"
    statements = [kafka_source(source, topic, group, at)]
    hops = max(size // hop for _, size, hop in BAR_WINDOWS)
    statements.append(
        f"CREATE TEMPORARY VIEW {q(trades)} AS\n"
        "SELECT * FROM (\n"
        "  SELECT\n"
        f"    {tenant(topic, at, 'e')} AS {q('tenant')},\n"
        f"    COALESCE(CAST(e.{q('headers')}['ce_type'] AS STRING), d.{q('record')}) AS "
        f"{q('event_type')},\n"
        f"    e.{q('src_partition')}, e.{q('src_offset')},\n"
        f"    d.{q('instrument')}, d.{q('currency')}, d.{q('executed_at')} AS {q('ts')},\n"
        f"    d.{q('price')} AS {q('price_text')},\n"
        f"    CAST(d.{q('price')} AS DECIMAL(18, 8)) AS {q('price')},\n"
        f"    CAST(d.{q('quantity')} AS DECIMAL(18, 4)) AS {q('qty')},\n"
        f"    ARRAY[{', '.join(str(i) for i in range(hops))}] AS {q('hops')}\n"
        f"  FROM {q(source)} AS e,\n"
        f"    LATERAL TABLE({q(function)}(e.{q('value')})) AS d({names})\n"
        ")\n"
        f"WHERE {q('event_type')} = 'hub.trading.TradeExecuted'"
    )
    tables, inserts = [], []
    for name, size, hop in BAR_WINDOWS:
        t = p.table(name)
        windowed = f"{p.name}__{name}__in"
        ts = q("ts")
        statements.append(
            f"CREATE TEMPORARY VIEW {q(windowed)} AS\n"
            f"SELECT t.*, {ts} - MOD({ts}, {hop}) - h.{q('i')} * {hop} AS {q('window_start')}\n"
            f"FROM {q(trades)} AS t CROSS JOIN UNNEST(t.{q('hops')}) AS h({q('i')})\n"
            f"WHERE h.{q('i')} < {size // hop}"
        )
        first = _sort_key(ts, q("src_offset"), q("price_text"))
        pos = f"CAST({q('src_partition')} AS BIGINT) * {1 << 40}"
        exprs = {
            "tenant": q("tenant"),
            "instrument": q("instrument"),
            "currency": q("currency"),
            "window_start": q("window_start"),
            "window_end": f"MAX({q('window_start')}) + {size}",
            "open": f"CAST(SUBSTR(MIN({first}), 41) AS DECIMAL(18, 8))",
            "high": f"MAX({q('price')})",
            "low": f"MIN({q('price')})",
            "close": f"CAST(SUBSTR(MAX({first}), 41) AS DECIMAL(18, 8))",
            "volume": f"SUM({q('qty')})",
            "notional": f"SUM({q('price')} * {q('qty')})",
            "events": "COUNT(*)",
            "first_at": f"MIN({ts})",
            "first_pos": f"{pos} + CAST(SUBSTR(MIN({first}), 21, 20) AS BIGINT)",
            "last_at": f"MAX({ts})",
            "last_pos": f"{pos} + CAST(SUBSTR(MAX({first}), 21, 20) AS BIGINT)",
        }
        statements.append(jdbc_sink(t, at))
        inserts.append(aggregate_insert(t, windowed, topic, exprs))
        tables.append(t)
    return JobSpec(
        name=p.name,
        config=_config(p.name, at),
        decoders=[decoder],
        statements=statements,
        inserts=inserts,
        tables=tuple(tables),
        tenant_prefixes=(at.topic_prefix,),
    )


def _entities(p: Projection, at: FlinkPlacement, group: str) -> JobSpec:
    """Entity projections (``Projection.entities``): each rule's own Python key function and
    fold (the embedded runner's functions, imported by the job) as a Flink table function
    (the key columns of each event) and an aggregate function, grouped by the key and the
    source partition. A key whose events all live in one partition (the topic's partition key
    is part of the entity key, e.g. trades keyed by account_id) gets one partial row, folded in
    log order like the embedded runner; a table whose key spans partitions MUST fold additively
    and name its merge (``SPANNING``), e.g. daily limits per account
    on payments keyed by payment. A projection's append fold compiles when ``APPEND`` has it."""
    if len(p.topics) != 1 or (p.fold is not None and p.name not in APPEND):
        raise Unsupported(
            f"Projection {p.name!r} mixes folds or topics; only one topic of entities compiles."
        )
    topic = p.topics[0]
    source = f"{topic}__source"
    statements = [kafka_source(source, topic, group, at)]
    events = f"{p.name}__events"
    statements.append(
        f"CREATE TEMPORARY VIEW {q(events)} AS\n"
        "SELECT\n"
        f"  {tenant(topic, at)} AS {q('tenant')},\n"
        f"  COALESCE(CAST({q('headers')}['ce_type'] AS STRING), '') AS {q('event_type')},\n"
        f"  CAST({q('src_partition')} AS BIGINT) AS {q('src_partition')}, {q('src_offset')},"
        f" {q('value')}\n"
        f"FROM {q(source)}"
    )
    keys, folds, inserts, tables = [], [], [], []
    for rule in p.entities:
        t = p.table(rule.table)
        by_name = {c.name: c for c in t.columns}
        decode, fold = f"{t.name}__key", f"{t.name}__fold"
        keys.append(
            {
                "function": decode,
                "key": f"{rule.key.__module__}:{rule.key.__name__}",
                "registry_url": at.registry_url,
                "topic": topic,
                "event_types": list(rule.event_types),
                "columns": [(k, flink_type(by_name[k])) for k in t.key],
            }
        )
        cols = [c for c in t.columns if c.agg != "derived" and c.name not in t.key]
        folds.append(
            {
                "function": fold,
                "fold": f"{rule.fold.__module__}:{rule.fold.__name__}",
                "registry_url": at.registry_url,
                "topic": topic,
                "event_types": list(rule.event_types),
                "columns": [(c.name, flink_type(c)) for c in cols],
                "params": {k: str(v) for k, v in p.params.items()},
            }
        )
        key = [q(k) for k in t.key]
        keyed = (
            f"SELECT {', '.join(f'k.{x}' for x in key)}, e.{q('tenant')} AS {q('ev_tenant')}, "
            f"e.{q('event_type')}, e.{q('src_partition')}, e.{q('src_offset')}, e.{q('value')}\n"
            f"FROM {q(events)} AS e, LATERAL TABLE({q(decode)}(e.{q('value')}, e.{q('tenant')},"
            f" e.{q('event_type')}, e.{q('src_partition')}, e.{q('src_offset')}))"
            f" AS k({', '.join(key)})"
        )
        folded = (
            f"SELECT {', '.join(key)}, {q('src_partition')}, {q(fold)}({q('value')}, "
            f"{q('ev_tenant')}, {q('event_type')}, {q('src_partition')}, {q('src_offset')}) AS r\n"
            f"FROM ({keyed})\nGROUP BY {', '.join(key)}, {q('src_partition')}"
        )
        select = [f"f.{k}" for k in key]
        select += [f"f.r.{q(c.name)}" for c in cols]
        select += [
            f"CAST({s(topic)} AS STRING)",
            f"f.{q('src_partition')}",
            f"f.r.{q('src_first')}",
            f"f.r.{q('src_last')}",
            f"f.r.{q('src_events')}",
        ]
        statements.append(jdbc_sink(t, at))
        inserts.append(
            f"INSERT INTO {q(partial_name(t) + '__sink')}\nSELECT "
            + ", ".join(select)
            + f"\nFROM ({folded}) AS f"
        )
        tables.append(t)
        if t.name not in SPANNING and topic_key(topic) not in t.key:
            raise Unsupported(
                f"Table {t.name!r} is keyed by {', '.join(t.key)}, but topic {topic!r} is "
                f"partitioned by {topic_key(topic)!r}: a key may span partitions, and its events "
                "would fold out of log order. Run it on the embedded engine."
            )
    if p.fold is not None:
        extra = APPEND[p.name](p, at, events)
        statements += extra.statements
        inserts += extra.inserts
        tables += extra.tables
        decoders = extra.decoders
    else:
        decoders = []
    return JobSpec(
        name=p.name,
        config=_config(p.name, at),
        decoders=decoders,
        statements=statements,
        inserts=inserts,
        tables=tuple(tables),
        tenant_prefixes=(at.topic_prefix,),
        folds=folds,
        keys=keys,
    )


# Entity tables whose key spans source partitions (their fold is additive): how each column of
# the per-partition partial rows merges into the view row (SQL over the partial rows).
SPANNING: dict[str, dict[str, str]] = {
    "payment_limits": {
        "used": "sum(used)",
        "payments": "sum(payments)::bigint",
        "daily_limit": "max(daily_limit)",
        "breached": "CASE WHEN sum(used) > max(daily_limit) THEN 1 ELSE 0 END::bigint",
    },
}


def topic_key(topic: str) -> str:
    """The value field a hub topic is partitioned by (``domain.catalog``)."""
    from domain.catalog import TOPICS

    for spec in TOPICS:
        if spec.name == topic:
            return spec.key_field
    return ""


def _payment_history(p: Projection, at: FlinkPlacement, events: str) -> JobSpec:
    """``folds.fold_payment_history`` in Flink SQL: one row per payment event (an append table,
    keyed by its log position), the status it set and that status' own time."""
    t = p.table("payment_history")
    times = {"INITIATED": "initiated_at", "SETTLED": "settled_at", "FAILED": "failed_at"}
    fields = [("payment_id", "STRING")] + [(f, "BIGINT") for f in times.values()]
    decoder, names = _decoder(t.name, at, fields)
    function = decoder["function"]
    status = "CASE e." + q("event_type")
    at_ = "CASE e." + q("event_type")
    for name, field_ in times.items():
        event_type = f"hub.payments.Payment{name.title()}"
        status += f" WHEN {s(event_type)} THEN {s(name)}"
        at_ += f" WHEN {s(event_type)} THEN d.{q(field_)}"
    status += " END"
    at_ += " END"
    kinds = ", ".join(s(f"hub.payments.Payment{n.title()}") for n in times)
    insert = (
        f"INSERT INTO {q(partial_name(t) + '__sink')}\n"
        f"SELECT CAST({s(p.topics[0])} AS STRING), e.{q('src_partition')}, e.{q('src_offset')},"
        f" e.{q('tenant')}, d.{q('payment_id')}, CAST({status} AS STRING), {at_}\n"
        f"FROM {q(events)} AS e, LATERAL TABLE({q(function)}(e.{q('value')})) AS d({names})\n"
        f"WHERE e.{q('event_type')} IN ({kinds})"
    )
    return JobSpec(
        name=t.name,
        config={},
        decoders=[decoder],
        statements=[jdbc_sink(t, at)],
        inserts=[insert],
        tables=(t,),
    )


# append folds of entity projections that compile to Flink SQL (by projection)
APPEND: dict[str, Callable[[Projection, FlinkPlacement, str], JobSpec]] = {
    "payments": _payment_history,
}


COMPILERS: dict[str, Callable[[Projection, FlinkPlacement, str], JobSpec]] = {
    "accounts": _entities,
    "payments": _entities,
    "positions": _entities,
    "quotes": _entities,
    "payment_aggregates": _payment_aggregates,
    "market_bars": _market_bars,
}


def group_id(p: Projection) -> str:
    """The Kafka consumer group whose committed offsets are the Flink job's positions."""
    return f"projection.flink.{p.name}"


def compile_projection(
    p: Projection, at: FlinkPlacement, windowing: Windowing | None = None
) -> JobSpec:
    """The Flink job of ``p``, or ``Unsupported`` saying which projections compile."""
    compiler = COMPILERS.get(p.name)
    if compiler is None:
        raise Unsupported(
            f"Projection {p.name!r} has no Flink compilation yet; run it on the embedded engine "
            f"(HUB_PROJECTION_ENGINE=embedded). Flink runs: {', '.join(sorted(COMPILERS))}."
        )
    if windowing is not None and windowing.late_mode != "update":
        raise Unsupported(
            f"Projection {p.name!r} with late_mode={windowing.late_mode!r} cannot run on Flink: "
            "the late side output needs per-partition watermarks that Flink SQL does not keep. "
            "Use late_mode='update' (late events update their window) or the embedded engine."
        )
    spec = compiler(p, at, at.group or group_id(p))
    if at.result_topics and p.store == "analytics":
        spec = _with_result_topics(spec, at)
    return spec


def result_sink(t: Table, at: FlinkPlacement) -> str:
    """The partial-row table of ``t`` as an ``upsert-kafka`` result topic (JSON key and value,
    decimals as plain numbers): what ``projections.flink.results.ResultLoader`` loads."""
    cols = partial_columns(t)
    key = [*t.key, "src_topic", "src_partition"]
    options = {
        **upsert_kafka_options(at, result_topic(t)),
        "value.json.encode.decimal-as-plain-number": "true",
        "sink.buffer-flush.interval": "1s",
        "sink.buffer-flush.max-rows": "5000",
        **{k: v for k, v in KAFKA_PATIENCE.items() if k != "properties.default.api.timeout.ms"},
    }
    body = ",\n".join(f"  {q(n)} {ty}" for n, ty in [*cols, (rowmac.COLUMN, "STRING")])
    return (
        f"CREATE TEMPORARY TABLE {q(partial_name(t) + '__topic')} (\n{body},\n"
        f"  PRIMARY KEY ({', '.join(q(k) for k in key)}) NOT ENFORCED\n"
        f") WITH (\n{_options(options)}\n)"
    )


def _with_result_topics(spec: JobSpec, at: FlinkPlacement) -> JobSpec:
    """``spec`` writing each table's partial rows to its result topic too (the same SELECT:
    Flink plans the statement set's shared subplans once)."""
    statements, inserts = list(spec.statements), list(spec.inserts)
    for t in spec.tables:
        target = f"INSERT INTO {q(partial_name(t) + '__sink')}"
        mine = [i for i in spec.inserts if i.startswith(target)]
        if not mine:
            continue
        statements.append(result_sink(t, at))
        topic = f"INSERT INTO {q(partial_name(t) + '__topic')}"
        inserts += [
            topic + "\n" + with_row_mac(t.name, partial_columns(t), i[len(target) :]) for i in mine
        ]
    return dataclasses.replace(spec, statements=statements, inserts=inserts, row_macs=True)


def with_row_mac(name: str, columns: Sequence[tuple[str, str]], query: str) -> str:
    """``query``'s rows with the column ``row_mac`` appended: the job's MAC over ``name`` and the
    row's values (``projections.flink.rowmac``), so that the hub loads only rows its own job
    wrote (a producer to ``flink.*`` without the key cannot make one)."""
    names = [q(n) for n, _ in columns]  # the query's columns renamed: its own may be derived
    args = ", ".join([s(name), *(f"r.{n}" for n in names)])
    return (
        f"SELECT r.*, {q(rowmac.FUNCTION)}({args}) AS {q(rowmac.COLUMN)}\n"
        f"FROM ({query}\n) AS r({', '.join(names)})"
    )
