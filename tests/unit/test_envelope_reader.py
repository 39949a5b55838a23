"""The one envelope-header reader (``domain.envelope`` + ``core.ports.eventlog``): a repeated
envelope header (``ce_*``, ``hub_*``, ``content-type``) is never read as one of its copies."""

from __future__ import annotations

import random

import pytest

from core.errors import DuplicateEnvelopeHeader
from core.events import tenant_of
from core.ports.eventlog import (
    RecordColumns,
    StoredRecord,
    check_envelope_headers,
    duplicated_envelope_rows,
    envelope_header,
)
from core.ports.ledgerstore import AMBIGUOUS_TENANT
from domain.envelope import (
    Envelope,
    duplicated_envelope_header,
    duplicated_envelope_name,
    is_envelope_header,
)
from ledger.leaves import LeafEncoder, leaf_batch_reference, query_column_batch, query_columns

ENV = Envelope("hub.accounts.AccountOpened", "app", tenant="acme").to_headers()


def _rec(headers: tuple[tuple[str, bytes], ...], offset: int = 0) -> StoredRecord:
    return StoredRecord("accounts", 0, offset, 1_700_000_000_000, b"k", b"v", headers)


def test_envelope_names() -> None:
    for name in ("ce_tenant", "ce_anything", "hub_action", "content-type"):
        assert is_envelope_header(name)
    for name in ("x-trace", "Content-Type", "tenant", "hub-natural-key"):
        assert not is_envelope_header(name)


def test_duplicates_found_only_for_envelope_names() -> None:
    assert duplicated_envelope_header(ENV) is None
    assert duplicated_envelope_header((*ENV, ("x-a", b"1"), ("x-a", b"2"))) is None
    assert duplicated_envelope_header((*ENV, ("ce_tenant", b"globex"))) == "ce_tenant"
    assert duplicated_envelope_header((("hub_action", b"a"), ("hub_action", b"a"))) == "hub_action"
    assert duplicated_envelope_name(("ce_id", "x", "ce_id")) == "ce_id"
    assert duplicated_envelope_name(("x", "x")) is None


def test_reader_refuses_a_repeated_envelope_header() -> None:
    twice = _rec((*ENV, ("ce_tenant", b"globex")), offset=7)
    with pytest.raises(DuplicateEnvelopeHeader, match=r"accounts/0@7.*'ce_tenant'"):
        twice.header("ce_tenant")
    assert twice.header("ce_type") == b"hub.accounts.AccountOpened"  # the others still read
    assert tenant_of(twice) is None  # no tenant: no tenant's row filter matches it
    assert tenant_of(_rec(ENV)) == "acme"
    assert tenant_of(_rec(())) == "default"
    # a caller's own repeated header: the first, as Kafka clients read it
    assert envelope_header((("x-a", b"1"), ("x-a", b"2")), "x-a") == b"1"
    with pytest.raises(ValueError, match="ce_tenant"):
        Envelope.from_headers(twice.headers)


def test_batch_check_names_the_record_and_header() -> None:
    rows = [ENV, (*ENV, ("x", b"1"), ("x", b"2")), (*ENV, ("content-type", b"text/plain"))]
    assert duplicated_envelope_rows(rows) == [(2, "content-type")]
    with pytest.raises(DuplicateEnvelopeHeader, match=r"Record 2 .*'t'.*'content-type'"):
        check_envelope_headers(rows, "t")
    check_envelope_headers(rows[:2], "t")


def test_side_index_reads_a_repeated_header_as_absent() -> None:
    """A repeated envelope header reads as absent, except ce_tenant: that one is stored as
    ``AMBIGUOUS_TENANT``, which no tenant's scope matches (session 13; absent would mean
    hub-wide, shown to every tenant)."""
    twice = _rec((*ENV, ("ce_tenant", b"globex"), ("ce_source", b"evil")))
    amb = AMBIGUOUS_TENANT
    assert query_columns(twice) == (None, "hub.accounts.AccountOpened", "k", amb)
    # the same, column-wise, whatever the batch's shape
    cols = query_column_batch([twice, twice])  # one shape: read as columns
    assert cols == ([None, None], ["hub.accounts.AccountOpened"] * 2, ["k", "k"], [amb, amb])
    source_twice = _rec((*ENV, ENV[4]), 1)
    mixed = query_column_batch([_rec(ENV), twice, source_twice])  # shapes differ: per record
    assert mixed[0] == ["app", None, None] and mixed[3] == ["acme", amb, "acme"]


def test_leaf_batch_native_and_reference_agree_and_name_duplicates() -> None:
    rng = random.Random(11)
    recs = []
    for i in range(60):
        h = list(ENV)
        if rng.random() < 0.2:
            h.append((rng.choice(["ce_tenant", "ce_source", "hub_action", "ce_id"]), b"dup"))
        if rng.random() < 0.2:
            h.append(("hub_action", b"act"))
        recs.append(_rec(tuple(h), i))
    enc = LeafEncoder()
    got = enc.leaf_batch(recs, 0)
    want = leaf_batch_reference(recs, 0)
    assert got.hashes == want.hashes
    assert got.columns.equals(want.columns)
    assert enc.duplicates == duplicated_envelope_rows([r.headers for r in recs])
    assert enc.duplicates  # the seed plants some
    # from columns (the verify/sync path): per-record headers, and named columns with one name
    # twice (the embedded log's stored form), give the same bytes and findings
    enc2 = LeafEncoder()
    per_record = RecordColumns.from_records("accounts", 0, recs)
    assert enc2.column_batch([per_record], 0).hashes == want.hashes
    assert enc2.duplicates == enc.duplicates
    named = [_rec((*ENV, ("ce_tenant", b"globex")), i) for i in range(4)]
    names = tuple(k for k, _ in named[0].headers)
    chunk = RecordColumns(
        "accounts",
        0,
        range(4),
        [r.timestamp_ms for r in named],
        [r.key for r in named],
        [r.value for r in named],
        header_names=names,
        header_values=tuple([r.headers[j][1] for r in named] for j in range(len(names))),
    )
    ref = leaf_batch_reference(named, 0)
    got2 = enc2.column_batch([chunk], 0)
    assert got2.hashes == ref.hashes and got2.columns.equals(ref.columns)
    assert enc2.duplicates == [(i, "ce_tenant") for i in range(4)]
    clean = LeafEncoder()
    clean.leaf_batch([_rec(ENV, i) for i in range(5)], 0)
    assert clean.duplicates == []
