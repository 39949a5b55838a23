"""Differential tests: the ledger's batch fast paths against the reference encoding.

``ledger.leaves.LeafEncoder`` (templated, column-wise and per-record paths) MUST give
byte-identical leaf inputs and leaf hashes to ``audit.leaf.encode`` (what evidence packs and
hub-verify recompute), and :func:`query_column_batch` the same columns as ``query_columns``.
Batches are generated the way the log hands them over (one topic and partition, offsets
ascending, most headers repeating) and also arbitrarily (mixed topics, varying header counts,
None and empty keys and values, repeated header names, non-ASCII, '%' bytes, large values).
"""

from __future__ import annotations

import hashlib
import random
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapters.sqlite_ledgerstore import SqliteLedgerStore
from audit import leaf
from audit.merkle import inclusion_proof, leaf_hash, range_root
from core.ports.eventlog import StoredRecord
from ledger.leaves import LeafEncoder, query_column_batch, query_columns
from ledger.tree import TreeBuilder

NAMES = ["ce_source", "ce_type", "hub_action", "ce_subject", "ce_tenant", "ce_id", "x-é", "%s"]
texts = st.text(max_size=12)
blobs = st.binary(max_size=70) | st.sampled_from([b"", b"%b", b"%", "é".encode(), b"\xff\xfe"])
names = st.sampled_from(NAMES) | texts


def reference(r: StoredRecord) -> bytes:
    return leaf.encode(r.topic, r.partition, r.offset, r.timestamp_ms, r.key, r.headers, r.value)


def check(batch: list[StoredRecord], enc: LeafEncoder | None = None) -> None:
    enc = enc or LeafEncoder()
    want_inputs = [reference(r) for r in batch]
    assert enc.leaf_inputs(batch) == want_inputs
    hashes, cols = enc.encode(batch)
    assert hashes == [leaf_hash(d) for d in want_inputs]
    assert enc.leaf_hashes(batch) == hashes
    want_cols = [query_columns(r) for r in batch]
    assert list(zip(*cols, strict=True)) == want_cols or (not batch and cols == ([], [], [], []))
    assert query_column_batch(batch) == cols


@st.composite
def log_batches(draw: st.DrawFn) -> list[StoredRecord]:
    """One topic/partition, dense offsets, a fixed header layout: repeated or varying values."""
    topic = draw(st.text(min_size=1, max_size=20))
    part = draw(st.integers(0, 2**31 - 1))
    base = draw(st.integers(0, 2**40))
    n = draw(st.integers(1, 40))
    layout = draw(st.lists(st.tuples(names, st.booleans()), max_size=10))  # (name, varies)
    shared = [draw(blobs) for _ in layout]
    fixed_len = draw(st.booleans())
    keys = draw(st.sampled_from(["none", "some", "all", "repeat"]))
    values = draw(st.sampled_from(["none", "some", "all"]))
    out = []
    for i in range(n):
        headers = []
        for (name, varies), value in zip(layout, shared, strict=True):
            if varies:
                value = (b"%08d" % i) if fixed_len else draw(blobs)
            headers.append((name, value))
        key = {
            "none": None,
            "some": draw(st.none() | st.binary(max_size=40)),
            "all": draw(st.binary(max_size=40)),
            "repeat": b"acc-%d" % (i % 3),
        }[keys]
        value_ = {
            "none": None,
            "some": draw(st.none() | st.binary(max_size=200)),
            "all": draw(st.binary(max_size=200)),
        }[values]
        ts = draw(st.integers(-(2**62), 2**62))
        out.append(StoredRecord(topic, part, base + i, ts, key, value_, tuple(headers)))
    return out


any_records = st.builds(
    StoredRecord,
    topic=st.sampled_from(["trades", "hub.audit", "é"]) | st.text(min_size=1, max_size=20),
    partition=st.integers(0, 2**31),
    offset=st.integers(0, 2**62),
    timestamp_ms=st.integers(-(2**62), 2**62),
    key=st.none() | st.binary(max_size=40),
    value=st.none() | st.binary(max_size=200),
    headers=st.lists(st.tuples(names, blobs), max_size=6).map(tuple),
)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(log_batches())
def test_log_shaped_batches_match_the_reference(batch: list[StoredRecord]) -> None:
    enc = LeafEncoder()
    check(batch, enc)
    check(batch, enc)  # again from the encoder's caches


@settings(max_examples=100, deadline=None)
@given(st.lists(any_records, max_size=10))
def test_arbitrary_batches_match_the_reference(batch: list[StoredRecord]) -> None:
    check(batch)


