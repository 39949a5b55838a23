"""The scoring consumer's column-wise prediction records (``ml.predictions.PredictionWriter``)
are byte for byte what the per-event path gives for the same rows and the same time: one
``Prediction`` per event with ``ml.features.digest`` of its vector, ``Prediction.event``, and
``Publisher.prepare_reference`` (record at a time, fastavro). Random batches cover integral,
decimal, tiny, huge, negative-zero, NaN and infinite feature values, feature names that need
JSON escaping or hold ``%``, multi-byte UTF-8 and long strings (varint lengths of 2-3 bytes),
scores on the threshold, and a champion/challenger split.

Fresh event ids and receipt times differ by nature: ids are checked for their form and as the
correlation id, the other headers byte for byte."""

from __future__ import annotations

import io
import json
import random
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import fastavro
import numpy as np
import pyarrow as pa
import pytest

from adapters.sqlite_log import SqliteEventLog
from core.events import KEY_FIELD_CONFIG, STRATEGY_CONFIG
from core.metrics import Metrics
from domain import envelope as env
from domain.catalog import schema_text, subject_for
from ingest.publish import Publisher
from ml.features import digest
from ml.flat_avro import FlatAvro
from ml.models import ModelVersion
from ml.predictions import (
    PREDICTION,
    PREDICTIONS_TOPIC,
    PRODUCER,
    Prediction,
    PredictionWriter,
    Scored,
    VectorText,
)
from registry.service import SchemaRegistry

AT = datetime(2026, 12, 2, 15, 4, 5, 123456, tzinfo=UTC)
VARYING = {env.H_ID, env.H_CORRELATION, env.H_TIME}


def _without_pii() -> str:
    """The shipped schema without its PII marks (the version every hub registered before
    session 23): the column-wise path writes only such a version; since the entity is the
    data subject and ``features`` PII, records go through ``Publisher.prepare`` (sealed)."""
    schema = json.loads(schema_text(PREDICTION))
    for f in schema["fields"]:
        f.pop("classification", None)
        f.pop("hub.data_subject", None)
    return json.dumps(schema)


@pytest.fixture
def log_and_registry() -> Iterator[tuple[SqliteEventLog, SchemaRegistry]]:
    log = SqliteEventLog(":memory:")
    registry = SchemaRegistry(log)
    log.create_topic(PREDICTIONS_TOPIC, 1, {STRATEGY_CONFIG: "topic", KEY_FIELD_CONFIG: "entity"})
    registry.register(subject_for(PREDICTIONS_TOPIC, PREDICTION, "topic"), _without_pii())
    yield log, registry
    log.close()


@pytest.fixture
def publisher(log_and_registry: tuple[SqliteEventLog, SchemaRegistry]) -> Publisher:
    return Publisher(*log_and_registry, 1_000_000, Metrics())


def _info(version: int, threshold: float) -> ModelVersion:
    return ModelVersion("m", version, "f", "0" * 64, [], threshold, {}, {}, "alice", "t")


def _value(rng: random.Random) -> float:
    kind = rng.randrange(9)
    if kind == 0:
        return float(rng.randint(0, 500))
    if kind == 1:
        return rng.randint(-(10**8), 10**8) / 100
    if kind == 2:
        return rng.uniform(-1, 1) * 10.0 ** rng.randint(-12, 24)
    if kind == 3:
        return rng.choice([0.0, -0.0, 1e16, 1e-4, 9.999e-5, 1e15 + 0.5, float(2**53)])
    if kind == 4:
        return rng.choice([float("nan"), float("inf"), float("-inf")])
    return rng.random()


