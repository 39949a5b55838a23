"""``/metrics`` with ``HUB_PROJECTION_ENGINE=flink`` shows the ML feature views' Flink jobs (the
engine's companions, ``hub.flink_feature_views``) beside the projections: their consumer group's
committed offsets and lag, and their vector loader's position and lag. (Apart from
``tests/differential/test_flink_features.py``: the gauges open the hub's chDB, which the Flink
tests' shared run holds in their process.)"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from core.ports.eventlog import TopicPartition
from domain.features import PAYMENT_RISK
from hub.bootstrap import bootstrap
from hub.flink_feature_views import FlinkFeatureView
from hub.flink_metrics import flink_gauges
from hub.ml_setup import feature_vectors
from hub.settings import load_settings
from ml.flink_features import result_topic
from tests.differential.test_flink_features import (
    ROW_KEY,
    as_job_writes,
    publish_sets,
    worker_vectors,
)


def test_metrics_show_the_feature_jobs_offsets_and_their_loader(hub: Any) -> None:
    publish_sets(hub)
    view = PAYMENT_RISK
    store = feature_vectors(hub)  # the hub's table, which the gauges read
    companion = FlinkFeatureView(view, hub.log, store, ROW_KEY)
    companion.prepare()
    rows = worker_vectors(hub, view)
    topic = result_topic(view)
    hub.log.append(topic, [as_job_writes(view, r) for r in rows[:-1]])
    # Flink committed every partition of the view's topics, one record short in one of payments
    ends = {
        TopicPartition(t, p): e for t in companion.topics for p, e in hub.log.end_offsets(t).items()
    }
    behind = max((tp for tp in ends if tp.topic == "payments"), key=lambda tp: ends[tp])
    committed = ends | {behind: ends[behind] - 1}
    hub.log.commit_offsets(companion.group, committed)
    companion.load()
    hub.log.append(topic, [as_job_writes(view, rows[-1])])  # one vector not loaded yet

    samples = {
        (m.name, tuple(sorted(x.labels.items()))): x.value
        for m in flink_gauges(hub)
        for x in m.samples
        if x.labels.get("projection") == companion.name
    }
    me = (("projection", companion.name),)
    assert samples[("hub_flink_lag_records", me)] == 1
    assert samples[("hub_flink_loader_lag_records", me)] == 1
    where = (("partition", "0"), ("projection", companion.name), ("topic", topic))
    assert samples[("hub_flink_loader_offset", where)] == len(rows) - 1
    for tp, offset in committed.items():
        where = (
            ("partition", str(tp.partition)),
            ("projection", companion.name),
            ("topic", tp.topic),
        )
        assert samples[("hub_flink_committed_offset", where)] == offset
    store.close()


def test_scrapes_use_the_hubs_chdb_and_survive_a_process_holding_another(
    hub: Any, tmp_path: Path
) -> None:
    """Scraping twice in a process that holds the hub's chDB store reads that store (no second
    session); a hub whose chDB cannot open here (chDB allows one session path per process)
    still gets Flink's offsets and lag, without the loader gauges, instead of an error."""

    def scrape(h: Any) -> dict[str, set[str]]:  # gauge -> the projections it reports
        return {m.name: {x.labels["projection"] for x in m.samples} for m in flink_gauges(h)}

    store = hub.projections.store("analytics")
    for _ in range(2):
        got = scrape(hub)
        assert "market_bars" in got["hub_flink_lag_records"]
        assert "market_bars" in got["hub_flink_loader_lag_records"]  # read from the store
    assert hub.projections.store("analytics") is store
    other = bootstrap(load_settings(environ={}, data_dir=tmp_path / "other"))
    try:
        for _ in range(2):
            got = scrape(other)
            assert got["hub_flink_lag_records"] == scrape(hub)["hub_flink_lag_records"]
            # the projections' loader positions live in chDB: left out; the feature views' not
            assert got["hub_flink_loader_lag_records"] == {
                "features.payment_risk",
                "features.price_anomaly",
            }
    finally:
        other.close()
