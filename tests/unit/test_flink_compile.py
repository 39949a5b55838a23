"""Projections compiled to Flink, without Flink: the SQL, the PostgreSQL views, the wire decoder
the job registers, and the refusals (the differential test runs the compiled job for real)."""

from __future__ import annotations

import io
import json
import struct
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import fastavro
import pytest

from core.errors import ConfigError
from core.projection import Windowing
from projections.catalog import (
    MARKET_BARS,
    MODEL_PREDICTIONS,
    PAYMENT_AGGREGATES,
    PAYMENTS,
    POSITIONS,
)
from projections.flink.compile import FlinkPlacement, Unsupported, combine, compile_projection
from projections.flink.job import WireDecoder, plain
from projections.flink.postgres import ident, partial_ddl, view_ddl

ROOT = Path(__file__).resolve().parents[2]

AT = FlinkPlacement(
    kafka_bootstrap="127.0.0.1:9",
    registry_url="http://127.0.0.1:8",
    jdbc_url="jdbc:postgresql://127.0.0.1:5432/hub",
    jdbc_user="hub",
    jdbc_password="pw",
    jars=("file:///x/a.jar", "file:///x/b.jar"),
    python="/venv/bin/python",
    topic_prefix="ns1.",
    pg_schema="ns1",
    bounded=True,
)


def test_payment_aggregates_compile_to_one_job_reading_the_prefixed_topic() -> None:
    spec = compile_projection(PAYMENT_AGGREGATES, AT)
    assert [t.name for t in spec.tables] == ["payment_volumes_1d", "aml_daily"]
    assert len(spec.inserts) == 2
    source = spec.statements[0]
    assert "'topic' = 'ns1.payments'" in source
    assert "'scan.bounded.mode' = 'latest-offset'" in source
    assert "'properties.isolation.level' = 'read_committed'" in source
    sinks = [s for s in spec.statements if "'connector' = 'jdbc'" in s]
    assert len(sinks) == 2
    # upserts by view key + source partition: one partial row per partition, replay-safe
    assert "PRIMARY KEY (`tenant`, `account_id`, `day`, `currency`, `src_topic`, " in sinks[1]
    assert "'table-name' = 'ns1.aml_daily__flink_p'" in sinks[1]
    # the AML band of the definition's parameters: 9000 <= amount < 10000
    aml = spec.inserts[1]
    assert "CAST('9000.0' AS DECIMAL(38, 1))" in aml and "CAST('10000' AS DECIMAL(38, 0))" in aml
    assert spec.config["pipeline.jars"] == "file:///x/a.jar;file:///x/b.jar"
    assert spec.config["python.executable"] == "/venv/bin/python"
    assert "execution.checkpointing.interval" not in spec.config  # bounded: no checkpoints
    assert json.loads(spec.to_json())["decoders"][0]["registry_url"] == "http://127.0.0.1:8"


def test_unbounded_jobs_checkpoint_exactly_once_and_restore() -> None:
    at = FlinkPlacement(
        **{
            **{f: getattr(AT, f) for f in AT.__dataclass_fields__},
            "bounded": False,
            "checkpoint_dir": "file:///ck",
            "restore_from": "file:///ck/j/chk-3",
        }
    )
    spec = compile_projection(PAYMENT_AGGREGATES, at)
    assert spec.config["execution.checkpointing.mode"] == "EXACTLY_ONCE"
    assert spec.config["execution.state-recovery.path"] == "file:///ck/j/chk-3"
    assert "scan.bounded.mode" not in spec.statements[0]


def test_projections_without_a_flink_compilation_are_refused_by_name() -> None:
    with pytest.raises(
        Unsupported, match="accounts, market_bars, payment_aggregates, payments, positions, quotes"
    ) as err:
        compile_projection(MODEL_PREDICTIONS, AT)
    assert isinstance(err.value, ConfigError) and "embedded" in err.value.message
    with pytest.raises(Unsupported, match="late_mode='side'"):
        compile_projection(PAYMENT_AGGREGATES, AT, Windowing(0, "side"))


def test_postgres_views_merge_partials_into_the_embedded_row_shape() -> None:
    aml = PAYMENT_AGGREGATES.table("aml_daily")
    ddl = partial_ddl("ns1", aml)
    assert "PRIMARY KEY (tenant, account_id, day, currency, src_topic, src_partition)" in ddl
    view = view_ddl("ns1", aml)
    assert "sum(near_threshold)::bigint AS near_threshold" in view
    assert "timestamptz 'epoch' + day * interval '1 microsecond' AS day" in view
    assert "ORDER BY src_topic, src_partition)::text AS src_offsets" in view
    assert view.endswith("GROUP BY tenant, account_id, day, currency")
    with pytest.raises(ConfigError, match="lower-case"):
        ident('x"; DROP TABLE y; --')


