"""Event patterns (``projections.patterns``) compiled to Flink SQL ``MATCH_RECOGNIZE`` jobs.

One job per pattern: Kafka in (values decoded by the same Python table function as the
projection jobs), alert rows out to PostgreSQL through the JDBC connector, upserted by the
alert's key (``projections.patterns.alert_key``), so a replay after a restart rewrites the same
rows. The SQL is generated from the definition (threshold, band, count, window, lateness), never
written per pattern by hand.

Event time: the envelope's ``ce_time`` header, parsed in the source table's DDL into a
``TIMESTAMP_LTZ(3)`` column with a bounded-out-of-orderness watermark of the pattern's
``max_delay_ms`` (a watermark can only be declared on a source table, and the Avro value is
decoded after the source, so the header is the event time both engines read). The session time
zone is UTC, so ``UNIX_TIMESTAMP`` reads the header's UTC wall clock as written.

Idle partitions: the watermark is the smallest over the source's partitions, and a partition
with no records holds it at its minimum, so an unbounded job whose records all land on one
partition (records without a key go to partition 0) would never emit a match. Unbounded jobs
therefore set ``table.exec.source.idle-timeout`` (``IDLE_TIMEOUT``): a partition that delivered
nothing for that long stops holding the watermark back. Bounded jobs do not need it (a finished
partition releases the watermark at the end of the input) and do not set it, so their results
do not depend on processing time. The embedded engine (``projections.pattern_state``, contract
6) applies the same rule with the same timeout (``IDLE_TIMEOUT_MS``): partitions that never held
a record do not count at all, and a partition that held records and had nothing to read for the
timeout stops holding the watermark back, so its later records behind the watermark are late in
both engines. (The embedded detector decides idleness at the start of each pass, once a second
while serving; Flink on its watermark interval.)

Unauthenticated records (``tests/adversarial/test_s18_unverified_records_move_pattern_time``):
a record whose tenant claim is not the hub's (its tenant MAC fails or is absent: a broker
producer's forgery, a plain producer's record) must not move the event time, or one such record
dated ahead on each partition makes every genuine event after it late (no alert). So the source
table's rowtime is the ``ce_time`` only where the JVM function ``hub_tenant_ok``
(``projections.flink.jvm``, the twin of ``core.tenant_mac.verified_tenant``) accepts the record,
else the epoch (never ahead of any watermark), and ``_decoded`` drops those rows before the
pattern. A JVM function because a Python one in the rowtime column stops Flink pushing the
watermark into the Kafka source (FLINK-22984), which turns per-partition watermarks into
per-subtask ones (contract 1 of ``projections.pattern_state``). The embedded engine skips the
same records (``projections.pattern_batch.claimed``): plain producers' records no longer count
for any pattern, not even tenant ``default``'s (their events are unauthenticated).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from core.errors import ConfigError
from projections.flink.compile import (
    FlinkPlacement,
    JobSpec,
    _config,
    _options,
    jdbc_options,
    kafka_source,
    q,
    s,
    tenant,
    tenant_args,
)
from projections.flink.jvm import TENANT_OK, TENANT_OK_CLASS
from projections.pattern_state import IDLE_TIMEOUT_MS
from projections.patterns import (
    PAYMENT_INITIATED,
    QUOTE_PUBLISHED,
    TRADE_EXECUTED,
    Pattern,
    PriceSpike,
    Structuring,
)

MONEY = "DECIMAL(18, 2)"  # payment amounts (PaymentInitiated.amount)
PRICE = "DECIMAL(18, 8)"  # prices (TradeExecuted.price, QuotePublished.ask)
OUT = "DECIMAL(38, 8)"

# (column, Flink type, PostgreSQL type) of each pattern's alert rows, key columns first
ALERT_COLUMNS: dict[str, tuple[tuple[str, str, str], ...]] = {
    "structuring": (
        ("tenant", "STRING", "text"),
        ("account_id", "STRING", "text"),
        ("first_partition", "BIGINT", "bigint"),
        ("first_offset", "BIGINT", "bigint"),
        ("last_offset", "BIGINT", "bigint"),
        ("first_at", "BIGINT", "bigint"),
        ("last_at", "BIGINT", "bigint"),
        ("payments", "BIGINT", "bigint"),
        ("amount", OUT, "numeric(38, 8)"),
    ),
    "price_spike": (
        ("instrument", "STRING", "text"),
        ("trade_partition", "BIGINT", "bigint"),
        ("trade_offset", "BIGINT", "bigint"),
        ("tenant", "STRING", "text"),
        ("trade_id", "STRING", "text"),
        ("quote_at", "BIGINT", "bigint"),
        ("trade_at", "BIGINT", "bigint"),
        ("ask", OUT, "numeric(38, 8)"),
        ("price", OUT, "numeric(38, 8)"),
    ),
}


def kind(p: Pattern) -> str:
    return "structuring" if isinstance(p, Structuring) else "price_spike"


def key_columns(p: Pattern) -> tuple[str, ...]:
    return (
        ("tenant", "account_id", "first_partition", "first_offset")
        if isinstance(p, Structuring)
        else ("instrument", "trade_partition", "trade_offset")
    )


def alert_table(p: Pattern) -> str:
    """The PostgreSQL table (and Flink sink) of the pattern's alert rows."""
    name = f"{p.name}__alerts"
    if not name.replace("_", "").isalnum() or not name.islower():
        raise ConfigError(
            f"Pattern name {p.name!r} is not usable as a table name: use lower-case letters, "
            "digits and underscores."
        )
    return name


