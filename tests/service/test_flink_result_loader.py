"""The incremental result loader (``projections.flink.results.ResultLoader``) without Flink: the
partial rows a Flink job would upsert into ``flink.aml_daily`` (running totals per view key and
source partition, newest value per key wins) are appended to the hub's log by hand, and loaded
into the hub's chDB analytics store. A second load reads only the records appended since the
first (counted), a restarted loader too, and the views always equal a full reload's and the
running totals the records say."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

from core.ports.eventlog import Record
from hub.bootstrap import Hub
from projections.catalog import PAYMENT_AGGREGATES
from projections.flink.compile import partial_columns, result_topic
from projections.flink.results import ResultLoader
from projections.flink.rowmac import COLUMN, row_mac

TABLE = PAYMENT_AGGREGATES.table("aml_daily")
DAY = 1_772_409_600 * 1_000_000  # 2026-03-02, µs
ROW_KEY = bytes(range(32))  # the result rows' MAC key, as the hub's Flink job holds it


def partial(account: str, src_partition: int, events: int, amount: str, last: int) -> Record:
    """One upsert of a running partial row, as Flink's upsert-kafka sink writes it (JSON)."""
    key = {"tenant": "acme", "account_id": account, "day": DAY, "currency": "EUR"}
    value = key | {
        "events": events,
        "amount": Decimal(amount),
        "near_threshold": events,
        "near_threshold_amount": Decimal(amount),
        "src_topic": "payments",
        "src_partition": src_partition,
        "src_first": 0,
        "src_last": last,
    }
    value[COLUMN] = row_mac(ROW_KEY, TABLE.name, [value[n] for n, _ in partial_columns(TABLE)])
    key_bytes = json.dumps(
        key | {"src_topic": "payments", "src_partition": src_partition}, sort_keys=True
    ).encode()
    return Record(value=json.dumps(value, default=str).encode(), key=key_bytes)


def merged(loader: ResultLoader) -> dict[str, tuple[int, Decimal]]:
    return {
        r["account_id"]: (r["events"], r["amount"]) for r in loader.rows(PAYMENT_AGGREGATES, TABLE)
    }


def full_reload_digest(hub: Hub) -> dict[str, Any]:
    """The digest a full reload of the topic gives (the loader's first-load path)."""
    fresh = ResultLoader(hub.log, hub.projections.store("analytics"), row_key=ROW_KEY)
    fresh._full(PAYMENT_AGGREGATES, [TABLE])
    return fresh.digest(PAYMENT_AGGREGATES, TABLE)


