"""A plain Kafka producer deletes or rolls back rows on the Flink result topics (s18 follow-up
of s17's row MACs).

Before: a tombstone (null value: nothing to MAC) on ``flink.<table>`` under a loaded row's key
deleted the row (the loader fell back to a full reload that dropped the key), and on
``flink.features.<view>`` deleted a vector; and a genuine but older row of a key, sent again,
replaced the newer one (a running total rolled back) until the job wrote the key again. Now a
tombstone must carry the hub's delete signature (``rowmac.DELETE_HEADER``) or is ignored and
counted, and a row whose version (``src_last``, inside its MAC) is below its key's is refused
and counted (``projections.flink.results``).
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
from projections.flink.rowmac import COLUMN, DELETE_HEADER, delete_header, row_mac

pytestmark = pytest.mark.integration

TABLE = PAYMENT_AGGREGATES.table("aml_daily")
DAY = 1_772_409_600 * 1_000_000
Wire = tuple[bytes, bytes | None, list[tuple[str, str | bytes | None]]]


def _row(key: bytes, events: int, amount: str, last: int) -> Wire:
    """acme's A1 running total as the hub's job writes it (MACed under ``key``)."""
    ident = {"tenant": "acme", "account_id": "A1", "day": DAY, "currency": "EUR"}
    value: dict[str, Any] = ident | {
        "events": events,
        "amount": Decimal(amount),
        "near_threshold": events,
        "near_threshold_amount": Decimal(amount),
        "src_topic": "payments",
        "src_partition": 0,
        "src_first": 0,
        "src_last": last,
    }
    value[COLUMN] = row_mac(key, TABLE.name, [value[n] for n, _ in partial_columns(TABLE)])
    record_key = ident | {"src_topic": "payments", "src_partition": 0}
    return json.dumps(record_key).encode(), json.dumps(value, default=str).encode(), []


def _produce(kafka: str, topic: str, records: list[Wire]) -> None:
    producer = Producer({"bootstrap.servers": kafka, "log_level": 0})
    for k, v, headers in records:
        producer.produce(topic, value=v, key=k, headers=headers)
    assert producer.flush(30) == 0


def test_a_producer_to_flink_topics_can_neither_delete_nor_roll_back_a_view_row(
    kafka_hub: tuple[Hub, str], kafka: str
) -> None:
    h, prefix = kafka_hub
    key = row_key(h.settings)
    loader = ResultLoader(h.log, h.projections.store("analytics"), row_key=key)
    loader.ensure_topics([TABLE])
    wire = prefix + result_topic(TABLE)
    first, second = _row(key, 1, "9100.00", 3), _row(key, 2, "18200.00", 7)
    _produce(kafka, wire, [first, second])
    loader.load(PAYMENT_AGGREGATES, [TABLE])

    def a1() -> list[tuple[int, Decimal]]:
        return [(r["events"], r["amount"]) for r in loader.rows(PAYMENT_AGGREGATES, TABLE)]

    assert a1() == [(2, Decimal("18200.00"))]
    # 1. a tombstone under A1's key; 2. one with a made-up signature; 4. the first genuine
    # running total sent again (MAC valid, older version)
    # 3. a genuine signature with a second header beside it (no copy of a repeated envelope
    # header is read, whichever comes first)
    made_up = json.dumps({"version": 99, "mac": "00" * 32}).encode()
    ident = json.loads(second[0])
    names = (*TABLE.key, "src_topic", "src_partition")
    genuine = delete_header(key, TABLE.name, [ident[n] for n in names], 7)
    _produce(
        kafka,
        wire,
        [
            (second[0], None, []),
            (second[0], None, [(DELETE_HEADER, made_up)]),
            (second[0], None, [(DELETE_HEADER, made_up), (DELETE_HEADER, genuine)]),
            first,
        ],
    )
    loader.load(PAYMENT_AGGREGATES, [TABLE])
    assert a1() == [(2, Decimal("18200.00"))]  # neither deleted nor rolled back to 9100
    assert (loader.ignored_tombstones, loader.stale, loader.refused) == (3, 1, 0)
    assert loader.read_records == 4  # no full reload forced


def test_a_producer_to_flink_topics_cannot_delete_a_feature_vector(
    kafka_hub: tuple[Hub, str], kafka: str
) -> None:
    from core.ports.eventlog import TopicPartition
    from domain.features import PAYMENT_RISK
    from hub.flink_feature_views import FlinkFeatureView
    from hub.ml_setup import feature_vectors
    from ml.flink_features import MAC_COLUMNS, mac_name
    from ml.flink_features import result_topic as vector_topic

    h, prefix = kafka_hub
    key = row_key(h.settings)
    store = feature_vectors(h)
    try:
        companion = FlinkFeatureView(PAYMENT_RISK, h.log, store, key)
        companion.prepare()
        features = dict.fromkeys(PAYMENT_RISK.names, 0.0)
        vector = {"entity": "acme:A1", "subject": "P1", "time_us": DAY, "features": features}
        ident = {"ev_partition": 0, "ev_offset": 5}
        value: dict[str, Any] = ident | {"vector": json.dumps(vector, sort_keys=True)}
        value[COLUMN] = row_mac(key, mac_name(PAYMENT_RISK), [value[n] for n, _ in MAC_COLUMNS])
        record_key = json.dumps(ident).encode()
        wire = prefix + vector_topic(PAYMENT_RISK)
        covers = {TopicPartition(t, 0): 0 for t in companion.topics}
        h.log.commit_offsets(companion.group, covers)
        _produce(kafka, wire, [(record_key, json.dumps(value).encode(), [])])
        assert companion.load()["vectors"] == 1
        # an unsigned tombstone, and one under a key that is not the job's: ignored
        _produce(kafka, wire, [(record_key, None, []), (b"not json", None, [])])
        assert companion.load()["vectors"] == 1
        assert companion._loader.ignored_tombstones == 2
        # a delete the hub signed removes it
        signed = delete_header(key, mac_name(PAYMENT_RISK), [0, 5], 0)
        _produce(kafka, wire, [(record_key, None, [(DELETE_HEADER, signed)])])
        assert companion.load()["vectors"] == 0
        # a newer vector of the event (s19: the re-sent one, of no version, stays refused after
        # the delete as of version 0 in a full read), and under its key spelled another way:
        # one scored event, one vector
        vector["version"] = 1
        value["vector"] = json.dumps(vector, sort_keys=True)
        value[COLUMN] = row_mac(key, mac_name(PAYMENT_RISK), [value[n] for n, _ in MAC_COLUMNS])
        respelled = json.dumps({"ev_offset": 5, "ev_partition": 0}).encode()
        body = json.dumps(value).encode()
        _produce(kafka, wire, [(record_key, body, []), (respelled, body, [])])
        assert len(companion._loader.load(PAYMENT_RISK)) == 1
        assert companion.load()["vectors"] == 1
    finally:
        store.close()


def test_a_genuine_row_under_its_key_spelled_another_way_is_not_loaded_twice(
    kafka_hub: tuple[Hub, str], kafka: str
) -> None:
    """The loader told keys apart by their bytes: A1's genuine running total sent again under
    the same key columns in another order (or other spacing) was a second partial row of the
    same source partition, and A1's total doubled. Keys are now their canonical columns."""
    h, prefix = kafka_hub
    key = row_key(h.settings)
    loader = ResultLoader(h.log, h.projections.store("analytics"), row_key=key)
    loader.ensure_topics([TABLE])
    wire = prefix + result_topic(TABLE)
    record_key, value, _ = _row(key, 2, "18200.00", 7)
    _produce(kafka, wire, [(record_key, value, [])])
    loader.load(PAYMENT_AGGREGATES, [TABLE])
    respelled = json.dumps(dict(reversed(json.loads(record_key).items())), indent=1).encode()
    assert respelled != record_key
    _produce(kafka, wire, [(respelled, value, []), (respelled, value, [])])
    loader.load(PAYMENT_AGGREGATES, [TABLE])
    rows = loader.rows(PAYMENT_AGGREGATES, TABLE)
    assert [(r["events"], r["amount"]) for r in rows] == [(2, Decimal("18200.00"))]
    # and a full reload agrees
    fresh = ResultLoader(h.log, h.projections.store("analytics"), row_key=key)
    fresh._full(PAYMENT_AGGREGATES, [TABLE])
    assert fresh.digest(PAYMENT_AGGREGATES, TABLE) == loader.digest(PAYMENT_AGGREGATES, TABLE)
