"""Prometheus gauges of the Flink engine (``/metrics`` with ``HUB_PROJECTION_ENGINE=flink``).

Apart from ``hub.flink`` (which builds the engine, and imports the pattern alerts and with them
the console) so that ``hub.observability`` can import it without an import cycle.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

from prometheus_client.core import GaugeMetricFamily

from core.errors import ConfigError
from projections.catalog import PROJECTIONS
from projections.flink.service import companion_lags, flink_lags

log = logging.getLogger(__name__)


def flink_gauges(hub: Any) -> Iterator[GaugeMetricFamily]:
    """Prometheus gauges of the Flink engine (``/metrics`` when ``HUB_PROJECTION_ENGINE=flink``),
    from Kafka and the analytics store only (no Flink, no PostgreSQL at scrape time):
    ``hub_flink_committed_offset{projection,topic,partition}`` (Flink's committed source
    offsets), ``hub_flink_lag_records{projection}``, ``hub_flink_loader_offset{projection,topic,
    partition}`` (the result loader's committed position) and
    ``hub_flink_loader_lag_records{projection}``. The ML feature views' jobs
    (``features.<view>``) report the same gauges: their consumer group's offsets and lag, and
    their vector loader's.

    The loader positions come from the hub's own analytics store (``hub.projections.store``,
    opened once per hub and kept). Where it cannot be opened (chDB allows one session path per
    process: a process already holding another hub's chDB), the scrape still reports Flink's
    offsets and lag and leaves the projections' loader gauges out (logged), instead of failing
    every Flink gauge."""
    from hub.flink_feature_views import feature_views
    from hub.ml_setup import feature_vectors
    from projections.flink.compile import COMPILERS

    chosen = [p for p in PROJECTIONS if p.name in COMPILERS]
    store = None
    if hub.projections is not None:
        try:
            store = hub.projections.store("analytics")
        except ConfigError:
            log.warning("Flink loader gauges left out: the analytics store does not open here")

    def positions(family: GaugeMetricFamily, projection: str, at: dict[str, int]) -> None:
        for where, offset in at.items():  # "topic/partition" -> next offset
            topic, part = where.rsplit("/", 1)
            family.add_metric([projection, topic, part], offset)

    located = ["projection", "topic", "partition"]
    committed = GaugeMetricFamily(
        "hub_flink_committed_offset",
        "Next offset Flink committed for the projection's consumer group (on each checkpoint).",
        labels=located,
    )
    lag = GaugeMetricFamily(
        "hub_flink_lag_records",
        "Records in the projection's source topics past Flink's committed offsets.",
        labels=["projection"],
    )
    loaded = GaugeMetricFamily(
        "hub_flink_loader_offset",
        "Next offset of a flink.<table> result topic the result loader committed into chDB.",
        labels=located,
    )
    loader_lag = GaugeMetricFamily(
        "hub_flink_loader_lag_records",
        "Result records Flink wrote that the result loader has not folded into chDB yet.",
        labels=["projection"],
    )
    vectors = feature_vectors(hub)
    try:
        lags = flink_lags(hub.log, chosen, store)
        lags += companion_lags(hub.log, feature_views(hub.log, vectors, None))  # positions only
    finally:
        vectors.close()
    for x in lags:
        positions(committed, x["projection"], x["positions"])
        lag.add_metric([x["projection"]], x["lag"])
        if x["loader"] is not None:
            positions(loaded, x["projection"], x["loader"]["positions"])
            loader_lag.add_metric([x["projection"]], x["loader"]["lag"])
    yield from (committed, lag, loaded, loader_lag)
