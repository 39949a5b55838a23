"""``envelope_of_columns`` (tenant, event type and offset columns from ``RecordColumns``' header
columns) MUST give what the reference ``envelope`` gives over the same records' headers: repeated
names (the last counts), missing ``ce_tenant`` / ``ce_type``, invalid UTF-8, several schema ids,
shared and per-record values, chunks with headers per record, sparse offsets."""

from __future__ import annotations

import random

import numpy as np
import pyarrow as pa
import pytest

from core.ports.eventlog import RecordColumns
from projections.columnar import envelope, envelope_of_columns

NAMES = ("ce_tenant", "ce_type", "ce_id", "x")
ODD = (b"acme", b"\xff\xfe bad \xed\xa0\x80", "h\u00e9llo".encode(), b"", b"T.Type")


def _chunk(rnd: random.Random, start: int) -> RecordColumns:
    n = rnd.randint(1, 40)
    names = tuple(rnd.choice(NAMES) for _ in range(rnd.randint(0, 5)))
    shared = [rnd.choice(ODD) for _ in names]
    cols = tuple(
        [shared[j] if rnd.random() < 0.5 else rnd.choice(ODD) for _ in range(n)]
        for j in range(len(names))
    )
    offsets: range | list[int] = range(start, start + n)
    if rnd.random() < 0.3:  # markers between records: not dense
        offsets = sorted(rnd.sample(range(start, start + 3 * n), n))
    c = RecordColumns("t", 0, offsets, [0] * n, [None] * n, [b""] * n, names, cols)
    if rnd.random() < 0.3:  # headers per record
        c = RecordColumns("t", 0, offsets, [0] * n, [None] * n, [b""] * n, headers=c.header_rows())
    return c


@pytest.mark.parametrize("seed", range(40))
def test_envelope_of_columns_equals_the_reference(seed: int) -> None:
    rnd = random.Random(seed)
    chunks = []
    for _ in range(rnd.randint(1, 4)):
        chunks.append(_chunk(rnd, 1000 * len(chunks)))
    records = [r for c in chunks for r in c.records()]
    ids = np.array([rnd.choice((1, 1, 7)) for _ in records], np.int64)

    def name_of(sid: int) -> str:
        return f"schema{sid}"

    tenants, types, offsets = envelope_of_columns(chunks, ids, name_of)
    ref_tenants, ref_types = envelope(records, ids, name_of)
    assert tenants.type == pa.string() and types.type == pa.string()
    assert tenants.to_pylist() == ref_tenants
    assert types.to_pylist() == ref_types
    assert offsets.tolist() == [r.offset for r in records]
