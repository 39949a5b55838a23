"""A topic's offsets can be read the moment ``create_topic`` returns.

librdkafka answered about half the ListOffsets requests sent right after CreateTopics with
``_NOENT`` "Failed to query partition leaders: No leaders found" (its metadata had no leader for
the new partition yet), an error it does not mark retriable: `hub init` failed that way on the
three-broker cluster in CI, right after creating ``_schemas``. Twenty fresh topics in a row make
the old behaviour fail with near certainty (about 0.5 per topic).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from adapters.kafka_log import KafkaEventLog
from tests.ha import hubprocs

pytestmark = pytest.mark.integration


@pytest.fixture
def log() -> Iterator[KafkaEventLog]:
    log = KafkaEventLog(
        hubprocs.cluster_bootstrap("the new-topic test"), topic_prefix=f"nt{uuid.uuid4().hex[:8]}."
    )
    yield log
    log.close()


def test_offsets_of_a_topic_just_created_are_read_without_an_error(log: KafkaEventLog) -> None:
    for i in range(20):
        topic = f"fresh{i}"
        log.create_topic(topic, 3)
        assert log.end_offsets(topic) == {0: 0, 1: 0, 2: 0}
        assert log.beginning_offsets(topic) == {0: 0, 1: 0, 2: 0}
        assert log.stable_offsets(topic) == {0: 0, 1: 0, 2: 0}
