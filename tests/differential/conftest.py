"""The ONE Flink run of the differential tests, shared by the whole pytest session.

A Flink job spends most of its time starting (JVM, job graph, Python workers), not on the few
hundred records a differential test publishes; seven jobs of 23-70 s each were the slowest part
of CI. So ``flink_session`` (session-scoped, set up only when a Flink test asks for it):
1. starts (or reuses) Kafka and PostgreSQL and checks the PyFlink virtualenv and jars;
2. builds two hubs on the Kafka footprint, each with a topic prefix (and PostgreSQL schema) of its
   own, and publishes every event set the tests compare: the *views* hub gets the payments, trades
   and quotes of the projection tests, the *cep* hub the crafted payments, quotes and trades of
   the pattern tests (their event times are months apart from the others': one topic would mix
   the patterns' watermarks with the projections' events);
3. runs the embedded side: the hub's runner folds the views hub's projections into chDB, the
   embedded pattern engine finds the cep hub's matches, and the embedded pattern detector (what
   ``hub serve`` runs) raises them as alert events;
4. runs every compiled projection, pattern and ML feature view as ONE bounded Flink job (a
   statement set, ``projections.flink.compile.combine``) reading both prefixes; the analytics
   tables go to PostgreSQL and to result topics, which ``ResultLoader`` then loads into the hub's
   chDB; the feature views run as the engine's companion jobs (``hub.flink_feature_views``, as
   ``hub projection run --engine flink --all`` runs them), their vectors loaded from their result
   topics into a ``FeatureVectors`` table; the cep
   hub's ``FlinkProjections`` (patterns only) raises the CEP job's matches as alert events;
and the tests only compare what both sides produced. The exactly-once fault test needs a job of its
own (it kills it) and keeps its own fixture (``test_flink_projections.footprint``).
"""

from __future__ import annotations

import io
import os
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import fastavro
import pytest
from sqlalchemy.engine import make_url

from hub.api.app import create_app
from hub.bootstrap import Hub, bootstrap
from hub.settings import load_settings
from projections.flink.compile import FlinkPlacement, JobSpec
from projections.flink.launch import FlinkLauncher
from projections.flink.postgres import FlinkViews
from projections.flink.results import ResultLoader
from projections.flink.sealed import opener
from projections.flink.service import FlinkProjections
from tests import infra
from tests.contract.test_eventlog_kafka import kafka_bootstrap
from tests.service.conftest import _serve

# the projections the session runs on both engines (views hub)
# the key the session's Flink job MACs its result rows under, and its loaders check them with
# (the hub derives its own: ``hub.flink``)
ROW_KEY = os.urandom(32)
PROJECTIONS = ("payment_aggregates", "market_bars", "positions", "quotes", "accounts", "payments")


@dataclass
class FlinkInfra:
    python: Path
    jars: tuple[str, ...]
    kafka: str
    pg: str


@dataclass
class World:
    """One hub on Kafka with its own topic prefix, served over HTTP (the registry Flink reads)."""

    hub: Hub
    prefix: str
    registry: str
    admin: str
    views: FlinkViews
    stop: Callable[[], None]

    @property
    def tenant_key(self) -> bytes:
        """The key of the tenant MACs this hub's writer puts on its data records (the one
        ``hub.flink`` gives its jobs), by its topic prefix as a job reading several hubs takes
        it (``FlinkLauncher``)."""
        from hub.flink import tenant_key

        return tenant_key(self.hub.settings)

    def close(self) -> None:
        try:
            self.views._run(
                "dropping the test schema", [f"DROP SCHEMA IF EXISTS {self.prefix} CASCADE"]
            )
        finally:
            self.views.close()
            self.stop()
            self.hub.close()


