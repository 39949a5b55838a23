"""Decision recording: allowed decisions wait for storage, denials do not, failures deny."""

from __future__ import annotations

import asyncio
import os
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

import pytest

from core.policybundle import decision_input, input_digest
from core.ports.policy import Decision, PolicyEngine, Principal
from governance.decisions import (
    DecisionCommitter,
    DecisionNotRecorded,
    DecisionRecord,
    RecordingPolicyEngine,
    new_decision_id,
)


class Sink:
    """A fake sink that can block or fail; records what was stored, batch by batch."""

    def __init__(self) -> None:
        self.batches: list[list[DecisionRecord]] = []
        self.gate = threading.Event()
        self.gate.set()
        self.fail: Exception | None = None
        self.prepared = 0

    def prepare(self, records: Sequence[DecisionRecord]) -> list[DecisionRecord]:
        self.prepared += 1
        return list(records)

    def store(self, prepared: list[DecisionRecord]) -> None:
        self.gate.wait()
        if self.fail:
            raise self.fail
        self.batches.append(prepared)

    @property
    def stored(self) -> list[DecisionRecord]:
        return [r for b in self.batches for r in b]


class Fixed(PolicyEngine):
    def __init__(self, allow: bool) -> None:
        self.allow = allow
        self.seen: list[Mapping[str, Any] | None] = []

    def decide(
        self, principal: Principal, action: str, resource: str, context: Any = None
    ) -> Decision:
        self.seen.append(context)
        return Decision(self.allow, "because", "v1", mask=("pii",), row_filter={"tenant": "t"})


ANN = Principal("ann", frozenset({"analyst"}), "t")


def test_an_allow_is_returned_only_once_stored() -> None:
    sink = Sink()
    committer = DecisionCommitter(sink)
    engine = RecordingPolicyEngine(Fixed(True), committer, clock_ns=lambda: 1_000_000_000)
    sink.gate.clear()  # storage stalls: the caller must not get its allow
    got: list[Decision] = []
    t = threading.Thread(target=lambda: got.append(engine.decide(ANN, "event.read", "r")))
    t.start()
    time.sleep(0.2)
    assert got == [] and sink.stored == []
    sink.gate.set()
    t.join(5)
    assert got[0].allow and got[0].decision_id
    rec = sink.stored[0]
    assert rec.decision_id == got[0].decision_id and rec.allow and rec.policy_version == "v1"
    ctx = {"now": 1_000_000_000}
    assert rec.input_sha256 == input_digest(decision_input(ANN, "event.read", "r", ctx))
    assert rec.mask == ("pii",) and rec.row_filter == {"tenant": "t"}
    assert rec.decided_at_us == 1_000_000
    committer.close()


def test_a_deny_returns_at_once_and_is_stored_later() -> None:
    sink = Sink()
    committer = DecisionCommitter(sink, deny_linger_ms=50)
    engine = RecordingPolicyEngine(Fixed(False), committer)
    sink.gate.clear()
    started = time.perf_counter()
    d = engine.decide(ANN, "event.publish", "r")
    assert not d.allow and time.perf_counter() - started < 0.1
    sink.gate.set()
    committer.flush()
    assert [r.decision_id for r in sink.stored] == [d.decision_id]
    committer.close()


def test_storage_failure_stops_an_allow() -> None:
    sink = Sink()
    sink.fail = RuntimeError("disk full")
    committer = DecisionCommitter(sink)
    with pytest.raises(DecisionNotRecorded, match="disk full"):
        RecordingPolicyEngine(Fixed(True), committer).decide(ANN, "event.read", "r")
    assert not RecordingPolicyEngine(Fixed(False), committer).decide(ANN, "x.y", "r").allow
    committer.close()


def test_storage_timeout_stops_an_allow() -> None:
    sink = Sink()
    sink.gate.clear()
    committer = DecisionCommitter(sink, wait_timeout_s=0.2)
    with pytest.raises(DecisionNotRecorded, match="not stored within"):
        RecordingPolicyEngine(Fixed(True), committer).decide(ANN, "event.read", "r")
    sink.gate.set()
    committer.close()


def test_an_engine_that_raises_is_a_recorded_deny() -> None:
    class Boom(PolicyEngine):
        def decide(self, *a: Any, **k: Any) -> Decision:
            raise RuntimeError("engine exploded")

    sink = Sink()
    committer = DecisionCommitter(sink)
    d = RecordingPolicyEngine(Boom(), committer).decide(ANN, "event.read", "r")
    committer.close()
    assert not d.allow and "engine exploded" in d.reason
    assert [r.allow for r in sink.stored] == [False]


