"""Followers are woken by the append (issue 13): no polling interval on the latency path.

Each test waits with a polling period of 30 s: only the append's wake-up can make it pass in
time, so a follower that fell back to polling fails it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from adapters.sqlite_log import SqliteEventLog
from core.events import OutgoingEvent
from core.ports.eventlog import Record, TopicPartition
from hub.bootstrap import Hub, bootstrap
from hub.settings import load_settings

POLL_S = 30.0


def later(seconds: float, fn: object) -> threading.Thread:
    t = threading.Timer(seconds, fn)  # type: ignore[arg-type]
    t.start()
    return t


@pytest.fixture
def log(tmp_path: Path) -> Iterator[SqliteEventLog]:
    """A new SQLite log, closed after the test."""
    log = SqliteEventLog(tmp_path / "log.db")
    yield log
    log.close()


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[Hub]:
    """The embedded hub, its projections not started, closed after the test."""
    hub = bootstrap(
        load_settings(environ={}, data_dir=tmp_path / "data", projection_autostart=False)
    )
    try:
        yield hub
    finally:
        hub.close()


def payment(payment_id: str, amount: str) -> OutgoingEvent:
    return OutgoingEvent(
        event_type="hub.payments.PaymentInitiated",
        value={
            "payment_id": payment_id,
            "account_id": "A1",
            "amount": amount,
            "currency": "EUR",
            "counterparty_name": "x",
            "counterparty_iban": "y",
            "counterparty_country": "DE",
            "initiated_at": "2026-11-24T10:00:00Z",
        },
    )


def publish(hub: Hub, event: OutgoingEvent) -> None:
    hub.publisher.publish("payments", [event], "test", "acme")


def wait_until(done: Callable[[], bool], timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not done() and time.monotonic() < deadline:
        time.sleep(0.01)


def woken_in(seconds: float, wait: Callable[[], int], seen: int) -> int:
    """``wait()``'s generation, asserted new and returned within ``seconds``."""
    started = time.monotonic()
    now = wait()
    assert now != seen
    assert time.monotonic() - started < seconds, "the waiter slept instead of being woken"
    return now


def in_transaction(log: SqliteEventLog, transactional_id: str, topic: str) -> Callable[[], None]:
    def txn() -> None:
        with log.transaction(transactional_id) as t:
            t.append(topic, [Record(value=b"x")])

    return txn


class Follower:
    """``runner.follow`` in a thread, given 0.3 s to go idle (waiting for an append)."""

    def __init__(self, runner: Any, *args: float) -> None:
        self.stop = threading.Event()
        self.thread = threading.Thread(
            target=runner.follow, args=(self.stop, POLL_S, *args), daemon=True
        )
        self.thread.start()
        time.sleep(0.3)

    def end(self, hub: Hub, event: OutgoingEvent) -> None:
        """Stop it: seen within the polling period, or at once on the next append."""
        self.stop.set()
        publish(hub, event)
        self.thread.join(10)
        assert not self.thread.is_alive()


def test_an_append_wakes_a_waiter_at_once(log: SqliteEventLog) -> None:
    log.create_topic("t", 2)
    seen = log.append_generation()
    later(0.2, lambda: log.append("t", [Record(value=b"x", key=b"k")]))
    woken_in(5, lambda: log.wait_for_append(seen, POLL_S), seen)
    assert sum(log.end_offsets("t").values()) == 1


def test_an_append_before_the_wait_is_not_missed(log: SqliteEventLog) -> None:
    log.create_topic("t")
    seen = log.append_generation()  # read, then the append lands before the wait begins
    log.append("t", [Record(value=b"x")])
    woken_in(1, lambda: log.wait_for_append(seen, POLL_S), seen)


def test_a_committed_transaction_wakes_a_waiter(log: SqliteEventLog) -> None:
    log.create_topic("t")
    seen = log.append_generation()
    later(0.2, in_transaction(log, "tx-1", "t"))
    woken_in(5, lambda: log.wait_for_append(seen, POLL_S), seen)


def test_a_following_projection_sees_a_publish_without_polling(hub: Hub) -> None:
    runner = hub.projections.runner("payments")  # SQLite view store
    runner.catch_up()
    follower = Follower(runner)
    before = runner.checkpoint.batch_seq
    event = payment("P1", "100.50")
    publish(hub, event)
    wait_until(lambda: runner.checkpoint.batch_seq != before)
    assert runner.checkpoint.batch_seq > before, "the projection did not see the publish"
    assert runner.lag() == 0
    follower.end(hub, event)


def test_a_follower_of_one_topic_sleeps_through_other_writes(log: SqliteEventLog) -> None:
    """Waiting on ``topics``: appends to other topics and offset commits do not wake it (each
    woke every projection runner, which then asked the log for its end offsets); an append to
    its topic, or a transaction that wrote it, does at once."""
    log.create_topic("mine")
    log.create_topic("other")
    seen = log.append_generation(["mine"])
    log.append("other", [Record(value=b"x")])
    log.commit_offsets("g", {TopicPartition("other", 0): 1})
    assert log.wait_for_append(seen, 0.2, ["mine"]) == seen  # slept the whole timeout
    assert log.append_generation() != 0  # the global counter saw both writes
    later(0.2, lambda: log.append("mine", [Record(value=b"y")]))
    seen = woken_in(5, lambda: log.wait_for_append(seen, POLL_S, ["mine"]), seen)
    later(0.2, in_transaction(log, "tx-2", "mine"))
    woken_in(5, lambda: log.wait_for_append(seen, POLL_S, ["mine"]), seen)


def test_a_runner_tells_its_commit_listeners_and_not_on_empty_steps(hub: Hub) -> None:
    runner = hub.projections.runner("payments")
    runner.catch_up()
    heard: list[int] = []
    stop_listening = runner.on_commit(heard.append)
    assert not runner.step().events and heard == []  # nothing read: nothing committed
    event = payment("P2", "1.00")
    publish(hub, event)
    runner.step()
    assert heard == [runner.checkpoint.batch_seq]
    stop_listening()
    publish(hub, event)
    runner.step()
    assert len(heard) == 1


def test_a_follower_mirrors_its_positions_once_caught_up_not_between_append_and_commit(
    hub: Hub,
) -> None:
    """The advisory group mirror (a write transaction on the log) runs when the follower has
    caught up, not inside the step that commits a batch: at the step's last mark (``mirrored``)
    the group has not moved, and it catches up while the follower idles."""
    runner = hub.projections.runner("payments")
    runner.catch_up()
    group = "projection.payments"
    at_step_end: list[int] = []

    def mirrored() -> int:
        return sum(runner.log.committed(group, "payments").values())

    def hook(step: str) -> None:
        if step == "mirrored":
            at_step_end.append(mirrored())

    follower = Follower(runner, 0.0)  # idle: whatever was there is mirrored
    before = mirrored()
    runner.hook = hook
    event = payment("P3", "2.00")
    publish(hub, event)
    wait_until(lambda: mirrored() != before)
    assert mirrored() == before + 1, "the idle follower did not mirror its new position"
    assert at_step_end == [before], "the step that committed the batch mirrored it"
    assert follower.thread.is_alive()  # mirrored while following, not by the final mirror
    follower.end(hub, event)