def interval(ms: int) -> str:
    """A Flink SQL day-to-second interval literal of ``ms`` milliseconds."""
    days, rest = divmod(ms, 86_400_000)
    hours, rest = divmod(rest, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    seconds, millis = divmod(rest, 1000)
    return (
        f"INTERVAL '{days} {hours:02d}:{minutes:02d}:{seconds:02d}.{millis:03d}' DAY TO SECOND(3)"
    )


# Processing time after which a partition with no records stops holding the watermark back (see
# the module's docstring): above the checkpoint interval (2 s) and the fetch stalls of a loaded
# two-core machine, so a partition that is merely slow is not taken for idle (its records would
# turn late), and short enough that a match shows within seconds. ``extra_config`` overrides it
# (the embedded detector keeps ``IDLE_TIMEOUT_MS``).
IDLE_TIMEOUT = f"{IDLE_TIMEOUT_MS // 1000} s"


def pattern_config(name: str, at: FlinkPlacement) -> dict[str, str]:
    """The job settings of a pattern: the projections' (``_config``), UTC, and on unbounded jobs
    the source idle timeout (unless ``at.extra_config`` sets its own)."""
    config = _config(name, at) | {"table.local-time-zone": "UTC"}
    if not at.bounded:
        config.setdefault("table.exec.source.idle-timeout", IDLE_TIMEOUT)
    return config


def _dec(value: Decimal, type_: str = "DECIMAL(38, 10)") -> str:
    return f"CAST({s(format(value, 'f'))} AS {type_})"


def tenant_ok(topic: str, at: FlinkPlacement, alias: str = "") -> str:
    """The SQL of whether a ``kafka_source`` row's tenant claim is the hub's (``hub_tenant_ok``,
    under the key of the namespace ``at.topic_prefix``). ``topic`` without the prefix."""
    return f"{q(TENANT_OK)}({tenant_args(topic, at, alias)})"


def timed_source(name: str, topic: str, group: str, at: FlinkPlacement, max_delay_ms: int) -> str:
    """A Kafka topic as a Flink table with event time from ``ce_time`` and a watermark; a row
    whose tenant claim is not the hub's is timed at the epoch (it cannot move the watermark),
    and a row dated ahead of its append time moves it at most ``max_delay_ms`` past that time
    (contract 5 of ``projections.pattern_state``: a tenant's publisher dating one payment years
    ahead on each partition would otherwise make every later event of every tenant late)."""
    header = f"CAST({q('headers')}['ce_time'] AS STRING)"
    millis = (
        f"UNIX_TIMESTAMP(REPLACE(SUBSTR({header}, 1, 19), 'T', ' ')) * 1000"
        f" + CAST(SUBSTR({header}, 21, 3) AS BIGINT)"
    )
    timed = [
        f"{q('ts_ms')} AS {millis}",
        f"{q('ts')} AS TO_TIMESTAMP_LTZ(CASE WHEN {tenant_ok(topic, at)} THEN {millis} ELSE 0 END"
        ", 3)",
        # contract 5 of projections.pattern_state: an event time moves the watermark at most
        # max_delay_ms past its record's append time (``src_ts``; the hub stamps it)
        f"WATERMARK FOR {q('ts')} AS LEAST({q('ts')}, {q('src_ts')} + {interval(max_delay_ms)})"
        f" - {interval(max_delay_ms)}",
    ]
    return kafka_source(name, topic, group, at, timed)


def alert_sink(p: Pattern, at: FlinkPlacement) -> str:
    cols = ALERT_COLUMNS[kind(p)]
    options = {**jdbc_options(at, alert_table(p)), "sink.max-retries": "5"}
    body = ",\n".join(f"  {q(n)} {t}" for n, t, _ in cols)
    return (
        f"CREATE TEMPORARY TABLE {q(alert_table(p) + '__sink')} (\n{body},\n"
        f"  PRIMARY KEY ({', '.join(q(k) for k in key_columns(p))}) NOT ENFORCED\n"
        f") WITH (\n{_options(options)}\n)"
    )


def alert_ddl(schema: str, p: Pattern) -> list[str]:
    """PostgreSQL statements creating the pattern's alert table in ``schema``."""
    cols = ALERT_COLUMNS[kind(p)]
    body = ", ".join(f"{n} {pg} NOT NULL" for n, _, pg in cols)
    key = ", ".join(key_columns(p))
    return [
        f"CREATE SCHEMA IF NOT EXISTS {schema}",
        f"CREATE TABLE IF NOT EXISTS {schema}.{alert_table(p)} ({body}, PRIMARY KEY ({key}))",
    ]


def _decoded(
    source: str,
    topic: str,
    at: FlinkPlacement,
    function: str,
    fields: list[str],
    event_type: str,
    select: list[str],
) -> str:
    """SELECT over ``source`` (a ``timed_source`` of ``topic``) joined with its decoder, kept to
    ``event_type`` and to the rows whose tenant claim is the hub's (``tenant_ok``: the others
    carry no event time). Their tenant is still read through ``compile.tenant``, as every job
    reads it (no job reads ``ce_tenant`` unchecked: an auditor checks one function)."""
    names = ", ".join(q(n) for n in ["record", *fields])
    return (
        "SELECT * FROM (\n  SELECT\n"
        f"    {tenant(topic, at, 'e')} AS {q('tenant')},\n"
        f"    COALESCE(CAST(e.{q('headers')}['ce_type'] AS STRING), d.{q('record')}) AS "
        f"{q('event_type')},\n"
        f"    CAST(e.{q('src_partition')} AS BIGINT) AS {q('src_partition')},"
        f" e.{q('src_offset')}, e.{q('ts_ms')}, e.{q('ts')},\n    "
        + ",\n    ".join(select)
        + f"\n  FROM {q(source)} AS e,\n"
        f"    LATERAL TABLE({q(function)}(e.{q('value')})) AS d({names})\n"
        f"  WHERE {tenant_ok(topic, at, 'e')}\n"
        f") WHERE {q('event_type')} = {s(event_type)}"
    )


def _decoder(function: str, at: FlinkPlacement, fields: list[str]) -> dict[str, Any]:
    return {
        "function": function,
        "registry_url": at.registry_url,
        "fields": [(f, "STRING") for f in fields],
    }


def _structuring(p: Structuring, at: FlinkPlacement, group: str) -> JobSpec:
    source, function, near = f"{p.name}__payments", f"{p.name}__decode", f"{p.name}__near"
    fields = ["account_id", "amount"]
    amount = f"CAST(d.{q('amount')} AS {MONEY}) AS {q('amount')}"
    view = (
        f"CREATE TEMPORARY VIEW {q(near)} AS\nSELECT * FROM (\n"
        + _decoded(
            source,
            p.topic,
            at,
            function,
            fields,
            PAYMENT_INITIATED,
            [f"d.{q('account_id')}", amount],
        )
        + f"\n) WHERE {q('amount')} >= {_dec(p.floor)} AND {q('amount')} < {_dec(p.threshold)}"
    )
    insert = (
        f"INSERT INTO {q(alert_table(p) + '__sink')}\n"
        f"SELECT {', '.join(q(n) for n, _, _ in ALERT_COLUMNS['structuring'])}\n"
        f"FROM {q(near)}\nMATCH_RECOGNIZE (\n"
        f"  PARTITION BY {q('tenant')}, {q('account_id')}\n"
        f"  ORDER BY {q('ts')}, {q('src_partition')}, {q('src_offset')}\n"
        "  MEASURES\n"
        f"    FIRST(S.{q('src_partition')}) AS {q('first_partition')},\n"
        f"    FIRST(S.{q('src_offset')}) AS {q('first_offset')},\n"
        f"    E.{q('src_offset')} AS {q('last_offset')},\n"
        f"    FIRST(S.{q('ts_ms')}) AS {q('first_at')},\n"
        f"    E.{q('ts_ms')} AS {q('last_at')},\n"
        f"    CAST(COUNT(S.{q('src_offset')}) + 1 AS BIGINT) AS {q('payments')},\n"
        f"    CAST(SUM(S.{q('amount')}) + E.{q('amount')} AS {OUT}) AS {q('amount')}\n"
        "  ONE ROW PER MATCH\n"
        "  AFTER MATCH SKIP PAST LAST ROW\n"
        f"  PATTERN (S{{{p.count - 1}}} E) WITHIN {interval(p.within_ms)}\n"
        "  DEFINE\n"
        f"    S AS S.{q('amount')} < {_dec(p.threshold)},\n"
        f"    E AS E.{q('amount')} < {_dec(p.threshold)}\n"
        ")"
    )
    return JobSpec(
        name=p.name,
        config=pattern_config(p.name, at),
        decoders=[_decoder(function, at, fields)],
        statements=[
            timed_source(source, p.topic, group, at, p.max_delay_ms),
            alert_sink(p, at),
            view,
        ],
        inserts=[insert],
        tables=(),
        tenant_prefixes=(at.topic_prefix,),
        java_functions=((TENANT_OK, TENANT_OK_CLASS),),
    )


def _price_spike(p: PriceSpike, at: FlinkPlacement, group: str) -> JobSpec:
    quotes, trades = f"{p.name}__quotes", f"{p.name}__trades"
    decode_q, decode_t = f"{p.name}__decode_quote", f"{p.name}__decode_trade"
    market = f"{p.name}__market"
    q_fields, t_fields = ["instrument", "ask"], ["instrument", "price", "trade_id"]
    view = (
        f"CREATE TEMPORARY VIEW {q(market)} AS\n"
        + _decoded(
            quotes,
            p.quotes_topic,
            at,
            decode_q,
            q_fields,
            QUOTE_PUBLISHED,
            [
                f"d.{q('instrument')}",
                f"0 AS {q('kind_rank')}",
                f"CAST(d.{q('ask')} AS {PRICE}) AS {q('price')}",
                f"CAST('' AS STRING) AS {q('trade_id')}",
            ],
        )
        + "\nUNION ALL\n"
        + _decoded(
            trades,
            p.trades_topic,
            at,
            decode_t,
            t_fields,
            TRADE_EXECUTED,
            [
                f"d.{q('instrument')}",
                f"1 AS {q('kind_rank')}",
                f"CAST(d.{q('price')} AS {PRICE}) AS {q('price')}",
                f"d.{q('trade_id')}",
            ],
        )
    )
    factor = _dec(100 + p.pct, "DECIMAL(18, 8)")
    insert = (
        f"INSERT INTO {q(alert_table(p) + '__sink')}\n"
        f"SELECT {', '.join(q(n) for n, _, _ in ALERT_COLUMNS['price_spike'])}\n"
        f"FROM {q(market)}\nMATCH_RECOGNIZE (\n"
        f"  PARTITION BY {q('instrument')}\n"
        f"  ORDER BY {q('ts')}, {q('kind_rank')}, {q('src_partition')}, {q('src_offset')}\n"
        "  MEASURES\n"
        f"    T.{q('src_partition')} AS {q('trade_partition')},\n"
        f"    T.{q('src_offset')} AS {q('trade_offset')},\n"
        f"    T.{q('tenant')} AS {q('tenant')},\n"
        f"    T.{q('trade_id')} AS {q('trade_id')},\n"
        f"    Q.{q('ts_ms')} AS {q('quote_at')},\n"
        f"    T.{q('ts_ms')} AS {q('trade_at')},\n"
        f"    CAST(Q.{q('price')} AS {OUT}) AS {q('ask')},\n"
        f"    CAST(T.{q('price')} AS {OUT}) AS {q('price')}\n"
        "  ONE ROW PER MATCH\n"
        "  AFTER MATCH SKIP PAST LAST ROW\n"
        f"  PATTERN (Q O*? T) WITHIN {interval(p.within_ms)}\n"
        "  DEFINE\n"
        f"    Q AS Q.{q('kind_rank')} = 0,\n"
        f"    O AS O.{q('kind_rank')} = 1,\n"
        f"    T AS T.{q('kind_rank')} = 1 AND T.{q('price')} * 100 > Q.{q('price')} * {factor}\n"
        ")"
    )
    return JobSpec(
        name=p.name,
        config=pattern_config(p.name, at),
        decoders=[_decoder(decode_q, at, q_fields), _decoder(decode_t, at, t_fields)],
        statements=[
            timed_source(quotes, p.quotes_topic, group, at, p.max_delay_ms),
            timed_source(trades, p.trades_topic, group, at, p.max_delay_ms),
            alert_sink(p, at),
            view,
        ],
        inserts=[insert],
        tables=(),
        tenant_prefixes=(at.topic_prefix,),
        java_functions=((TENANT_OK, TENANT_OK_CLASS),),
    )


def group_id(p: Pattern) -> str:
    return f"pattern.flink.{p.name}"


def compile_pattern(p: Pattern, at: FlinkPlacement) -> JobSpec:
    """The Flink ``MATCH_RECOGNIZE`` job of pattern ``p``."""
    if isinstance(p, Structuring):
        return _structuring(p, at, at.group or group_id(p))
    return _price_spike(p, at, at.group or group_id(p))
