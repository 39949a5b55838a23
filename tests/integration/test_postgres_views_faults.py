"""Fault test (issue 7, part 6, the views half): a projection into PostgreSQL fed from Kafka while
the broker is killed (SIGKILL) and restarted mid-stream.

A hub runs on Kafka (its own topic prefix) with its transactional views in PostgreSQL (a schema of
its own in the cluster ``infra/postgres.sh`` runs). A publisher thread prepares numbered batches of
payment events through the hub's publish path and appends each with an ``IdempotenceKey``,
retrying a failed batch with the same records and key until it is acknowledged. Meanwhile the
``payments`` projection follows the log in the background (its failed batches are retried by the
runner). Midway the broker is killed and started again. Afterwards the projection catches up, and
the view must hold exactly the acknowledged events: one ``payment_status`` row per acknowledged
payment and one ``payment_history`` row per acknowledged event, no more (no duplicate), no less (no
loss). Every wait is bounded.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from core.errors import HubError
from core.events import OutgoingEvent
from core.ports.eventlog import IdempotenceKey
from core.ports.views import Target
from hub.bootstrap import Hub, bootstrap
from hub.settings import load_settings
from projections.catalog import PAYMENTS
from tests.contract.test_eventlog_kafka import SCRIPT, kafka_bootstrap
from tests.infra import postgres_url
from tests.integration.test_kafka_faults import broker_pid

# pytest-timeout's default (300 s) is below the deadline: a slow broker restart at load ended the
# test in CI with its publisher still running
pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(600)]

BATCHES = 40
PER_BATCH = 25
DEADLINE_S = 360  # 140-155 s at load 18 when it passes; this bounds a failure only


def events(seq: int) -> list[OutgoingEvent]:
    return [
        OutgoingEvent(
            event_type="hub.payments.PaymentInitiated",
            value={
                "payment_id": f"P{seq}-{i}",
                "account_id": f"A{i % 7}",
                "amount": f"{100 + i}.25",
                "currency": "EUR",
                "counterparty_name": f"Person {i}",
                "counterparty_iban": "DE00123",
                "counterparty_country": "DE",
                "initiated_at": "2026-01-02T10:00:00Z",
            },
        )
        for i in range(PER_BATCH)
    ]


@pytest.fixture
def pg_schema_url() -> Iterator[str]:
    """The PostgreSQL URL with a fresh schema as the search path (dropped afterwards)."""
    url = postgres_url("the PostgreSQL views fault test")
    schema = f"f_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(url)
    with admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in url else "?"
    try:
        yield f"{url}{sep}options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture
def hub_on_kafka(pg_schema_url: str, tmp_path: Path) -> Iterator[Hub]:
    kafka = kafka_bootstrap()
    hub = bootstrap(
        load_settings(
            environ={},
            data_dir=tmp_path / "data",
            event_log="kafka",
            kafka_bootstrap_servers=kafka,
            kafka_topic_prefix=f"f{uuid.uuid4().hex[:10]}.",
            views_sql_url=pg_schema_url,
        )
    )
    before = set(threading.enumerate())
    try:
        yield hub
    finally:
        hub.projections.stop()  # a failed test left its followers running
        # The test's publisher may still be inside ``log.append`` after a failure: closing the
        # log under it destroys librdkafka handles it is using (the process aborts later, in
        # another test). Such a hub is left open, and the teardown fails naming the thread.
        _no_thread_left("fault-publisher", before, close=hub.close)
        _no_thread_left("projection-", before)


def _no_thread_left(
    prefix: str,
    before: set[threading.Thread],
    timeout_s: float = 30.0,
    close: Callable[[], None] | None = None,
) -> None:
    """Fail here, naming them, when threads of the closed hub outlive it: a follower still
    running after its chDB store was closed queried it from the next test on (SIGABRT in
    test_tlog_interop after a failure here), and ``ProjectionService.stop`` gives up on a
    thread after 10 s without saying so. ``close`` runs once no such thread is left, and is
    skipped (the hub stays open) when one is."""
    deadline = time.monotonic() + timeout_s
    while True:
        left = [
            t.name
            for t in threading.enumerate()
            if t.name.startswith(prefix) and t not in before and t.is_alive()
        ]
        if not left:
            if close is not None:
                close()
            return
        if time.monotonic() > deadline:
            pytest.fail(
                f"threads {left} outlived the test that started them"
                + ("; the hub was left open under them" if close is not None else ""),
                pytrace=False,
            )
        time.sleep(0.1)


def test_a_postgres_view_fed_from_kafka_survives_a_broker_kill_exactly_once(
    hub_on_kafka: Hub,
) -> None:
    hub = hub_on_kafka
    assert hub.projections.store("transactional")._engine.dialect.name == "postgresql"
    # The hub's log with short timeouts: appends fail fast while the broker is down, so retries
    # go through the idempotence recovery rather than merely stalling.
    log = hub.log
    log._timeout = 3.0  # type: ignore[attr-defined]
    log._delivery_timeout = 3.0  # type: ignore[attr-defined]
    producer = f"fault-views-{uuid.uuid4().hex[:8]}"
    acked: list[int] = []
    errors: list[str] = []
    stop = threading.Event()
    deadline = time.monotonic() + DEADLINE_S

    # Validated and Avro-encoded up front (prepare reads the topic's config from the broker);
    # a retry resends the very same records.
    prepared = [
        hub.publisher.prepare("payments", events(s), producer="fault") for s in range(BATCHES)
    ]

    def publish() -> None:
        for seq, records in enumerate(prepared):
            while not stop.is_set():
                if time.monotonic() > deadline:
                    errors.append(f"batch {seq} not acknowledged before the deadline")
                    return
                try:
                    log.append("payments", records, idempotence=IdempotenceKey(producer, seq))
                except HubError as exc:  # the broker is down: retry the same batch
                    errors.append(f"batch {seq}: {type(exc).__name__}: {exc}")
                    time.sleep(0.5)
                    continue
                acked.append(seq)
                break
            time.sleep(0.05)

    hub.projections.start(["payments"], poll_s=0.05)
    thread = threading.Thread(target=publish, name="fault-publisher", daemon=True)
    thread.start()
    try:
        while len(acked) < BATCHES // 3 and thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(acked) >= BATCHES // 3, f"the publisher stalled before the kill: {errors}"
        os.kill(broker_pid(), signal.SIGKILL)
        killed_at = len(acked)
        time.sleep(2)
        t0 = time.monotonic()
        started = subprocess.run(
            ["bash", str(SCRIPT), "start"], capture_output=True, text=True, timeout=180
        )
        restarted_s = time.monotonic() - t0
        assert started.returncode == 0, started.stderr
        thread.join(timeout=max(1.0, deadline - time.monotonic()))
        assert not thread.is_alive(), (
            f"the publisher did not finish in time: {len(acked)} of {BATCHES} batches "
            f"acknowledged ({killed_at} before the kill); the restart took {restarted_s:.1f} s; "
            f"{len(errors)} failed attempts, the last: {errors[-5:]}"
        )
    finally:
        stop.set()
        thread.join(timeout=60)
    assert acked == list(range(BATCHES)), errors[-5:]
    assert killed_at < BATCHES, "the broker was killed after the stream had ended"

    # The background runner catches up (its lag is not a measure here: the commit markers of
    # multi-partition appends take offsets that no record fills); then stop it and check the view.
    store = hub.projections.store("transactional")
    status, history = (
        t for t in PAYMENTS.tables if t.name in ("payment_status", "payment_history")
    )
    want = BATCHES * PER_BATCH
    while time.monotonic() < deadline and len(store.rows(Target("payments"), history)) < want:
        time.sleep(0.5)
    hub.projections.stop()
    hub.projections.run(["payments"])  # whatever is left, in the foreground
    rows = store.rows(Target("payments"), status)
    ids = [r["payment_id"] for r in rows]
    expected = {f"P{seq}-{i}" for seq in acked for i in range(PER_BATCH)}
    assert len(ids) == len(set(ids)), "a payment has more than one status row"
    missing, unexpected = sorted(expected - set(ids)), sorted(set(ids) - expected)
    assert not missing and not unexpected, f"missing {missing[:10]}, unexpected {unexpected[:10]}"
    events_seen = [r["payment_id"] for r in store.rows(Target("payments"), history)]
    duplicates = sorted({p for p in events_seen if events_seen.count(p) > 1})
    assert not duplicates, f"events projected more than once: {duplicates[:10]}"
    assert sorted(events_seen) == sorted(expected)
    kinds = Counter(e.split(": ", 1)[-1].split(" (")[0] for e in errors)
    print(
        f"killed after {killed_at} acknowledged batches; the restart took {restarted_s:.1f} s; "
        f"{len(errors)} failed attempts retried {dict(kinds)}; {len(rows)} rows in PostgreSQL"
    )
