"""Folds read the log outside their owner's lock (issue 13, s21): the guarantees that reading
inside it gave must hold under concurrency, on the real embedded log.

- ``TopicFold``: every record applied exactly once, in offset order per partition, however many
  threads catch up at once while others append; an ``apply`` that raises leaves its record
  (and those after it) to the next catch-up, none skipped.
- The registry: two registrations of mutually incompatible versions of one subject, through
  two instances sharing the log (as HA hub processes do), never both succeed; ids stay stable
  across instances; the state each instance folded equals a fresh instance's fold of the topic.
"""

from __future__ import annotations

import json
import random
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from adapters.sqlite_log import SqliteEventLog
from core.errors import IncompatibleSchema
from core.fold import TopicFold
from core.ports.eventlog import Record, StoredRecord
from registry.service import SchemaRegistry


@pytest.fixture
def log(tmp_path: Path) -> Iterator[SqliteEventLog]:
    log = SqliteEventLog(tmp_path / "log.db")
    yield log
    log.close()


def test_concurrent_catch_ups_apply_each_record_once_in_offset_order(log: SqliteEventLog) -> None:
    log.create_topic("t", 2, {})
    applied: list[tuple[int, int]] = []
    fold = TopicFold(log, "t", lambda r: applied.append((r.partition, r.offset)), batch=3)
    stop = threading.Event()

    def append(k: int) -> None:
        for i in range(40):
            log.append("t", [Record(value=f"{k}-{i}".encode(), key=b"k", partition=i % 2)])
        stop.set()

    def catch_up() -> None:
        while not stop.is_set():
            fold.catch_up(fold.ticket() if random.random() < 0.5 else None)

    threads = [threading.Thread(target=append, args=(0,))]
    threads += [threading.Thread(target=catch_up) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    fold.catch_up()
    for part in (0, 1):
        offsets = [o for p, o in applied if p == part]
        stored = [r.offset for r in log.scan("t", part)]
        assert offsets == stored  # each once, in order, none skipped
    assert fold.positions == {p: log.end_offsets("t")[p] for p in (0, 1)}


def test_a_raising_apply_is_retried_from_its_record(log: SqliteEventLog) -> None:
    log.create_topic("t", 1, {})
    log.append("t", [Record(value=str(i).encode(), key=b"k") for i in range(5)])
    seen: list[int] = []
    fail_at = {2}

    def apply(rec: StoredRecord) -> None:
        if rec.offset in fail_at:
            fail_at.clear()
            raise ValueError("boom")
        seen.append(rec.offset)

    fold = TopicFold(log, "t", apply)
    with pytest.raises(ValueError, match="boom"):
        fold.catch_up()
    assert seen == [0, 1]
    log.append("t", [Record(value=b"5", key=b"k")])
    fold.catch_up()
    assert seen == [0, 1, 2, 3, 4, 5]


def _schema(fields: list[tuple[str, str | None]], types: dict[str, object] | None = None) -> str:
    out = []
    for name, default in fields:
        field: dict[str, object] = {"name": name, "type": (types or {}).get(name, "string")}
        if default is not None:
            field["default"] = default
        out.append(field)
    return json.dumps({"type": "record", "name": "R", "fields": out})


def test_incompatible_registrations_racing_never_both_succeed(log: SqliteEventLog) -> None:
    """Each round, three versions that break each other (each adds the same new field with a
    default, as a string, an int or a boolean: each is BACKWARD compatible with the latest
    version, none with another) race through one instance: exactly one is stored (each is
    checked against the latest committed version, its record folded before the next check),
    and a second instance sharing the log agrees on the subject's versions and ids."""
    a, b = SchemaRegistry(log), SchemaRegistry(log)
    base: list[dict[str, object]] = [{"name": "id", "type": "string"}]
    a.register("race-value", json.dumps({"type": "record", "name": "R", "fields": base}))
    for rnd in range(10):
        new = f"f{rnd}"
        defaults: dict[str, tuple[str, object]] = {"x": ("string", ""), "y": ("int", 0)}
        defaults["z"] = ("boolean", False)
        texts = {
            k: json.dumps(
                {
                    "type": "record",
                    "name": "R",
                    "fields": [*base, {"name": new, "type": t, "default": d}],
                }
            )
            for k, (t, d) in defaults.items()
        }
        results: dict[str, object] = {}
        barrier = threading.Barrier(len(texts))

        def run(
            name: str, text: str, results: dict[str, object], barrier: threading.Barrier
        ) -> None:
            barrier.wait(10)
            try:
                results[name] = a.register("race-value", text)
            except Exception as exc:
                results[name] = exc

        threads = [
            threading.Thread(target=run, args=(*item, results, barrier)) for item in texts.items()
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(10)
        won = [k for k, v in results.items() if not isinstance(v, Exception)]
        lost = [v for v in results.values() if isinstance(v, Exception)]
        assert len(won) == 1 and all(isinstance(e, IncompatibleSchema) for e in lost), results
        latest = a.get_version("race-value", "latest")
        assert latest.version == rnd + 2
        assert latest.schema.text == texts[won[0]]
        base = json.loads(texts[won[0]])["fields"]  # the next round builds on the winner
        assert b.get_version("race-value", "latest") == latest


def test_state_folded_under_concurrency_equals_a_fresh_fold(log: SqliteEventLog) -> None:
    """Random registrations (new subjects, new versions, the same schema under several
    subjects) from 8 threads on two instances: each instance's folded state equals the state
    a new instance folds from the topic alone (ids and versions as stored)."""
    a, b = SchemaRegistry(log), SchemaRegistry(log)
    rng = random.Random(21)
    plans = [
        [(f"s{rng.randrange(6)}-value", rng.randrange(4)) for _ in range(12)] for _ in range(8)
    ]

    def run(k: int) -> None:
        reg = a if k % 2 else b
        for subject, width in plans[k]:
            fields: list[tuple[str, str | None]] = [("id", None)]
            fields += [(f"f{j}", "") for j in range(width)]
            reg.register(subject, _schema(fields))

    threads = [threading.Thread(target=run, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    fresh = SchemaRegistry(log)
    for reg in (a, b):
        reg.refresh()
        assert reg._state == fresh._state
    ids_by_text: dict[str, set[int]] = {}
    for subject in fresh.subjects():
        for v in fresh.versions(subject):
            sv = fresh.get_version(subject, v)
            ids_by_text.setdefault(sv.schema.text, set()).add(sv.id)
    assert all(len(ids) == 1 for ids in ids_by_text.values())  # one id per schema
