"""The one Avro varint writer equals fastavro's encoding of a long, at every width."""

import io

import fastavro
import pytest

from core.avro.varint import varint, zigzag

EDGES = [0, 1, -1, 63, -64, 64, -65, 8191, -8192, 8192, 2**31 - 1, -(2**31), 2**63 - 1, -(2**63)]


@pytest.mark.parametrize("value", EDGES + [7**k for k in range(23)] + [-(7**k) for k in range(23)])
def test_varint_of_zigzag_equals_fastavros_long(value: int) -> None:
    if not -(2**63) <= value < 2**63:
        pytest.skip("outside a long")
    out = io.BytesIO()
    fastavro.schemaless_writer(out, "long", value)
    assert varint(zigzag(value)) == out.getvalue()
