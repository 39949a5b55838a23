"""Retention on Kafka gives the embedded footprint's answer (moved from
``tests/service/test_retention.py``: it needs a real Kafka, started by ``infra/kafka.sh`` or
skipped loudly)."""

from __future__ import annotations

from pathlib import Path

import pytest

from hub.bootstrap import Hub
from tests.service.test_retention import MINUTE, old_and_new, retention_actions


@pytest.mark.integration
def test_retention_gives_the_same_answer_on_kafka(hub: Hub, tmp_path: Path) -> None:
    """The same topic, policy and hold on both footprints: the same deletions and reads."""
    import uuid

    from hub.bootstrap import bootstrap
    from hub.settings import load_settings
    from tests.contract.test_eventlog_kafka import kafka_bootstrap

    kafka = bootstrap(
        load_settings(
            environ={},
            data_dir=tmp_path / "kafka",
            event_log="kafka",
            kafka_bootstrap_servers=kafka_bootstrap(),
            kafka_topic_prefix=f"t{uuid.uuid4().hex[:10]}.",
        )
    )
    try:
        results = []
        for h in (hub, kafka):
            old_and_new(h)
            g = h.governance
            g.set_policy("topic:t.raw", max_age_ms=5 * MINUTE, actor="a")
            hold = g.place_hold("topic:t.raw", actor="legal")
            held = h.retention.run(11 * MINUTE)
            g.release_hold(hold.hold_id, actor="legal")
            report = h.retention.run(11 * MINUTE)
            results.append(
                (
                    held.as_dict(),
                    report.as_dict(),
                    h.log.beginning_offsets("t.raw"),
                    [r.value for r in h.log.scan("t.raw", 0)],
                    retention_actions(h),
                )
            )
        assert results[0] == results[1]
        assert results[0][2] == {0: 6, 1: 6}
    finally:
        kafka.close()
