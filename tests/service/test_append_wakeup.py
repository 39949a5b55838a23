"""Followers are woken by the append (issue 13): no polling interval on the latency path.

Each test waits with a polling period of 30 s: only the append's wake-up can make it pass in
time, so a follower that fell back to polling fails it.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

from adapters.sqlite_log import SqliteEventLog
from core.events import OutgoingEvent
from core.ports.eventlog import Record
from hub.bootstrap import bootstrap
from hub.settings import load_settings

POLL_S = 30.0


def later(seconds: float, fn: object) -> threading.Thread:
    t = threading.Timer(seconds, fn)  # type: ignore[arg-type]
    t.start()
    return t


def test_an_append_wakes_a_waiter_at_once(tmp_path: Path) -> None:
    log = SqliteEventLog(tmp_path / "log.db")
    log.create_topic("t", 2)
    seen = log.append_generation()
    later(0.2, lambda: log.append("t", [Record(value=b"x", key=b"k")]))
    started = time.monotonic()
    now = log.wait_for_append(seen, POLL_S)
    assert now != seen
    assert time.monotonic() - started < 5, "the waiter slept instead of being woken"
    assert sum(log.end_offsets("t").values()) == 1
    log.close()


def test_an_append_before_the_wait_is_not_missed(tmp_path: Path) -> None:
    log = SqliteEventLog(tmp_path / "log.db")
    log.create_topic("t")
    seen = log.append_generation()  # read, then the append lands before the wait begins
    log.append("t", [Record(value=b"x")])
    started = time.monotonic()
    assert log.wait_for_append(seen, POLL_S) != seen
    assert time.monotonic() - started < 1
    log.close()


def test_a_committed_transaction_wakes_a_waiter(tmp_path: Path) -> None:
    log = SqliteEventLog(tmp_path / "log.db")
    log.create_topic("t")
    seen = log.append_generation()

    def txn() -> None:
        with log.transaction("tx-1") as t:
            t.append("t", [Record(value=b"x")])

    later(0.2, txn)
    started = time.monotonic()
    assert log.wait_for_append(seen, POLL_S) != seen
    assert time.monotonic() - started < 5
    log.close()


def test_a_following_projection_sees_a_publish_without_polling(tmp_path: Path) -> None:
    hub = bootstrap(
        load_settings(environ={}, data_dir=tmp_path / "data", projection_autostart=False)
    )
    try:
        runner = hub.projections.runner("payments")  # SQLite view store
        runner.catch_up()
        stop = threading.Event()
        follower = threading.Thread(target=runner.follow, args=(stop, POLL_S), daemon=True)
        follower.start()
        time.sleep(0.3)  # the follower is idle, waiting for an append
        before = runner.checkpoint.batch_seq
        event = OutgoingEvent(
            event_type="hub.payments.PaymentInitiated",
            value={
                "payment_id": "P1",
                "account_id": "A1",
                "amount": "100.50",
                "currency": "EUR",
                "counterparty_name": "x",
                "counterparty_iban": "y",
                "counterparty_country": "DE",
                "initiated_at": "2026-11-24T10:00:00Z",
            },
        )
        hub.publisher.publish("payments", [event], "test", "acme")
        deadline = time.monotonic() + 10
        while runner.checkpoint.batch_seq == before and time.monotonic() < deadline:
            time.sleep(0.01)
        assert runner.checkpoint.batch_seq > before, "the projection did not see the publish"
        assert runner.lag() == 0
        stop.set()  # seen within the polling period, or at once on the next append:
        hub.publisher.publish("payments", [event], "test", "acme")
        follower.join(10)
        assert not follower.is_alive()
    finally:
        hub.close()


def test_a_follower_of_one_topic_sleeps_through_other_writes(tmp_path: Path) -> None:
    """Waiting on ``topics``: appends to other topics and offset commits do not wake it (each
    woke every projection runner, which then asked the log for its end offsets); an append to
    its topic, or a transaction that wrote it, does at once."""
    from core.ports.eventlog import TopicPartition

    log = SqliteEventLog(tmp_path / "log.db")
    log.create_topic("mine")
    log.create_topic("other")
    seen = log.append_generation(["mine"])
    log.append("other", [Record(value=b"x")])
    log.commit_offsets("g", {TopicPartition("other", 0): 1})
    assert log.wait_for_append(seen, 0.2, ["mine"]) == seen  # slept the whole timeout
    assert log.append_generation() != 0  # the global counter saw both writes
    later(0.2, lambda: log.append("mine", [Record(value=b"y")]))
    started = time.monotonic()
    seen = log.wait_for_append(seen, POLL_S, ["mine"])
    assert time.monotonic() - started < 5, "the append to its topic did not wake it"

    def txn() -> None:
        with log.transaction("tx-2") as t:
            t.append("mine", [Record(value=b"z")])

    later(0.2, txn)
    started = time.monotonic()
    assert log.wait_for_append(seen, POLL_S, ["mine"]) != seen
    assert time.monotonic() - started < 5
    log.close()


def test_a_runner_tells_its_commit_listeners_and_not_on_empty_steps(tmp_path: Path) -> None:
    hub = bootstrap(
        load_settings(environ={}, data_dir=tmp_path / "data", projection_autostart=False)
    )
    try:
        runner = hub.projections.runner("payments")
        runner.catch_up()
        heard: list[int] = []
        stop_listening = runner.on_commit(heard.append)
        assert not runner.step().events and heard == []  # nothing read: nothing committed
        event = OutgoingEvent(
            event_type="hub.payments.PaymentInitiated",
            value={
                "payment_id": "P2",
                "account_id": "A1",
                "amount": "1.00",
                "currency": "EUR",
                "counterparty_name": "x",
                "counterparty_iban": "y",
                "counterparty_country": "DE",
                "initiated_at": "2026-11-24T10:00:00Z",
            },
        )
        hub.publisher.publish("payments", [event], "test", "acme")
        runner.step()
        assert heard == [runner.checkpoint.batch_seq]
        stop_listening()
        hub.publisher.publish("payments", [event], "test", "acme")
        runner.step()
        assert len(heard) == 1
    finally:
        hub.close()


def test_a_follower_mirrors_its_positions_once_caught_up_not_between_append_and_commit(
    tmp_path: Path,
) -> None:
    """The advisory group mirror (a write transaction on the log) runs when the follower has
    caught up, not inside the step that commits a batch: at the step's last mark (``mirrored``)
    the group has not moved, and it catches up while the follower idles."""
    hub = bootstrap(
        load_settings(environ={}, data_dir=tmp_path / "data", projection_autostart=False)
    )
    try:
        runner = hub.projections.runner("payments")
        runner.catch_up()
        group = "projection.payments"
        at_step_end: list[int] = []

        def mirrored() -> int:
            return sum(runner.log.committed(group, "payments").values())

        def hook(step: str) -> None:
            if step == "mirrored":
                at_step_end.append(mirrored())

        stop = threading.Event()
        follower = threading.Thread(target=runner.follow, args=(stop, POLL_S, 0.0), daemon=True)
        follower.start()
        time.sleep(0.3)  # idle: whatever was there is mirrored
        before = mirrored()
        runner.hook = hook
        event = OutgoingEvent(
            event_type="hub.payments.PaymentInitiated",
            value={
                "payment_id": "P3",
                "account_id": "A1",
                "amount": "2.00",
                "currency": "EUR",
                "counterparty_name": "x",
                "counterparty_iban": "y",
                "counterparty_country": "DE",
                "initiated_at": "2026-11-24T10:00:00Z",
            },
        )
        hub.publisher.publish("payments", [event], "test", "acme")
        deadline = time.monotonic() + 10
        while mirrored() == before and time.monotonic() < deadline:
            time.sleep(0.01)
        assert mirrored() == before + 1, "the idle follower did not mirror its new position"
        assert at_step_end == [before], "the step that committed the batch mirrored it"
        assert follower.is_alive()  # mirrored while following, not by the final mirror
        stop.set()
        hub.publisher.publish("payments", [event], "test", "acme")
        follower.join(10)
        assert not follower.is_alive()
    finally:
        hub.close()
