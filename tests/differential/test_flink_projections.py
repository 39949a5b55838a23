"""Embedded runner vs Apache Flink on the same Kafka topic: view digests equal, byte for byte.

The payments of ``batches()`` (several batches: multi-partition batches are Kafka transactions, so
offsets have gaps; events late by a day, on both edges of a UTC day, amounts on both edges of the
AML band, two tenants, settled/failed events the aggregates must skip) go through the session's
one Flink run (``tests/differential/conftest.py``):
- the embedded runner (``hub.projections``) folds ``payment_aggregates`` into chDB;
- the compiled Flink job (``projections.flink``) reads the same topic, decodes the Confluent wire
  format in a Python table function against the hub's Schema Registry served over HTTP, and
  upserts partial rows into PostgreSQL through the JDBC connector;
and ``projections.digest`` of every view is equal on both sides.

The exactly-once fault test runs a job of its own: unbounded, checkpointed, killed and restarted.

Real components: Kafka, PostgreSQL (``infra/kafka.sh``, ``infra/postgres.sh``) and the PyFlink
virtualenv with the connector jars (``infra/flink.sh setup``). Locally the tests skip with the
script's output when one is missing; under CI=true that is a failure."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from core.events import OutgoingEvent
from hub.bootstrap import Hub
from hub.flink import tenant_key
from projections.catalog import PAYMENT_AGGREGATES
from projections.flink.compile import FlinkPlacement
from projections.flink.launch import FlinkLauncher, latest_checkpoint
from projections.flink.postgres import FlinkViews
from projections.flink.service import FlinkProjections
from tests.differential.conftest import FlinkSession, open_world, placement

# the first test to ask for the session's Flink run waits for it: minutes on a busy machine
pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]


@pytest.fixture
def footprint(tmp_path: Path, flink_session: FlinkSession) -> Iterator[dict[str, Any]]:
    """A hub of its own (the fault test publishes while its job runs and kills it), on the
    session's infrastructure (checked once: the infra scripts take seconds on a busy machine)."""
    fi = flink_session.infra
    world = open_world(fi, tmp_path / "hub")
    try:
        yield {
            "hub": world.hub,
            "infra": fi,
            "world": world,
            "admin": world.admin,
            "views": world.views,
            "python": fi.python,
            "work": tmp_path / "flink",
        }
    finally:
        world.close()


def _placement(footprint: dict[str, Any]) -> FlinkPlacement:
    return placement(footprint["infra"], footprint["world"])


def _payment(i: int, account: str, amount: str, at: str, kind: str = "Initiated") -> OutgoingEvent:
    value: dict[str, Any] = {"payment_id": f"P{i}", "account_id": account}
    if kind == "Initiated":
        value |= {
            "amount": amount,
            "currency": "EUR",
            "counterparty_name": f"Person {i}",
            "counterparty_iban": "DE00123",
            "counterparty_country": "DE" if i % 3 else "FR",
            "initiated_at": at,
        }
    elif kind == "Settled":
        value |= {"amount": amount, "currency": "EUR", "initiated_at": at, "settled_at": at}
    else:
        value |= {"reason_code": "TIMEOUT", "failed_at": at}
    return OutgoingEvent(event_type=f"hub.payments.Payment{kind}", value=value)


