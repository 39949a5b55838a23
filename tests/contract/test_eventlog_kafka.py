"""The EventLog contract against Apache Kafka (``adapters/kafka_log/``).

The broker is the one ``infra/kafka.sh`` runs (127.0.0.1:19092 unless ``HUB_KAFKA_PORT`` says
otherwise). The session fixture starts it when it is not running and leaves it running afterwards
(start-up costs ~7 s, and ``infra/kafka.sh start`` is idempotent): stop it with
``make infra-down``. When it cannot start, the tests are skipped with the reason, except under
``CI=true``, where that fails the session.

One ``KafkaEventLog`` serves the whole module (its producers, and their transactional
``init_transactions``, are reused); ``reopen`` replaces it with a fresh instance.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from adapters.kafka_log import KafkaEventLog
from core.ports.eventlog import EventLog
from tests.contract.eventlog_contract import EventLogContract, Reopen

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "infra" / "kafka.sh"


def kafka_bootstrap() -> str:
    """Start the local broker if needed; its bootstrap address. Skips (or fails under CI)."""
    port = os.environ.get("HUB_KAFKA_PORT", "19092")
    try:
        done = subprocess.run(
            ["bash", str(SCRIPT), "start"], capture_output=True, text=True, timeout=600
        )
        ok, output = done.returncode == 0, done.stdout + done.stderr
    except (OSError, subprocess.TimeoutExpired) as exc:
        ok, output = False, str(exc)
    if not ok:
        reason = (
            f"KAFKA NOT AVAILABLE: 'infra/kafka.sh start' failed, so the Kafka EventLog contract "
            f"did not run.\n{output[-3000:]}"
        )
        if os.environ.get("CI") == "true":
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)
    return f"127.0.0.1:{port}"


@pytest.fixture(scope="session")
def kafka() -> str:
    return kafka_bootstrap()


# The hub always keys its Kafka log (hub.bootstrap): the contract runs with record MACs on, and
# with the tenant MACs of data records (core.tenant_mac) the reader must strip.
MAC_KEY = b"contract-kafka-record-mac-key-32"
TENANT_KEY = b"contract-kafka-tenant-mac-key-32"


@pytest.fixture(scope="module")
def shared(kafka: str) -> Iterator[dict[str, EventLog]]:
    holder: dict[str, EventLog] = {
        "log": KafkaEventLog(kafka, mac_key=MAC_KEY, tenant_key=TENANT_KEY)
    }
    yield holder
    holder["log"].close()


@pytest.mark.integration
class TestKafkaEventLog(EventLogContract):
    @pytest.fixture
    def log(self, shared: dict[str, EventLog]) -> Iterator[EventLog]:
        yield shared["log"]

    @pytest.fixture
    def reopen(self, shared: dict[str, EventLog], kafka: str) -> Reopen:
        def reopen(log: EventLog) -> EventLog:
            log.close()
            fresh = KafkaEventLog(kafka, mac_key=MAC_KEY, tenant_key=TENANT_KEY)
            shared["log"] = fresh
            return fresh

        return reopen
