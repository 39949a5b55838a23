"""A plain-string PII value is encoded without fastavro, byte for byte as fastavro encodes it."""

from __future__ import annotations

import io
import json
import random

import fastavro
import pytest

from core.pii import plan

SCHEMA = json.dumps(
    {
        "type": "record",
        "name": "Person",
        "namespace": "t",
        "fields": [
            {"name": "id", "type": "string", "hub.data_subject": True},
            {"name": "name", "type": "string", "classification": "pii"},
        ],
    }
)


@pytest.mark.parametrize("length", [0, 1, 63, 64, 127, 128, 8191, 8192, 300_000])
def test_plain_string_matches_fastavro(length: int) -> None:
    field = plan(SCHEMA).fields[0]
    assert field.plain_string
    rng = random.Random(length)
    for text in (
        "a" * length,
        "".join(chr(rng.choice([97, 233, 0x4E2D, 0x1F600])) for _ in range(length)),
    ):
        buf = io.BytesIO()
        fastavro.schemaless_writer(buf, field.writer, {"v": text})
        assert field.encode(text) == buf.getvalue()
        assert field.decode(field.encode(text)) == text
