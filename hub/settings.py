"""The hub's one settings object: typed, frozen, read once by the composition root.

Sources, highest precedence first: explicit keyword arguments, environment variables with the
``HUB_`` prefix (``HUB_DATA_DIR``, ``HUB_EVENT_LOG`` ...), a YAML file named by ``HUB_CONFIG_FILE``
(or passed to ``load_settings``), then the defaults below. Nothing outside this module reads
the environment (the CLI's options name their ``HUB_*`` variables through click).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from core.errors import ConfigError, InvalidInput
from core.yamlkeys import load_unique

DEFAULT_DECISION_WALL_MS = 30_000  # HUB_POLICY_DECISION_WALL_MS unless the bound is larger

EventLogKind = Literal["sqlite", "kafka"]
Compatibility = Literal[
    "NONE",
    "BACKWARD",
    "BACKWARD_TRANSITIVE",
    "FORWARD",
    "FORWARD_TRANSITIVE",
    "FULL",
    "FULL_TRANSITIVE",
]


class Settings(BaseSettings):
    """Every knob of the hub. Frozen: build a new one to change anything."""

    model_config = SettingsConfigDict(env_prefix="HUB_", frozen=True, extra="forbid")

    data_dir: Path = Field(
        default=Path(".hub"), description="Folder for the embedded log, keys and views."
    )
    event_log: EventLogKind = Field(default="sqlite", description="Which EventLog adapter runs.")
    sqlite_synchronous: Literal["FULL", "NORMAL", "OFF"] = Field(
        default="FULL", description="SQLite durability: FULL fsyncs each acknowledged append."
    )
    log_seal_v1: bool = Field(
        default=False,
        description="Seal an embedded log of schema version 1 (written before the log MAC) as "
        "found when it opens (trust on first use, once). Off: such a log is refused, since "
        "removing the MAC columns needs no key and sealing would authenticate any edit.",
    )
    kafka_bootstrap_servers: str = Field(
        default="127.0.0.1:19092",
        description="Kafka brokers when event_log is kafka (infra/kafka.sh serves 19092).",
    )
    kafka_topic_prefix: str = Field(
        default="",
        pattern=r"^[a-zA-Z0-9._-]*$",
        description="Namespace on a shared Kafka cluster: prefixed to every topic name (and "
        "transactional id) on the wire, e.g. 'team1.'; empty for none.",
    )
    kafka_replication_factor: int = Field(
        default=1,
        ge=1,
        le=16,
        description="Replicas of each topic the hub creates (3 on a three-broker cluster, with "
        "min.insync.replicas=2: infra/kafka-cluster.sh).",
    )
    kafka_transaction_timeout_s: float | None = Field(
        default=None,
        ge=1,
        le=900,
        description="Kafka's transaction.timeout.ms of the hub's transactions (not the atomic "
        "appends', 10 s): how long one may stay open before the coordinator aborts it. Unset: "
        "120 s (max(60 s, twice the 60 s delivery timeout)). Verify names a partition held "
        "back behind another producer's open transaction once a hub record has waited the "
        "longer of the two plus 5 s.",
    )

    http_host: str = Field(default="127.0.0.1")
    http_port: int = Field(default=8080, ge=1, le=65535)

    default_partitions: int = Field(default=3, ge=1, le=1024)
    max_record_bytes: int = Field(
        default=1_048_576, ge=1024, description="Largest single record value accepted."
    )
    # The Parquet decoder processes (ingest.parquet_pool): pyarrow runs in children of the hub.
    parquet_decoders: int = Field(
        default=2, ge=1, le=8, description="Most Parquet decoder processes at once (reused)."
    )
    parquet_decode_seconds: float = Field(
        default=60.0,
        gt=0,
        description="Seconds the hub waits on its decoder for any one Parquet file, plus "
        "HUB_PARQUET_DECODE_SECONDS_PER_MIB per MiB of the file; past it the decoder is killed "
        "and the file refused (the records already published stay).",
    )
    parquet_decode_seconds_per_mib: float = Field(
        default=2.0, ge=0, description="Seconds added to a Parquet file's bound per MiB of it."
    )
    parquet_decoder_memory_mib: int = Field(
        default=2048,
        ge=256,
        description="Data segment of each Parquet decoder process (RLIMIT_DATA, MiB); a file "
        "needing more is refused naming the cap.",
    )
    parquet_decoder_max_files: int = Field(
        default=1000,
        ge=1,
        description="Files a Parquet decoder process serves before it is replaced by a fresh one.",
    )
    max_request_bytes: int = Field(
        default=32 * 1_048_576, ge=1024, description="Largest HTTP request body accepted."
    )
    max_request_header_bytes: int = Field(
        default=65_536,
        ge=8192,
        description="Most bytes of a request's line and headers (hub serve); past it the "
        "request is answered 431 headers_too_large and the connection closed.",
    )
    request_head_timeout_s: float = Field(
        default=20.0,
        gt=0,
        description="Seconds from a request's first byte to the end of its headers (hub "
        "serve); past it the answer is 408 head_timeout and the connection is closed.",
    )
    max_connections: int = Field(
        default=1000,
        ge=0,
        description="Most connections hub serve holds open at once (0: no bound); one past it "
        "is answered 503 too_many_connections and closed.",
    )
    max_connections_per_client: int = Field(
        default=100,
        ge=0,
        description="Most connections hub serve holds open from one client address (0: no "
        "bound; behind a reverse proxy every client has its address: raise it or set 0 there); "
        "one past it is answered 429 too_many_connections_from_client and closed.",
    )
    request_body_timeout_s: float = Field(
        default=30.0,
        gt=0,
        description="Seconds a request body may take to arrive, plus one second per "
        "HUB_REQUEST_BODY_MIN_RATE bytes received (Apache mod_reqtimeout's rule): a body "
        "later than that is answered 408 body_timeout and the connection closed. Only time "
        "spent waiting for the client counts.",
    )
    request_body_min_rate: int = Field(
        default=16_384,
        ge=1,
        description="Bytes per second of a request body that extend HUB_REQUEST_BODY_TIMEOUT_S "
        "(a 32 MiB body may take 30 s + 2048 s at the default).",
    )
    max_request_bytes_in_flight: int = Field(
        default=256 * 1_048_576,
        ge=1024,
        description="Most bytes of HTTP request bodies held at once, over all requests. A body "
        "that would pass it is answered 503 with Retry-After before it is read; a body alone is "
        "always admitted (up to HUB_MAX_REQUEST_BYTES).",
    )
    query_max_memory_bytes: int = Field(
        default=1 << 30,
        ge=16 * 1_048_576,
        description="Most memory one query over the views may use (chDB, ClickHouse: its "
        "max_memory_usage; SQLite, PostgreSQL: its result's values); a query needing more is "
        "stopped with 422 query_memory_limit.",
    )
    # Analyst queries (core.sqlguard_limits): queries share the views' engine (on chDB a query
    # past 0.25 s runs in one of two reader processes); these keep one key or tenant from
    # holding it, by count, by queries at once and by query-seconds.
    query_max_running_per_principal: int = Field(
        default=1, ge=1, description="Most queries over the views one principal may run at once."
    )
    query_max_running_per_tenant: int = Field(
        default=2,
        ge=1,
        description="Most queries over the views one tenant's principals may run at once.",
    )
    query_rate_per_principal: float = Field(
        default=60.0, gt=0, description="Queries a minute refilled into a principal's bucket."
    )
    query_burst_per_principal: int = Field(
        default=30, ge=1, description="Most queries a principal may send at once (its bucket)."
    )
    query_rate_per_tenant: float = Field(
        default=300.0, gt=0, description="Queries a minute refilled into a tenant's bucket."
    )
    query_burst_per_tenant: int = Field(
        default=100, ge=1, description="Most queries a tenant's principals may send at once."
    )
    query_seconds_per_principal: float = Field(
        default=30.0,
        gt=0,
        description="Query-seconds a minute refilled into a principal's budget (each query's "
        "run time is charged when it ends; a spent budget refuses with 429 query_seconds).",
    )
    query_seconds_burst_per_principal: float = Field(
        default=60.0, gt=0, description="Most query-seconds a principal's budget holds."
    )
    query_seconds_per_tenant: float = Field(
        default=60.0,
        gt=0,
        description="Query-seconds a minute refilled into a tenant's budget, shared by its "
        "principals (429 query_tenant_seconds when spent).",
    )
    query_seconds_burst_per_tenant: float = Field(
        default=120.0, gt=0, description="Most query-seconds a tenant's budget holds."
    )
    # Per-tenant limits (core.tenant_quota), 0: off. One tenant's keys share them, over every
    # ingest source (HTTP, files, connectors); a refusal names its setting.
    ingest_records_per_s_per_tenant: float = Field(
        default=0.0,
        ge=0,
        description="Records a second refilled into a tenant's ingest bucket (0: no limit); a "
        "batch past it is refused whole, 429 tenant_rate_limited with Retry-After.",
    )
    ingest_records_burst_per_tenant: float = Field(
        default=0.0,
        ge=0,
        description="Most records a tenant's ingest bucket holds (0: one second's refill).",
    )
    ingest_bytes_per_s_per_tenant: float = Field(
        default=0.0,
        ge=0,
        description="Bytes stored (accepted and quarantined values) a second refilled into a "
        "tenant's ingest bucket (0: no limit); 429 tenant_rate_limited past it.",
    )
    ingest_bytes_burst_per_tenant: float = Field(
        default=0.0,
        ge=0,
        description="Most bytes a tenant's ingest bucket holds (0: one second's refill).",
    )
    quarantine_max_bytes_per_tenant: int = Field(
        default=0,
        ge=0,
        description="Most bytes of quarantine entries one tenant may hold (0: no limit); a batch "
        "whose rejects would pass it is refused whole, 507 tenant_quarantine_full.",
    )
    stored_max_bytes_per_tenant: int = Field(
        default=0,
        ge=0,
        description="Most bytes of stored values (accepted records on the external topics and "
        "quarantine entries) one tenant may hold (0: no limit); counted from the log at start, "
        "so retention's cuts lower it at the next start; a batch that would pass it is refused "
        "whole, 507 tenant_storage_full.",
    )
    registry_max_subjects_per_tenant: int = Field(
        default=0,
        ge=0,
        description="Most registry subjects one tenant may own (0: no limit; -plain companions "
        "not counted); 507 tenant_subjects_full past it.",
    )
    registry_tail_watch_s: float = Field(
        default=1.0,
        ge=0,
        le=60,
        description="Most seconds a write's lookup of a subject's latest schema may lag a "
        "registration by ANOTHER process (this process's own are seen at once): within it the "
        "lookup skips the broker round trip while the log's watcher of _schemas learnt of "
        "nothing new (usually one round trip after a commit); 0: every lookup asks the broker.",
    )
    registry_max_versions_per_tenant: int = Field(
        default=0,
        ge=0,
        description="Most schema versions (deleted ones included) over one tenant's subjects "
        "(0: no limit; -plain companions not counted); 507 tenant_versions_full past it.",
    )
    dedupe_max_keys: int = Field(
        default=1_000_000,
        ge=2,
        description="Ingest dedupe: most event ids / natural keys remembered per topic and scope.",
    )
    dedupe_event_id_window_s: int = Field(
        default=86_400, ge=1, description="Ingest dedupe: how long event ids are remembered."
    )
    registry_compatibility: Compatibility = Field(
        default="BACKWARD", description="Global default compatibility level of the registry."
    )
    registry_strict_logical_types: bool = Field(
        default=False,
        description="Registry compatibility also compares logical types (decimal precision and "
        "scale, date/timestamp units) and refuses promotions that can round a number (int or "
        "long to float, long to double); off by default, as in Confluent's registry (Avro Java).",
    )
    # Projections (issue 6).
    views_analytics: Literal["chdb", "clickhouse"] = Field(
        default="chdb", description="Analytics view store: chDB in-process or a ClickHouse server."
    )
    views_clickhouse_url: str = Field(default="", description="clickhouse-connect DSN.")
    views_sql_url: str = Field(
        default="", description="Transactional views (SQLAlchemy URL); default SQLite in data_dir."
    )
    projection_batch_records: int = Field(default=20_000, ge=1, le=1_000_000)
    projection_allowed_lateness_s: float = Field(
        default=60.0, ge=0, description="Event-time lateness allowed before a window closes."
    )
    projection_late_mode: Literal["update", "side"] = Field(
        default="update", description="Late events update their window, or go to <name>_late."
    )
    core_dumps: bool = Field(
        default=False,
        description="Let a crashed hub process write a core file (and other processes of its "
        "user read its memory). Off: every process that builds a hub forbids both (its memory "
        "holds the master key, the data keys, the log MAC key and PII). Only to debug a crash "
        "on a machine without real keys.",
    )
    projection_autostart: bool = Field(
        default=True, description="hub serve follows every projection in the background."
    )
    projection_follow: str = Field(
        default="",
        pattern=r"^[a-z0-9_,]*$",
        description="Comma-separated projections hub serve follows (default: all); the others "
        "are built elsewhere (e.g. Flink) or on demand.",
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] | None = Field(
        default=None,
        description="Lowest level logged (HUB_LOG_LEVEL); unset: INFO for `hub serve`, WARNING "
        "for the other commands.",
    )
    # Projections on Apache Flink (issue 17; projections/flink, infra/flink.sh).
    projection_engine: Literal["embedded", "flink"] = Field(
        default="embedded",
        description="Who runs `hub projection run`: the hub's own runner, or Flink jobs reading "
        "the Kafka topics into PostgreSQL (needs event_log=kafka and a PostgreSQL views_sql_url).",
    )
    allowed_hosts: str = Field(
        default="",
        description="Comma-separated Host names the HTTP server answers for (a port is "
        "ignored; '*.example.com' for any subdomain; '[::1]' for an IPv6 address). Empty: "
        "off, any Host. On, any other Host (or none) is answered 400 host_not_allowed.",
    )
    api_docs: bool = Field(
        default=False,
        description="Serve GET /docs (Swagger UI, its assets from cdn.jsdelivr.net, pinned with "
        "integrity hashes). Off by default: the page runs third-party script in the hub's origin; "
        "GET /openapi.json serves the same document.",
    )
    pattern_alerts: bool = Field(
        default=True,
        description="hub serve detects the event patterns (AML structuring, price spike) with "
        "the embedded engine and raises hub.AlertFired (on the Flink engine, Flink's CEP job).",
    )
    flink_python: Path = Field(
        default_factory=lambda: Path.home() / ".cache/hub/flink-venv/bin/python",
        description="The PyFlink virtualenv's interpreter (`infra/flink.sh python`).",
    )
    flink_jars_dir: Path = Field(
        default_factory=lambda: Path.home() / ".cache/hub/flink-jars",
        description="The connector jars (`infra/flink.sh setup` fetches them).",
    )
    flink_registry_url: str = Field(
        default="",
        description="Schema Registry URL the Flink jobs decode with; default the hub's own API "
        "(http://<http_host>:<http_port>, so `hub serve` must run).",
    )
    flink_pg_schema: str = Field(
        default="public", description="PostgreSQL schema of the Flink views."
    )
    flink_checkpoint_interval_ms: int = Field(default=5_000, ge=100, le=3_600_000)
    flink_parallelism: int = Field(default=1, ge=1, le=64)
    # Apache Spark for batch jobs (issues 14, 17; infra/spark.sh, ml/spark_*, projections/spark_*).
    spark_python: Path = Field(
        default_factory=lambda: Path.home() / ".cache/hub/spark-venv/bin/python",
        description="The PySpark virtualenv's interpreter (`infra/spark.sh python`).",
    )
    spark_master: str = Field(
        default="local[2]",
        pattern=r"^local\[([1-9][0-9]?|\*)\]$",
        description="Where Spark jobs run: local[N] in the job's own process.",
    )
    # The console's alerts (hub.console.alerts): rules evaluated every N seconds while serving.
    alert_interval_s: float = Field(
        default=30.0, ge=0, description="Evaluate alert rules every N s (0: never)."
    )
    alert_webhook_url: str | None = Field(
        default=None, description="POST alert firings and resolutions here (HMAC-signed)."
    )
    alert_webhook_secret_file: Path | None = Field(
        default=None, description="File holding the webhook's HMAC-SHA256 key."
    )
    alert_smtp_host: str | None = Field(
        default=None, description="Send alert e-mail through this SMTP server (unset: no mail)."
    )
    alert_smtp_port: int = Field(default=25, ge=1, le=65_535)
    alert_email_from: str = Field(default="hub-alerts@localhost", max_length=320)
    alert_email_to: str | None = Field(
        default=None, description="Comma-separated recipients of alert e-mail."
    )
    session_store: str = Field(
        default="memory",
        pattern="^(memory|redis)$",
        description="Console sessions: in this process (memory) or shared in Redis (redis).",
    )
    session_redis_url: str = Field(
        default="redis://127.0.0.1:6379/0", description="Redis of the console sessions."
    )
    cookie_secure: bool = Field(
        default=False,
        description="Mark the console's cookies Secure on every response: set it when the hub "
        "is served over https by a TLS-terminating proxy that speaks plain http to it. Without "
        "it, cookies are Secure only on a request the hub itself sees as https (or, with "
        "HUB_TRUST_PROXY, that the proxy's X-Forwarded-Proto names https).",
    )
    trust_proxy: bool = Field(
        default=False,
        description="Believe the X-Forwarded-Proto header: only behind a proxy that sets it "
        "and strips any copy a client sent. Off by default: a client can send the header.",
    )
    # The console's scheduled reports (hub.reports): each day at this UTC time, the daily
    # compliance report of the previous day and a data-quality report (once per day).
    report_daily_at: str | None = Field(
        default=None,
        pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$",
        description="Run the daily reports at HH:MM UTC while serving (unset: on demand only).",
    )
    scheduler_check_s: float = Field(
        default=60.0,
        ge=0.1,
        le=3600,
        description="How often (s) the daily-report and ML-retrain schedulers look for a due run.",
    )
    log_json: bool = Field(default=True, description="Structured (JSON) logs when true.")
    switch_interval_ms: float = Field(
        default=1.0,
        gt=0,
        le=100,
        description="``hub serve`` sets the interpreter's thread switch interval to this "
        "(``sys.setswitchinterval``; Python's default is 5 ms): how long a thread that asks for "
        "the GIL waits for the holder to let it go. The projection follower and the ledger "
        "follower give the GIL up and take it back hundreds of times a step (SQLite, Arrow and "
        "chDB calls) beside the request threads: at 1 ms, publish -> visible p99 was 0.47-1.04x "
        "(median 0.60) the 5 ms figure in 6 alternated pairs on a loaded machine "
        "(docs/benchmarks/s24-visible24.md).",
    )
    gc_freeze: bool = Field(
        default=False,
        description="True: ``hub serve`` moves what start-up built out of the garbage "
        "collector's reach (``gc.freeze()``) before it serves. A full collection holds the GIL "
        "(every follower and request thread stands still) and then scans only what was made "
        "since. It cut the full collections' pause time to 0.25-0.62x in 4 pairs (10k and 50k "
        "events/s asked), but no visible-latency gain was shown on a loaded machine and 12 s "
        "runs at 10k/s had one full collection more, so it is off by default "
        "(docs/benchmarks/s25-visible25.md).",
    )
    metrics_token_file: Path | None = Field(
        default=None,
        description="A file holding the Prometheus scrape token: GET /metrics with "
        "'Authorization: Bearer <token>' needs no API key (hub.observability).",
    )
    otel_exporter: Literal["none", "console", "otlp"] = Field(
        default="none",
        description="Where OpenTelemetry traces go: none (off, no overhead), console (stdout) "
        "or otlp (OTLP/HTTP to HUB_OTEL_ENDPOINT).",
    )
    otel_endpoint: str = Field(
        default="",
        description="The OTLP/HTTP traces URL, e.g. http://127.0.0.1:4318/v1/traces "
        "(HUB_OTEL_EXPORTER=otlp needs it).",
    )
    ledger_origin: str = Field(
        default="hub.local/ledger",
        pattern=r"^[^\s+]+$",
        description="Audit ledger origin: first line of every checkpoint and the signing key name.",
    )
    checkpoint_every_leaves: int = Field(
        default=10_000, ge=1, description="Sign a ledger checkpoint at every multiple of N leaves."
    )
    checkpoint_every_ms: int = Field(
        default=1_000,
        ge=10,
        description="The ledger follower signs a checkpoint T ms after the first append not "
        "yet in one (its sync starts a sync's duration earlier, at most T/2; at once when T ms "
        "passed since the last checkpoint): a leaf waits about T for its signed checkpoint; "
        "syncs not made by the follower sign one when T ms passed since the last. Under steady "
        "load about one checkpoint per T less a sync's duration (the follower's syncs begin at "
        "most once per T/2). Every checkpoint is a stored row and a witness copy that verify "
        "lists: 50 gives a signed checkpoint within ~100 ms but about 30 checkpoints a second "
        "under steady load.",
    )
    ledger_sync_batch: int = Field(
        default=50_000, ge=1, description="Most leaves appended per ledger transaction."
    )
    ledger_hash_threads: int = Field(
        default=2,
        ge=1,
        le=8,
        description="Threads hashing one ledger sync's (or `hub ledger verify`'s) leaves in the "
        "native extension, GIL released; a call splits only at 4,096+ leaves per thread. The "
        "ledger's bytes are the same for any value; more threads than free cores only slow the "
        "API and the projections sharing the host.",
    )
    ledger_verify_threads: int = Field(
        default=1,
        ge=1,
        le=8,
        description="Threads of `hub ledger verify`'s leaf check: 1 (the default) checks each "
        "batch of leaves in turn; 2 or more read and authenticate the log for the next batch "
        "while another thread recomputes and compares the current one (measured: no wall gain "
        "on two cores, a little more CPU). The verdict, and the first problem named, are the "
        "same for any value.",
    )
    clock_max_ahead_s: float = Field(
        default=86_400.0,
        ge=1,
        le=10**9,
        description="A start is refused when the newest signed checkpoint is dated more than "
        "this ahead of the system clock (a clock stepped back, or a checkpoint signed while the "
        "clock ran ahead); the refusal names both times. The hub's time never goes back behind "
        "the newest checkpoint within this bound (core.clock).",
    )
    clock_accept_ahead_until: datetime | None = Field(
        default=None,
        description="The operator's acceptance of checkpoints dated ahead of the clock up to this "
        "time (ISO 8601 with its zone, e.g. 2027-01-01T00:00:00Z): the hub then starts on the "
        "wall clock instead of refusing, and records clock.ahead_accepted on the ledger at "
        "every such start. Only for a checkpoint signed while the clock ran ahead.",
    )
    ledger_full_verify_every_s: int = Field(
        default=86_400,
        ge=0,
        le=10**9,
        description="`hub ledger verify` is incremental from the last verified checkpoint; it "
        "re-verifies everything when the last full run is older than this (0: always full).",
    )
    ledger_store: Literal["sqlite", "postgres", "tiles"] = Field(
        default="tiles",
        description="LedgerStore adapter: tiles (C2SP tlog-tiles in ledger-tiles.sqlite in "
        "data_dir), sqlite (rows in ledger.sqlite), or PostgreSQL (distributed). A data folder "
        "that already holds a ledger file keeps it.",
    )
    ledger_postgres_url: str = Field(
        default="",
        description="PostgreSQL URL of the ledger when ledger_store is postgres "
        "(postgresql://user:pass@host:port/db; `bash infra/postgres.sh url` prints one).",
    )
    ledger_postgres_schema: str = Field(
        default="hub_ledger",
        pattern=r"^[a-z_][a-z0-9_]{0,62}$",
        description="PostgreSQL schema holding the ledger's tables (one per hub on a shared "
        "database).",
    )
    ledger_postgres_idle_timeout_s: float = Field(
        default=60.0,
        gt=0,
        le=86_400,
        description="The PostgreSQL ledger's idle_in_transaction_session_timeout (s): a writer "
        "that stops inside its transaction (a paused or hung process) has its session ended "
        "after this long, which frees the ledger's write lock for the next writer. Longer than "
        "any pause a healthy writer makes between two statements of one write.",
    )
    # -- high availability (core.leadership; README "High availability") ----------------------
    leader_election: Literal["none", "postgres"] = Field(
        default="none",
        description="'postgres': several hub processes share the distributed footprint; a lease "
        "in PostgreSQL elects the one that runs the single-writer parts (ledger sync, projection "
        "runners), each write fenced by the leader's epoch. 'none': this process runs them.",
    )
    leader_postgres_url: str = Field(
        default="",
        description="PostgreSQL URL of the leader lease (default: HUB_LEDGER_POSTGRES_URL).",
    )
    leader_name: str = Field(
        default="hub",
        pattern=r"^[A-Za-z0-9_.:-]{1,100}$",
        description="Name of the lease: the processes of one hub share it.",
    )
    leader_id: str = Field(
        default="",
        max_length=200,
        description="This process's name in the lease (default: host name and process id).",
    )
    leader_lease_s: float = Field(
        default=10.0,
        ge=0.5,
        le=600,
        description="Lease length (s): a leader that stops renewing (crash, pause, partition) is "
        "replaced after this long; renewal runs every third of it.",
    )
    ledger_witness: bool = Field(
        default=True, description="Copy checkpoints to the write-once witness folder."
    )
    ledger_witness_dir: Path | None = Field(
        default=None,
        description="The outside witness: an append-only file of every signed checkpoint, "
        "checked at every start and by `hub ledger verify` (a rolled-back data folder is "
        "refused). Never inside data_dir; default <data_dir>-witness beside it. Put it where "
        "whoever can write the data folder cannot (another volume or account).",
    )
    ledger_max_pending_ms: int = Field(
        default=60_000,
        ge=0,
        description="`hub ledger verify` fails when a log record older than this (by its log "
        "timestamp) is not yet on the ledger.",
    )
    keystore: Literal["local", "vault"] = Field(
        default="local",
        description="KeyStore adapter for PII data keys: local keyring or Vault/OpenBao transit.",
    )
    master_key: SecretStr | None = Field(
        default=None,
        description="Local keyring master key, base64 of 32 bytes (else master_key_file).",
    )
    master_key_file: Path | None = Field(
        default=None,
        description="Local keyring master key file (default <data_dir>/keys/master.key, 0600).",
    )
    vault_url: str = Field(default="http://127.0.0.1:18200", description="Vault/OpenBao URL.")
    vault_token: SecretStr | None = Field(default=None, description="Vault/OpenBao token.")
    vault_mount: str = Field(default="transit", description="Mount path of the transit engine.")
    keystore_cache_ttl_s: float = Field(
        default=30.0,
        ge=0,
        description="How long unwrapped data keys stay cached; a destroy by another process "
        "takes effect here within this time.",
    )

    policy_engine: Literal["rego", "opa", "roletable"] = Field(
        default="rego",
        description="PolicyEngine adapter: Rego in-process (rego-cpp), an OPA server over HTTP, "
        "or the foundation's role table (reference only).",
    )
    opa_url: str = Field(default="http://127.0.0.1:18181", description="OPA server URL.")
    opa_timeout_ms: int = Field(
        default=500, ge=1, description="OPA request timeout; a slower answer is a deny."
    )
    policy_eval_bound_ms: int = Field(
        default=250,
        ge=1,
        description="CPU time one decision of a proposed policy bundle may take on any of its "
        "policy cases, timed in a child process at proposal and before activation; a slower "
        "bundle is refused (rego-cpp cannot stop an evaluation once the bundle is active).",
    )
    policy_decision_bound_ms: int = Field(
        default=1_000,
        ge=1,
        description="CPU time the embedded Rego engine may spend on one decision in the serving "
        "path (the evaluator's own CPU clock: a loaded machine does not count against it); "
        "past it the decision is denied with the reason policy_eval_timeout (counted in "
        "hub_policy_eval_timeouts_total, logged) and the evaluation is set aside.",
    )
    policy_decision_wall_ms: int = Field(
        default=DEFAULT_DECISION_WALL_MS,
        ge=1,
        description="Wall time one decision may wait for the embedded Rego engine in the serving "
        "path, for evaluations that never end without spending HUB_POLICY_DECISION_BOUND_MS of "
        "CPU time (a starved machine, a blocked evaluation): past it the decision is denied "
        "(policy_eval_timeout) as past the bound. At least HUB_POLICY_DECISION_BOUND_MS (unset: "
        "30000, or the bound when larger).",
    )
    policy_stuck_max: int = Field(
        default=2,
        ge=0,
        description="Set-aside evaluations (past HUB_POLICY_DECISION_BOUND_MS) that may still "
        "run on their thread; a bundle version that timed out, and every decision at the cap, "
        "is evaluated in a child process killed at the bound instead; 0: every decision in "
        "that child (no evaluation ever runs past the bound, at a pipe round trip each).",
    )
    policy_eval_memory_mb: int = Field(
        default=1_024,
        ge=64,
        description="Resident-memory cap of the child process that times a proposed policy "
        "bundle (read while it runs, the child killed past it; rego-cpp's start-up reservation "
        "rules out RLIMIT_AS); a bundle whose decision needs more is refused.",
    )
    policy_cache_ttl_ms: int = Field(
        default=1_000, ge=0, description="Decision cache lifetime (0 disables the cache)."
    )
    policy_record_decisions: bool = Field(
        default=True, description="Record every policy decision on hub.decisions (the ledger)."
    )
    policy_unsynced_reads: str = Field(
        default="",
        description="Comma-separated read actions (e.g. 'schema.read') whose allowed decisions "
        "are answered once queued for the decision log, before their fsync; empty = every "
        "allow waits for its durable record. Trade-off: docs/decisions-unsynced-reads.md.",
    )

    # Object storage, backups, the lake (issue 16).
    model_registry: Literal["local", "mlflow"] = Field(
        default="local",
        description="ModelRegistry adapter (machine learning): 'local' (files + SQLite under "
        "<data_dir>/ml/models) or 'mlflow' (MLflow's registry: its SQLite store under "
        "<data_dir>/ml/mlflow, or the server named by mlflow_tracking_uri). The ledger's "
        "hub.models events stay the record of truth either way.",
    )
    mlflow_tracking_uri: str = Field(
        default="",
        description="MLflow tracking server when model_registry is mlflow (http://127.0.0.1:PORT; "
        "`bash infra/mlflow.sh url` prints it); empty: the embedded SQLite store.",
    )
    feature_store: Literal["sqlite", "feast"] = Field(
        default="sqlite",
        description="FeatureStore adapter scoring reads online features from: 'sqlite' (the "
        "embedded store under <data_dir>/ml) or 'feast' (Feast's online store, kept in step "
        "with the same fold; SQLite online store, or Redis when feature_redis_url is set).",
    )
    feature_engine: Literal["embedded", "flink"] = Field(
        default="embedded",
        description="Where the streaming scorer (`hub ml score`) gets each event's feature "
        "vector: 'embedded' computes it from the feature store (HUB_FEATURE_STORE); 'flink' "
        "reads the vector Flink's feature job computed (`hub projection run --engine flink` "
        "loads them into <data_dir>/ml/vectors.sqlite) and scores an event only once the "
        "loaded vectors cover it (later events wait: the scorer's lag). Request-time scoring "
        "(`hub ml predict`, the predict route) always computes: its event is not on the log.",
    )
    feature_redis_url: str = Field(
        default="",
        description="With feature_store feast: Feast's Redis online store (redis://HOST:PORT; "
        "`bash infra/redis.sh url` prints it); empty: Feast's embedded SQLite online store.",
    )
    feature_cache_points: int = Field(
        default=2_000_000,
        ge=0,
        le=1_000_000_000,
        description="With feature_store sqlite: series points and attribute versions kept in "
        "memory for scoring (about 24 bytes a point; least recently read entities evicted "
        "first, read from the store again on the next use); 0 turns the cache off.",
    )
    object_store: Literal["local", "s3", "hdfs"] = Field(
        default="local",
        description="ObjectStore for backups, the cold tier, the lake and the erasure journal: a "
        "local folder (object_store_dir), an S3 bucket (s3_*) or Hadoop HDFS through WebHDFS "
        "(hdfs_*).",
    )
    object_store_dir: Path | None = Field(
        default=None,
        description="The local object folder (default: '<data_dir>-objects' beside the data "
        "folder, so that losing one does not lose the other).",
    )
    s3_endpoint: str = Field(
        default="127.0.0.1:19333", description="S3 host:port (infra/s3.sh serves 19333)."
    )
    s3_access_key: str = Field(default="hub-dev", description="S3 access key id.")
    s3_secret_key: SecretStr = Field(
        default=SecretStr("hub-dev-secret"), description="S3 secret access key."
    )
    s3_bucket: str = Field(default="hub", description="S3 bucket (created on first use).")
    s3_prefix: str = Field(
        default="", pattern=r"^[A-Za-z0-9._/-]*$", description="Key prefix inside the bucket."
    )
    s3_secure: bool = Field(default=False, description="HTTPS to the S3 endpoint.")
    hdfs_url: str = Field(
        default="http://127.0.0.1:19074",
        pattern=r"^https?://[^/?#\s]+/?$",
        description="The NameNode's WebHDFS address, http://host:port (`bash infra/hdfs.sh url` "
        "prints it), when object_store is hdfs.",
    )
    hdfs_root: str = Field(
        default="/hub",
        pattern=r"^/[A-Za-z0-9._/-]*$",
        description="The HDFS folder that holds the hub's objects (an absolute path).",
    )
    hdfs_user: str = Field(
        default="hub",
        pattern=r"^[A-Za-z0-9._-]{1,64}$",
        description="The HDFS user the hub acts as (WebHDFS simple authentication, user.name).",
    )
    cold_tier: bool = Field(
        default=False,
        description="Read past the hot log from closed segments offloaded to the object store "
        "(`hub tier offload`), like Kafka's tiered storage.",
    )
    tier_segment_records: int = Field(
        default=100_000, ge=1, le=10_000_000, description="Offsets per offloaded segment."
    )
    lake_catalog_url: str = Field(
        default="",
        description="The lake's Iceberg SQL catalog (SQLAlchemy URL, e.g. PostgreSQL); default "
        "SQLite in the local object folder.",
    )
    backup_kek_file: Path | None = Field(
        default=None,
        description="Key-encryption key file for backups (never inside data_dir or the store).",
    )
    backup_witness_file: Path | None = Field(
        default=None,
        description="The witness of every backup made, which a restore checks for a rollback "
        "(storage.backup_witness): a persistent, writable file away from data_dir and the "
        "store; default <backup KEK file>.backups.",
    )
    backup_chunk_kib: int = Field(
        default=8192,
        ge=64,
        le=524_288,
        description="Backup chunk size in KiB: the unit of incremental upload and of restore.",
    )

    @field_validator("clock_accept_ahead_until")
    @classmethod
    def _aware(cls, v: datetime | None) -> datetime | None:
        if v is not None and v.tzinfo is None:
            raise ValueError(
                "give the time with its zone (e.g. 2027-01-01T00:00:00Z): a time without one "
                "would be read in the machine's zone"
            )
        return v

    @field_validator("data_dir")
    @classmethod
    def _expand(cls, v: Path) -> Path:
        return v.expanduser()

    @field_validator("allowed_hosts")
    @classmethod
    def _hosts(cls, v: str) -> str:
        from core.hostnames import parse_allowed

        parse_allowed(v)  # raises ValueError naming the entry
        return v

    @model_validator(mode="before")
    @classmethod
    def _wall_default(cls, data: Any) -> Any:
        """An unset HUB_POLICY_DECISION_WALL_MS is at least HUB_POLICY_DECISION_BOUND_MS: a
        bound raised past the 30 s default (as CI runs did when the bound was wall time) keeps
        starting."""
        if not isinstance(data, dict) or "policy_decision_wall_ms" in data:
            return data
        try:
            bound = int(data.get("policy_decision_bound_ms", 0))
        except (TypeError, ValueError):
            return data  # the field's own validation names it
        if bound > DEFAULT_DECISION_WALL_MS:
            return {**data, "policy_decision_wall_ms": bound}
        return data

    @field_validator("policy_decision_wall_ms")
    @classmethod
    def _wall_past_bound(cls, v: int, info: ValidationInfo) -> int:
        bound = info.data.get("policy_decision_bound_ms")
        if bound is not None and v < bound:
            raise ValueError(
                f"HUB_POLICY_DECISION_WALL_MS ({v}) must be at least HUB_POLICY_DECISION_BOUND_MS "
                f"({bound}): the wall limit is for evaluations that never end"
            )
        return v

    @field_validator("policy_unsynced_reads")
    @classmethod
    def _read_actions(cls, v: str) -> str:
        from core.roles import ACTIONS

        for action in filter(None, (a.strip() for a in v.split(","))):
            if action not in ACTIONS or not action.endswith(".read"):
                raise ValueError(
                    f"{action!r} is not a read action; name read actions only (one of "
                    f"{', '.join(a for a in ACTIONS if a.endswith('.read'))}): a write's "
                    "decision is always stored before the write runs."
                )
        return v

    @property
    def unsynced_read_actions(self) -> frozenset[str]:
        return frozenset(filter(None, (a.strip() for a in self.policy_unsynced_reads.split(","))))

    @property
    def objects_dir(self) -> Path:
        """The local ObjectStore folder (object_store=local)."""
        if self.object_store_dir is not None:
            return self.object_store_dir.expanduser()
        return self.data_dir.parent / f"{self.data_dir.name}-objects"

    @property
    def log_path(self) -> Path:
        return self.data_dir / "log.sqlite"

    @property
    def ledger_path(self) -> Path:
        return self.data_dir / "ledger.sqlite"

    @property
    def ledger_verified_path(self) -> Path:
        """The signed note remembering the last verified checkpoint (incremental verify)."""
        return self.data_dir / "ledger-verified.note"

    @property
    def ledger_key_path(self) -> Path:
        return self.data_dir / "keys" / "ledger.key"

    @property
    def log_key_path(self) -> Path:
        """The embedded log's MAC key (kept beside the other keys, never in the log file)."""
        return self.data_dir / "keys" / "log.mac"

    @property
    def witness_dir(self) -> Path:
        return self.data_dir / "witness"

    @property
    def outside_witness_dir(self) -> Path:
        """The outside witness folder (``ledger.witness_log``), refused inside data_dir."""
        from ledger.witness_log import outside_dir

        return outside_dir(self.data_dir, self.ledger_witness_dir)

    @property
    def keyring_path(self) -> Path:
        return self.data_dir / "keys" / "keyring.sqlite"

    @property
    def keyring_anchor_path(self) -> Path:
        """The keyring's last known state, outside ``keys/`` (``governance.keyring_anchor``);
        its name sorts before ``keys/`` so that a backup takes it before the keyring."""
        return self.data_dir / "keyring.anchor"

    @property
    def erasure_index_path(self) -> Path:
        """The MAC'd index of the ledger's erasure entries (``governance.erasure_index``)."""
        return self.data_dir / "keys" / "erasure-index"

    @property
    def erasure_intents_dir(self) -> Path:
        """Erasures begun and not yet recorded (``governance.erasure_intents``)."""
        return self.data_dir / "erasures-pending"

    @property
    def master_key_path(self) -> Path:
        return self.master_key_file or self.data_dir / "keys" / "master.key"


