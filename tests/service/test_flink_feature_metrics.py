"""``/metrics`` with ``HUB_PROJECTION_ENGINE=flink`` shows the ML feature views' Flink jobs (the
engine's companions, ``hub.flink_feature_views``) beside the projections: their consumer group's
committed offsets and lag, and their vector loader's position and lag. (Apart from
``tests/differential/test_flink_features.py``: the gauges open the hub's chDB, which the Flink
tests' shared run holds in their process.)"""

from __future__ import annotations

from typing import Any

from core.ports.eventlog import TopicPartition
from domain.features import PAYMENT_RISK
from hub.flink_feature_views import FlinkFeatureView
from hub.flink_metrics import flink_gauges
from hub.ml_setup import feature_vectors
from ml.flink_features import result_topic
from tests.differential.test_flink_features import as_job_writes, publish_sets, worker_vectors


def test_metrics_show_the_feature_jobs_offsets_and_their_loader(hub: Any) -> None:
    publish_sets(hub)
    view = PAYMENT_RISK
    store = feature_vectors(hub)  # the hub's table, which the gauges read
    companion = FlinkFeatureView(view, hub.log, store)
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
