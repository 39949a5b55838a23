"""What runs where under leader election (issue 17 item 8), with two real ``hub serve``
processes on one Kafka broker and PostgreSQL (the lease, the ledger, the shared views).

- The loops that append events (the alert engine, the daily report scheduler) run in the leader
  only: one breach fires ONE ``hub.AlertFired``, the daily reports are made once, and a new
  leader after a crash folds what the old one appended and repeats neither; it claimed each
  loop's fence under its epoch first.
- ``/health``, ``/metrics`` (``hub_leader``, ``hub_leader_epoch``) and ``hub status`` name the
  role of each process.
- Analytics views (chDB, each process's own files) are followed by EVERY process: a trade
  published through one process is visible in the other's views.
- A rebuild of a shared (PostgreSQL) view on the follower is refused, naming the leader; on the
  leader it runs (the CLI's refusal and the fenced swap: ``test_fencing.py``).

Why this module is slow (87 s measured on two cores at load 5, 235 s at load 22; most of it
the fixture: `hub init` and two `hub serve` start-ups on Kafka, 52-120 s): it needs two real
processes, whose start-up is the cost; every test shares them (module scope). The lease is 5 s
and the loops check twice a second so that each wait is short.
"""

from __future__ import annotations

import functools
import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import httpx
import pytest

from tests import infra
from tests.ha import hubprocs as hp

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

LEASE_S = 5.0  # a loaded machine's late renewals must not make the leadership flap
ALERT_S = 0.5
CHECK_S = 0.5


@dataclass
class Pair:
    env: dict[str, str]
    pg: str
    bootstrap: str
    prefix: str
    lease: str
    key: str
    procs: dict[str, hp.Proc] = field(default_factory=dict)

    def leader_and_follower(self) -> tuple[hp.Proc, hp.Proc]:
        held = hp.until("a leader elected", lambda: hp.holder(self.pg, self.lease), 30, self.up())
        leader = self.procs[held[0]]
        return leader, next(p for p in self.up() if p is not leader)

    def up(self) -> list[hp.Proc]:
        return [p for p in self.procs.values() if p.popen.poll() is None]

    def post(self, proc: hp.Proc, path: str, body: object) -> httpx.Response:
        return httpx.post(f"{proc.url}{path}", json=body, headers=hp.auth(self.key), timeout=60)

    def keys_on(self, topic: str) -> list[str]:
        """The record keys on ``topic`` (committed records, every partition)."""
        from confluent_kafka import Consumer, TopicPartition

        name = self.prefix + topic
        consumer = Consumer(
            {
                "bootstrap.servers": self.bootstrap,
                "group.id": f"count-{hp.new_run()}",
                "enable.auto.commit": False,
                "isolation.level": "read_committed",
                "log_level": 0,
            }
        )
        try:
            meta = consumer.list_topics(name, timeout=10).topics.get(name)
            if meta is None or meta.error is not None:
                return []
            out: list[str] = []
            for part in meta.partitions:
                low, high = consumer.get_watermark_offsets(TopicPartition(name, part), timeout=10)
                if high <= low:
                    continue
                consumer.assign([TopicPartition(name, part, low)])
                deadline = time.monotonic() + 20
                while time.monotonic() < deadline:
                    msg = consumer.poll(0.5)
                    if msg is None or msg.error() is not None:
                        pos = consumer.position([TopicPartition(name, part)])[0].offset
                        if pos >= high:
                            break
                        continue
                    out.append((msg.key() or b"").decode())
                    if (msg.offset() or 0) >= high - 1:
                        break
            return out
        finally:
            consumer.close()


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    infra.require("kafka", "the leader-role tests")
    bootstrap = f"127.0.0.1:{os.environ['HUB_KAFKA_PORT']}"
    pg = infra.postgres_url("the leader-role tests")
    tmp = tmp_path_factory.mktemp("roles")
    run = hp.new_run()
    env, views, ledger = hp.environment(
        tmp,
        bootstrap,
        pg,
        run,
        HUB_LEADER_LEASE_S=str(LEASE_S),
        HUB_PROJECTION_FOLLOW="payments,positions",
        HUB_ALERT_INTERVAL_S=str(ALERT_S),
        HUB_REPORT_DAILY_AT="00:00",  # due at once: yesterday's and today's reports
        HUB_SCHEDULER_CHECK_S=str(CHECK_S),
    )
    p = Pair(env, pg, bootstrap, f"ha{run}.", f"ha-{run}", hp.init(env, tmp / "admin.key"))
    try:
        for name, port in zip(("hub-a", "hub-b"), hp.ports(2), strict=True):
            p.procs[name] = hp.start(env, name, port, tmp)
        for proc in p.procs.values():
            hp.until(
                f"{proc.name} answering /health",
                functools.partial(hp.get_ok, f"{proc.url}/health"),
                120,
                p.procs.values(),
            )
        yield p
    finally:
        for proc in p.procs.values():
            if proc.popen.poll() is None:
                proc.popen.kill()
                proc.popen.wait(timeout=30)
        hp.delete_topics(bootstrap, p.prefix)
        hp.drop_schemas(pg, views, ledger)