def test_concurrent_allows_share_batches_and_close_flushes() -> None:
    sink = Sink()
    committer = DecisionCommitter(sink, linger_ms=2)
    engine = RecordingPolicyEngine(Fixed(True), committer)
    results: list[Decision] = []
    lock = threading.Lock()

    def work() -> None:
        for _ in range(50):
            d = engine.decide(ANN, "event.read", "r")
            with lock:
                results.append(d)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    denied = RecordingPolicyEngine(Fixed(False), committer).decide(ANN, "x.y", "r")
    committer.close()
    assert len(results) == 400 and all(d.allow for d in results)
    ids = {r.decision_id for r in sink.stored}
    assert {d.decision_id for d in results} | {denied.decision_id} == ids
    assert len(ids) == 401
    assert len(sink.batches) < 400  # group commit: batches were shared
    assert committer.stats.largest_batch > 1


def test_a_closed_committer_refuses() -> None:
    committer = DecisionCommitter(Sink())
    committer.close()
    with pytest.raises(DecisionNotRecorded):
        committer.submit(
            DecisionRecord("i", "p", "t", (), "a", "r", True, "x", "v", "d", 0), wait=True
        )


def test_an_unsynced_read_returns_before_storage_and_a_write_still_waits() -> None:
    sink = Sink()
    committer = DecisionCommitter(sink, deny_linger_ms=60_000)  # a deny-style linger would stall
    engine = RecordingPolicyEngine(Fixed(True), committer, unsynced=frozenset({"schema.read"}))
    sink.gate.clear()  # storage stalls
    read = engine.decide(ANN, "schema.read", "subjects/s")
    assert read.allow and sink.stored == []  # answered while its record is still queued
    got: list[Decision] = []
    t = threading.Thread(target=lambda: got.append(engine.decide(ANN, "schema.write", "s")))
    t.start()
    t.join(0.3)
    assert got == [], "a write's allow must wait for its record"
    sink.gate.set()
    t.join(5)
    assert got and got[0].allow
    deadline = time.monotonic() + 5  # flushed at once (allow linger), not after the 60 s one
    while len(sink.stored) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert {r.decision_id for r in sink.stored} == {read.decision_id, got[0].decision_id}
    committer.close()


def test_unsynced_reads_wait_again_while_the_store_fails() -> None:
    sink = Sink()
    sink.fail = RuntimeError("disk full")
    committer = DecisionCommitter(sink)
    engine = RecordingPolicyEngine(Fixed(True), committer, unsynced=frozenset({"schema.read"}))
    engine.decide(ANN, "schema.read", "s")  # answered; its batch then fails
    deadline = time.monotonic() + 5
    while not committer.failing and time.monotonic() < deadline:
        time.sleep(0.01)
    assert committer.failing
    with pytest.raises(DecisionNotRecorded, match="disk full"):  # fail closed now
        engine.decide(ANN, "schema.read", "s")
    sink.fail = None
    assert engine.decide(ANN, "schema.read", "s").allow  # waits, stores, and heals
    assert not committer.failing
    committer.close()


def test_unsynced_reads_setting_refuses_write_actions() -> None:
    from core.errors import ConfigError
    from hub.settings import load_settings

    ok = load_settings(environ={"HUB_POLICY_UNSYNCED_READS": "schema.read, topic.read"})
    assert ok.unsynced_read_actions == {"schema.read", "topic.read"}
    with pytest.raises(ConfigError, match=r"'schema\.write' is not a read action"):
        load_settings(environ={"HUB_POLICY_UNSYNCED_READS": "schema.read,schema.write"})


def _record(allow: bool = True) -> DecisionRecord:
    return DecisionRecord(new_decision_id(), "p", "t", (), "a", "r", allow, "x", "v", "d", 0)


def test_no_batch_is_taken_while_another_is_stored_and_the_next_holds_all_who_came() -> None:
    sink = Sink()
    committer = DecisionCommitter(sink, flushers=2)
    sink.gate.clear()  # the first store stalls (a slow fsync)
    first = committer.enqueue(_record(), prompt=True)
    deadline = time.monotonic() + 5
    while sink.prepared < 1 and time.monotonic() < deadline:
        time.sleep(0.005)
    later = [committer.enqueue(_record(), prompt=True) for _ in range(5)]
    time.sleep(0.2)
    assert sink.prepared == 1, "the second flusher took a batch while the first was stored"
    sink.gate.set()
    first.wait()
    for receipt in later:
        receipt.wait()
    assert [len(b) for b in sink.batches] == [1, 5]  # everyone who came during the fsync
    committer.close()


