"""``ColumnPlan.encode`` checks a PII column by its values' type alone (``_one_type``), without
the Arrow string array that was built and dropped before (session 20): on random batches with
odd PII values (lone surrogates, ``str`` subclasses, non-strings, None in a column that is not
nullable, all None) it gives exactly what the former check (``_array`` on every column) gives:
the same Avro bytes, or None (the record path decides) for the same batches."""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

import pytest

from adapters.sqlite_log import SqliteEventLog
from core.events import KEY_FIELD_CONFIG, STRATEGY_CONFIG
from core.metrics import Metrics
from core.pii import encrypted_schema
from ingest.jsoncols import ColumnPlan, _Col
from ingest.publish import Publisher
from registry.service import SchemaRegistry
from tests.unit.test_publish_batch import PERSON_TEXT


class _FormerPlan(ColumnPlan):
    """The check before session 20: a PII column went through ``_array`` like any other."""

    @staticmethod
    def _one_type(col: _Col, data: list[Any]) -> type | None:
        if col.pii is None:
            return ColumnPlan._one_type(col, data)
        return None if ColumnPlan._array(col, data) is None else str


class _Name(str):
    pass


def _seal(cols: list[tuple[str, list[str], list[bytes]]]) -> list[list[bytes]]:
    """A deterministic stand-in for the keystore's sealing (what is compared is the column
    path's own work around it): each plaintext tagged with its field and subject."""
    return [
        [f"{name}|{s}|".encode() + p for s, p in zip(owners, plain, strict=True)]
        for name, owners, plain in cols
    ]


@pytest.fixture
def plans() -> Iterator[tuple[ColumnPlan, ColumnPlan]]:
    log = SqliteEventLog(":memory:")
    registry = SchemaRegistry(log)
    log.create_topic("t.people", 1, {STRATEGY_CONFIG: "topic_record", KEY_FIELD_CONFIG: "name"})
    registry.register("t.people-com.hub.Person", encrypted_schema(PERSON_TEXT))
    publisher = Publisher(log, registry, 65536, Metrics())
    target = publisher.targets.resolve("t.people", "com.hub.Person")
    new, old = ColumnPlan.build(target), _FormerPlan.build(target)
    assert new is not None and old is not None and type(old) is _FormerPlan
    yield new, old
    log.close()


ODD: list[Any] = ["a\ud800b", _Name("n"), 7, b"x", 1.5, None, "", "𝄞" * 30, "é", "Person 1"]


@pytest.mark.parametrize("seed", range(40))
def test_pii_type_check_takes_and_refuses_what_the_former_check_did(
    plans: tuple[ColumnPlan, ColumnPlan], seed: int
) -> None:
    new, old = plans
    rng = random.Random(seed)
    n = rng.randrange(1, 60)
    odd = rng.random() < 0.7  # else: only good values, the batch is taken
    values = [
        {
            "account_id": f"A{rng.randrange(5)}",
            "name": rng.choice(ODD) if odd and rng.random() < 0.2 else f"P{rng.randrange(99)}",
            "iban": rng.choice(ODD if odd else [None, "DE89370400440532013000"])
            if rng.random() < 0.5
            else None,
            "amount": f"{rng.randrange(10**6)}.{rng.randrange(100):02d}",
        }
        for _ in range(n)
    ]
    got, want = new.encode(values, _seal), old.encode(values, _seal)
    assert got == want
    if not odd:
        assert got is not None and len(got) == n