def _wire(schema_id: int, schema: dict[str, Any], value: dict[str, Any]) -> bytes:
    out = io.BytesIO()
    fastavro.schemaless_writer(out, fastavro.parse_schema(schema), value)
    return b"\x00" + struct.pack(">I", schema_id) + out.getvalue()


def test_the_jobs_wire_decoder_yields_exact_values() -> None:
    schema = json.loads((ROOT / "domain/schemas/PaymentInitiated.avsc").read_text())
    at = datetime(2026, 3, 2, 23, 59, 59, 999999, tzinfo=UTC)
    value = {
        "payment_id": "P1",
        "account_id": "A1",
        "amount": Decimal("9999.99"),
        "currency": "EUR",
        "counterparty_name": "N",
        "counterparty_iban": "I",
        "counterparty_country": "DE",
        "reference": None,
        "initiated_at": at,
    }
    decoder = WireDecoder("http://unused", ["account_id", "amount", "currency", "initiated_at"])
    decoder._schemas[7] = (fastavro.parse_schema(schema), "hub.payments.PaymentInitiated")
    assert decoder.decode(_wire(7, schema, value)) == (
        "hub.payments.PaymentInitiated",
        "A1",
        "9999.99",
        "EUR",
        1772495999999999,
    )
    # not wire format, or bytes that do not decode: no row (never an exception in the job)
    assert decoder.decode(b"{}") is None
    assert decoder.decode(b"\x00\x00\x00\x00\x07\xff") is None
    assert plain(Decimal("1E+2")) == "100" and plain(b"ciphertext") is None


