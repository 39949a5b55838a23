"""Red team s23 (parity of the footprints): a broker producer holds a transaction open.

Embedded, an acknowledged append is on the ledger or counted as pending, and ``hub ledger
verify`` fails once a pending record is older than ``ledger_max_pending_ms``. On Kafka, anyone
with produce access to the broker (and a transactional id) can begin a transaction on a data
partition and leave it open: the partition's last stable offset stops there, so every
``read_committed`` reader (projections, the ledger's sync, verify) sees nothing past it until
the broker aborts it (``transaction.max.timeout.ms``, 15 min by default), and the attacker can
open the next one at once. The hub still acknowledges acme's publishes to that partition, yet
they reached neither the views nor the ledger, and verify passed: it counted no pending
record. Now verify's step 5 on Kafka reads past the last stable offset (``read_uncommitted``)
and names a partition held below a record of the hub's older than any hub transaction can stay
open (``adapters.kafka_log.replays.held_back_what``). The stall itself remains (broker ACLs).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import Producer

from core.events import OutgoingEvent
from hub.bootstrap import Hub, bootstrap
from hub.settings import load_settings
from ledger.verify import verify_ledger
from tests.adversarial._api import QUOTE

pytestmark = pytest.mark.integration


@pytest.fixture
def hub(kafka: str, tmp_path: Path) -> Iterator[tuple[Hub, str]]:
    prefix = f"t{uuid.uuid4().hex[:10]}."
    h = bootstrap(
        load_settings(
            environ={"HUB_PROJECTION_AUTOSTART": "false"},
            data_dir=tmp_path / "data",
            event_log="kafka",
            kafka_bootstrap_servers=kafka,
            kafka_topic_prefix=prefix,
            ledger_max_pending_ms=1_000,
            # the hub's transactions may stay open 15 s (the atomic appends' 10 s): verify
            # names a record held back after 20 s, not after the default's 125 s
            kafka_transaction_timeout_s=15,
        )
    )
    yield h, prefix
    h.close()


def test_an_acknowledged_record_held_behind_an_open_transaction_fails_verify(
    hub: tuple[Hub, str], kafka: str
) -> None:
    h, prefix = hub
    quote = [OutgoingEvent(value=dict(QUOTE), key="AAPL")]
    part = h.publisher.publish("quotes", quote, "p", "acme")[0].partition
    h.ledger.sync()
    evil = Producer(
        {
            "bootstrap.servers": kafka,
            "transactional.id": f"evil-{uuid.uuid4().hex}",
            "transaction.timeout.ms": 600_000,
            "log_level": 0,
        }
    )
    evil.init_transactions()
    evil.begin_transaction()
    evil.produce(prefix + "quotes", value=b"x", key=b"AAPL", partition=part)
    assert evil.flush(10) == 0
    try:
        at = h.publisher.publish("quotes", quote, "p", "acme")[0].offset  # acknowledged
        h.ledger.sync()
        assert verify_ledger(h.ledger).ok  # not yet: a transaction of the hub's could be open
        bound = h.log.held_back_after_ms  # type: ignore[attr-defined]
        assert bound == 20_000  # the longest a transaction of the hub's stays open, + 5 s
        # older than any transaction of the hub's can stay open, plus the grace
        time.sleep(bound / 1000 + 1)
        h.ledger.sync()
        report = verify_ledger(h.ledger)
        assert not report.ok, "verify passed with an acknowledged record off the ledger"
        (problem,) = [p for p in report.problems if p.topic == "quotes"]
        assert problem.partition == part
        assert f"a record the hub wrote and acknowledged (offset {at})" in problem.what
        assert "another producer's open transaction holds it back" in problem.what
    finally:
        evil.abort_transaction(10)
