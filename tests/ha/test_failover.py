"""High availability end to end (issue 17 item 8): two ``hub serve`` processes on a three-broker
Kafka cluster (``infra/kafka-cluster.sh``: replication factor 3, ``min.insync.replicas=2``) and
PostgreSQL (ledger, views, the leader lease).

A publisher streams payments through BOTH processes' HTTP API while, mid-stream:
1. the leader is paused (SIGSTOP): the other process takes the lease after it runs out and
   carries on; the paused one is resumed (SIGCONT) and must stand down, not write;
2. one broker is killed (SIGKILL) and the current leader is killed (SIGKILL) at the same time:
   the resumed process takes over again.
Then every acknowledged payment is in the ``payments`` view exactly once and on the ledger
exactly once, nothing is in either twice, and the failover times are printed.

The cluster starts in the background once collection shows this file will run (tests/ha/
conftest.py: its first start formats three nodes, ~50 s, overlapping the tests before it). The
lease stays 3 s (shorter, a late renewal on a loaded machine could cost a healthy leader its
lease), and each phase waits for one batch per process (10 payments) rather than 20-30.
"""

from __future__ import annotations

import base64
import functools
import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import httpx
import pytest
import sqlalchemy as sa

from tests import infra
from tests.ha import hubprocs

# Setup (cluster start, `hub init` on three brokers), the stream and the broker's restart take
# ~2 min on a quiet machine and up to 5 under heavy load: past the suite's 300 s default.
pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]

LEASE_S = 3.0
STEP = 10  # payments acknowledged per phase (one batch per process)
Proc = hubprocs.Proc
_until = hubprocs.until
_get_ok = hubprocs.get_ok


@dataclass
class Footprint:
    env: dict[str, str]
    pg: str
    views_schema: str
    ledger_schema: str
    lease: str
    key: str
    procs: dict[str, Proc] = field(default_factory=dict)
    restarts: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def holder(self) -> tuple[str, int] | None:
        return hubprocs.holder(self.pg, self.lease)


@pytest.fixture(scope="module")
def footprint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Footprint]:
    bootstrap_servers = hubprocs.cluster_bootstrap("the failover test")
    pg = infra.postgres_url("the failover test")
    tmp = tmp_path_factory.mktemp("ha")
    run = hubprocs.new_run()
    env, views_schema, ledger_schema = hubprocs.environment(
        tmp,
        bootstrap_servers,
        pg,
        run,
        **hubprocs.CLUSTER_SETTINGS,
        HUB_LEADER_LEASE_S=str(LEASE_S),
        HUB_PROJECTION_FOLLOW="payments",
    )
    key = hubprocs.init(env, tmp / "admin.key")
    fp = Footprint(env, pg, views_schema, ledger_schema, f"ha-{run}", key)
    try:
        for name, port in zip(("hub-a", "hub-b"), hubprocs.ports(), strict=True):
            fp.procs[name] = hubprocs.start(env, name, port, tmp)
        yield fp
    finally:
        for p in fp.procs.values():
            if p.popen.poll() is None:
                os.killpg(p.popen.pid, signal.SIGCONT)
                p.popen.kill()
                p.popen.wait(timeout=30)
        for r in fp.restarts:  # the broker's restart ran beside the rest of the test; not
            # waited for (up to 47 s at load 25): stopped, it stops the node it started, and
            # the next `kafka-cluster.sh start` starts whatever node is missing
            if r.poll() is None:
                r.terminate()
            r.wait(timeout=120)
        hubprocs.delete_topics(bootstrap_servers, f"ha{run}.")
        hubprocs.drop_schemas(pg, views_schema, ledger_schema)


