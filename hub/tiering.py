"""Offloading closed log segments to the cold tier (``storage.tiering``), shared by ``hub tier
offload`` and ``POST /v1/tier/offload`` (the ``hub_retention`` DAG's ``archive`` task)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from core.ports.policy import Principal
    from hub.bootstrap import Hub
    from storage.tiering import ColdTier


def cold_tier(h: Hub) -> ColdTier:
    from hub.bootstrap import build_object_store
    from storage.tiering import ColdTier

    return ColdTier(build_object_store(h.settings, write_once=False))


def tier_topics(h: Hub, topic: str | None) -> list[str]:
    """``topic`` (TopicNotFound names it when missing), or every domain topic."""
    hot = h.ledger.log
    if topic:
        hot.topic(topic)
        return [topic]
    return [t.name for t in hot.topics() if not t.name.startswith(("hub.", "_"))]


def offload(
    h: Hub, principal: Principal, topic: str | None = None, trim_hot: bool = False
) -> list[dict[str, Any]]:
    """Copy every closed segment (all on the ledger) of ``topic`` (or every domain topic) to the
    cold tier; with ``trim_hot`` cut the hot log at the cold tier's end and record that cut on
    the ledger (``retention.delete``, ``"tier": "cold"``). One row per partition. The caller
    has authorised ``retention.write``."""
    h.ledger.sync(force_checkpoint=True)  # only records with leaves are offloaded
    cold, hot = cold_tier(h), h.ledger.log
    out: list[dict[str, Any]] = []
    for name in tier_topics(h, topic):
        for part in range(hot.topic(name).partitions):
            made = cold.offload(
                hot,
                name,
                part,
                segment_records=h.settings.tier_segment_records,
                leaf_of=h.ledger.index_of,
            )
            row: dict[str, Any] = {
                "topic": name,
                "partition": part,
                "segments_offloaded": len(made),
                "records_offloaded": sum(s.count for s in made),
            }
            span = cold.cold_range(name, part)
            start = hot.beginning_offsets(name).get(part, 0)
            if trim_hot and span is not None and span[1] > start:
                hot.delete_records_before(name, part, span[1])
                h.ledger.record_action(
                    principal.id,
                    "retention.delete",
                    f"topic:{name}",
                    tenant=principal.tenant,
                    details={
                        "topic": name,
                        "partition": part,
                        "from": start,
                        "to": span[1],
                        "tier": "cold",
                    },
                )
                row["hot_start"] = span[1]
            out.append(row)
    return out
