"""Fixtures for adversarial tests on the Kafka footprint: the broker (started by the contract
fixture, or skipped with its reason) and a hub on it with topics of its own.

Both are fixtures of every adversarial test (conftest.py):
``kafka_hub`` yields ``(Hub, topic prefix)``; the prefix is fresh per test, so tests never see each
other's records on the shared broker.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from hub.bootstrap import Hub, bootstrap
from hub.settings import load_settings
from tests.contract.test_eventlog_kafka import kafka_bootstrap


@pytest.fixture(scope="module")
def kafka() -> str:
    return kafka_bootstrap()


@pytest.fixture
def kafka_hub(kafka: str, tmp_path: Path) -> Iterator[tuple[Hub, str]]:
    prefix = f"t{uuid.uuid4().hex[:10]}."
    h = bootstrap(
        load_settings(
            environ={},
            data_dir=tmp_path / "data",
            event_log="kafka",
            kafka_bootstrap_servers=kafka,
            kafka_topic_prefix=prefix,
        )
    )
    yield h, prefix
    h.close()