@dataclass
class FlinkSession:
    infra: FlinkInfra
    views: World  # the projections' event sets
    cep: World  # the patterns' event sets
    published: dict[str, list[tuple[str, Any]]] = field(default_factory=dict)  # views hub
    embedded: dict[str, dict[str, Any]] = field(default_factory=dict)  # projection -> digests
    matches: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # pattern -> rows
    flink: dict[str, dict[str, Any]] = field(default_factory=dict)  # FlinkProjections.run
    status: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0
    loaded: dict[str, dict[str, int]] = field(default_factory=dict)  # rows from result topics
    chdb: dict[str, dict[str, Any]] = field(default_factory=dict)  # their digests in chDB
    load_seconds: float = 0.0
    # the pattern alerts each engine's operational path raised on the cep hub
    alerts: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    detector: Any = None  # hub.pattern_alerts.PatternDetector of the cep hub
    cep_runner: Any = None  # FlinkProjections of the cep hub (patterns only)
    # ML feature view -> its vectors from Flink's result topic (``ml.flink_features``)
    features: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    vectors: Any = None  # the FeatureVectors table they were loaded into
    forged: int = 0  # records a broker producer wrote claiming a tenant (``forge_copies``)
    forged_ahead: int = 0  # future-dated ones before the cep hub's payments (``forge_ahead``)


def flink_infra(what: str) -> FlinkInfra:
    """Kafka, PostgreSQL, the PyFlink virtualenv and jars; skips (fails under CI) without them."""
    infra.require("flink", what)
    ok, python = infra._run("flink", "python", 30)
    ok2, jars = infra._run("flink", "jars", 30)
    assert ok and ok2, (python, jars)
    return FlinkInfra(
        python=Path(python.strip().splitlines()[-1]),
        jars=tuple(jars.strip().splitlines()[-1].split(";")),
        kafka=kafka_bootstrap(),
        pg=infra.postgres_url(what),
    )


def open_world(fi: FlinkInfra, data_dir: Path) -> World:
    prefix = f"f{uuid.uuid4().hex[:10]}"
    hub = bootstrap(
        load_settings(
            environ={},
            data_dir=data_dir,
            event_log="kafka",
            kafka_bootstrap_servers=fi.kafka,
            kafka_topic_prefix=prefix + ".",
            projection_autostart=False,
        )
    )
    url, stop = _serve(create_app(hub))
    admin = hub.keys.create(["admin"], principal="test-admin").token
    views = FlinkViews(fi.pg, schema=prefix, unseal=opener(hub.registry, hub.keystore))
    return World(hub, prefix, url, admin, views, stop)


def placement(fi: FlinkInfra, world: World, **kw: Any) -> FlinkPlacement:
    pg = make_url(fi.pg)
    return FlinkPlacement(
        kafka_bootstrap=fi.kafka,
        registry_url=world.registry,
        jdbc_url=f"jdbc:postgresql://{pg.host}:{pg.port}/{pg.database}",
        jdbc_user=pg.username or "",
        jdbc_password=pg.password or "",
        jars=fi.jars,
        python=str(fi.python),
        topic_prefix=world.prefix + ".",
        pg_schema=world.prefix,
        **({"bounded": True} | kw),
    )


def forge_copies(kafka: str, world: World, topic: str, owner: str, claim: str) -> int:
    """A broker producer without the hub's keys copies ``owner``'s first record of ``topic``
    and claims ``claim`` as its tenant: once with the hub's MAC headers dropped, once with them
    kept (they no longer verify). The hub's reader drops both claims (tenant ``default``); the
    Flink jobs must too (``core.tenant_mac``), or the views' digests differ (and acme's
    position counts a trade more). How many records were written."""
    from confluent_kafka import Producer

    log = world.hub.log
    first = next(
        r
        for p in range(log.topic(topic).partitions)
        for r in log.scan_stored(topic, p)  # type: ignore[attr-defined]
        if dict(r.headers).get("ce_tenant") == owner.encode()
    )
    claimed = [(k, claim.encode() if k == "ce_tenant" else v) for k, v in first.headers]
    producer = Producer({"bootstrap.servers": kafka, "log_level": 0})
    copies = ([h for h in claimed if not h[0].startswith("__hub.")], claimed)
    for headers in copies:
        producer.produce(
            f"{world.prefix}.{topic}",
            value=first.value,
            key=first.key,
            partition=first.partition,
            timestamp=first.timestamp_ms,
            headers=headers,
        )
    assert producer.flush(30) == 0
    return len(copies)