def _text(rng: random.Random) -> str:
    size = rng.choice([0, 3, 10, 63, 64, 70, 9000])
    chunk = "".join(rng.choices('ACC-0123456789é€😀"\\\n', k=16))
    return (chunk * (size // 16 + 1))[:size]


def _batch(rng: random.Random, n: int) -> tuple[Scored, list[str]]:
    names = rng.choice(
        [
            ["count_1h", "sum_1h", "kyc_level", "amount", "country_risk"],
            ["z", "a%s", 'quo"te', "ünï", "%r", "b"],
            ["only"],
        ]
    )
    matrix = np.array([[_value(rng) for _ in names] for _ in range(n)], dtype=np.float64)
    scores = np.array([rng.choice([rng.random(), 0.5, 0.25]) for _ in range(n)])
    infos = {"champion": _info(3, 0.5)}
    if rng.random() < 0.5:
        infos["challenger"] = _info(2**20, 0.25)  # a version of three varint bytes
    variants = [rng.choice(sorted(infos)) for _ in range(n)]
    latency = rng.choice([0, 5, 64, 10**12])
    entities = [_text(rng) for _ in range(n)]
    subjects = [_text(rng) for _ in range(n)]
    sources = [f"payments/{rng.randrange(3)}/{rng.randrange(10**9)}" for _ in range(n)]
    scored = Scored(
        "payment_risk",
        VectorText(names),
        matrix,
        scores,
        variants,
        infos,
        entities,
        subjects,
        latency,
    )
    return scored, sources


def _reference(batch: Scored, sources: list[str]) -> list[Prediction]:
    """One Prediction per event, built the way the per-event scorer always built them."""
    out = []
    for i, (row, score) in enumerate(
        zip(batch.matrix.tolist(), batch.scores.tolist(), strict=True)
    ):
        info = batch.infos[batch.variants[i]]
        vector = dict(zip(batch.text.names, row, strict=True))
        out.append(
            Prediction(
                batch.model,
                info.version,
                batch.variants[i],
                batch.entities[i],
                batch.subjects[i],
                sources[i],
                vector,
                digest(vector),
                round(score, 9),
                "alert" if score >= info.threshold else "pass",
                batch.latency_us,
            )
        )
    return out


@pytest.mark.parametrize("seed", range(12))
def test_column_wise_records_equal_the_per_event_path(
    publisher: Publisher, seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = random.Random(seed)
    batch, sources = _batch(rng, rng.choice([1, 2, 40, 300]))
    want = publisher.prepare_reference(
        PREDICTIONS_TOPIC, [p.event(AT) for p in _reference(batch, sources)], PRODUCER
    )

    def no_fallback(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the batch went through the per-event path")

    monkeypatch.setattr(publisher, "prepare", no_fallback)
    got = PredictionWriter(publisher).records(batch, sources, AT)
    assert len(got) == len(want)
    assert [r.value for r in got] == [r.value for r in want]
    assert [r.key for r in got] == [r.key for r in want]
    for g, w in zip(got, want, strict=True):
        assert [h for h in g.headers if h[0] not in VARYING] == [
            h for h in w.headers if h[0] not in VARYING
        ]
        assert [h[0] for h in g.headers] == [h[0] for h in w.headers]
        ids = dict(g.headers)
        assert uuid.UUID(ids[env.H_ID].decode()).version == 7
        assert ids[env.H_CORRELATION] == ids[env.H_ID]
        assert env.parse_rfc3339(ids[env.H_TIME].decode()) == AT
    assert len({dict(r.headers)[env.H_ID] for r in got}) == len(got)
    # and the object form the request path returns gives the same event values
    objects = [p.event(AT).value for p in batch.predictions(sources)]
    assert objects == [p.event(AT).value for p in _reference(batch, sources)]


def test_a_record_over_the_size_limit_is_refused_as_the_per_event_path_refuses_it(
    log_and_registry: tuple[SqliteEventLog, SchemaRegistry],
) -> None:
    batch, sources = _batch(random.Random(1), 3)
    small = Publisher(*log_and_registry, 200, Metrics())
    with pytest.raises(Exception, match="HUB_MAX_RECORD_BYTES") as got:
        PredictionWriter(small).records(batch, sources, AT)
    assert "Record " in str(got.value)


def test_flat_avro_writes_what_fastavro_writes() -> None:
    schema = fastavro.parse_schema(
        {
            "type": "record",
            "name": "R",
            "fields": [
                {"name": "s", "type": "string"},
                {"name": "i", "type": "int"},
                {"name": "l", "type": "long"},
                {"name": "d", "type": "double"},
                {"name": "t", "type": {"type": "long", "logicalType": "timestamp-micros"}},
                {"name": "c", "type": "string"},
                {"name": "k", "type": "long"},
            ],
        }
    )
    encoder = FlatAvro.of(schema)
    assert encoder is not None
    rng = np.random.default_rng(3)
    n = 500
    strings = ["x" * int(k) + "€" for k in rng.integers(0, 20000, n)]
    ints = rng.integers(-(2**31), 2**31, n)
    longs = np.concatenate([rng.integers(-(2**63), 2**63 - 1, n - 4), [0, -1, 2**63 - 1, -(2**63)]])
    doubles = rng.normal(size=n) * 1e300
    times = rng.integers(-(10**15), 10**15, n)
    got = encoder.encode(
        n,
        b"\x00head",
        {
            "s": pa.array(strings, pa.string()),
            "i": ints,
            "l": longs,
            "d": doubles,
            "t": times,
            "c": "same for all",
            "k": -(2**40),
        },
    )
    want = []
    for r in range(n):
        buf = io.BytesIO()
        datum = {
            "s": strings[r],
            "i": int(ints[r]),
            "l": int(longs[r]),
            "d": float(doubles[r]),
            "t": int(times[r]),
            "c": "same for all",
            "k": -(2**40),
        }
        fastavro.schemaless_writer(buf, schema, datum)
        want.append(b"\x00head" + buf.getvalue())
    assert got == want
    # what it does not write exactly, it refuses (the caller then encodes per record)
    assert encoder.encode(n, b"", {"s": pa.array(strings)}) is None  # fields missing
    too_big = {"s": "a", "i": 2**31, "l": 0, "d": 0.0, "t": 0, "c": "", "k": 0}
    assert encoder.encode(1, b"", too_big) is None
    assert (
        FlatAvro.of(
            {"type": "record", "name": "U", "fields": [{"name": "u", "type": ["null", "string"]}]}
        )
        is None
    )
