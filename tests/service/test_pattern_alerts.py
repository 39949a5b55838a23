"""The embedded pattern detector in the running hub (``hub.pattern_alerts``): the embedded twin of
Flink's CEP job raises one ``hub.AlertFired`` per planted pattern, continuously, and a restart
adds nothing. The Flink side: ``tests/differential/test_flink_patterns.py``."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi.testclient import TestClient

from core.events import OutgoingEvent
from hub.api.app import create_app
from hub.bootstrap import Hub
from hub.console.alerts import AlertEngine
from hub.pattern_alerts import PatternDetector, by_engine

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


def _pay(n: int, account: str, amount: str, at: datetime) -> OutgoingEvent:
    when = at.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return OutgoingEvent(
        event_type="hub.payments.PaymentInitiated",
        value={
            "payment_id": f"SP{n}",
            "account_id": account,
            "amount": amount,
            "currency": "EUR",
            "counterparty_name": f"Person {n}",
            "counterparty_iban": "DE00123",
            "counterparty_country": "DE",
            "initiated_at": when,
        },
        occurred_at=when,
    )


def _structuring_alerts(hub: Hub) -> list[dict[str, Any]]:
    events = by_engine(AlertEngine(hub, []).events()).get("embedded", [])
    return [dict(e) for e in events if e["rule"] == "pattern.aml_structuring"]


def _wait(what: str, check: Callable[[], Any], timeout_s: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while not (got := check()):
        assert time.monotonic() < deadline, f"{what}: not within {timeout_s:.0f} s"
        time.sleep(0.1)
    return got


def test_the_served_hub_raises_one_alert_per_planted_structuring_pattern(hub: Hub) -> None:
    """Three payments just under the threshold from one account within the day, published while
    ``hub serve``'s app runs, become exactly one alert event; more unrelated payments (and a
    fourth and fifth near payment of another account: two, not three) add none; a detector
    started again (a restarted hub reading from the beginning) raises nothing."""
    app = create_app(hub)
    with TestClient(app):  # the lifespan: projection runners and the pattern detector
        hub.publisher.publish(
            "payments",
            [
                _pay(1, "S1", "9500.00", T0),
                _pay(2, "S1", "9400.00", T0 + timedelta(hours=2)),
                _pay(3, "N1", "120.00", T0 + timedelta(hours=2)),  # not near the threshold
            ],
            producer="test",
        )
        hub.publisher.publish(
            "payments", [_pay(4, "S1", "9900.00", T0 + timedelta(hours=5))], producer="test"
        )
        (alert,) = _wait("the structuring alert", lambda: _structuring_alerts(hub))
        assert "from account S1 (tenant default)" in alert["summary"]
        assert (alert["value"], alert["threshold"]) == ("28800", "10000")
        hub.publisher.publish(
            "payments",
            [
                _pay(5, "S2", "9500.00", T0),
                _pay(6, "S2", "9600.00", T0 + timedelta(hours=1)),
                _pay(7, "S1", "15000.00", T0 + timedelta(hours=6)),
            ],
            producer="test",
        )
        # the detector took the new records in (a pass after them), and raised nothing more
        ends = hub.log.end_offsets("payments")
        _wait(
            "the detector to read the new payments",
            lambda: _read_past(app, ends),
        )
        assert len(_structuring_alerts(hub)) == 1
    again = PatternDetector(hub)
    assert again.step() == []  # a restart: ids derived from the match, found on the topic
    assert len(_structuring_alerts(hub)) == 1


def _read_past(app: Any, ends: dict[int, int]) -> bool:
    detector = getattr(app.state, "pattern_detector", None)
    assert detector is not None, "the app runs no pattern detector"
    return all(detector.positions.get(("payments", p), 0) >= end for p, end in ends.items())


def test_the_detector_is_off_with_the_setting(hub: Hub) -> None:
    """``HUB_PATTERN_ALERTS=false``: the served hub runs no detector."""
    hub.settings = hub.settings.model_copy(update={"pattern_alerts": False})
    app = create_app(hub)
    with TestClient(app):
        assert getattr(app.state, "pattern_detector", None) is None


def test_a_quiet_partition_stops_holding_the_detectors_watermark_back(hub: Hub) -> None:
    """Flink's source idle timeout in the embedded detector (``projections.pattern_state``,
    contract 6), decided at each pass with the detector's clock: account A's partition keeps
    receiving payments, B's got one and went quiet. Until B's partition has had nothing to read
    for 10 s it holds the watermark at its payment's time less the lateness; then the watermark
    follows A's partition, and a payment of B dated behind it is late (dropped and counted), as
    in Flink's unbounded CEP job."""
    from projections.patterns import Structuring

    p = Structuring(count=3, within_ms=3_600_000, max_delay_ms=600_000)
    now = [0.0]
    detector = PatternDetector(hub, (p,), clock=lambda: now[0])
    state = detector.states[p.name]
    lateness = timedelta(milliseconds=p.max_delay_ms)

    def pay(n: int, account: str, at: datetime, seconds: float) -> int:
        """Publish one near payment, run a pass at ``seconds``; the partition it went to."""
        before = hub.log.end_offsets("payments") if n > 1 else {}
        hub.publisher.publish("payments", [_pay(n, account, "9500.00", at)], producer="test")
        after = hub.log.end_offsets("payments")
        now[0] = seconds
        detector.step()
        (part,) = [q for q, end in after.items() if end > before.get(q, 0)]
        return part

    def ms(at: datetime) -> int:
        return int(at.timestamp() * 1000)

    b = pay(1, "B0", T0, 0.0)
    a = next(f"A{i}" for i in range(50) if _partition(hub, f"A{i}") != b)
    assert pay(2, a, T0 + timedelta(hours=2), 5.0) != b
    assert state.watermark == ms(T0 - lateness)  # B's partition holds it
    pay(3, a, T0 + timedelta(hours=3), 9.9)
    assert state.watermark == ms(T0 - lateness) and not state.idle  # quiet 9.9 s: still
    now[0] = 10.0
    detector.step()  # nothing new anywhere: B's partition quiet for 10 s is idle, A's is not
    assert state.idle == {("payments", b)}
    assert state.watermark == ms(T0 + timedelta(hours=3) - lateness)
    assert pay(4, "B0", T0 + timedelta(hours=1), 11.0) == b
    assert state.late == 1 and not state.idle  # dropped behind the watermark; B counts again
    assert state.watermark == ms(T0 + timedelta(hours=3) - lateness)  # not moved back
    metrics = hub.metrics.render().decode()
    assert f'hub_pattern_late_events_total{{pattern="{p.name}"}} 1.0' in metrics


def _partition(hub: Hub, account: str) -> int:
    """The partition of ``payments`` an account's payments go to (the record key)."""
    from core.partitioner import default_partition

    partitions = len(hub.log.end_offsets("payments"))
    return default_partition(account.encode(), partitions)