class Stream:
    """Publishes batches of payments through every process marked up (a thread each, as two
    clients behind a load balancer would); records which payment ids each 201 acknowledged,
    with their offsets. A request that fails is not retried elsewhere: it may or may not be in
    the log, and a retry could duplicate it (that is the publisher's own idempotency key's job)."""

    def __init__(self, fp: Footprint, batch: int = 10) -> None:
        self.fp = fp
        self.batch = batch
        self.up = set(fp.procs)
        self.acked: dict[str, tuple[int, int]] = {}  # payment id -> (partition, offset)
        self.failed = 0
        self.ack_times: list[tuple[float, float]] = []  # (sent, acknowledged)
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [
            threading.Thread(target=self._run, args=(name,), daemon=True) for name in fp.procs
        ]
        token = base64.b64encode(fp.key.encode()).decode()
        self._headers = {"Authorization": f"Basic {token}"}

    def start(self) -> None:
        for t in self._threads:
            t.start()

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=60)

    def count(self) -> int:
        with self._lock:
            return len(self.acked)

    def acked_sent_after(self, at: float) -> list[float]:
        """When each batch SENT after ``at`` was acknowledged (a batch in flight at ``at`` may
        be acknowledged later, but says nothing of the cluster after it)."""
        with self._lock:
            return [acked for sent, acked in self.ack_times if sent > at]

    def _run(self, name: str) -> None:
        proc = self.fp.procs[name]
        n = 0
        with httpx.Client(timeout=20) as client:
            while not self._stop.is_set():
                if name not in self.up:
                    time.sleep(0.05)
                    continue
                ids = [f"P-{name}-{n:05d}-{i}" for i in range(self.batch)]
                n += 1
                sent = time.monotonic()
                body = {
                    "events": [
                        {
                            "value": {
                                "payment_id": pid,
                                "account_id": f"ACC-{i % 7}",
                                "amount": "10.00",
                                "currency": "EUR",
                                "counterparty_name": "Jane Doe",
                                "counterparty_iban": "DE89370400440532013000",
                                "counterparty_country": "DE",
                                "initiated_at": "2026-12-02T08:00:00Z",
                            },
                            "event_type": "hub.payments.PaymentInitiated",
                            "key": f"ACC-{i % 7}",
                        }
                        for i, pid in enumerate(ids)
                    ]
                }
                try:
                    resp = client.post(
                        f"{proc.url}/v1/topics/payments/events", json=body, headers=self._headers
                    )
                except httpx.HTTPError:
                    with self._lock:
                        self.failed += 1  # not acknowledged: it may or may not be in the log
                    continue
                with self._lock:
                    if resp.status_code != 201:
                        self.failed += 1
                        continue
                    offsets = resp.json()["offsets"]
                    for pid, o in zip(ids, offsets, strict=True):
                        self.acked[pid] = (int(o["partition"]), int(o["offset"]))
                    self.ack_times.append((sent, time.monotonic()))


def _history_table(fp: Footprint) -> str:
    with sa.create_engine(fp.pg).connect() as conn:
        names = [
            r[0]
            for r in conn.execute(
                sa.text(
                    "SELECT table_name FROM information_schema.tables WHERE table_schema = :s "
                    "AND table_name LIKE '%payment_history%'"
                ),
                {"s": fp.views_schema},
            )
        ]
    return names[0] if names else ""


def _ledger_positions(fp: Footprint) -> list[tuple[int, int]]:
    with sa.create_engine(fp.pg).connect() as conn:
        return [
            (int(p), int(o))
            for p, o in conn.execute(
                sa.text(
                    f"SELECT part, off FROM \"{fp.ledger_schema}\".leaves WHERE topic = 'payments'"
                )
            )
        ]