def forge_ahead(
    kafka: str, world: World, topic: str, tenant: str, events: list[Any], at_ms: int
) -> int:
    """A broker producer without the hub's keys writes ``events`` (encoded as the hub encodes
    them, claiming ``tenant``) to every partition of ``topic``, with Kafka timestamp ``at_ms``
    (a producer sets it: contract 5's append-time bound does not help): on even partitions
    without MAC headers, on odd ones with made-up ones. Written before the genuine records, such
    events dated ahead used to move both engines' watermark (the genuine ones then late) and
    match under tenant 'default'. How many records were written."""
    from confluent_kafka import Producer

    records = world.hub.publisher.prepare(topic, events, "forger", tenant)
    producer = Producer({"bootstrap.servers": kafka, "log_level": 0})
    written = 0
    for p in range(world.hub.log.topic(topic).partitions):
        for r in records:
            made_up = [("__hub.tmac", os.urandom(32)), ("__hub.mac", os.urandom(32))]
            producer.produce(
                f"{world.prefix}.{topic}",
                value=r.value,
                key=r.key,
                partition=p,
                timestamp=at_ms,
                headers=[*r.headers, *(made_up if p % 2 else [])],
            )
            written += 1
    assert producer.flush(30) == 0
    return written


def decoder(hub: Hub) -> Callable[[bytes], tuple[str, Mapping[str, Any]]]:
    def decode(value: bytes) -> tuple[str, Mapping[str, Any]]:
        schema, name = hub.projections.decoder.schema(int.from_bytes(value[1:5], "big"))
        datum: Mapping[str, Any] = fastavro.schemaless_reader(io.BytesIO(value[5:]), schema, None)  # type: ignore[assignment]
        return name, datum

    return decode


