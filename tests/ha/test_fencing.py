"""Fencing of the single-writer parts (issue 17 item 8), against a real PostgreSQL.

A leader paused (SIGSTOP, a long GC, a partition) keeps believing it leads until it next looks
at its lease; meanwhile another process takes over. These tests play that interleaving step by
step: the old leader's write is made with its old epoch after the new leader wrote with the new
one, and the store must refuse it in the write's own transaction and keep nothing of it.
(``test_failover.py`` does the same with real ``hub serve`` processes and SIGSTOP.)
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path

import pytest
import sqlalchemy as sa

from core.events import OutgoingEvent
from core.leadership import Fenced, LeaderElector, NotLeader, WriterFence
from core.ports.views import Checkpoint, Position, Target
from domain.alerts import AlertRule
from hub.bootstrap import Hub, bootstrap
from hub.console.alerts import FIRED, AlertEngine
from hub.ha import Guard, claim
from hub.settings import load_settings
from ledger.service import Ledger, LedgerConfig
from projections.catalog import by_name
from tests import infra

pytest.importorskip("psycopg")

from adapters.postgres_leadership import PostgresLeadership
from adapters.postgres_ledgerstore import PostgresLedgerStore
from adapters.sqlalchemy_views import SqlAlchemyViewStore

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def pg() -> str:
    return infra.postgres_url("the fencing tests")


def lease(pg: str, name: str, holder: str, lease_s: float = 1.0) -> PostgresLeadership:
    return PostgresLeadership(pg, name, holder, lease_s=lease_s, schema="hub_leadership_test")


def test_one_holder_at_a_time_and_the_epoch_only_grows(pg: str) -> None:
    name = f"t-{uuid.uuid4().hex[:10]}"
    a, b = lease(pg, name, "a"), lease(pg, name, "b")
    try:
        e1 = a.try_acquire()
        assert e1 == 1
        assert b.try_acquire() is None  # held and live
        cur = a.current()
        assert cur is not None and (cur.holder, cur.epoch) == ("a", 1)
        time.sleep(1.1)  # a stops renewing (paused): the lease runs out on the server's clock
        e2 = b.try_acquire()
        assert e2 == 2
        assert a.renew(1) is False  # the old leader learns it lost
        assert b.renew(2) is True
        b.release(2)  # a clean shutdown hands over at once
        assert a.try_acquire() == 3
    finally:
        a.close()
        b.close()


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[Hub]:
    h = bootstrap(load_settings(environ={}, data_dir=tmp_path / "d"))
    yield h
    h.close()


def publish(h: Hub, n: int, start: int) -> None:
    h.publisher.publish(
        "trades",
        [
            OutgoingEvent(
                value={
                    "trade_id": f"T-{start + i}",
                    "account_id": "ACC-1",
                    "instrument": "US0378331005",
                    "side": "BUY",
                    "quantity": "1",
                    "price": "1.5",
                    "currency": "USD",
                    "executed_at": "2026-11-25T14:30:00Z",
                }
            )
            for i in range(n)
        ],
        producer="desk",
    )


def test_a_replaced_leader_cannot_append_to_the_ledger(pg: str, hub: Hub) -> None:
    store = PostgresLedgerStore(pg, schema=f"fence_{uuid.uuid4().hex[:10]}")
    try:
        believes: dict[str, WriterFence | None] = {"old": WriterFence("ledger", 1)}

        def ledger(who: str, epoch: int) -> Ledger:
            believes[who] = WriterFence("ledger", epoch)
            return Ledger(
                hub.log,
                store,
                hub.ledger.signer,
                LedgerConfig(origin=hub.settings.ledger_origin),
                fence=lambda: believes[who],
            )

        old = ledger("old", 1)
        publish(hub, 5, 0)
        first = old.sync().size
        assert first > 0
        new = ledger("new", 2)  # elected while the old one was paused
        publish(hub, 5, 100)
        assert new.sync().size == first + 5
        publish(hub, 5, 200)
        with pytest.raises(Fenced, match="epoch 1: a newer leader \\(epoch 2\\)"):
            old.sync()  # the old one resumes, still believing it leads
        assert store.tree_size() == first + 5  # nothing of its batch was kept
        assert new.sync().size == first + 10  # the leader goes on
        positions = [(r[1], r[2], r[3]) for batch in store.iter_leaves() for r in batch]
        assert len(positions) == len(set(positions)) == first + 10
        believes["old"] = None  # a process that knows it is not the leader does not write:
        assert old.sync().size == first + 10  # its sync waits for the leader's (covered now)
        publish(hub, 1, 300)
        old.cover_wait_s = 0.3
        with pytest.raises(NotLeader, match=r"did not cover the log within 0\.3 s"):
            old.sync()  # the leader has not synced this one yet
        assert store.tree_size() == first + 10
    finally:
        store.drop()
        store.close()


def test_a_replaced_leader_cannot_write_a_view(pg: str) -> None:
    schema = f"fence_{uuid.uuid4().hex[:10]}"
    engine = sa.create_engine(pg)
    with engine.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    try:
        url = f"{pg}?options=-csearch_path%3D{schema}"
        proj = by_name("payments")
        target = Target("payments")
        old, new = SqlAlchemyViewStore(url), SqlAlchemyViewStore(url)  # two processes
        for s in (old, new):
            s.ensure(target, proj.tables)
        row = {
            "tenant": "default",
            "payment_id": "P-1",
            "status": "INITIATED",
            "src_topic": "payments",
            "src_partition": 0,
            "src_offset": 0,
        }

        def batch(seq: int, offset: int) -> Checkpoint:
            return Checkpoint(seq, {("payments", 0): Position(offset)})

        old.write(target, proj.tables, {}, batch(1, 1), fence=WriterFence("projection.p", 1))
        new.write(target, proj.tables, {}, batch(2, 2), fence=WriterFence("projection.p", 2))
        with pytest.raises(Fenced, match="epoch 1: a newer leader \\(epoch 2\\)"):
            old.write(
                target,
                proj.tables,
                {"payment_history": [{**row, "src_offset": 2}]},
                batch(3, 3),
                fence=WriterFence("projection.p", 1),
            )
        assert new.checkpoint(target).batch_seq == 2  # neither the rows nor the positions
        assert new.rows(target, proj.tables[1]) == []
        new.write(target, proj.tables, {}, batch(3, 3), fence=WriterFence("projection.p", 2))
        assert old.checkpoint(target).batch_seq == 3
        old.close()
        new.close()
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        engine.dispose()


def test_the_elector_follows_the_lease(pg: str) -> None:
    name = f"t-{uuid.uuid4().hex[:10]}"
    events: list[str] = []
    a = LeaderElector(
        lease(pg, name, "a"),
        on_elected=lambda e: events.append(f"a+{e}"),
        on_lost=lambda e: events.append(f"a-{e}"),
    )
    b = LeaderElector(
        lease(pg, name, "b"),
        on_elected=lambda e: events.append(f"b+{e}"),
        on_lost=lambda e: events.append(f"b-{e}"),
    )
    a.step()
    b.step()
    assert a.fence("ledger") == WriterFence("ledger", 1) and b.fence("ledger") is None
    time.sleep(1.1)  # a is paused past its lease: it no longer trusts it either
    assert a.epoch is None
    b.step()
    assert b.epoch == 2
    a.step()  # a resumes: its renewal is refused
    assert events == ["a+1", "b+2", "a-1"]
    b.stop()  # releases: a takes over on its next round, without waiting out the lease
    a.step()
    assert a.epoch == 3
    a.stop()
    assert events == ["a+1", "b+2", "a-1", "b-2", "a+3", "a-3"]


def test_a_rebuild_off_the_leader_is_refused_naming_the_leader(pg: str, hub: Hub) -> None:
    """``hub projection rebuild`` and the HTTP route call this service: in a process that is
    not the leader, a shared store's projection is refused before any work; a private one
    (chDB, this process's own copy) is not the leader's business."""
    name = f"t-{uuid.uuid4().hex[:10]}"
    other = lease(pg, name, "hub-a", lease_s=30)
    assert other.try_acquire() == 1  # another process leads
    here = LeaderElector(lease(pg, name, "cli", lease_s=30))  # no loop: a CLI process
    hub.projections.leader = here
    try:
        with pytest.raises(NotLeader) as refused:
            hub.projections.rebuild("payments")
        assert "not the leader" in refused.value.message
        assert "held by 'hub-a' under epoch 1" in refused.value.message
        assert refused.value.http_status == 503
        other.release(1)  # the lease is free: this process takes it on demand and rebuilds
        assert hub.projections.rebuild("payments")["projection"] == "payments"
        assert here.epoch == 2
    finally:
        hub.projections.leader = None
        here.stop()
        here.leadership.close()
        other.close()


def test_a_replaced_leader_cannot_swap_a_rebuilt_view_in(pg: str) -> None:
    schema = f"fence_{uuid.uuid4().hex[:10]}"
    engine = sa.create_engine(pg)
    with engine.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    try:
        store = SqlAlchemyViewStore(f"{pg}?options=-csearch_path%3D{schema}")
        proj = by_name("payments")
        live, copy = Target("payments"), Target("payments", "rebuild_1")
        for t in (live, copy):
            store.ensure(t, proj.tables)
        at = {("payments", 0): Position(5)}
        store.write(live, proj.tables, {}, Checkpoint(1, at), fence=WriterFence("projection.p", 2))
        store.write(copy, proj.tables, {}, Checkpoint(1, {("payments", 0): Position(9)}))
        with pytest.raises(Fenced, match="epoch 1: a newer leader \\(epoch 2\\)"):
            store.swap(live, copy, proj.tables, fence=WriterFence("projection.p", 1))
        assert store.checkpoint(live).positions == at  # the live views are untouched
        store.swap(live, copy, proj.tables, fence=WriterFence("projection.p", 2))
        assert store.checkpoint(live).positions[("payments", 0)].next_offset == 9
        store.close()
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        engine.dispose()


class _Pausable(AlertEngine):
    """An engine whose one rule always fires, and whose measuring can be held: a SIGSTOP
    between the decision to fire and the append, played in one thread."""

    def __init__(self, hub: Hub, fence: Guard, hold: threading.Event | None = None) -> None:
        rule = AlertRule("t_always", "Fires whenever measured.", "", severity="info")
        super().__init__(hub, [rule], fence=fence)
        self.hold = hold
        self.measuring = threading.Event()

    def measure(self, rule: AlertRule) -> Decimal:
        self.measuring.set()
        if self.hold is not None:
            assert self.hold.wait(30)
        return Decimal(1)


def _fired(hub: Hub) -> list[str]:
    return [e["event_id"] for e in AlertEngine(hub, []).events() if e["event_type"] == FIRED]


def _in_thread(call: Callable[[], object]) -> tuple[threading.Thread, list[BaseException]]:
    errors: list[BaseException] = []

    def run() -> None:
        try:
            call()
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, errors


def _expire(pg: str, name: str) -> None:
    """The lease runs out on the server's clock while the holder's own clock has not noticed
    (a frozen VM, a SIGSTOP longer than the margin): only the fence stands in the way now."""
    engine = sa.create_engine(pg)
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "UPDATE hub_leadership_test.leases SET expires_at = clock_timestamp() - "
                "interval '1 second' WHERE name = :n"
            ),
            {"n": name},
        )
    engine.dispose()


def test_a_paused_leaders_alert_append_is_refused_after_a_new_leader_took_over(
    pg: str, hub: Hub
) -> None:
    """Old leader a decides to fire, is paused before it appends; b is elected, claims the
    alert loop's fence, folds (nothing fired) and fires; a resumes: its append is refused, so
    ONE ``hub.AlertFired`` is on the log (without the fence there would be two)."""
    name = f"t-{uuid.uuid4().hex[:10]}"
    a = LeaderElector(lease(pg, name, "a", lease_s=30))
    b = LeaderElector(lease(pg, name, "b", lease_s=30))
    try:
        a.step()
        assert a.epoch == 1
        hold = threading.Event()
        old = _Pausable(hub, claim(a, "alerts", 1), hold)
        thread, errors = _in_thread(old.evaluate)
        assert old.measuring.wait(30)  # a decided to fire and is paused

        _expire(pg, name)
        b.step()
        assert b.epoch == 2 and a.epoch == 1  # a still believes it leads
        new = _Pausable(hub, claim(b, "alerts", 2))
        fired = new.evaluate()
        assert [e["event_id"] for e in fired] == _fired(hub)

        hold.set()  # a resumes and appends
        thread.join(30)
        assert len(errors) == 1 and isinstance(errors[0], Fenced), errors
        assert "epoch 1: a newer leader (epoch 2)" in errors[0].message
        assert _fired(hub) == [fired[0]["event_id"]]  # one firing, b's
        assert "t_always" not in old._firing  # a's refused append changed nothing

        a.step()  # a's renewal is refused: from now on its guard refuses without asking
        with pytest.raises(NotLeader, match="no longer leads under epoch 1"):
            old.evaluate()
        assert len(_fired(hub)) == 1
    finally:
        for elector in (a, b):
            elector.stop()
            elector.leadership.close()


def test_a_new_leader_folds_the_append_an_old_leader_made_inside_its_fence(
    pg: str, hub: Hub
) -> None:
    """Old leader a is paused INSIDE its fenced append (holding the fence): b's claim waits
    for it, so b's fold sees a's firing and b fires nothing more."""
    name = f"t-{uuid.uuid4().hex[:10]}"
    a = LeaderElector(lease(pg, name, "a", lease_s=30))
    b = LeaderElector(lease(pg, name, "b", lease_s=30))
    try:
        a.step()
        guard = claim(a, "alerts", 1)
        inside, hold = threading.Event(), threading.Event()

        @contextmanager
        def paused_inside() -> Iterator[None]:
            with guard():
                inside.set()
                assert hold.wait(30)
                yield

        old = _Pausable(hub, paused_inside)
        thread, errors = _in_thread(old.evaluate)
        assert inside.wait(30)  # a holds the fence, its append not made yet

        _expire(pg, name)
        b.step()
        assert b.epoch == 2
        started: list[AlertEngine] = []
        claiming, _ = _in_thread(lambda: started.append(_Pausable(hub, claim(b, "alerts", 2))))
        claiming.join(1.0)
        assert claiming.is_alive()  # b waits for a's fenced append
        hold.set()
        thread.join(30)
        claiming.join(30)
        assert errors == [] and len(started) == 1
        assert started[0].evaluate() == []  # b folded a's firing: nothing to fire
        assert len(_fired(hub)) == 1
    finally:
        for elector in (a, b):
            elector.stop()
            elector.leadership.close()
