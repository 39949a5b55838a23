"""Two hub processes register different new schemas at once: each must keep its own id.

Every hub process serves registrations and chooses a new schema's id as one above every id it
has folded or reserved. Two processes (two registry instances on one log) that register new
schemas between each other's catch-up and append both chose the same id. The fold kept the
first record's schema for that id, so the second registration's version pointed at the FIRST
schema: its caller was answered an id that decodes another schema, and the registering
instance had cached its own schema's parse under that id (records written with it read with the
wrong schema there, and that instance's ids disagreed with a fresh fold's: the s21 concurrency
test failed so, once, under load). Now the fold ignores a record that claims an id already
holding another schema (the same in every instance: the log's order decides), and the
registration whose record lost registers again (a new id), its caller answered its own schema.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from adapters.sqlite_log import SqliteEventLog
from core.ports.eventlog import Record
from registry.service import SchemaRegistry


@pytest.fixture
def log(tmp_path: Path) -> Iterator[SqliteEventLog]:
    log = SqliteEventLog(tmp_path / "log.db")
    yield log
    log.close()


def _schema(name: str, fields: Sequence[str]) -> str:
    return json.dumps(
        {"type": "record", "name": name, "fields": [{"name": f, "type": "string"} for f in fields]}
    )


def test_two_instances_choosing_one_id_each_keep_their_own_schema(log: SqliteEventLog) -> None:
    a, b = SchemaRegistry(log), SchemaRegistry(log)
    a.register("base-value", _schema("Base", ["id"]))
    b.refresh()
    mine, theirs = _schema("Mine", ["id", "mine"]), _schema("Theirs", ["id", "theirs"])
    raced: list[int] = []

    def append_after_the_other(topic: str, records: Sequence[Record]) -> None:
        # b registers between a's choice of an id and a's append (as another process would)
        raced.append(b.register("theirs-value", theirs).id)
        log.append(topic, records)

    got = a.register("mine-value", mine, append=append_after_the_other)
    assert got.schema.text == mine, "answered a version that holds the other process's schema"
    assert got.id != raced[0]
    assert a.get_by_id(got.id).text == mine
    assert a.get_by_id(raced[0]).text == theirs
    assert a.parsed(got.id).canonical != a.parsed(raced[0]).canonical
    fresh = SchemaRegistry(log)
    for reg in (a, b):
        reg.refresh()
        assert reg._state == fresh._state  # every instance folds the same ids
        assert reg.parsed(raced[0]).canonical == fresh.parsed(raced[0]).canonical
        assert reg.get_version("mine-value", "latest").schema.text == mine
        assert reg.get_version("theirs-value", "latest").schema.text == theirs
    ids_by_text: dict[str, set[int]] = {}
    for subject in fresh.subjects():
        for v in fresh.versions(subject):
            sv = fresh.get_version(subject, v)
            ids_by_text.setdefault(sv.schema.text, set()).add(sv.id)
    assert all(len(ids) == 1 for ids in ids_by_text.values())


def test_a_record_claiming_a_taken_id_for_another_schema_is_not_folded(
    log: SqliteEventLog,
) -> None:
    """The rule on its own: a `_schemas` record naming an id that already holds a different
    schema (another process's lost race, or a forged record) changes nothing in any fold."""
    a = SchemaRegistry(log)
    first = a.register("one-value", _schema("One", ["id"]))
    forged = {
        "subject": "two-value",
        "version": 1,
        "id": first.id,
        "schema": _schema("Two", ["id", "two"]),
        "deleted": False,
    }
    key = {"keytype": "SCHEMA", "subject": "two-value", "version": 1, "magic": 1}
    log.append(
        "_schemas",
        [Record(value=json.dumps(forged).encode(), key=json.dumps(key).encode())],
    )
    fresh = SchemaRegistry(log)
    for reg in (a, fresh):
        reg.refresh()
        assert "two-value" not in reg.subjects()
        assert reg.get_by_id(first.id).text == first.schema.text
    # the subject is free for a real registration, which gets an id of its own
    two = fresh.register("two-value", _schema("Two", ["id", "two"]))
    assert two.id != first.id and two.version == 1
