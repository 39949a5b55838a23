"""The leader elector (``core.leadership``) over an in-memory lease, and the scoring worker's
stand-by: the parts that do not need PostgreSQL (``tests/ha/test_fencing.py`` runs the real
lease and the stores' fences)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from core.leadership import Fenced, LeaderElector, Leadership, LeaseHolder, WriterFence
from hub.workers import WorkerHealth, follow_scoring


class MemoryLease(Leadership):
    """One lease shared by the electors of a test; ``expired`` plays the server's clock."""

    def __init__(self, shared: dict[str, object], holder: str) -> None:
        self.name, self.holder, self.lease_s = "t", holder, 30.0
        self.shared = shared

    def try_acquire(self) -> int | None:
        if self.shared.get("holder") is not None and not self.shared.get("expired"):
            return None
        epoch = int(self.shared.get("epoch", 0)) + 1  # type: ignore[call-overload]
        self.shared.update(holder=self.holder, epoch=epoch, expired=False)
        return epoch

    def renew(self, epoch: int) -> bool:
        return self.shared.get("holder") == self.holder and self.shared.get("epoch") == epoch

    def release(self, epoch: int) -> None:
        if self.renew(epoch):
            self.shared["expired"] = True

    def current(self) -> LeaseHolder | None:
        return None

    @contextmanager
    def fenced(self, token: WriterFence) -> Iterator[None]:
        epochs = self.shared.setdefault("writers", {})
        assert isinstance(epochs, dict)
        if epochs.get(token.writer, 0) > token.epoch:
            raise Fenced(f"{token.writer} is fenced at {epochs[token.writer]}")
        epochs[token.writer] = token.epoch
        yield


def test_only_the_holder_gets_a_token_and_a_newer_grant_has_a_larger_epoch() -> None:
    shared: dict[str, object] = {}
    events: list[str] = []
    a = LeaderElector(MemoryLease(shared, "a"), on_lost=lambda e: events.append(f"a-{e}"))
    b = LeaderElector(MemoryLease(shared, "b"), on_elected=lambda e: events.append(f"b+{e}"))
    assert a.fence("ledger") == WriterFence("ledger", 1)  # a CLI-like process: on demand
    assert b.fence("ledger") is None
    shared["expired"] = True  # a stopped renewing
    b.step()
    assert b.fence("ledger") == WriterFence("ledger", 2)
    a.step()  # a's renewal is refused: it stands down
    assert a.epoch is None and events == ["b+2", "a-1"]


def test_a_released_lease_is_taken_at_once() -> None:
    shared: dict[str, object] = {}
    a, b = LeaderElector(MemoryLease(shared, "a")), LeaderElector(MemoryLease(shared, "b"))
    a.step()
    b.step()
    assert b.epoch is None
    a.stop()  # a clean shutdown releases
    b.step()
    assert b.epoch == 2


class Steps:
    group = "g"

    def __init__(self) -> None:
        self.steps = 0

    def step(self) -> int:
        self.steps += 1
        return 0

    def lag(self) -> int:
        return 0


class NoLog:
    def append_generation(self) -> int:
        return 0

    def wait_for_append(self, seen: int, timeout: float) -> int:
        return seen


def test_a_standby_scoring_replica_scores_nothing_until_it_leads() -> None:
    shared: dict[str, object] = {"holder": "other", "epoch": 7}
    leader = LeaderElector(MemoryLease(shared, "me"))
    built: list[Steps] = []
    stop = threading.Event()

    def consumer() -> Steps:
        built.append(Steps())
        if len(built) == 1 and leader.epoch is not None:
            stop.set()
        return built[-1]

    health = WorkerHealth("t")
    t = threading.Thread(
        target=follow_scoring,
        args=(consumer, NoLog(), stop, health),
        kwargs={"poll_s": 0.01, "leader": leader},
    )
    t.start()
    stop.wait(0.2)
    assert built == []  # another replica holds the model's lease
    shared["expired"] = True
    leader.step()  # elected (epoch 8): the next round builds the consumer and scores
    t.join(timeout=5)
    assert not t.is_alive() and built and leader.epoch == 8