def test_edge_cases_match_the_reference() -> None:
    big = bytes(range(256)) * 300  # 76.8 kB header value
    cases = [
        # duplicate header names (an envelope one reads as absent), non-ASCII, empty
        [
            StoredRecord(
                "t",
                0,
                i,
                i,
                b"k",
                b"",
                (("ce_source", b"a"), ("ce_source", b"b%d" % i), ("é", "ü".encode())),
            )
            for i in range(5)
        ],
        [StoredRecord("t", 0, i, 0, None, None, ()) for i in range(4)],
        [StoredRecord("t", 0, i, 0, b"", b"", (("", b""),)) for i in range(4)],
        [
            StoredRecord("t", 1, i, 0, b"\xff", b"v", (("big", big), ("ce_type", b"%s%%")))
            for i in range(3)
        ],
        [
            StoredRecord("t", 0, 0, 0, b"k", b"v", (("ce_subject", b"s"), ("hub_action", b""))),
            StoredRecord("t", 0, 1, 0, b"k", b"v", (("ce_subject", b"\xff"), ("hub_action", b"x"))),
        ],
        # varying header counts, two topics in one batch
        [
            StoredRecord("a", 0, 0, 0, b"k", b"v", (("h", b"1"),)),
            StoredRecord("b", 2, 9, 0, None, b"v", (("h", b"1"), ("g", b"2"))),
            StoredRecord("a", 0, 1, 0, b"k", None, ()),
        ],
        # pairs given as lists (a caller's record, not the log's): same bytes
        [StoredRecord("t", 0, i, 0, b"k", b"v", (["h", b"1"],)) for i in range(3)],  # type: ignore[arg-type]
    ]
    for batch in cases:
        check(batch)


def test_bad_fields_raise_what_the_reference_raises() -> None:
    bad = [
        StoredRecord("t", -1, 0, 0, None, None, ()),
        StoredRecord("t", 0, 0, 2**63, None, None, ()),
        StoredRecord("t" * 70_000, 0, 0, 0, None, None, ()),
        StoredRecord("t", 0, 0, 0, None, None, (("n" * 70_000, b""),)),
        StoredRecord("t", 0, 0, 0, None, None, (("h", "text"),)),  # type: ignore[arg-type]
        StoredRecord("t", 0, 0, 0, "key", None, ()),  # type: ignore[arg-type]
        StoredRecord("t", 0, 0, 0, None, None, (("h", b"v", b"extra"),)),  # type: ignore[arg-type]
    ]
    enc = LeafEncoder()
    for r in bad:
        good = StoredRecord(r.topic if len(r.topic) < 100 else "t", 0, 5, 0, None, None, r.headers)
        with pytest.raises(Exception) as want:
            reference(r)
        with pytest.raises(want.type):
            enc.leaf_hashes([r, r])
        with pytest.raises(want.type):
            enc.leaf_inputs([good, r] if len(r.headers) == len(good.headers) else [r])


def test_sync_path_leaves_and_roots_equal_the_reference_tree(tmp_path: Path) -> None:
    """Leaf hashes through the encoder, the tree builder and the store give the RFC root."""
    rng = random.Random(5)
    recs = [
        StoredRecord(
            "trades",
            i % 3,
            i,
            1_700_000_000_000 + i,
            b"acc-%d" % (i % 7),
            rng.randbytes(30),
            (("ce_id", b"%036d" % i), ("ce_type", b"hub.T"), ("ce_source", b"desk")),
        )
        for i in range(1500)
    ]
    want = [leaf_hash(reference(r)) for r in recs]
    enc = LeafEncoder()
    store = SqliteLedgerStore(tmp_path / "l.sqlite")
    size = 0
    for k in range(0, len(recs), 377):
        hashes, _ = enc.encode(recs[k : k + 377])
        with store.write() as conn:
            b = TreeBuilder(size, conn.chunk)
            conn.append([], b.append(b"".join(hashes)))
        size += len(hashes)
    from audit.merkle import root_from_leaf_hashes

    assert range_root(store, 0, size) == root_from_leaf_hashes(want)
    for i in (0, 1, 255, 256, 1000, 1499):
        for s in (i + 1, 1024, 1500):
            if s > i:
                assert store.inclusion_proof(i, s) == inclusion_proof(store, i, s)
    assert hashlib.sha256(b"").digest()  # keep hashlib import honest
    store.close()


def test_log_shaped_batches_take_the_templated_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """The fast path must not silently fall back on the common shape (the speed depends on it)."""
    recs = [
        StoredRecord(
            "trades",
            0,
            i,
            i,
            b"acc-%d" % (i % 4),
            b"v%d" % i,
            (("ce_id", b"%036d" % i), ("ce_type", b"hub.T"), ("ce_time", b"t%d" % i)),
        )
        for i in range(50)
    ]

    def no_fallback(*_: object) -> None:
        raise AssertionError("fell back to a slower path")

    enc = LeafEncoder()
    monkeypatch.setattr(enc, "leaf_input", no_fallback)
    monkeypatch.setattr(enc, "_parts", no_fallback)
    hashes, cols = enc.encode(recs)
    assert hashes == [leaf_hash(reference(r)) for r in recs]
    assert list(zip(*cols, strict=True)) == [query_columns(r) for r in recs]


def test_store_proofs_keep_the_reference_errors(tmp_path: Path) -> None:
    store = SqliteLedgerStore(tmp_path / "l.sqlite")
    with store.write() as conn:
        conn.append([], TreeBuilder().append(b"".join(leaf_hash(b"%d" % i) for i in range(5))))
    with pytest.raises(ValueError):
        store.inclusion_proof(5, 5)
    with pytest.raises(ValueError):
        store.consistency_proof(6, 5)
    with pytest.raises(IndexError):
        store.inclusion_proof(0, 9)  # larger than the stored tree
    assert store.consistency_proof(0, 5) == [] and store.root(0) == range_root(store, 0, 0)
    store.close()