def test_no_flusher_is_woken_per_decision_while_a_store_runs_and_none_is_missed() -> None:
    """While a batch is stored, queueing (``enqueue``, ``wake``) wakes no flusher: it could
    not take the open batch before that store ends, which wakes the flushers itself. Every
    record queued meanwhile is stored then; a full batch is still taken at once."""
    sink = Sink()
    committer = DecisionCommitter(sink, flushers=2, max_batch=50)
    sink.gate.clear()
    first = committer.enqueue(_record(), prompt=True)
    deadline = time.monotonic() + 5
    while sink.prepared < 1 and time.monotonic() < deadline:
        time.sleep(0.005)
    notified = 0
    real_notify = committer._cv.notify

    def counting(n: int = 1) -> None:
        nonlocal notified
        notified += 1
        real_notify(n)

    committer._cv.notify = counting  # type: ignore[method-assign]
    later = [committer.enqueue(_record(), prompt=True) for _ in range(20)]
    unwoken = committer.enqueue(_record(), prompt=True, wake=False)
    committer.wake()
    assert notified == 0  # 21 decisions during one store: no flusher woken for nothing
    later += [committer.enqueue(_record(), prompt=True) for _ in range(29)]  # 50: full
    assert notified == 1
    deadline = time.monotonic() + 5
    while sink.prepared < 2 and time.monotonic() < deadline:
        time.sleep(0.005)
    assert sink.prepared == 2  # the full batch was taken (prepared) during the first store
    sink.gate.set()
    for receipt in [first, unwoken, *later]:
        receipt.wait()
    assert [len(b) for b in sink.batches] == [1, 50]
    committer.close()


def test_a_store_ending_on_an_empty_batch_wakes_no_flusher() -> None:
    """Lone decisions, one at a time: each record wakes one flusher, and the end of its store
    wakes none (nothing to take: the next record wakes one); records queued during a store
    are taken once it ends (one flusher woken) and stored."""
    sink = Sink()
    committer = DecisionCommitter(sink, flushers=2)
    time.sleep(0.05)  # both flushers asleep on the empty batch
    woken = 0
    real_notify, real_all = committer._cv.notify, committer._cv.notify_all

    def counting(n: int = 1) -> None:
        nonlocal woken
        woken += 1
        real_notify(n)

    def counting_all() -> None:
        nonlocal woken
        woken += 2
        real_all()

    committer._cv.notify = counting  # type: ignore[method-assign]
    committer._cv.notify_all = counting_all  # type: ignore[method-assign]
    for _ in range(5):
        committer.enqueue(_record(), prompt=True).wait()
    assert woken == 5 and [len(b) for b in sink.batches] == [1] * 5
    sink.gate.clear()
    held = committer.enqueue(_record(), prompt=True)
    deadline = time.monotonic() + 5
    while sink.prepared < 6 and time.monotonic() < deadline:
        time.sleep(0.005)
    queued = [committer.enqueue(_record(), prompt=True) for _ in range(3)]  # during the store
    sink.gate.set()
    for receipt in [held, *queued]:
        receipt.wait()
    assert [len(b) for b in sink.batches] == [1] * 6 + [3]
    committer.close()


def test_between_stores_a_flusher_is_woken_only_when_the_batch_may_have_become_due() -> None:
    """A flusher sleeps on an empty batch until its first record, then until the batch is
    due (here the deny linger); it is woken again when the batch gets its first allow (the
    allow linger applies), not for each decision in between."""
    sink = Sink()
    committer = DecisionCommitter(sink, flushers=1, deny_linger_ms=60_000)
    time.sleep(0.05)  # the flusher is asleep on the empty batch
    notified = 0
    real_notify = committer._cv.notify

    def counting(n: int = 1) -> None:
        nonlocal notified
        notified += 1
        real_notify(n)

    committer._cv.notify = counting  # type: ignore[method-assign]
    committer.enqueue(_record(allow=False), prompt=False)
    assert notified == 1  # the first record: the flusher learns the deny linger
    for _ in range(5):
        committer.enqueue(_record(allow=False), prompt=False)
    queued = committer.enqueue(_record(allow=False), prompt=False, wake=False)
    committer.wake()
    assert notified == 1 and not sink.batches  # not due: nobody woken
    allow = committer.enqueue(_record(), prompt=True, wake=False)
    assert notified == 1
    committer.wake()  # the first allow: due at once
    assert notified == 2
    allow.wait()
    queued.wait()
    assert [len(b) for b in sink.batches] == [8]
    committer.close()