def test_a_second_load_reads_only_the_new_records_and_the_views_stay_exact(
    hub: Hub, tmp_path: Path
) -> None:
    topic = result_topic(TABLE)
    hub.log.create_topic(topic, 1)
    hub.log.append(
        topic,
        [
            partial("A1", 0, 1, "9100.00", 3),
            partial("A1", 0, 2, "18200.50", 7),  # A1's running total replaces its first value
            partial("A1", 1, 1, "9000.00", 2),  # A1 from another source partition: summed
            partial("A2", 0, 1, "9500.00", 4),
        ],
    )
    memory = tmp_path / "loader"
    loader = ResultLoader(
        hub.log, hub.projections.store("analytics"), memory=memory, row_key=ROW_KEY
    )
    assert loader.load(PAYMENT_AGGREGATES, [TABLE]) == {"aml_daily": 3}
    assert loader.read_records == 4
    assert merged(loader) == {
        "A1": (3, Decimal("27200.50")),
        "A2": (1, Decimal("9500.00")),
    }

    # new results: A1 partition 0 moves on, A3 appears
    hub.log.append(topic, [partial("A1", 0, 3, "27700.50", 9), partial("A3", 0, 1, "9999.99", 11)])
    assert loader.load(PAYMENT_AGGREGATES, [TABLE]) == {"aml_daily": 2}
    assert loader.read_records == 2  # only what is new
    assert merged(loader) == {
        "A1": (4, Decimal("36700.50")),
        "A2": (1, Decimal("9500.00")),
        "A3": (1, Decimal("9999.99")),
    }
    live = loader.digest(PAYMENT_AGGREGATES, TABLE)

    # nothing new: nothing read, nothing written
    assert loader.load(PAYMENT_AGGREGATES, [TABLE]) == {"aml_daily": 0}
    assert loader.read_records == 0
    assert loader.digest(PAYMENT_AGGREGATES, TABLE) == live

    # a restarted loader resumes from the committed positions, stored with the rows, and its
    # memory file: it reads only the new record, not the topic's prefix
    restarted = ResultLoader(
        hub.log, hub.projections.store("analytics"), memory=memory, row_key=ROW_KEY
    )
    assert restarted.positions(PAYMENT_AGGREGATES) == {f"{topic}/0": 6}
    saved = (memory / "payment_aggregates.json").read_text()
    hub.log.append(topic, [partial("A2", 0, 2, "19000.00", 12)])
    assert restarted.load(PAYMENT_AGGREGATES, [TABLE]) == {"aml_daily": 1}
    assert (restarted.read_records, restarted.prefix_records) == (1, 0)
    assert merged(restarted)["A2"] == (2, Decimal("19000.00"))
    incremental = restarted.digest(PAYMENT_AGGREGATES, TABLE)
    assert incremental == full_reload_digest(hub)
    assert incremental["rows"] == 3

    # a memory file behind the store's positions (a crash after the store write, before the
    # file) is not trusted: the prefix is read once, and the views stay exact
    (memory / "payment_aggregates.json").write_text(saved)
    again = ResultLoader(
        hub.log, hub.projections.store("analytics"), memory=memory, row_key=ROW_KEY
    )
    hub.log.append(topic, [partial("A3", 0, 2, "19999.98", 13)])
    assert again.load(PAYMENT_AGGREGATES, [TABLE]) == {"aml_daily": 1}
    assert (again.read_records, again.prefix_records) == (1, 7)
    assert merged(again)["A3"] == (2, Decimal("19999.98"))
    assert again.digest(PAYMENT_AGGREGATES, TABLE) == full_reload_digest(hub)


def test_a_memory_file_edited_without_the_key_is_not_trusted(hub: Hub, tmp_path: Path) -> None:
    """The memory file carries a MAC under the hub's derived key: an edited value with the
    positions kept would otherwise become the base of the next load's sums."""
    topic = result_topic(TABLE)
    hub.log.create_topic(topic, 1)
    hub.log.append(topic, [partial("A1", 0, 1, "9100.00", 3), partial("A2", 0, 1, "9500.00", 4)])
    memory, key = tmp_path / "loader", b"k" * 32
    store = hub.projections.store("analytics")
    assert ResultLoader(hub.log, store, memory=memory, memory_key=key, row_key=ROW_KEY).load(
        PAYMENT_AGGREGATES, [TABLE]
    ) == {"aml_daily": 2}
    path = memory / "payment_aggregates.json"
    sealed = json.loads(path.read_text())
    assert set(sealed) == {"mac", "state"} and "9100.00" in sealed["state"]

    def load_after(text: str, with_key: bytes | None) -> ResultLoader:
        path.write_text(text)
        loader = ResultLoader(hub.log, store, memory=memory, memory_key=with_key, row_key=ROW_KEY)
        hub.log.append(topic, [partial("A1", 0, 2, "18200.00", 5)])
        assert loader.load(PAYMENT_AGGREGATES, [TABLE]) == {"aml_daily": 1}
        return loader

    # the state edited (A1's loaded total lowered), the MAC left as it was: refused, the prefix
    # is read from the topic and the sums stay right
    forged = json.dumps({**sealed, "state": sealed["state"].replace("9100.00", "100.00")})
    loader = load_after(forged, key)
    assert loader.prefix_records == 2
    assert merged(loader)["A1"] == (2, Decimal("18200.00"))
    assert loader.digest(PAYMENT_AGGREGATES, TABLE) == full_reload_digest(hub)
    # the same edit with no MAC at all: refused
    assert load_after(json.loads(forged)["state"], key).prefix_records > 0
    # a valid file read under another key: refused (the loader then saves it under its own key)
    assert load_after(path.read_text(), b"x" * 32).prefix_records > 0
    # an untouched file under the reader's key is used as before: no prefix read
    assert load_after(path.read_text(), b"x" * 32).prefix_records == 0


