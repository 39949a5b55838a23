"""Wiring of the Flink projection engine from the settings (the application layer's part).

``flink_projections(hub, token)`` checks the footprint (Kafka log, PostgreSQL views, the PyFlink
virtualenv and jars) and builds ``projections.flink.service.FlinkProjections``, with the ML
feature views as its companion jobs (``hub.flink_feature_views``: ``features.<view>``).
``token`` is the caller's API key: the jobs read writer schemas from the registry API with it.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from core import tenant_mac
from core.errors import ConfigError
from core.projection import Windowing
from hub.derived_secrets import derived_secret
from hub.flink_feature_views import feature_views
from hub.logs import redact_url
from hub.ml_setup import feature_vectors
from hub.pattern_alerts import PATTERNS, PatternAlerts
from ml.erased import erased_in
from projections.catalog import PROJECTIONS
from projections.flink import jvm
from projections.flink.compile import FlinkPlacement
from projections.flink.launch import FlinkLauncher
from projections.flink.postgres import FlinkViews
from projections.flink.sealed import opener
from projections.flink.service import FlinkProjections

JARS = (
    "flink-sql-connector-kafka-5.0.0-2.2.jar",
    "flink-connector-jdbc-core-4.0.0-2.0.jar",
    "flink-connector-jdbc-postgres-4.0.0-2.0.jar",
    "postgresql-42.7.4.jar",
)


def row_key(settings: Any) -> bytes:
    """The key of the MACs on the Flink jobs' result rows (``projections.flink.rowmac``): the
    jobs the hub launches and its loaders hold it, a producer to ``flink.*`` does not. Derived
    from the hub's local MAC key with a label of its own (apart from the loader memory's)."""
    return derived_secret(settings, b"hub flink result rows")


def tenant_key(settings: Any) -> bytes:
    """The key of the tenant MACs the hub's Kafka writer puts on data records and its Flink
    jobs check (``core.tenant_mac``): its own label, so that the jobs never hold the record MAC
    key (which also signs the hub's own topics: principals, policies)."""
    return derived_secret(settings, tenant_mac.PURPOSE)


def tenant_legacy(log: Any) -> dict[str, dict[int, int]]:
    """By topic and partition, the offsets below which the records of the log's namespace may
    carry tenant MACs under the hub's unbound tenant key (written before the key was bound to
    the namespace: ``core.tenant_mac``): its marker's (``KafkaEventLog.bind_namespace``, which
    writes it on a namespace's first start); none for the default namespace."""
    bind = getattr(log, "bind_namespace", None)  # the Kafka log's (the composition root's)
    if bind is None:
        return {}
    out: dict[str, dict[int, int]] = {}
    for (topic, partition), end in bind().items():
        out.setdefault(topic, {})[partition] = end
    return out


def flink_projections(hub: Any, token: str) -> FlinkProjections:
    s = hub.settings
    if s.event_log != "kafka":
        raise ConfigError(
            f"The Flink engine reads Kafka topics, but this hub's event log is {s.event_log!r}: "
            "set HUB_EVENT_LOG=kafka (and HUB_KAFKA_BOOTSTRAP_SERVERS), or run the projections "
            "on the embedded engine (--engine embedded)."
        )
    try:
        url = make_url(s.views_sql_url)
    except (ArgumentError, ValueError) as exc:  # ValueError: a port that is not a number
        raise ConfigError(
            f"HUB_VIEWS_SQL_URL {redact_url(s.views_sql_url)!r} is not a SQLAlchemy URL; the "
            "Flink engine writes its views to PostgreSQL: set it to "
            "postgresql+psycopg://USER:PASS@HOST:PORT/DB (percent-encode '@', ':' and '/' in "
            "the password)."
        ) from exc
    if url.get_backend_name() != "postgresql":
        raise ConfigError(
            f"The Flink engine writes its views to PostgreSQL, but HUB_VIEWS_SQL_URL is "
            f"{url.get_backend_name() or 'unset'}: set it to postgresql+psycopg://USER:PASS@HOST:"
            "PORT/DB (`bash infra/postgres.sh url`)."
        )
    # the connector jars and the jar of the hub's own JVM functions (the pattern jobs'
    # ``hub_tenant_ok``: ``projections.flink.jvm``), which the same setup builds
    jars = [s.flink_jars_dir / name for name in (*JARS, jvm.jar_name())]
    missing = [str(j) for j in jars if not j.exists()]
    if missing:
        raise ConfigError(
            f"Flink jars are missing: {', '.join(missing)}. Run 'bash infra/flink.sh setup' "
            "(or 'make flink-setup': it also builds the hub's own functions from "
            "projections/flink/java), or point HUB_FLINK_JARS_DIR at them."
        )
    placement = FlinkPlacement(
        kafka_bootstrap=s.kafka_bootstrap_servers,
        registry_url=s.flink_registry_url or f"http://{s.http_host}:{s.http_port}",
        jdbc_url=f"jdbc:postgresql://{url.host or '127.0.0.1'}:{url.port or 5432}/{url.database}",
        jdbc_user=url.username or "",
        jdbc_password=url.password or "",
        jars=tuple(j.resolve().as_uri() for j in jars),
        python=str(s.flink_python),
        topic_prefix=s.kafka_topic_prefix,
        pg_schema=s.flink_pg_schema,
        parallelism=s.flink_parallelism,
        checkpoint_interval_ms=s.flink_checkpoint_interval_ms,
        result_topics=True,  # analytics tables also into the hub's chDB (projections.flink.results)
        tenant_legacy=tenant_legacy(hub.log),
    )
    key = row_key(s)
    launcher = FlinkLauncher(
        s.flink_python, s.data_dir / "flink" / "jobs", token, key, tenant_key(s)
    )
    launcher.check()
    return FlinkProjections(
        PROJECTIONS,
        placement,
        launcher,
        FlinkViews(
            url.render_as_string(hide_password=False),
            s.flink_pg_schema,
            unseal=opener(hub.registry, hub.keystore),
        ),
        hub.log,
        s.data_dir / "flink" / "checkpoints",
        Windowing(int(s.projection_allowed_lateness_s * 1_000_000), s.projection_late_mode),
        analytics=lambda: hub.projections.store("analytics"),
        patterns=PATTERNS if s.pattern_alerts else (),
        alerts=lambda p, rows: PatternAlerts(hub).raise_alerts(p, rows, "flink"),
        # the loaders ask the erasures with each vector's tenant: the result topic keeps an
        # erased subject's vectors, a load from its start must not store them again
        companions=feature_views(hub.log, feature_vectors(hub), key, erased_in(hub.keystore)),
        loader_key=derived_secret(s, b"hub flink result loader memory"),
        row_key=key,
    )