def test_failover_loses_no_acknowledged_record_and_duplicates_none(footprint: Footprint) -> None:
    fp = footprint
    procs = list(fp.procs.values())
    for p in procs:
        _until(
            f"{p.name} answering /health",
            functools.partial(_get_ok, f"{p.url}/health"),
            120,
            procs,
        )
    first = _until("a leader elected", fp.holder, 30, procs)
    stream = Stream(fp)
    stream.start()
    try:
        _until(f"{STEP} payments acknowledged", lambda: stream.count() >= STEP, 120, procs)

        # 1. pause the leader: the other one takes over once the lease runs out
        old_name, old_epoch = first
        other = next(n for n in fp.procs if n != old_name)
        stream.up.discard(old_name)
        paused_at = time.monotonic()
        os.killpg(fp.procs[old_name].popen.pid, signal.SIGSTOP)
        second = _until(
            f"{other} taking the lease from the paused {old_name}",
            lambda: (h := fp.holder()) is not None and h[0] == other and h,
            LEASE_S * 8,
            procs,
        )
        pause_failover = time.monotonic() - paused_at
        assert second[1] > old_epoch
        acked_before = stream.count()
        _until("publishes going on", lambda: stream.count() >= acked_before + STEP, 120, procs)
        os.killpg(fp.procs[old_name].popen.pid, signal.SIGCONT)  # the old leader resumes
        stream.up.add(old_name)
        _until(
            f"{old_name} noticing it lost the lease",
            lambda: "lost the leadership" in fp.procs[old_name].log.read_text(errors="replace"),
            30,
            procs,
        )
        assert fp.holder() == second  # it stood down; the new leader keeps the lease

        # 2. kill a broker and the current leader at once
        acked_before = stream.count()
        _until("publishes going on", lambda: stream.count() >= acked_before + STEP, 120, procs)
        crash_at = time.monotonic()
        subprocess.run(
            ["bash", str(infra.script("kafka-cluster")), "kill-broker", "2"],
            check=True,
            capture_output=True,
        )
        restart = subprocess.Popen(  # it comes back while the stream goes on (and catches up)
            ["bash", str(infra.script("kafka-cluster")), "start-broker", "2"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        fp.restarts.append(restart)
        stream.up.discard(other)
        os.killpg(fp.procs[other].popen.pid, signal.SIGKILL)
        fp.procs[other].popen.wait(timeout=30)
        third = _until(
            f"{old_name} taking the lease back after the crash",
            lambda: (h := fp.holder()) is not None and h[0] == old_name and h,
            LEASE_S * 8,
            procs,
        )
        crash_failover = time.monotonic() - crash_at
        assert third[1] > second[1]
        acked_before = stream.count()
        _until(
            "publishes acknowledged again after the crash",
            lambda: stream.count() >= acked_before + STEP and stream.acked_sent_after(crash_at),
            120,
            procs,
        )
        # the first publish sent after the crash that was acknowledged
        first_ack_after = min(stream.acked_sent_after(crash_at))
    finally:
        stream.stop()

    table = _history_table(fp)
    assert table, "the payments view has no payment_history table"

    def view_rows() -> list[str]:
        with sa.create_engine(fp.pg).connect() as conn:
            return [
                r[0]
                for r in conn.execute(
                    sa.text(f'SELECT payment_id FROM "{fp.views_schema}"."{table}"')
                )
            ]

    acked = dict(stream.acked)
    _until(
        "the view holding every acknowledged payment",
        lambda: set(acked) <= set(view_rows()),
        60,
        procs,
    )
    _until(
        "the ledger covering every acknowledged payment",
        lambda: set(acked.values()) <= set(_ledger_positions(fp)),
        60,
        procs,
    )
    rows = view_rows()
    assert len(rows) == len(set(rows)), "a payment is in the view twice"
    leaves = _ledger_positions(fp)
    assert len(leaves) == len(set(leaves)), "a record has two leaves"
    assert len(leaves) == len(rows)  # one leaf per record, one row per record, same records
    with sa.create_engine(fp.pg).connect() as conn:
        epochs = {
            str(w): int(e)
            for w, e in conn.execute(
                sa.text(f'SELECT writer, epoch FROM "{fp.ledger_schema}".writer_epochs')
            )
        }
    assert epochs["ledger"] == third[1]  # the last writes were the last leader's
    print(
        f"\nHA failover: {len(acked)} payments acknowledged ({stream.failed} batches refused or "
        f"cut off), {len(rows)} in the view, {len(leaves)} on the ledger; "
        f"paused leader replaced after {pause_failover:.2f} s (lease {LEASE_S} s); "
        f"broker + leader crash: new leader after {crash_failover:.2f} s, first publish sent "
        f"after the crash acknowledged {first_ack_after - crash_at:.2f} s after it; epochs "
        f"{first[1]} -> {second[1]} -> {third[1]}"
    )
