"""``PiiField.encode_many`` (a PII column's plaintexts in one call) gives exactly
``[field.encode(v) for v in values]``: ASCII and other UTF-8, empty strings, strings just under
and over the prefix table's 8 KiB, lone surrogates, other types, other plain types."""

from __future__ import annotations

import json
import random

import pytest

from core.errors import SerializationError
from core.pii import PiiField, plan

SCHEMA = json.dumps(
    {
        "type": "record",
        "name": "P",
        "fields": [
            {"name": "who", "type": "string", "hub.data_subject": True},
            {"name": "name", "type": "string", "classification": "pii"},
            {"name": "maybe", "type": ["null", "string"], "classification": "pii"},
            {"name": "age", "type": "int", "classification": "pii"},
        ],
    }
)


def _fields() -> dict[str, PiiField]:
    return {f.path[0]: f for f in plan(SCHEMA).fields}


def _text(rng: random.Random) -> str:
    size = rng.choice([0, 1, 5, 63, 64, 8191, 8192, 9000])
    alphabet = rng.choice(["abc", "äöü€", "𝄞x", "a\u0000b"])
    return "".join(rng.choice(alphabet) for _ in range(size))[:size]


@pytest.mark.parametrize("seed", range(20))
def test_a_string_column_is_encoded_as_value_by_value(seed: int) -> None:
    rng = random.Random(seed)
    field = _fields()["name"]
    values = [_text(rng) for _ in range(rng.randrange(0, 40))]
    assert field.encode_many(values) == [field.encode(v) for v in values]


def test_unusual_columns_go_value_by_value() -> None:
    fields = _fields()
    name, maybe, age = fields["name"], fields["maybe"], fields["age"]
    surrogate = ["ok", "\ud800"]  # refused by both, naming the field
    with pytest.raises(SerializationError, match=r"/name: .* lone UTF-16 surrogate"):
        name.encode("\ud800")
    with pytest.raises(SerializationError, match=r"/name: .* lone UTF-16 surrogate"):
        name.encode_many(surrogate)
    assert maybe.encode_many(["a", "b"]) == [maybe.encode("a"), maybe.encode("b")]
    assert age.encode_many([1, -300]) == [age.encode(1), age.encode(-300)]
    assert name.encode_many([]) == []


@pytest.mark.parametrize("seed", range(10))
def test_the_native_string_encoding_gives_the_reference_bytes(seed: int) -> None:
    """``hub_native.avro_string_many`` (``encode_many``'s plain-string path) gives exactly
    ``encode_many_py`` and fastavro's ``encode`` value by value, lengths past one, two and
    three varint bytes included; a list it cannot take answers None (the reference decides)."""
    native = pytest.importorskip("hub_native").avro_string_many
    rng = random.Random(seed)
    field = _fields()["name"]
    values = [_text(rng) for _ in range(rng.randrange(1, 40))] + ["z" * 2_100_000, "é" * 70]
    assert native(values) == field.encode_many_py(values) == [field.encode(v) for v in values]
    assert field.encode_many(values) == native(values)

    class Sub(str):
        pass

    for odd in (["ok", "\ud800"], ["ok", Sub("x")], ["ok", 1], ["ok", b"x"]):
        assert native(odd) is None
    assert field.encode_many(["ok", Sub("x")]) == [field.encode("ok"), field.encode("x")]