def test_decide_async_awaits_the_store_without_a_thread_and_fails_closed() -> None:
    sink = Sink()
    committer = DecisionCommitter(sink, wait_timeout_s=2)
    engine = RecordingPolicyEngine(Fixed(True), committer)

    async def scenario() -> None:
        sink.gate.clear()
        task = asyncio.create_task(engine.decide_async(ANN, "event.read", "r"))
        await asyncio.sleep(0.2)
        assert not task.done() and sink.stored == []  # the allow waits for its record
        sink.gate.set()
        decision = await asyncio.wait_for(task, 5)
        assert decision.allow and [r.decision_id for r in sink.stored] == [decision.decision_id]
        sink.fail = RuntimeError("disk full")
        with pytest.raises(DecisionNotRecorded, match="disk full"):
            await engine.decide_async(ANN, "event.read", "r")
        sink.fail = None
        sink.gate.clear()  # a store that never ends: the wait times out, no allow
        with pytest.raises(DecisionNotRecorded, match="not stored within"):
            await engine.decide_async(ANN, "event.read", "r")
        sink.gate.set()

    asyncio.run(scenario())
    committer.close()


def test_decide_async_after_close_refuses_an_allow_and_still_answers_a_deny() -> None:
    """An allow queues its record and its loop's waiter under one lock: a closed committer
    refuses it (no allow without its record); a deny is answered (nothing to wait for)."""
    committer = DecisionCommitter(Sink())
    committer.close()

    async def scenario() -> None:
        with pytest.raises(DecisionNotRecorded, match="closed"):
            await RecordingPolicyEngine(Fixed(True), committer).decide_async(ANN, "event.read", "r")
        deny = await RecordingPolicyEngine(Fixed(False), committer).decide_async(
            ANN, "event.read", "r"
        )
        assert not deny.allow

    asyncio.run(scenario())


def test_decide_async_asks_a_case_context_in_a_worker_thread() -> None:
    """With ``enrich`` (which reads the cases log), a context naming a case is completed and
    decided off the event loop; any other context in the loop. Both are recorded alike."""
    sink = Sink()
    committer = DecisionCommitter(sink)
    threads: list[str] = []

    def enrich(ctx: Mapping[str, Any]) -> dict[str, Any]:
        threads.append(threading.current_thread().name)
        return dict(ctx)

    engine = RecordingPolicyEngine(Fixed(True), committer, enrich=enrich)

    async def scenario() -> list[Decision]:
        plain = await engine.decide_async(ANN, "event.read", "r", {"method": "GET"})
        cased = await engine.decide_async(ANN, "event.read", "r", {"case": "C-1"})
        many = await engine.decide_many_async(
            [(ANN, "event.read", "r", {}), (ANN, "event.read", "r", {"case": "C-1"})]
        )
        return [plain, cased, *many]

    main = threading.current_thread().name
    decisions = asyncio.run(scenario())
    assert threads[0] == main and threads[1] != main  # the case: a worker thread
    assert threads[2] != main and threads[3] != main  # a batch naming a case: all off the loop
    assert all(d.allow for d in decisions)
    assert [r.case_id for r in sink.stored] == ["", "C-1", "", "C-1"]
    committer.close()


def test_an_unwaited_async_record_wakes_its_flusher_after_the_answer() -> None:
    """``decide_async`` of an unsynced read (and of a deny) answers first and wakes the flusher
    on the loop's next turn: the record is stored at once after, with the allow linger."""
    sink = Sink()
    committer = DecisionCommitter(sink, deny_linger_ms=60_000)
    engine = RecordingPolicyEngine(Fixed(True), committer, unsynced=frozenset({"schema.read"}))
    woken: list[int] = []
    wake = committer.wake

    def counted() -> None:
        woken.append(len(sink.stored))
        wake()

    committer.wake = counted  # type: ignore[method-assign]

    async def scenario() -> Decision:
        decision = await engine.decide_async(ANN, "schema.read", "subjects/s")
        assert woken == []  # not yet: the caller answers first
        await asyncio.sleep(0)
        assert woken == [0]
        return decision

    decision = asyncio.run(scenario())
    deadline = time.monotonic() + 5  # the allow linger (0), not the 60 s deny linger
    while not sink.stored and time.monotonic() < deadline:
        time.sleep(0.01)
    assert [r.decision_id for r in sink.stored] == [decision.decision_id]
    committer.close()


