"""A plain Kafka producer writes rows onto the Flink result topics (s17 trust follow-up).

Before: ``ResultLoader`` took each ``flink.<table>`` row with its tenant (and every value) as
found, and ``FeatureVectorLoader`` each ``flink.features.<view>`` vector: anyone able to produce
there (no hub key needed; the upsert-kafka sink carries no record MAC) wrote rows into any
tenant's analytics views and vectors into training sets. Only the Kafka ACL stood in the way
(s17 live red team, finding 3). Now the hub's Flink job MACs every result row under a key
derived from the hub's local MAC key (``projections.flink.rowmac``, the key in the job's
environment only), and the loaders refuse a row without a valid MAC, or with its MAC but its
tenant changed, or moved under another key (which would load it twice): counted and logged.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest
from confluent_kafka import Producer

from hub.bootstrap import Hub
from hub.flink import row_key
from projections.catalog import PAYMENT_AGGREGATES
from projections.flink.compile import partial_columns, result_topic
from projections.flink.results import ResultLoader
from projections.flink.rowmac import COLUMN, row_mac

pytestmark = pytest.mark.integration

TABLE = PAYMENT_AGGREGATES.table("aml_daily")
DAY = 1_772_409_600 * 1_000_000


def _row(tenant: str, account: str, amount: str, key: bytes | None) -> tuple[bytes, bytes]:
    """A partial row as Flink's upsert-kafka sink writes it (JSON key and value), MACed under
    ``key`` as the hub's job does (None: no MAC, what a producer without the key can write)."""
    ident = {"tenant": tenant, "account_id": account, "day": DAY, "currency": "EUR"}
    value: dict[str, Any] = ident | {
        "events": 3,
        "amount": Decimal(amount),
        "near_threshold": 3,
        "near_threshold_amount": Decimal(amount),
        "src_topic": "payments",
        "src_partition": 0,
        "src_first": 0,
        "src_last": 2,
    }
    if key is not None:
        values = [value[n] for n, _ in partial_columns(TABLE)]
        value[COLUMN] = row_mac(key, TABLE.name, values)
    record_key = ident | {"src_topic": "payments", "src_partition": 0}
    return json.dumps(record_key).encode(), json.dumps(value, default=str).encode()


def _produce(kafka: str, topic: str, records: list[tuple[bytes, bytes]]) -> None:
    producer = Producer({"bootstrap.servers": kafka, "log_level": 0})
    for k, v in records:
        producer.produce(topic, value=v, key=k)
    assert producer.flush(30) == 0


def test_a_producer_to_flink_topics_cannot_write_another_tenants_view_rows(
    kafka_hub: tuple[Hub, str], kafka: str
) -> None:
    h, prefix = kafka_hub
    key = row_key(h.settings)
    loader = ResultLoader(h.log, h.projections.store("analytics"), row_key=key)
    loader.ensure_topics([TABLE])
    wire = prefix + result_topic(TABLE)

    genuine_key, genuine = _row("acme", "A1", "9100.00", key)  # as the hub's job writes it
    # 1. a forged row for tenant globex: no MAC (the producer has no hub key)
    forged = _row("globex", "G1", "9999.99", None)
    # 2. a guessed key: what a hub without the derivation, or another hub, would use
    guessed = _row("globex", "G2", "9999.99", b"\0" * 32)
    # 3. the genuine row's MAC kept, its tenant changed to globex
    moved = json.loads(genuine)
    moved["tenant"] = "globex"
    retenanted = (genuine_key.replace(b'"acme"', b'"globex"'), json.dumps(moved).encode())
    # 4. the genuine row again under another Kafka key: loaded twice, acme's sums would double
    relabelled = json.loads(genuine_key) | {"src_partition": 7}
    duplicated = (json.dumps(relabelled).encode(), genuine)
    _produce(kafka, wire, [(genuine_key, genuine), forged, guessed, retenanted, duplicated])

    loader.load(PAYMENT_AGGREGATES, [TABLE])
    rows = loader.rows(PAYMENT_AGGREGATES, TABLE)
    assert [(r["tenant"], r["account_id"], r["amount"]) for r in rows] == [
        ("acme", "A1", Decimal("9100.00"))
    ]
    assert loader.refused == 4  # nothing dropped unseen: each counted and logged with why
    reasons = [reason for *_, reason in loader.refusals]
    assert "no row_mac" in reasons[0]
    assert all("does not match" in r for r in reasons[1:3])
    assert "Kafka key" in reasons[3]


def test_a_loader_without_the_key_loads_nothing(kafka_hub: tuple[Hub, str], kafka: str) -> None:
    """Fails closed: a loader given no key cannot authenticate, so loads no row at all."""
    h, prefix = kafka_hub
    loader = ResultLoader(h.log, h.projections.store("analytics"))
    loader.ensure_topics([TABLE])
    _produce(kafka, prefix + result_topic(TABLE), [_row("acme", "A1", "1.00", row_key(h.settings))])
    loader.load(PAYMENT_AGGREGATES, [TABLE])
    assert loader.rows(PAYMENT_AGGREGATES, TABLE) == []
    assert loader.refused == 1 and "no row key" in loader.refusals[0][3]


def test_a_producer_to_flink_topics_cannot_write_feature_vectors(
    kafka_hub: tuple[Hub, str], kafka: str
) -> None:
    from core.ports.eventlog import TopicPartition
    from domain.features import PAYMENT_RISK
    from hub.flink_feature_views import FlinkFeatureView
    from hub.ml_setup import feature_vectors
    from ml.flink_features import result_topic as vector_topic

    h, prefix = kafka_hub
    store = feature_vectors(h)
    try:
        companion = FlinkFeatureView(PAYMENT_RISK, h.log, store, row_key(h.settings))
        companion.prepare()
        features = dict.fromkeys(PAYMENT_RISK.names, 0.0)
        vector = {"entity": "globex:G1", "time_us": DAY, "features": features}
        ident = {"ev_partition": 0, "ev_offset": 5}
        value = ident | {"vector": json.dumps(vector, sort_keys=True)}
        _produce(
            kafka,
            prefix + vector_topic(PAYMENT_RISK),
            [(json.dumps(ident).encode(), json.dumps(value).encode())],
        )
        covers = {TopicPartition(t, 0): 0 for t in companion.topics}
        h.log.commit_offsets(companion.group, covers)
        done = companion.load()
        assert done["vectors"] == 0
        assert store.rows(PAYMENT_RISK.name) == []
        assert companion._loader.refused == 1
    finally:
        store.close()