def test_flink_status_and_metrics_show_committed_offsets_loader_position_and_lag(
    hub: Hub,
) -> None:
    """``flink_lags`` (what ``hub projection status --engine flink`` and ``/metrics`` read):
    Flink's committed offsets of the projection's consumer group, the records past them, the
    result loader's committed position in ``flink.<table>`` and the result records past it."""
    from core.ports.eventlog import TopicPartition
    from hub.flink_metrics import flink_gauges
    from projections.flink.compile import group_id
    from projections.flink.service import flink_lags
    from tests.differential.test_flink_projections import batches

    for tenant, events in batches():
        hub.publisher.publish("payments", events, producer="test", tenant=tenant)
    ends = hub.log.end_offsets("payments")
    # Flink's checkpoint committed every partition but the first, which it read 2 records of
    first = min(ends)
    at = {TopicPartition("payments", p): (2 if p == first else e) for p, e in ends.items()}
    hub.log.commit_offsets(group_id(PAYMENT_AGGREGATES), at)
    behind = ends[first] - 2  # offsets past the position (transaction markers included)
    # the loader folded two result records; one more is waiting
    topic = result_topic(TABLE)
    hub.log.create_topic(topic, 1)
    hub.log.append(topic, [partial("A1", 0, 1, "9100.00", 3), partial("A2", 0, 1, "9500", 4)])
    store = hub.projections.store("analytics")
    ResultLoader(hub.log, store, row_key=ROW_KEY).load(PAYMENT_AGGREGATES, [TABLE])
    hub.log.append(topic, [partial("A1", 0, 2, "18200.00", 5)])

    (got,) = flink_lags(hub.log, [PAYMENT_AGGREGATES], store)
    assert got["positions"] == {f"payments/{tp.partition}": o for tp, o in at.items()}
    assert got["lag"] == behind > 0
    assert got["loader"] == {"positions": {f"{topic}/0": 2}, "lag": 1}

    samples = {
        (m.name, tuple(sorted(s.labels.items()))): s.value
        for m in flink_gauges(hub)
        for s in m.samples
    }
    label = (("projection", "payment_aggregates"),)
    assert samples[("hub_flink_lag_records", label)] == behind
    assert samples[("hub_flink_loader_lag_records", label)] == 1
    where = (("partition", "0"), ("projection", "payment_aggregates"), ("topic", topic))
    assert samples[("hub_flink_loader_offset", where)] == 2
    for tp, offset in at.items():
        where = (
            ("partition", str(tp.partition)),
            ("projection", "payment_aggregates"),
            ("topic", "payments"),
        )
        assert samples[("hub_flink_committed_offset", where)] == offset
    # ... and /metrics' collector carries them when the engine is Flink (and not otherwise)
    from hub.observability import HubCollector, ReadinessCache

    def scraped() -> set[str]:
        return {m.name for m in HubCollector(hub, ReadinessCache(hub)).collect()}

    assert not any(n.startswith("hub_flink_") for n in scraped())
    hub.settings = hub.settings.model_copy(update={"projection_engine": "flink"})
    assert {
        "hub_flink_committed_offset",
        "hub_flink_lag_records",
        "hub_flink_loader_offset",
        "hub_flink_loader_lag_records",
    } <= scraped()