def test_the_flink_engine_on_the_embedded_log_is_a_clear_cli_error(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from hub.cli import main
    from tests.cli_keys import admin_args

    data = tmp_path / "data"
    args = [*admin_args(data), "projection", "run", "payment_aggregates", "--engine", "flink"]
    r = CliRunner().invoke(main, args)
    assert r.exit_code != 0
    assert "HUB_EVENT_LOG=kafka" in r.output + r.stderr


def test_the_flink_engine_is_wired_from_the_settings(tmp_path: Path) -> None:
    from types import SimpleNamespace

    from hub.flink import JARS, flink_projections
    from hub.settings import load_settings
    from projections.flink import jvm

    jars, python = tmp_path / "jars", tmp_path / "python"
    jars.mkdir()
    python.touch()
    settings = load_settings(
        environ={},
        data_dir=tmp_path / "data",
        event_log="kafka",
        kafka_bootstrap_servers="127.0.0.1:28092",
        kafka_topic_prefix="team1.",
        views_sql_url="postgresql+psycopg://hub:s3cret@127.0.0.1:28432/hub",
        flink_python=python,
        flink_jars_dir=jars,
        http_port=28080,
    )
    fake = SimpleNamespace(settings=settings, log=None, registry=None, keystore=None)
    with pytest.raises(ConfigError, match=r"infra/flink\.sh setup"):
        flink_projections(fake, "K:S")
    for name in JARS:
        (jars / name).touch()
    # the hub's own functions' jar (built by `infra/flink.sh setup`) is required too
    with pytest.raises(ConfigError, match=r"hub-flink-functions-[0-9a-f]{16}\.jar"):
        flink_projections(fake, "K:S")
    (jars / jvm.jar_name()).touch()
    flink = flink_projections(fake, "K:S")
    try:
        at = flink.placement
        assert at.jdbc_url == "jdbc:postgresql://127.0.0.1:28432/hub"
        assert (at.jdbc_user, at.jdbc_password) == ("hub", "s3cret")
        assert at.registry_url == "http://127.0.0.1:28080"
        assert at.topic_prefix == "team1." and at.jars[0].startswith("file:///")
        assert at.jars[-1].endswith("/" + jvm.jar_name())
        assert flink.launcher.registry_auth == "K:S"
        spec = compile_projection(PAYMENT_AGGREGATES, at)
        assert "'topic' = 'team1.payments'" in spec.statements[0]
        # the ML feature views run beside the projections (`--all`, or named)
        assert sorted(flink.companions) == ["features.payment_risk", "features.price_anomaly"]
        assert {c.group for c in flink.companions.values()} == {
            "features.flink.payment_risk",
            "features.flink.price_anomaly",
        }
    finally:
        flink.views.close()
    sqlite = load_settings(
        environ={},
        data_dir=tmp_path / "data",
        event_log="kafka",
        flink_python=python,
        flink_jars_dir=jars,
    )
    with pytest.raises(ConfigError, match="PostgreSQL"):
        flink_projections(
            SimpleNamespace(settings=sqlite, log=None, registry=None, keystore=None), ""
        )


def test_market_bars_compile_one_insert_per_window_from_the_bar_definitions() -> None:
    from projections.folds import BAR_WINDOWS

    spec = compile_projection(MARKET_BARS, AT)
    assert [t.name for t in spec.tables] == [name for name, _, _ in BAR_WINDOWS]
    assert len(spec.inserts) == len(BAR_WINDOWS)
    hopping = next(s for s in spec.statements if "ohlcv_5m_hop_1m__in" in s)
    assert "UNNEST" in hopping and "< 5" in hopping  # five one-minute hops per 5-minute window
    tumbling = next(s for s in spec.statements if "ohlcv_1h__in" in s)
    assert "< 1" in tumbling


def test_event_patterns_compile_to_match_recognize_from_their_definitions() -> None:
    from decimal import Decimal

    from projections.flink.cep import compile_pattern, interval
    from projections.patterns import PriceSpike, Structuring

    spec = compile_pattern(Structuring(count=4, within_ms=90_061_001), AT)
    assert "PATTERN (S{3} E) WITHIN INTERVAL '1 01:01:01.001' DAY TO SECOND(3)" in spec.inserts[0]
    assert "AFTER MATCH SKIP PAST LAST ROW" in spec.inserts[0]
    assert "WATERMARK FOR" in spec.statements[0]
    spike = compile_pattern(PriceSpike(pct=Decimal("2.5")), AT)
    assert "CAST('102.5' AS DECIMAL(18, 8))" in spike.inserts[0]
    assert interval(1) == "INTERVAL '0 00:00:00.001' DAY TO SECOND(3)"


def test_unbounded_pattern_jobs_let_idle_partitions_go() -> None:
    """A partition without records holds the watermark at its minimum: an unbounded pattern
    job sets a source idle timeout (else it never emits a match while a partition is empty);
    a bounded one does not (its partitions finish); ``extra_config`` overrides the value."""
    import dataclasses
    from decimal import Decimal

    from projections.flink.cep import IDLE_TIMEOUT, compile_pattern
    from projections.patterns import PriceSpike, Structuring

    idle = "table.exec.source.idle-timeout"
    unbounded = dataclasses.replace(AT, bounded=False)
    for p in (Structuring(), PriceSpike(pct=Decimal("2.5"))):
        assert compile_pattern(p, unbounded).config[idle] == IDLE_TIMEOUT == "10 s"
        assert idle not in compile_pattern(p, AT).config
    tuned = dataclasses.replace(unbounded, extra_config={idle: "3 s"})
    assert compile_pattern(Structuring(), tuned).config[idle] == "3 s"
    # two unbounded patterns still combine into one job (same value)
    specs = [compile_pattern(p, unbounded) for p in (Structuring(), PriceSpike(pct=Decimal(2)))]
    assert combine("patterns", specs).config[idle] == IDLE_TIMEOUT


def test_jobs_combine_into_one_statement_set_reading_each_topic_once() -> None:
    import dataclasses

    at = dataclasses.replace(AT, group="g", result_topics=True)
    specs = [compile_projection(p, at) for p in (MARKET_BARS, POSITIONS, PAYMENTS)]
    job = combine("all", specs)
    sources = [s for s in job.statements if "'connector' = 'kafka'" in s]
    assert len(sources) == 2  # trades once for bars and positions, payments once
    assert len(job.inserts) == sum(len(s.inserts) for s in specs)
    # analytics tables also go to result topics; transactional ones (payments) do not
    topics = [s for s in job.statements if "'connector' = 'upsert-kafka'" in s]
    assert any("'topic' = 'ns1.flink.ohlcv_1m'" in s for s in topics)
    assert not any("payment_status" in s for s in topics)
    # each result row carries the job's MAC over the table's name and every column it writes
    assert job.row_macs and all("`row_mac` STRING" in s for s in topics)
    to_topics = [i for i in job.inserts if "__topic`" in i.split("\n")[0]]
    assert len(to_topics) == len(topics)
    assert all("`hub_row_mac`('ohlcv_1m', r.`" in i for i in to_topics if "ohlcv_1m" in i)
    assert not any("hub_row_mac" in i for i in job.inserts if "__sink`" in i.split("\n")[0])
    # two jobs that read one topic under different groups cannot share a source: refused
    apart = [compile_projection(p, AT) for p in (MARKET_BARS, POSITIONS)]
    with pytest.raises(Unsupported, match="trades__source"):
        combine("all", apart)


def test_payments_compile_status_history_and_limits_across_partitions() -> None:
    spec = compile_projection(PAYMENTS, AT)
    assert [t.name for t in spec.tables] == ["payment_status", "payment_limits", "payment_history"]
    # keys come from the rule's own key function (the limit's day is derived from initiated_at)
    assert [k["key"] for k in spec.keys] == [
        "projections.folds:payment_key",
        "projections.folds:limit_key",
    ]
    # limits are keyed by account, the topic by payment: partial rows merge additively
    view = view_ddl("ns1", PAYMENTS.table("payment_limits"))
    assert "sum(used) AS used" in view and "max(daily_limit) AS daily_limit" in view
    history = partial_ddl("ns1", PAYMENTS.table("payment_history"))
    assert "PRIMARY KEY (src_topic, src_partition, src_offset)" in history


def test_sealed_pii_opens_with_the_hubs_key_store_and_reads_erased_after_shredding(
    tmp_path: Path,
) -> None:
    from adapters.local_keystore import open_keyring
    from core.pii import encrypted_schema
    from core.ports.keystore import DecryptionFailed
    from projections.flink.job import SEALED, seal
    from projections.flink.sealed import SealedValueInvalid, opener

    schema = json.loads((ROOT / "domain/schemas/AccountOpened.avsc").read_text())
    text = encrypted_schema(schema)

    class Registry:
        def parsed(self, schema_id: int) -> object:
            assert schema_id == 7
            return type("P", (), {"text": text})()

    keys = open_keyring(tmp_path / "keys.db", tmp_path / "master.key")
    from core.pii import PiiCodec

    codec = PiiCodec(keys)
    datum = codec.encrypt(
        {
            "account_id": "A:1",
            "customer_name": "Zoë",
            "email": "z@x",
            "date_of_birth": None,
            "country": "DE",
            "kyc_level": "BASIC",
            "risk_rating": "LOW",
            "base_currency": "EUR",
            "opened_at": datetime(2026, 3, 1, tzinfo=UTC),
        },
        text,
        "accounts",
        tenant="acme",
    )
    sealed = seal("accounts", 7, "customer_name", datum["customer_name"], "A:1", "acme")
    assert sealed.startswith(SEALED) and "Zoë" not in sealed
    unseal = opener(Registry(), keys)
    assert unseal(sealed) == "Zoë"
    # the view text names the record's tenant; another tenant in it does not open the value
    other = seal("accounts", 7, "customer_name", datum["customer_name"], "A:1", "globex")
    with pytest.raises(DecryptionFailed):
        unseal(other)
    # a view rebuilt over a record sealed before tenants were bound (v1) still opens
    from core.ports.keystore import make_aad_v1

    old = keys.encrypt("A:1", b"\x08Zo\xc3\xab", make_aad_v1("accounts", "customer_name", "A:1"))
    assert unseal(seal("accounts", 7, "customer_name", old, "A:1", "acme")) == "Zoë"
    keys.for_tenant("acme").destroy("A:1")
    assert unseal(sealed) == "[erased]"
    with pytest.raises(SealedValueInvalid, match="not a sealed PII value"):
        unseal(SEALED + "garbage")


def test_feature_views_compile_into_the_projections_statement_set() -> None:
    """Both ML feature views compile; combined with the projections, each topic is read once,
    the join bounds the series points by the view's longest window (plus the engine's 1 µs),
    and the vectors go to the view's result topic."""
    import dataclasses

    from domain.features import HOUR_US, PAYMENT_RISK, PRICE_ANOMALY
    from ml.flink_features import compile_features

    at = dataclasses.replace(AT, group="g")
    views = [compile_features(v, at, "g") for v in (PAYMENT_RISK, PRICE_ANOMALY)]
    job = combine("all", [compile_projection(PAYMENT_AGGREGATES, at), *views])
    sources = [s for s in job.statements if "'connector' = 'kafka'" in s]
    assert sorted(s.split("`")[1] for s in sources) == [
        "accounts__source",
        "payments__source",
        "quotes__source",
        "trades__source",
    ]
    risk = views[0]
    (joined,) = [s for s in risk.statements if "payment_risk__joined` AS" in s]
    assert f">= ev.`t` - {24 * HOUR_US + 1}" in joined
    assert "f.`t` < ev.`t`" in joined and "v.`t` < ev.`t`" in joined  # strictly before
    assert "FROM `payment_risk__joined`" in risk.inserts[0]
    assert any("'topic' = 'ns1.flink.features.payment_risk'" in s for s in risk.statements)
    assert {f["kind"] for f in risk.features} == {"extract", "vector"}
    assert json.loads(job.to_json())["features"] == [*views[0].features, *views[1].features]


def test_the_job_jvm_runs_quick_options_unless_told_otherwise(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The launcher's JVM options reach the job's environment (``HUB_FLINK_JAVA_OPTIONS``
    replaces them); the job script here only prints what it got."""
    import sys

    from projections.flink import launch
    from projections.flink.compile import JobSpec

    spec = JobSpec("x", {}, [], [], [], ())
    monkeypatch.setattr(launch, "JOB_SCRIPT", tmp_path / "env.py")
    (tmp_path / "env.py").write_text("import os; print(os.environ['JAVA_TOOL_OPTIONS'])")
    launcher = launch.FlinkLauncher(Path(sys.executable), tmp_path / "jobs")
    job = launcher.submit(spec)
    assert job.process.wait(timeout=60) == 0
    assert job.stdout.read_text().split()[1:] == launch.JAVA_OPTIONS.split()
    monkeypatch.setenv("HUB_FLINK_JAVA_OPTIONS", "-Xmx1g")
    job = launcher.submit(spec)
    assert job.process.wait(timeout=60) == 0
    assert job.stdout.read_text().splitlines()[-1].split()[1:] == ["-Xmx1g"]


def test_feature_jobs_carry_a_state_ttl_longer_than_their_windows() -> None:
    """The unbounded feature jobs keep series points and scored events in the joins' state for
    the view's longest window plus ``LATENESS_H`` (per-operator ``STATE_TTL`` hints), attribute
    versions without TTL, and each event's accumulator an hour longer than its join rows; no
    job-wide ``table.exec.state.ttl``, which would expire the projections' entity folds in the
    same statement set."""
    import dataclasses
    import re

    from domain.features import PAYMENT_RISK, PRICE_ANOMALY
    from ml.flink_features import LATENESS_H, compile_features

    at = dataclasses.replace(AT, group="g")
    for view in (PAYMENT_RISK, PRICE_ANOMALY):
        spec = compile_features(view, at, "g")
        window_h = max(f.window_us for f in view.features) / 3_600_000_000
        (joined,) = [s for s in spec.statements if f"{view.name}__joined` AS" in s]
        hints = re.findall(r"STATE_TTL\(([^)]*)\)", joined)
        points = dict(re.findall(r"'(\w+)' = '(\d+) h'", hints[0]))
        versions = dict(re.findall(r"'(\w+)' = '(\d+) h'", hints[1]))
        assert set(points) == {"ev", "f"} and set(versions) == {"ev"}  # versions: no TTL
        assert "__points` AS f" in joined and "__versions` AS v" in joined
        ttl = int(points["ev"])
        assert int(points["f"]) == int(versions["ev"]) == ttl
        assert ttl >= window_h + LATENESS_H and ttl - window_h <= LATENESS_H + 1
        (aggregate,) = re.findall(
            rf"STATE_TTL\('{view.name}__joined' = '(\d+) h'\)", spec.inserts[0]
        )
        assert int(aggregate) > ttl
        combined = combine("all", [compile_projection(PAYMENT_AGGREGATES, at), spec])
        assert not any("state.ttl" in k for k in combined.config)


def test_the_row_key_reaches_the_job_environment_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The jobs MAC their result rows under the launcher's key (``projections.flink.rowmac``): it
    is in the job's environment, never in its spec file, and a key the hub process inherited is
    not passed on (a job launched without one refuses to start, see ``job.register_row_mac``)."""
    import sys

    from projections.flink import launch
    from projections.flink.compile import JobSpec
    from projections.flink.rowmac import ROW_KEY_ENV

    spec = JobSpec("x", {}, [], [], [], (), row_macs=True)
    monkeypatch.setattr(launch, "JOB_SCRIPT", tmp_path / "env.py")
    (tmp_path / "env.py").write_text(f"import os; print(os.environ.get({ROW_KEY_ENV!r}, '-'))")
    key = bytes(range(32))
    job = launch.FlinkLauncher(Path(sys.executable), tmp_path / "jobs", row_key=key).submit(spec)
    assert job.process.wait(timeout=60) == 0
    assert job.stdout.read_text().split() == [key.hex()]
    assert key.hex() not in (job.folder / "spec.json").read_text()
    assert json.loads((job.folder / "spec.json").read_text())["row_macs"] is True
    monkeypatch.setenv(ROW_KEY_ENV, "ab" * 32)
    job = launch.FlinkLauncher(Path(sys.executable), tmp_path / "other").submit(spec)
    assert job.process.wait(timeout=60) == 0
    assert job.stdout.read_text().split() == ["-"]
