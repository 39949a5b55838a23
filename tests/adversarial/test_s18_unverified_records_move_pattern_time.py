"""FIXED (session 19; found in session 18): a record whose tenant claim is not the hub's must
not move the pattern engines' event time (watermark), or a broker producer can make genuine events
late.

Both engines used to read a data record that fails its MAC as a plain producer's (tenant
``default``: ``auth._external`` in the hub, ``core.tenant_mac`` in the Flink jobs) but keep its
``ce_time``, and the watermark is per source partition, whatever the tenant
(``projections.pattern_state`` contract 1; Flink's ``WATERMARK FOR ts`` on the source table).
One such record per partition dated ahead (its append time too: a producer sets the Kafka
timestamp, so contract 5's bound does not help) made acme's genuine payments after it late:
dropped, no structuring alert (and the planted records raised one of their own under tenant
'default'). Here they are planted in the local log with their tenant claim off, which is
exactly what the hub's Kafka reader hands the detector for a forged record.

The fix: the embedded engine skips records without a tenant claim, their time and their events
(``projections.pattern_batch.claimed``); the Flink jobs time such a record at the epoch in the
source table's rowtime column and drop it before the pattern (the JVM function ``hub_tenant_ok``,
``projections.flink.cep``). Both engines on Kafka: ``tests/differential/test_flink_patterns``
(``test_forged_future_dated_payments_move_no_engine``).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from core.events import OutgoingEvent
from core.ports.eventlog import Record
from hub.bootstrap import Hub, bootstrap
from hub.pattern_alerts import PatternDetector
from hub.settings import load_settings
from projections.pattern_state import NEVER
from projections.patterns import Structuring

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
PATTERN = Structuring()  # 3 near payments in a day, 1 h lateness


def pay(n: int, at: datetime) -> OutgoingEvent:
    when = at.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return OutgoingEvent(
        event_type="hub.payments.PaymentInitiated",
        value={
            "payment_id": f"P{n}",
            "account_id": "A1",
            "amount": "9500.00",
            "currency": "EUR",
            "counterparty_name": f"Person {n}",
            "counterparty_iban": "DE00123",
            "counterparty_country": "DE",
            "initiated_at": when,
        },
        occurred_at=when,
    )


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[Hub]:
    h = bootstrap(
        load_settings(
            environ={"HUB_PROJECTION_AUTOSTART": "false", "HUB_PATTERN_ALERTS": "false"},
            data_dir=tmp_path / "data",
            ledger_store="sqlite",
        )
    )
    try:
        yield h
    finally:
        h.close()


def _acme_alerts(hub: Hub, forged: bool) -> int:
    detector = PatternDetector(hub, (PATTERN,))
    if forged:  # as the Kafka reader hands over a broker producer's record: claim dropped
        (rec,) = hub.publisher.prepare("payments", [pay(0, T0 + timedelta(days=30))], "x", "acme")
        ahead = int((T0 + timedelta(days=30)).timestamp() * 1000)  # its Kafka timestamp too
        hub.log.append(
            "payments",
            [
                Record(rec.value, rec.key, _unclaimed(rec.headers), ahead, p)
                for p in range(hub.log.topic("payments").partitions)
            ],
        )
    raised = detector.step()  # a serving detector has read the partitions already
    hub.publisher.publish(
        "payments", [pay(i, T0 + i * timedelta(minutes=5)) for i in (1, 2, 3)], "bank", "acme"
    )
    raised += detector.step()
    # (the planted records may make a match of their own, under tenant 'default')
    return sum("(tenant acme)" in a["summary"] for a in raised)


def _unclaimed(headers: tuple[tuple[str, bytes], ...]) -> tuple[tuple[str, bytes], ...]:
    return tuple(h for h in headers if h[0] != "ce_tenant")


def test_genuine_payments_alert_without_the_planted_record(hub: Hub) -> None:
    assert _acme_alerts(hub, forged=False) == 1


def test_an_unverified_record_cannot_make_genuine_payments_late(hub: Hub) -> None:
    assert _acme_alerts(hub, forged=True) == 1


def test_unverified_records_raise_no_alert_of_their_own(hub: Hub) -> None:
    """Three planted near payments without a claim: before the fix a 'default' alert (and they
    moved the watermark); now they are not events at all, and nothing counts them late."""
    detector = PatternDetector(hub, (PATTERN,))
    planted = [pay(i, T0 + timedelta(days=30, minutes=i)) for i in (1, 2, 3)]
    recs = hub.publisher.prepare("payments", planted, "x", "acme")
    ahead = int((T0 + timedelta(days=31)).timestamp() * 1000)
    hub.log.append("payments", [Record(r.value, r.key, _unclaimed(r.headers), ahead) for r in recs])
    assert detector.step() == []
    assert detector.states[PATTERN.name].late == 0
    assert detector.states[PATTERN.name].watermark == NEVER  # no partition moved it