def batches() -> list[tuple[str, list[OutgoingEvent]]]:
    """(tenant, events) batches in publishing order; the second day arrives first."""
    day2 = [
        _payment(1, "A1", "9000.00", "2026-03-02T00:00:00Z"),  # day start; near (inclusive)
        _payment(2, "A2", "9999.99", "2026-03-02T23:59:59.999999Z"),  # day end; near
        _payment(3, "A1", "10000.00", "2026-03-02T12:00:00Z"),  # at the threshold: not near
        _payment(4, "A3", "8999.99", "2026-03-02T08:00:00Z"),  # below the band
        _payment(2, "A2", "9999.99", "2026-03-02T23:59:59.999999Z", "Settled"),
    ]
    day1_late = [  # a day late: its window closed long ago; "update" mode still counts it
        _payment(5, "A1", "9500.50", "2026-03-01T23:59:59.999999Z"),
        _payment(6, "A2", "120.25", "2026-03-01T00:00:00Z"),
        _payment(7, "A3", "9100.00", "2026-03-01T10:00:00Z"),
        _payment(6, "A2", "", "2026-03-01T00:00:01Z", "Failed"),
    ]
    many = [
        _payment(
            10 + i,
            f"A{i % 5}",
            f"{9000 + 97 * i}.{i:02d}",
            f"2026-03-0{1 + i % 3}T1{i % 10}:00:00Z",
        )
        for i in range(40)
    ]
    return [
        ("acme", day2),
        ("acme", day1_late),
        ("globex", many[:20]),
        ("acme", many[20:]),
        ("globex", [_payment(99, "A1", "9000.00", "2026-03-03T00:00:00Z")]),
    ]


def test_payment_aggregates_on_flink_equal_the_embedded_runner(
    flink_session: FlinkSession,
) -> None:
    """Both engines over the session's payments (``batches``): digests equal, rows as an oracle
    computed from the inputs says, and the status reports no lag after the bounded run."""
    embedded = flink_session.embedded["payment_aggregates"]
    assert embedded["payment_aggregates_late"]["rows"] == 0  # late_mode "update"
    status = {s["projection"]: s for s in flink_session.status}
    assert status["payment_aggregates"]["lag"] == 0, status
    assert set(status["payment_aggregates"]["positions"]) == {
        f"payments/{p}" for p in flink_session.views.hub.log.end_offsets("payments")
    }

    views = flink_session.views.views
    tables = PAYMENT_AGGREGATES.table("payment_volumes_1d"), PAYMENT_AGGREGATES.table("aml_daily")
    for table in tables:
        flink = views.digest(table)
        assert flink == embedded[table.name], (table.name, views.rows(table))
        assert flink["rows"] > 0
    assert flink_session.flink["payment_aggregates"]["digests"] == {
        t.name: embedded[t.name] for t in tables
    }

    # ... and about the right numbers (not two equal mistakes): an oracle from the inputs
    assert {
        (r["tenant"], r["account_id"], r["day"]): (
            r["events"],
            r["amount"],
            r["near_threshold"],
            r["near_threshold_amount"],
        )
        for r in views.rows(tables[1])
    } == aml_oracle(flink_session.published["payments"])
    late = [r for r in views.rows(tables[1]) if r["day"] == 1772323200 * 1_000_000]
    assert {r["account_id"] for r in late if r["tenant"] == "acme"} >= {"A1", "A2", "A3"}


def aml_oracle(
    published: list[tuple[str, list[OutgoingEvent]]],
) -> dict[tuple[str, str, int], tuple[int, Decimal, int, Decimal]]:
    """aml_daily computed directly from the published values (threshold 10000, band 10 %)."""
    out: dict[tuple[str, str, int], tuple[int, Decimal, int, Decimal]] = {}
    for tenant, events in published:
        for e in events:
            if e.event_type != "hub.payments.PaymentInitiated":
                continue
            at = datetime.fromisoformat(e.value["initiated_at"].replace("Z", "+00:00"))
            day = int(datetime(at.year, at.month, at.day, tzinfo=UTC).timestamp()) * 1_000_000
            amount = Decimal(e.value["amount"])
            near = Decimal(9000) <= amount < Decimal(10000)
            n, total, k, near_total = out.get((tenant, e.value["account_id"], day), (0, 0, 0, 0))
            out[(tenant, e.value["account_id"], day)] = (
                n + 1,
                Decimal(total) + amount,
                k + near,
                Decimal(near_total) + (amount if near else 0),
            )
    return out