def _health(proc: hp.Proc, key: str) -> dict[str, object]:
    """The process's leader role as ``/health/details`` shows it (``/health`` shows anyone the
    role alone: the holder is ``hostname:pid``)."""
    url = f"{proc.url}/health/details"
    leader: dict[str, object] = httpx.get(url, headers=hp.auth(key), timeout=10).json()["leader"]
    public = httpx.get(f"{proc.url}/health", timeout=10).json()["leader"]
    assert public == {"role": leader["role"]}, public
    return leader


def _metrics(pair: Pair, proc: hp.Proc) -> str:
    resp = httpx.get(f"{proc.url}/metrics", headers=hp.auth(pair.key), timeout=30)
    assert resp.status_code == 200, resp.text
    return resp.text


def _hub(pair: Pair, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [hp.HUB, *args],
        env={**pair.env, "HUB_API_KEY": pair.key, "HUB_LEADER_ID": "cli"},
        capture_output=True,
        text=True,
        timeout=180,
    )


def test_each_process_shows_its_role_in_health_metrics_and_status(pair: Pair) -> None:
    leader, follower = pair.leader_and_follower()
    held = hp.holder(pair.pg, pair.lease)
    assert held is not None
    want = {"role": "leader", "lease": pair.lease, "holder": leader.name, "epoch": held[1]}
    hp.until(
        "the leader's /health saying so", lambda: _health(leader, pair.key) == want, 10, pair.up()
    )
    assert _health(follower, pair.key) == {
        "role": "follower",
        "lease": pair.lease,
        "holder": follower.name,
        "epoch": None,
    }

    # a leader under heavy load may doubt itself for a moment (renewal late): poll
    def leading() -> str | None:
        text = _metrics(pair, leader)
        return text if f'hub_leader{{name="{pair.lease}"}} 1.0' in text else None

    on_leader = hp.until("the leader's hub_leader gauge at 1", leading, 10, pair.up())
    on_follower = _metrics(pair, follower)
    assert f'hub_leader{{name="{pair.lease}"}} 0.0' in on_follower
    for text in (on_leader, on_follower):  # both report the lease's epoch
        assert f'hub_leader_epoch{{name="{pair.lease}"}} {float(held[1])}' in text
    done = _hub(pair, "status")
    assert done.returncode == 0, done.stdout + done.stderr
    shown = json.loads(done.stdout)
    assert (shown["leader"], shown["epoch"]) == (leader.name, held[1])
    done = _hub(pair, "status", "--url", follower.url)
    assert done.returncode == 0, done.stdout + done.stderr
    assert json.loads(done.stdout)["role"] == "follower"


def _trade(n: int) -> dict[str, object]:
    return {
        "value": {
            "trade_id": f"T-{n}",
            "account_id": "ACC-1",
            "instrument": "US0378331005",
            "side": "BUY",
            "quantity": "1",
            "price": "1.5",
            "currency": "USD",
            "executed_at": "2026-11-25T14:30:00Z",
        },
        "event_type": "hub.trading.TradeExecuted",
    }


def _positions_seen(pair: Pair, proc: hp.Proc) -> int:
    resp = pair.post(
        proc,
        "/v1/query",
        {"sql": "SELECT sum(quantity) AS q FROM positions", "store": "analytics"},
    )
    if resp.status_code != 200:
        return -1
    rows = resp.json()["rows"]
    return int(float(rows[0]["q"] or 0)) if rows else 0


def _positions_are(pair: Pair, proc: hp.Proc, want: int) -> bool:
    return _positions_seen(pair, proc) == want


