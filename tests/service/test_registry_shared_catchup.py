"""Readers waiting for the registry's lock share catch-ups (issue 13: on Kafka every catch-up
is a ListOffsets round trip, paid one after another under the lock), but never one that began
before they arrived: what was appended before a reader arrived is always in its answer.

The log is the real embedded one; its ``end_offsets`` is wrapped only to count the calls and to
hold one catch-up open (a slow broker) while other readers arrive."""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from adapters.sqlite_log import SqliteEventLog
from core.ports.eventlog import EventLog, Record
from registry.service import SCHEMAS_TOPIC, SchemaRegistry, SubjectVersion

SCHEMA = json.dumps({"type": "record", "name": "T", "fields": [{"name": "a", "type": "string"}]})


class _SlowEnds:
    """Counts a topic's end-offset reads (``_schemas`` unless named); the holder thread's read
    returns the ends it read only once ``release`` is set (the ends are taken BEFORE the wait,
    as a broker's answer). Shared with the API-key fold's test."""

    def __init__(self, log: EventLog, topic: str = SCHEMAS_TOPIC) -> None:
        self.inner = log.end_offsets
        self.topic = topic
        self.calls = 0
        self.holder: threading.Thread | None = None
        self.entered = threading.Event()
        self.release = threading.Event()

    def __call__(self, topic: str) -> dict[int, int]:
        ends = self.inner(topic)
        if topic == self.topic:
            self.calls += 1
            if threading.current_thread() is self.holder:
                self.entered.set()
                assert self.release.wait(10)
        return ends


def _hold_one_catch_up(slow: _SlowEnds, call: Callable[[], object]) -> threading.Thread:
    holder = threading.Thread(target=call)
    slow.holder = holder
    holder.start()
    assert slow.entered.wait(10)  # the holder's catch-up has read its ends and waits
    return holder


def _held(
    log: EventLog, monkeypatch: pytest.MonkeyPatch, registry: SchemaRegistry
) -> tuple[_SlowEnds, threading.Thread]:
    """``log``'s end-offset reads counted (``_SlowEnds``), and one catch-up of ``registry``
    (its ``subjects``) held open by its thread."""
    slow = _SlowEnds(log)
    monkeypatch.setattr(log, "end_offsets", slow)
    return slow, _hold_one_catch_up(slow, registry.subjects)


def test_readers_who_arrived_during_a_catch_up_share_the_next_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = SqliteEventLog(tmp_path / "log.db")
    registry = SchemaRegistry(log)
    registry.register("t-value", SCHEMA)
    slow, holder = _held(log, monkeypatch, registry)
    answers: list[list[str]] = []
    readers = [
        threading.Thread(target=lambda: answers.append(registry.subjects())) for _ in range(7)
    ]
    for t in readers:
        t.start()
    time.sleep(0.3)  # all seven are waiting for the lock the holder's catch-up keeps
    slow.release.set()
    for t in [holder, *readers]:
        t.join(10)
    assert answers == [["t-value"]] * 7
    # the holder's catch-up, then ONE begun after the seven arrived (it answers for all);
    # without sharing: eight
    assert slow.calls == 2
    log.close()


def test_a_catch_up_begun_before_a_reader_arrived_is_not_shared_with_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = SqliteEventLog(tmp_path / "log.db")
    reader, writer = SchemaRegistry(log), SchemaRegistry(log)
    reader.register("old-value", SCHEMA)
    # the reader's catch-up read its ends, then another registry (instance) registers
    slow, holder = _held(log, monkeypatch, reader)
    writer.register("new-value", SCHEMA)
    seen: list[list[str]] = []
    late = threading.Thread(target=lambda: seen.append(reader.subjects()))
    late.start()  # arrives after the registration, while the older catch-up still runs
    time.sleep(0.2)
    slow.release.set()
    holder.join(10)
    late.join(10)
    assert seen == [["new-value", "old-value"]]  # its own catch-up: the old one ended too early
    log.close()


def _schema(name: str) -> str:
    return json.dumps({"type": "record", "name": name, "fields": [{"name": "a", "type": "int"}]})


class _StepOneCalls:
    """Counts the end-offset reads made by step 1 of ``register`` (its read before the lock
    wait, or ``_await_turn``'s; those of steps 7-8, ``_store_reserved``, are fresh ones,
    shared only among the registrations that reach them together, and are not counted)."""

    def __init__(self, inner: _SlowEnds) -> None:
        self.inner = inner
        self.calls = 0

    def __call__(self, topic: str) -> dict[int, int]:
        frame = sys._getframe(1)
        names = set()
        while frame is not None:
            names.add(frame.f_code.co_name)
            frame = frame.f_back  # type: ignore[assignment]
        if "register" in names and "_store_reserved" not in names:
            self.calls += 1
        return self.inner(topic)


def test_registrations_who_arrived_during_a_catch_up_share_step_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Step 1 of ``register`` (catch up under the lock) shares catch-ups as readers do: seven
    registrations of new subjects arriving during a held catch-up make ONE ListOffsets between
    them in step 1 (seven without sharing, under the lock one after another)."""
    log = SqliteEventLog(tmp_path / "log.db")
    registry = SchemaRegistry(log)
    registry.register("t-value", SCHEMA)
    slow, holder = _held(log, monkeypatch, registry)
    step_one = _StepOneCalls(slow)
    monkeypatch.setattr(log, "end_offsets", step_one)
    # every registration's append waits until all seven passed steps 1-6
    before_appends: list[int] = []
    all_reserved = threading.Barrier(7, action=lambda: before_appends.append(step_one.calls))

    def append(topic: str, records: Sequence[Record]) -> None:
        all_reserved.wait(10)
        log.append(topic, records)

    ids: list[int] = []
    writers = [
        threading.Thread(
            target=lambda k=k: ids.append(
                registry.register(f"s{k}-value", _schema(f"S{k}"), append=append).id
            )
        )
        for k in range(7)
    ]
    for t in writers:
        t.start()
    time.sleep(0.3)  # all seven are waiting for the lock the holder's catch-up keeps
    slow.release.set()
    for t in [holder, *writers]:
        t.join(10)
    assert sorted(ids) == list(range(2, 9))  # seven new ids, none handed out twice
    assert before_appends == [1]  # ONE begun after the seven arrived; without sharing: 7
    assert registry.subjects() == sorted(["t-value", *(f"s{k}-value" for k in range(7))])
    log.close()


def test_a_registration_arriving_after_another_instances_sees_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A catch-up begun before a registration arrived is not shared with its step 1: the same
    schema registered by another instance meanwhile is answered (same id, same version), never
    stored again as a second version 1 with a new id."""
    log = SqliteEventLog(tmp_path / "log.db")
    mine, other = SchemaRegistry(log), SchemaRegistry(log)
    mine.register("old-value", SCHEMA)
    slow, holder = _held(log, monkeypatch, mine)
    theirs = other.register("new-value", _schema("N"))
    got: list[SubjectVersion] = []
    late = threading.Thread(target=lambda: got.append(mine.register("new-value", _schema("N"))))
    late.start()  # arrives after the other instance's registration, during the older catch-up
    time.sleep(0.2)
    slow.release.set()
    holder.join(10)
    late.join(10)
    assert [(sv.id, sv.version) for sv in got] == [(theirs.id, theirs.version)]
    stored = [r for r in log.read(SCHEMAS_TOPIC, 0, 0, 100) if b"new-value" in (r.key or b"")]
    assert len(stored) == 1
    log.close()