def _wait_for(what: str, check: Any, timeout_s: float, every_s: float = 0.5) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        got = check()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout_s:.0f} s")
        time.sleep(every_s)


def test_a_killed_job_resumes_from_its_checkpoint_without_loss_or_duplicates(
    flink_session: FlinkSession, footprint: dict[str, Any]
) -> None:
    """Exactly once across a crash: an unbounded job with checkpoints is SIGKILLed mid-stream
    (JVM and Python workers) right after it wrote a batch, events arrive while it is down,
    ``supervise`` restarts it from its newest checkpoint; the views then equal the embedded
    runner's, and the consumer group's committed offsets (the status' positions) reach the end
    offsets. Two Flink starts (~20-40 s each on two busy cores) are its floor: >10 s.

    The hub of its own gets the session's payments in the same batches, so its topic holds the
    same records at the same offsets, and the embedded digests are the session's (one process
    holds one chDB session: this hub never opens one)."""
    hub: Hub = footprint["hub"]
    published = flink_session.published["payments"]
    flink = FlinkProjections(
        [PAYMENT_AGGREGATES],
        dataclasses.replace(_placement(footprint), checkpoint_interval_ms=1_000),
        FlinkLauncher(
            footprint["python"],
            footprint["work"],
            footprint["admin"],
            tenant_key=tenant_key(hub.settings),
        ),
        footprint["views"],
        hub.log,
        footprint["work"] / "checkpoints",
    )
    tables = PAYMENT_AGGREGATES.table("payment_volumes_1d"), PAYMENT_AGGREGATES.table("aml_daily")
    try:
        for tenant, events in published[:2]:
            hub.publisher.publish("payments", events, producer="differential", tenant=tenant)
        flink.start(["payment_aggregates"])
        folder = footprint["work"] / "checkpoints" / "payment_aggregates"
        job = flink.jobs["payment_aggregates"]

        def first_checkpoint() -> Any:
            if not job.running():
                raise AssertionError(
                    f"the Flink job ended before its first checkpoint:\n{job.cause()}"
                )
            return latest_checkpoint(folder)

        _wait_for("a first checkpoint", first_checkpoint, 600)
        # mid-stream: more events, then a crash before (or while) the job takes them in
        hub.publisher.publish(
            "payments", published[2][1], producer="differential", tenant=published[2][0]
        )
        # the job wrote them (so a replay from the checkpoint taken before would write them
        # again): kill it at once, SIGKILL, no chance to flush or checkpoint
        _wait_for(
            "the job to take in the mid-stream batch",
            lambda: any(r["tenant"] == "globex" for r in footprint["views"].rows(tables[1])),
            120,
        )
        flink.jobs["payment_aggregates"].kill()
        for tenant, events in published[3:]:
            hub.publisher.publish("payments", events, producer="differential", tenant=tenant)
        started = time.monotonic()
        assert flink.supervise() == ["payment_aggregates"]
        embedded = flink_session.embedded["payment_aggregates"]
        views: FlinkViews = footprint["views"]
        _wait_for(
            "the Flink views to equal the embedded ones after the restart",
            lambda: all(views.digest(t) == embedded[t.name] for t in tables),
            420,
        )
        print(f"\nrestart to equal views: {time.monotonic() - started:.1f} s")
        # positions = the group's offsets, committed by Flink on each checkpoint; lag 0 = every
        # record read (offsets past them may hold only Kafka transaction markers)
        parts = {f"payments/{p}" for p in hub.log.end_offsets("payments")}
        seen: list[Any] = []

        def caught_up() -> bool:
            seen[:] = flink.status()
            return seen[0]["lag"] == 0 and set(seen[0]["positions"]) == parts

        try:
            _wait_for("the committed offsets to cover every record", caught_up, 120)
        except AssertionError as exc:
            raise AssertionError(f"{exc}; status: {seen}") from None
        assert seen[0]["restarts"] == 1
    finally:
        flink.stop()
