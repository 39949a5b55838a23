"""``envelope_of_columns`` (tenant, event type and offset columns from ``RecordColumns``' header
columns) MUST give what the reference ``envelope`` gives over the same records' headers:
repeated non-envelope names, missing ``ce_tenant`` / ``ce_type``, invalid UTF-8, several schema
ids, shared and per-record values, chunks with headers per record, sparse offsets; and both
refuse (``Unsupported``) an envelope header carried twice."""

from __future__ import annotations

import random

import numpy as np
import pyarrow as pa
import pytest

from core.ports.eventlog import RecordColumns
from projections.columnar import Unsupported, envelope, envelope_of_columns

NAMES = ("ce_tenant", "ce_type", "ce_id", "x")
ODD = (b"acme", b"\xff\xfe bad \xed\xa0\x80", "h\u00e9llo".encode(), b"", b"T.Type")


def _chunk(rnd: random.Random, start: int) -> RecordColumns:
    n = rnd.randint(1, 40)
    names = tuple(rnd.sample(NAMES, rnd.randint(0, 4)))
    if rnd.random() < 0.3:  # a caller's own header, maybe repeated: allowed
        names += ("x",)
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


@pytest.mark.parametrize("per_record", [False, True])
def test_a_repeated_envelope_header_is_refused_by_both(per_record: bool) -> None:
    names = ("ce_tenant", "ce_type", "ce_tenant")
    cols = ([b"acme"], [b"T"], [b"globex"])
    c = RecordColumns("t", 0, range(1), [0], [None], [b""], names, cols)
    if per_record:
        c = RecordColumns("t", 0, range(1), [0], [None], [b""], headers=c.header_rows())
    ids = np.array([1], np.int64)
    with pytest.raises(Unsupported, match="twice"):
        envelope_of_columns([c], ids, str)
    with pytest.raises(Unsupported, match="twice"):
        envelope(c.records(), ids, str)
