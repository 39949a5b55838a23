"""The ledger's follower (``Ledger.start``): woken by appends, it gives them their leaves and a
signed checkpoint without anyone calling ``sync``, and a failing witness holds timed checkpoints
back so that the crash window's rules (``ledger.witness``) bound what an outage leaves."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from pathlib import Path

import pytest

from core.errors import HubError
from core.ports.eventlog import RecordMetadata
from hub.bootstrap import Hub, bootstrap
from hub.settings import load_settings
from ledger.verify import verify_ledger
from tests.service.test_ledger import trade

POLL_MS = 600_000  # the follower's polling period: nothing in these tests may rely on it


@pytest.fixture(params=["tiles", "sqlite"])
def hub(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Hub]:
    h = bootstrap(
        load_settings(
            environ={},
            data_dir=tmp_path / "data",
            ledger_store=str(request.param),
            checkpoint_every_ms=300,
        )
    )
    h.sync_on_close = False  # what the follower did is what the test sees
    yield h
    h.close()


def publish_trades(h: Hub, n: int, start: int) -> list[RecordMetadata]:
    return h.publisher.publish("trades", [trade(start + i) for i in range(n)], producer="desk-1")


def leafed(h: Hub, meta: Sequence[RecordMetadata]) -> bool:
    """Every record of ``meta`` has its leaf."""
    return all(h.ledger.index_of(m.topic, m.partition, m.offset) is not None for m in meta)


def wait_for(check: Callable[[], bool], what: str, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {timeout_s:g} s")
        time.sleep(0.01)


def covered(h: Hub, meta: Sequence[RecordMetadata]) -> bool:
    """Every record of ``meta`` has its leaf, and a signed checkpoint includes it."""
    idx = [h.ledger.index_of(m.topic, m.partition, m.offset) for m in meta]
    cp = h.ledger.store.latest_checkpoint()
    return cp is not None and all(i is not None and i < cp.size for i in idx)


def test_an_append_gets_its_leaf_and_a_signed_checkpoint_without_a_manual_sync(hub: Hub) -> None:
    ledger = hub.ledger
    ledger.sync(force_checkpoint=True)  # the catalog's records: the tree starts checkpointed
    seen: list[tuple[int, list[int]]] = []
    unsubscribe = ledger.on_commit(lambda size, cps: seen.append((size, cps)))
    ledger.start(poll_ms=POLL_MS)
    try:
        meta = publish_trades(hub, 5, 0)
        wait_for(lambda: covered(hub, meta), "a checkpoint covering the first append")
        first = ledger.store.latest_checkpoint()
        assert first is not None
        # An append right after a checkpoint: its leaf and its checkpoint by its deadline,
        # 300 ms after it; the follower wakes for it, not for a poll, and waits for the
        # deadline less a sync's duration (at most half the interval) so that the appends
        # meanwhile share the sync and its checkpoint.
        sent = time.time_ns() // 1000
        meta = publish_trades(hub, 5, 100)
        wait_for(lambda: covered(hub, meta), "a checkpoint covering the second append")
        second = ledger.store.latest_checkpoint()
        assert second is not None and second.size > first.size
        # Not at once (the appends meanwhile coalesce): the sync begins at least half the
        # interval after the append (less when the append landed during the previous sync,
        # by that sync's few milliseconds here).
        assert second.time_us - sent >= 100_000
        assert second.time_us - first.time_us >= 100_000
    finally:
        ledger.stop()
        unsubscribe()
    assert [s for s, _ in seen] == sorted(s for s, _ in seen)  # listeners saw every commit
    assert {first.size, second.size} <= {c for _, cps in seen for c in cps}
    assert ledger.store.witness_intents() == []
    report = verify_ledger(ledger)
    assert report.ok and report.witness_pending == 0, [p.describe() for p in report.problems]


def test_an_append_after_a_quiet_spell_is_checkpointed_at_once(hub: Hub) -> None:
    """The deadline (an interval after the append) is an upper bound: when an interval has
    already passed since the last checkpoint, the follower signs at once, as the timed rule
    allows, rather than holding the append for the deadline."""
    ledger = hub.ledger
    ledger.config = replace(ledger.config, checkpoint_every_ms=3_000)  # read by ``start``
    ledger.start(poll_ms=POLL_MS)
    try:
        meta = publish_trades(hub, 5, 300)
        wait_for(lambda: covered(hub, meta), "a checkpoint covering the first append")
        time.sleep(3.2)  # quiet for more than the interval
        sent = time.time_ns() // 1000
        meta = publish_trades(hub, 5, 400)
        wait_for(lambda: covered(hub, meta), "a checkpoint covering the append after the spell")
        cp = ledger.store.latest_checkpoint()
        assert cp is not None
        # at once: well before the deadline (3 s) and before half of it (where the follower
        # would begin a deadline sync at the earliest)
        assert cp.time_us - sent < 1_500_000
    finally:
        ledger.stop()
    report = verify_ledger(ledger)
    assert report.ok, [p.describe() for p in report.problems]


def test_a_failing_witness_holds_timed_checkpoints_back(hub: Hub) -> None:
    """While the witness is down the follower signs no timed checkpoint past the first one
    whose copy failed, so the intents stay within what one sync transaction leaves (rule 3 of
    ``ledger.witness``) however long the outage; copies are made once it is back."""
    ledger = hub.ledger
    ledger.sync(force_checkpoint=True)
    witness = ledger.witness
    assert witness is not None
    real = witness.put_if_absent
    down = threading.Event()
    down.set()

    def flaky(key: str, data: bytes) -> bool:
        if down.is_set():
            raise HubError("The witness store is unreachable.", code="object_store")
        return real(key, data)

    witness.put_if_absent = flaky  # type: ignore[method-assign]
    ledger.start(poll_ms=50)
    try:
        meta: list[RecordMetadata] = []
        for k in range(6):  # appends over ~2 s: several timed checkpoints would fall due
            meta += publish_trades(hub, 3, 1000 + 10 * k)
            time.sleep(0.35)
        wait_for(lambda: leafed(hub, meta), "the leaves of the appends")
        wait_for(lambda: bool(ledger.store.witness_intents()), "the first timed checkpoint")
        pending = ledger.store.witness_intents()
        assert len(pending) == 1, pending  # the first timed one; none after it
        report = verify_ledger(ledger)
        assert report.ok and report.witness_pending == 1, [p.describe() for p in report.problems]
        down.clear()  # the witness is back: the next round copies, then signs again
        wait_for(lambda: covered(hub, meta), "a checkpoint covering every append")
        wait_for(lambda: not ledger.store.witness_intents(), "the witness copies")
    finally:
        ledger.stop()
        witness.put_if_absent = real  # type: ignore[method-assign]
    report = verify_ledger(ledger)
    assert report.ok and report.witness_pending == 0, [p.describe() for p in report.problems]