@pytest.fixture(scope="session")
def flink_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FlinkSession]:
    """See the module docstring. One bounded Flink job for every comparison (~30-60 s)."""
    from adapters.sqlite_vectors import SqliteFeatureVectors
    from domain.features import VIEWS as FEATURE_VIEWS
    from hub.flink_feature_views import feature_views
    from hub.pattern_alerts import PatternAlerts, PatternDetector
    from projections.catalog import PROJECTIONS as CATALOG
    from projections.patterns import find_matches, read_events
    from tests.differential import test_flink_accounts as accounts_tests
    from tests.differential import test_flink_features as features_tests
    from tests.differential import test_flink_patterns as cep_tests
    from tests.differential import test_flink_positions as positions_tests
    from tests.differential import test_flink_projections as payments_tests

    fi = flink_infra("the Flink differential tests")
    root = tmp_path_factory.mktemp("flink")
    views = open_world(fi, root / "views")
    cep = open_world(fi, root / "cep")
    try:
        # 2. the event sets
        published = {
            "payments": [
                *payments_tests.batches(),
                *accounts_tests.payment_batches(),
                *features_tests.feature_batches(),
            ],
            "trades": positions_tests.batches(),  # the bars' trades and more
            "quotes": positions_tests.quote_batches(),
            "accounts": [*accounts_tests.batches(), *features_tests.feature_account_batches()],
            "payment-labels": features_tests.label_batches(),  # for the training sets
        }
        for topic, batches in published.items():
            for tenant, events in batches:
                views.hub.publisher.publish(topic, events, producer="differential", tenant=tenant)
        # 2a. a broker producer's future-dated payments claiming acme, on every partition before
        # the genuine ones: neither engine may take their time or their events
        forged_ahead = forge_ahead(fi.kafka, cep, "payments", "acme", *cep_tests.forged_ahead())
        for tenant, events in cep_tests.payments():
            cep.hub.publisher.publish("payments", events, producer="differential", tenant=tenant)
        for topic, events in cep_tests.market():
            cep.hub.publisher.publish(topic, events, producer="differential", tenant="acme")

        # 3. the embedded engines
        session = FlinkSession(fi, views, cep, published, forged_ahead=forged_ahead)
        # 3a. a broker producer's forged tenant claims: both engines read them as 'default'
        session.forged = forge_copies(fi.kafka, views, "trades", "globex", "acme")
        views.hub.projections.run(list(PROJECTIONS))
        for name in PROJECTIONS:
            session.embedded[name] = views.hub.projections.digest(name, save=False)
        patterns = (cep_tests.STRUCTURING, cep_tests.SPIKE)
        for pattern in patterns:
            found = read_events(cep.hub.log, pattern, decoder(cep.hub))
            session.matches[pattern.name] = find_matches(pattern, found)

        # 3b. the embedded twin of the CEP job, as the served hub runs it: alert events
        session.detector = PatternDetector(cep.hub, patterns)
        session.alerts["embedded"] = session.detector.step()

        # 4. ONE Flink job: the projections of the views hub and the patterns of the cep hub
        # (the cep hub's runner compiles the patterns' job and raises their alerts, as
        # `hub projection run --engine flink` does; its job joins the views hub's statement set)
        session.cep_runner = FlinkProjections(
            [],
            placement(fi, cep),
            FlinkLauncher(fi.python, root / "cep-jobs", cep.admin, tenant_key=cep.tenant_key),
            cep.views,
            cep.hub.log,
            root / "cep-checkpoints",
            patterns=patterns,
            alerts=lambda p, rows: PatternAlerts(cep.hub).raise_alerts(p, rows, "flink"),
        )
        cep_job = session.cep_runner.compile_patterns(bounded=True)
        assert cep_job is not None
        also: list[JobSpec] = [cep_job]
        # the ML feature views: the engine's companion jobs, as `hub projection run --engine
        # flink --all` gives them (``hub.flink_feature_views``): in the same statement set,
        # their vectors loaded from the result topics into a FeatureVectors table after it
        session.vectors = SqliteFeatureVectors(root / "vectors.sqlite", mac_key=b"v" * 32)
        chosen = [p for p in CATALOG if p.name in PROJECTIONS]
        analytics = [p for p in chosen if p.store == "analytics"]
        loader = ResultLoader(
            views.hub.log, views.hub.projections.store("analytics"), row_key=ROW_KEY
        )
        loader.ensure_topics([t for p in analytics for t in p.tables if t.kind != "append"])
        runner = FlinkProjections(
            chosen,
            placement(fi, views, result_topics=True),
            FlinkLauncher(
                fi.python,
                root / "jobs",
                {views.registry: views.admin, cep.registry: cep.admin},
                row_key=ROW_KEY,
                tenant_key={
                    views.prefix + ".": views.tenant_key,
                    cep.prefix + ".": cep.tenant_key,
                },
            ),
            views.views,
            views.hub.log,
            root / "checkpoints",
            companions=feature_views(views.hub.log, session.vectors, ROW_KEY),
            row_key=ROW_KEY,
        )
        started = time.monotonic()
        names = [*PROJECTIONS, *runner.companions]
        session.flink = runner.run(names, timeout_s=840, also=also)
        session.seconds = time.monotonic() - started
        print(f"\nthe one Flink job of the differential tests: {session.seconds:.1f} s")
        session.status = runner.status()
        session.alerts["flink"] = session.cep_runner.fire_alerts()
        # 5. the analytics tables' result topics into chDB (the hub's analytics store)
        started = time.monotonic()
        for p in analytics:
            tables = [p.table(name) for name in session.flink[p.name]["digests"]]
            session.loaded[p.name] = loader.load(p, tables)
            session.chdb[p.name] = {t.name: loader.digest(p, t) for t in tables}
        for view in FEATURE_VIEWS.values():
            session.features[view.name] = session.vectors.rows(view.name)
        session.load_seconds = time.monotonic() - started
        yield session
    finally:
        for world in (views, cep):
            world.close()