def test_decision_ids_are_increasing_uuid7() -> None:
    ids = [new_decision_id() for _ in range(5_000)]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    began_ms = time.time_ns() // 1_000_000
    ones, zeros = 0, (1 << 62) - 1  # every random bit is seen set and seen clear
    for text in ids + [new_decision_id() for _ in range(600)]:  # the pool is drawn again
        parsed = uuid.UUID(text)
        assert str(parsed) == text and parsed.version == 7 and parsed.variant == uuid.RFC_4122
        assert abs((parsed.int >> 80) - began_ms) < 60_000  # the millisecond field
        ones, zeros = ones | parsed.int & ((1 << 62) - 1), zeros & parsed.int
    assert ones == (1 << 62) - 1 and zeros == 0


def test_decision_ids_carry_each_reserved_millisecond_and_counter(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The id's millisecond text is formatted once per millisecond and reused: the slots
    ``reserve_uuid7`` hands out (new milliseconds, repeats, a step back, counters at their
    bounds) each come back in their id's fields. Fails if the text were kept past its
    millisecond."""
    import governance.decisions as decisions_module

    slots = [(1, 0), (1, 1), (2, 0xFFF), (2**47 + 5, 7), (2**47 + 5, 8), (2, 3), (2**48 - 1, 0)]
    slots += [(1_764_640_000_000 + k // 3, k % 4096) for k in range(300)]
    given = iter(slots)
    monkeypatch.setattr(decisions_module, "reserve_uuid7", lambda n: next(given))
    for ms, counter in slots:
        parsed = uuid.UUID(new_decision_id())
        assert (parsed.int >> 80, (parsed.int >> 64) & 0xFFF) == (ms, counter)
        assert parsed.version == 7 and parsed.variant == uuid.RFC_4122


def test_a_decision_given_its_id_equals_the_replaced_decision() -> None:
    """``_with_id`` (slots set directly) gives what ``replace(decision, decision_id=)`` gives:
    every field, equality, hash of the fields, and a frozen instance."""
    from dataclasses import FrozenInstanceError, fields

    from governance.decisions import _with_id

    cases = [
        Decision(True, "ok", "v1"),
        Decision(False, "no", "v2", ("pii", "iban"), {"tenant": "acme"}, "old-id"),
        Decision(True, "", "", (), {}, ""),
    ]
    for d in cases:
        got, want = _with_id(d, "new-id"), replace(d, decision_id="new-id")
        assert type(got) is Decision and got == want
        assert [getattr(got, f.name) for f in fields(Decision)] == [
            getattr(want, f.name) for f in fields(Decision)
        ]
        with pytest.raises(FrozenInstanceError):
            got.allow = not got.allow  # type: ignore[misc]


class ByResource(PolicyEngine):
    """Allows resources that start with ``ok``; raises for ``boom``; denies the rest."""

    def decide(
        self, principal: Principal, action: str, resource: str, context: Any = None
    ) -> Decision:
        if resource == "boom":
            raise RuntimeError("engine exploded")
        return Decision(resource.startswith("ok"), f"for {resource}", "v1", mask=("pii",))


def _fields(r: DecisionRecord) -> tuple[Any, ...]:
    """A record without its id (new per decision)."""
    return (r.principal, r.tenant, r.roles, r.action, r.resource, r.allow, r.reason,
            r.policy_version, r.input_sha256, r.decided_at_us, r.mask, dict(r.row_filter),
            r.purpose, r.case_id, r.key_id)  # fmt: skip


def test_decide_many_records_what_decide_records_in_order_in_one_batch() -> None:
    requests: list[tuple[Principal, str, str, Mapping[str, Any] | None]] = [
        (ANN, "event.read", f"ok-{k}" if k % 3 else f"no-{k}", {"purpose": "p"}) for k in range(30)
    ]
    requests.append((ANN, "event.read", "boom", None))
    one_sink, many_sink = Sink(), Sink()
    one, many = DecisionCommitter(one_sink), DecisionCommitter(many_sink)
    clock = lambda: 5_000_000_000  # noqa: E731
    single = RecordingPolicyEngine(ByResource(), one, clock_ns=clock)
    batch = RecordingPolicyEngine(ByResource(), many, clock_ns=clock)
    expected = [single.decide(*q) for q in requests]
    one.flush()
    got = batch.decide_many(requests)
    # Returned only once stored: every record is there, in request order, in ONE batch.
    assert len(many_sink.batches) == 1
    assert [r.decision_id for r in many_sink.stored] == [d.decision_id for d in got]
    assert [_fields(r) for r in many_sink.stored] == [_fields(r) for r in one_sink.stored]
    assert [replace(d, decision_id="") for d in got] == [
        replace(d, decision_id="") for d in expected
    ]
    assert "engine exploded" in got[-1].reason and not got[-1].allow
    assert batch.decide_many([]) == []
    one.close()
    many.close()


def test_decide_many_fails_closed_and_denials_alone_do_not_wait() -> None:
    sink = Sink()
    committer = DecisionCommitter(sink, deny_linger_ms=60_000, wait_timeout_s=0.3)
    engine = RecordingPolicyEngine(ByResource(), committer)
    sink.fail = RuntimeError("disk full")
    with pytest.raises(DecisionNotRecorded, match="disk full"):
        engine.decide_many([(ANN, "event.read", "ok", None), (ANN, "event.read", "no", None)])
    sink.fail = None
    sink.gate.clear()  # a store that never ends: an allow times out, denials alone answer
    with pytest.raises(DecisionNotRecorded, match="not stored within"):
        engine.decide_many([(ANN, "event.read", "ok", None)])
    started = time.perf_counter()
    denied = engine.decide_many([(ANN, "event.read", "no-1", None), (ANN, "x.y", "no-2", None)])
    assert [d.allow for d in denied] == [False, False]
    assert time.perf_counter() - started < 0.2
    sink.gate.set()
    committer.close()
    assert [r.resource for r in sink.stored][-2:] == ["no-1", "no-2"]


def test_decide_many_async_awaits_one_store() -> None:
    sink = Sink()
    committer = DecisionCommitter(sink)
    engine = RecordingPolicyEngine(ByResource(), committer)

    async def scenario() -> list[Decision]:
        sink.gate.clear()
        task = asyncio.create_task(
            engine.decide_many_async([(ANN, "event.read", f"ok-{k}", None) for k in range(5)])
        )
        await asyncio.sleep(0.2)
        assert not task.done() and sink.stored == []
        sink.gate.set()
        return await asyncio.wait_for(task, 5)

    got = asyncio.run(scenario())
    committer.close()
    assert [r.decision_id for r in sink.stored] == [d.decision_id for d in got]
    assert len(sink.batches) == 1 and all(d.allow for d in got)


def test_an_event_loop_is_woken_once_per_batch_and_a_cancelled_waiter_harms_nobody() -> None:
    sink = Sink()
    committer = DecisionCommitter(sink, flushers=1)
    wakeups: list[object] = []

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        threadsafe = loop.call_soon_threadsafe

        def counted(callback: Any, *args: Any) -> Any:
            wakeups.append(callback)
            return threadsafe(callback, *args)

        loop.call_soon_threadsafe = counted  # type: ignore[method-assign]
        sink.gate.clear()
        first = committer.enqueue(_record(), prompt=True)  # taken at once; its store stalls
        deadline = time.monotonic() + 5
        while sink.prepared < 1 and time.monotonic() < deadline:
            await asyncio.sleep(0.005)
        receipts = [committer.enqueue(_record(), prompt=True) for _ in range(20)]
        tasks = [asyncio.create_task(r.wait_async()) for r in [first, *receipts]]
        await asyncio.sleep(0.05)
        tasks[5].cancel()
        sink.gate.set()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        assert isinstance(results[5], asyncio.CancelledError)
        assert [x for k, x in enumerate(results) if k != 5] == [None] * 20

    asyncio.run(scenario())
    committer.close()
    assert [len(b) for b in sink.batches] == [1, 20]
    assert len(wakeups) == 2  # one per batch, not one per waiter


def test_decide_async_waiters_of_a_batch_share_its_answer_and_a_cancel_harms_nobody() -> None:
    """The event loop's allows of one batch (``enqueue_awaited``): a caller cancelled while
    its record is being stored is cancelled alone (its record is still stored; the others get
    their allows), a late batch fails every waiter, an already stored batch answers a late
    ``wait_async`` at once. Guards any sharing of one future among a batch's waiters: a
    plain shared future is cancelled for all of them by one ``Task.cancel`` (tried)."""
    sink = Sink()
    committer = DecisionCommitter(sink, flushers=1, wait_timeout_s=0.5)
    engine = RecordingPolicyEngine(Fixed(True), committer)

    async def scenario() -> None:
        sink.gate.clear()
        first = asyncio.create_task(engine.decide_async(ANN, "event.read", "first"))
        deadline = time.monotonic() + 5
        while sink.prepared < 1 and time.monotonic() < deadline:
            await asyncio.sleep(0.005)  # "first" is taken; its store stalls
        tasks = [
            asyncio.create_task(engine.decide_async(ANN, "event.read", f"r-{k}")) for k in range(12)
        ]
        await asyncio.sleep(0.05)  # all twelve wait in the open batch
        tasks[3].cancel()
        await asyncio.sleep(0.05)
        sink.gate.set()
        results = await asyncio.gather(first, *tasks, return_exceptions=True)
        assert isinstance(results[4], asyncio.CancelledError)
        allowed = [r for k, r in enumerate(results) if k != 4]
        assert all(isinstance(d, Decision) and d.allow for d in allowed)
        assert [len(b) for b in sink.batches] == [1, 12]  # the cancelled one's too
        receipt = committer.enqueue(_record(), prompt=True)
        committer.flush()
        await asyncio.wait_for(receipt.wait_async(), 1)  # stored before it was awaited

        sink.gate.clear()  # a store that never ends: every waiter of the batch is late
        stuck = asyncio.create_task(engine.decide_async(ANN, "event.read", "stuck"))
        while sink.prepared < 3 and time.monotonic() < deadline + 5:
            await asyncio.sleep(0.005)
        late = [
            asyncio.create_task(engine.decide_async(ANN, "event.read", f"late-{k}"))
            for k in range(3)
        ]
        await asyncio.sleep(0.05)
        late[0].cancel()
        got = await asyncio.gather(stuck, *late, return_exceptions=True)
        assert isinstance(got[1], asyncio.CancelledError)
        for error in (got[0], got[2], got[3]):
            assert isinstance(error, DecisionNotRecorded), error
            assert "not stored within" in str(error)
        sink.gate.set()

    asyncio.run(scenario())
    committer.close()
    assert [r.resource for r in sink.stored][-4:] == ["stuck", "late-0", "late-1", "late-2"]


class CompanionSink(Sink):
    """``Sink`` that also stores companion records with a batch (``store_with``), all or
    nothing; ``fail_with`` fails only that combined write."""

    def __init__(self) -> None:
        super().__init__()
        self.companions: list[tuple[str, list[Any]]] = []
        self.fail_with: Exception | None = None

    def store_with(self, prepared: list[DecisionRecord], companions: Sequence[Any]) -> None:
        if self.fail_with:
            raise self.fail_with
        if any(r == "too large" for c in companions for r in c.records):
            raise ValueError("a record is too large")
        self.store(prepared)
        self.companions += [(c.topic, c.records) for c in companions]


def test_a_held_allow_is_stored_with_its_action_records_in_one_write() -> None:
    sink = CompanionSink()
    engine = RecordingPolicyEngine(Fixed(True), DecisionCommitter(sink))
    decision, held = engine.decide_held(ANN, "schema.write", "/subjects/s/versions")
    assert decision.allow and held is not None
    assert sink.stored == []  # held: nothing queued before its action's records are known
    held.commit("_schemas", ["schema record"])
    assert [r.decision_id for r in sink.stored] == [decision.decision_id]
    assert sink.companions == [("_schemas", ["schema record"])]
    assert len(sink.batches) == 1  # one write for both
    held.settle()  # already stored: nothing more
    assert len(sink.stored) == 1
    with pytest.raises(ValueError, match="one commit per held decision"):
        held.commit("_schemas", ["again"])
    engine.close()


def test_a_held_allow_that_wrote_nothing_is_stored_alone_and_a_deny_is_not_held() -> None:
    sink = CompanionSink()
    engine = RecordingPolicyEngine(Fixed(True), DecisionCommitter(sink))
    decision, held = engine.decide_held(ANN, "schema.write", "/x")
    assert held is not None
    held.settle()
    assert [r.decision_id for r in sink.stored] == [decision.decision_id]
    assert sink.companions == []
    deny = RecordingPolicyEngine(Fixed(False), DecisionCommitter(sink, deny_linger_ms=0))
    decision, held = deny.decide_held(ANN, "schema.write", "/x")
    assert not decision.allow and held is None
    deny.close()
    assert sink.stored[-1].decision_id == decision.decision_id
    engine.close()


def test_when_the_action_records_fail_the_decision_is_still_stored() -> None:
    sink = CompanionSink()
    sink.fail_with = OSError("disk full for _schemas")
    engine = RecordingPolicyEngine(Fixed(True), DecisionCommitter(sink))
    decision, held = engine.decide_held(ANN, "schema.write", "/x")
    assert held is not None
    with pytest.raises(OSError, match="disk full for _schemas"):
        held.commit("_schemas", ["schema record"])
    assert [r.decision_id for r in sink.stored] == [decision.decision_id]  # never lost
    assert sink.companions == []
    engine.close()


def test_a_companion_that_cannot_be_stored_fails_only_its_own_action() -> None:
    sink = CompanionSink()
    committer = DecisionCommitter(sink)
    engine = RecordingPolicyEngine(Fixed(True), committer)
    sink.gate.clear()  # the flusher stores a first decision and blocks: the next batch fills
    first = threading.Thread(target=engine.decide, args=(ANN, "schema.read", "/first"))
    first.start()
    deadline = time.monotonic() + 10
    while not committer._storing and time.monotonic() < deadline:
        time.sleep(0.005)
    assert committer._storing  # the flusher holds the first batch at the gate
    errors: dict[str, BaseException | None] = {}

    def commit(record: str) -> None:
        _, held = engine.decide_held(ANN, "schema.write", f"/{record}")
        assert held is not None
        try:
            held.commit("_schemas", [record])
            errors[record] = None
        except BaseException as exc:
            errors[record] = exc

    threads = [threading.Thread(target=commit, args=(r,)) for r in ("a", "too large", "c")]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 10
    while len(committer._batch.companions) < 3 and time.monotonic() < deadline:
        time.sleep(0.005)
    assert len(committer._batch.companions) == 3  # one batch for the three actions
    sink.gate.set()
    for t in [first, *threads]:
        t.join(10)
    assert errors["a"] is None and errors["c"] is None
    assert isinstance(errors["too large"], ValueError)
    assert sorted(r for _, records in sink.companions for r in records) == ["a", "c"]
    assert len(sink.stored) == 4  # every decision stored
    engine.close()


def test_when_the_decision_cannot_be_stored_both_are_refused() -> None:
    sink = CompanionSink()
    sink.fail = sink.fail_with = OSError("log down")
    engine = RecordingPolicyEngine(Fixed(True), DecisionCommitter(sink))
    _, held = engine.decide_held(ANN, "schema.write", "/x")
    assert held is not None
    with pytest.raises(DecisionNotRecorded, match="log down"):
        held.commit("_schemas", ["schema record"])
    assert sink.stored == [] and sink.companions == []
    engine.close()


def test_a_sink_without_companions_is_not_held() -> None:
    sink = Sink()
    engine = RecordingPolicyEngine(Fixed(True), DecisionCommitter(sink))
    decision, held = engine.decide_held(ANN, "schema.write", "/x")
    assert held is None  # stored and waited for as by decide
    assert [r.decision_id for r in sink.stored] == [decision.decision_id]
    with pytest.raises(ValueError, match="cannot store companion records"):
        engine.committer.enqueue(sink.stored[0], prompt=True, companions=object())  # type: ignore[arg-type]
    engine.close()


def test_decision_ids_ask_the_os_once_per_pool_and_a_fork_draws_its_own(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Each ``os.urandom`` call releases the GIL (an event loop issuing ids then waits behind
    the flushers to take it back): ids come from pools, not from a call per id or per
    millisecond; the counter still starts at a random point each millisecond; and a forked
    child does not reuse its parent's pools (it would issue the parent's next ids)."""
    from domain import envelope

    calls = [0]
    real = os.urandom

    def counted(n: int) -> bytes:
        calls[0] += 1
        return real(n)

    starts = set()
    with monkeypatch.context() as m:  # the process's id sequence is restored afterwards
        m.setattr(envelope.os, "urandom", counted)
        m.setattr(envelope, "_last_ms", -1)
        m.setattr(envelope, "_seeds", [])
        for ms in range(1_000, 3_000):  # 2,000 milliseconds, one id each
            starts.add(envelope.reserve_uuid7(1, ms * 1_000_000)[1])
    assert calls[0] == 1  # 2,048 counter starts per 4 KiB draw
    assert len(starts) > 1_000 and max(starts) <= 0x7FF  # random starts, headroom kept

    new_decision_id()  # both pools hold values now
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its next ids' random bits, then leave without cleanup
        os.write(write, " ".join(new_decision_id()[-17:] for _ in range(3)).encode())
        os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    child = os.read(read, 4096).decode().split()
    os.close(read)
    parent = [new_decision_id()[-17:] for _ in range(3)]
    assert len(child) == 3 and not set(child) & set(parent)