def test_a_follower_answers_analytics_queries_from_its_own_up_to_date_views(pair: Pair) -> None:
    leader, follower = pair.leader_and_follower()
    for i, (via, read) in enumerate(((leader, follower), (follower, leader))):
        resp = pair.post(via, "/v1/topics/trades/events", {"events": [_trade(i)]})
        assert resp.status_code == 201, resp.text
        published = time.monotonic()
        # positions are in chDB: each process folds its own copy from the log
        hp.until(
            f"the trade published through {via.name} in {read.name}'s positions view",
            functools.partial(_positions_are, pair, read, i + 1),
            15,
            pair.up(),
        )
        print(
            f"\npublished through {via.name}, visible through {read.name} after "
            f"{time.monotonic() - published:.2f} s"
        )


def test_a_rebuild_of_a_shared_view_runs_on_the_leader_only(pair: Pair) -> None:
    leader, follower = pair.leader_and_follower()
    resp = pair.post(follower, "/v1/projections/payments/rebuild", {})
    assert resp.status_code == 503, resp.text
    message = resp.json()["message"]
    assert "not the leader" in message and repr(leader.name) in message, message
    resp = pair.post(leader, "/v1/projections/payments/rebuild", {})
    assert resp.status_code == 200, resp.text
    assert resp.json()["projection"] == "payments"
    # a private (chDB) view may be rebuilt in any process: it is that process's own copy
    resp = pair.post(follower, "/v1/projections/positions/rebuild", {})
    assert resp.status_code == 200, resp.text


def _breach(n: int) -> dict[str, object]:
    return {
        "value": {
            "payment_id": f"P-breach-{n}",
            "account_id": "ACC-BIG",
            "amount": "60000.00",  # over the 50,000 daily limit
            "currency": "EUR",
            "counterparty_name": "Jane Doe",
            "counterparty_iban": "DE89370400440532013000",
            "counterparty_country": "DE",
            "initiated_at": "2026-12-02T08:00:00Z",
        },
        "event_type": "hub.payments.PaymentInitiated",
        "key": "ACC-BIG",
    }


def test_alerts_and_scheduled_reports_run_once_across_processes_and_a_failover(
    pair: Pair,
) -> None:
    leader, follower = pair.leader_and_follower()
    resp = pair.post(follower, "/v1/topics/payments/events", {"events": [_breach(1)]})
    assert resp.status_code == 201, resp.text
    fired = hp.until(
        "the daily-limit alert fired",
        lambda: [k for k in pair.keys_on("hub.alerts") if k == "daily_limit_breach"],
        # 60 s ran out once in a trial at load ~8, right after the leader's rebuild; 120 s once
        # in a trial with 40-78% of the CPU stolen by the host (it passed alone in 122 s, cluster
        # start included, during that same trial)
        240,
        pair.up(),
    )
    reports = hp.until(
        "the three daily reports made", lambda: len(pair.keys_on("hub.reports")) >= 3, 90, pair.up()
    )
    time.sleep(4 * max(ALERT_S, CHECK_S))  # both processes had several passes meanwhile
    assert len(fired) == 1
    assert [k for k in pair.keys_on("hub.alerts") if k == "daily_limit_breach"] == fired
    assert len(pair.keys_on("hub.reports")) == 3 and reports

    # the leader crashes: the follower takes over, folds what the old leader appended
    old = hp.holder(pair.pg, pair.lease)
    assert old is not None
    os.killpg(leader.popen.pid, signal.SIGKILL)
    leader.popen.wait(timeout=30)
    new = hp.until(
        f"{follower.name} taking the lease",
        lambda: (h := hp.holder(pair.pg, pair.lease)) is not None and h[0] == follower.name and h,
        LEASE_S * 10,
        pair.up(),
    )
    assert new[1] > old[1]
    hp.until(
        "the new leader's /health",
        lambda: _health(follower, pair.key)["role"] == "leader",
        10,
        pair.up(),
    )
    time.sleep(4 * max(ALERT_S, CHECK_S))  # its alert engine and scheduler had several passes
    assert [k for k in pair.keys_on("hub.alerts") if k == "daily_limit_breach"] == fired
    assert len(pair.keys_on("hub.reports")) == 3
    log = follower.log.read_text(errors="replace")
    assert "leader-only loop started" in log
    # the new leader claimed each loop's fence under its epoch before it folded (hub.ha.claim):
    # an append the old leader might still make is refused (tests/ha/test_fencing.py plays it)
    fences = hp.until(
        "the new leader's loop fences",
        lambda: (f := hp.loop_fences(pair.pg, pair.lease)).get("loop.reports") == new[1] and f,
        10,
        pair.up(),
    )
    assert fences["loop.alerts"] == new[1] and fences["loop.reports"] == new[1], fences