def load_settings(
    config_file: str | Path | None = None,
    environ: Mapping[str, str] | None = None,
    **overrides: Any,
) -> Settings:
    """Read settings once: overrides > ``HUB_*`` environment > YAML file > defaults.

    Raises ``ConfigError`` naming every invalid setting.
    """
    env = os.environ if environ is None else environ
    path = config_file or env.get("HUB_CONFIG_FILE")
    from_file: dict[str, Any] = {}
    if path:
        try:
            loaded = load_unique(Path(path).read_text(encoding="utf-8"), str(path)) or {}
        except (OSError, InvalidInput) as exc:
            raise ConfigError(f"Cannot read the settings file {path!s}: {exc}") from exc
        if not isinstance(loaded, dict):
            raise ConfigError(f"The settings file {path!s} must hold a mapping of setting names.")
        from_file = loaded
    from_env = {
        name: env[f"HUB_{name.upper()}"]
        for name in Settings.model_fields
        if f"HUB_{name.upper()}" in env
    }
    merged = {**from_file, **from_env, **overrides}
    try:
        # model_validate skips pydantic-settings' own environment reading, so `environ` rules.
        return Settings.model_validate(merged)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']} (got {e.get('input')!r})"
            for e in exc.errors()
        )
        raise ConfigError(f"Invalid hub settings: {problems}.") from exc
