"""Concurrent registrations (issue 13): ids are reserved under the registry's lock, the record
is stored without it, so registrations of different subjects share one transaction batch.

A caller's append that blocks until released (``Gate``) holds a registration in flight, so the
tests see exactly what other registrations and readers do meanwhile, on the real SQLite log.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from adapters.sqlite_log import SqliteEventLog
from core.errors import SchemaNotFound, SubjectNotFound
from core.ports.eventlog import Record
from registry.service import SCHEMAS_TOPIC, SchemaRegistry, SubjectVersion


def schema(name: str, *fields: str) -> str:
    return json.dumps(
        {
            "type": "record",
            "name": name,
            "fields": [{"name": f, "type": "string", "default": ""} for f in fields],
        }
    )


class Gate:
    """An ``append`` that stores only when released (``open``), or raises ``error``."""

    def __init__(self, log: SqliteEventLog, error: BaseException | None = None) -> None:
        self.log = log
        self.error = error
        self.entered = threading.Semaphore(0)
        self.release = threading.Event()
        self.calls = 0

    def __call__(self, topic: str, records: Sequence[Record]) -> object:
        self.calls += 1
        self.entered.release()
        assert self.release.wait(10), "the test never opened the gate"
        if self.error is not None:
            raise self.error
        return self.log.append(topic, records)

    def wait_entered(self) -> None:
        assert self.entered.acquire(timeout=10), "no registration reached its append"


class Run:
    """``registry.register(...)`` in a thread; ``result()`` joins and returns or raises."""

    def __init__(self, registry: SchemaRegistry, *args: str, append: Gate | None = None) -> None:
        self.value: SubjectVersion | None = None
        self.error: BaseException | None = None

        def run() -> None:
            try:
                self.value = registry.register(*args, append=append)
            except BaseException as exc:
                self.error = exc

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()

    def result(self) -> SubjectVersion:
        self.thread.join(10)
        assert not self.thread.is_alive(), "the registration did not finish"
        if self.error is not None:
            raise self.error
        assert self.value is not None
        return self.value


@pytest.fixture
def log(tmp_path: Path) -> Iterator[SqliteEventLog]:
    log = SqliteEventLog(tmp_path / "log.db")
    yield log
    log.close()


def test_different_subjects_are_stored_concurrently_with_dense_ids(log: SqliteEventLog) -> None:
    registry = SchemaRegistry(log)
    first = registry.register("seed-value", schema("Seed", "a")).id
    gate_a, gate_b = Gate(log), Gate(log)
    a = Run(registry, "a-value", schema("A", "a"), append=gate_a)
    gate_a.wait_entered()
    # A is in flight (its append blocked): B reaches its own append, the lock is free
    b = Run(registry, "b-value", schema("B", "b"), append=gate_b)
    gate_b.wait_entered()
    with pytest.raises(SubjectNotFound):  # readers see only stored registrations
        registry.get_version("a-value", "latest")
    assert registry.schema_ids() == [first]
    gate_b.release.set()
    assert b.result().id == first + 2
    gate_a.release.set()
    assert a.result().id == first + 1
    assert registry.schema_ids() == [first, first + 1, first + 2]
    assert registry.get_version("a-value", 1).schema.text == schema("A", "a")
    assert SchemaRegistry(log).get_by_id(first + 2).text == schema("B", "b")  # from the topic


def test_the_same_schema_twice_in_one_subject_gets_one_id_and_one_version(
    log: SqliteEventLog,
) -> None:
    registry = SchemaRegistry(log)
    gate = Gate(log)
    first = Run(registry, "s-value", schema("S", "a"), append=gate)
    gate.wait_entered()
    second = Run(registry, "s-value", schema("S", "a"), append=gate)  # waits for the first
    assert not gate.entered.acquire(timeout=0.3)
    gate.release.set()
    one, two = first.result(), second.result()
    assert (one.id, one.version) == (two.id, two.version) == (1, 1)
    assert gate.calls == 1
    assert registry.versions("s-value") == [1]


def test_a_second_schema_of_a_subject_is_checked_against_the_first_once_stored(
    log: SqliteEventLog,
) -> None:
    registry = SchemaRegistry(log)
    gate = Gate(log)
    first = Run(registry, "c-value", schema("C", "a"), append=gate)
    gate.wait_entered()
    # BACKWARD: a new field without a default cannot read the first version's data
    breaking = json.dumps(
        {"type": "record", "name": "C", "fields": [{"name": "z", "type": "string"}]}
    )
    second = Run(registry, "c-value", breaking)
    gate.release.set()
    assert first.result().version == 1
    with pytest.raises(Exception, match="incompatible"):
        second.result()
    assert registry.versions("c-value") == [1]


def test_the_same_new_schema_in_two_subjects_gets_one_id(log: SqliteEventLog) -> None:
    registry = SchemaRegistry(log)
    gate_x, gate_y = Gate(log), Gate(log)
    x = Run(registry, "x-value", schema("Same", "a"), append=gate_x)
    gate_x.wait_entered()
    y = Run(registry, "y-value", schema("Same", "a"), append=gate_y)
    gate_y.wait_entered()
    gate_y.release.set()
    gate_x.release.set()
    assert x.result().id == y.result().id == 1
    assert registry.schema_ids() == [1]


def test_a_failed_append_abandons_its_id_and_frees_its_version(log: SqliteEventLog) -> None:
    registry = SchemaRegistry(log)
    failing = Gate(log, OSError("disk I/O error"))
    failing.release.set()
    with pytest.raises(OSError, match="disk I/O error"):
        registry.register("f-value", schema("F", "a"), append=failing)
    with pytest.raises(SubjectNotFound):
        registry.versions("f-value")
    again = registry.register("f-value", schema("F", "a"))
    assert (again.id, again.version) == (2, 1)  # id 1 may still land: never handed out again
    assert registry.get_by_id(2).text == schema("F", "a")
    with pytest.raises(SchemaNotFound):
        registry.get_by_id(1)


def test_a_level_change_waits_for_registrations_in_flight(log: SqliteEventLog) -> None:
    registry = SchemaRegistry(log)
    gate = Gate(log)
    reg = Run(registry, "l-value", schema("L", "a"), append=gate)
    gate.wait_entered()
    changed = threading.Event()

    def change() -> None:
        registry.set_compatibility("FULL", "l-value")
        changed.set()

    threading.Thread(target=change, daemon=True).start()
    assert not changed.wait(0.3)  # written after the registration that started before it
    gate.release.set()
    reg.result()
    assert changed.wait(10)
    keys = [json.loads(r.key or b"{}")["keytype"] for r in log.read(SCHEMAS_TOPIC, 0, 0, 100)]
    assert keys[-2:] == ["SCHEMA", "CONFIG"]
