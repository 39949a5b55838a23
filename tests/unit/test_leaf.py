"""The leaf encoding (audit.leaf), the hub's fast batch encoder, the tree builder, and the
local Signer and ObjectStore adapters."""

from __future__ import annotations

import hashlib
import os
import random
import stat
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.local_objectstore import LocalObjectStore
from adapters.local_signer import LocalKeyFileSigner
from audit import leaf
from audit.merkle import MemoryTree, inclusion_proof, leaf_hash, range_root
from audit.note import open_note, parse_verifier_key
from core.errors import ConfigError, InvalidInput
from core.ports.eventlog import StoredRecord
from core.ports.objectstore import ObjectExists, ObjectNotFound
from ledger.leaves import LeafEncoder, query_columns
from ledger.tree import CHUNK, TreeBuilder


def test_layout_is_the_documented_one() -> None:
    data = leaf.encode("t", 2, 3, 4, b"k", [("h", b"v")], b"")
    want = (
        b"\x01"
        + b"\x00\x01t"
        + (2).to_bytes(4, "big")
        + (3).to_bytes(8, "big")
        + (4).to_bytes(8, "big")
        + b"\x01"
        + hashlib.sha256(b"k").digest()
        + (1).to_bytes(4, "big")
        + b"\x00\x01h"
        + b"\x00\x00\x00\x01v"
        + b"\x01"
        + hashlib.sha256(b"").digest()
    )
    assert data == want
    assert leaf.decode(data) == (
        "t",
        2,
        3,
        4,
        hashlib.sha256(b"k").digest(),
        (("h", b"v"),),
        hashlib.sha256(b"").digest(),
    )


def test_none_and_empty_differ_and_decode_is_strict() -> None:
    a = leaf.encode("t", 0, 0, 0, None, (), None)
    b = leaf.encode("t", 0, 0, 0, b"", (), b"")
    assert a != b
    assert leaf.decode(a)[4] is None and leaf.decode(a)[6] is None
    with pytest.raises(leaf.LeafError):
        leaf.decode(a + b"\x00")
    with pytest.raises(leaf.LeafError):
        leaf.decode(a[:-1])
    with pytest.raises(leaf.LeafError):
        leaf.decode(b"\x02" + a[1:])
    # A header boundary cannot be shifted: ("ab", "c") vs ("a", "bc") encode differently.
    assert leaf.encode("t", 0, 0, 0, None, [("ab", b"c")], None) != leaf.encode(
        "t", 0, 0, 0, None, [("a", b"bc")], None
    )


records = st.builds(
    StoredRecord,
    topic=st.text(min_size=1, max_size=20),
    partition=st.integers(0, 2**31),
    offset=st.integers(0, 2**62),
    timestamp_ms=st.integers(-(2**62), 2**62),
    key=st.none() | st.binary(max_size=40),
    value=st.none() | st.binary(max_size=200),
    headers=st.lists(st.tuples(st.text(max_size=12), st.binary(max_size=70)), max_size=6).map(
        tuple
    ),
)


@settings(max_examples=120, deadline=None)
@given(st.lists(records, min_size=1, max_size=8))
def test_fast_encoder_matches_the_reference(batch: list[StoredRecord]) -> None:
    enc = LeafEncoder()
    for _ in range(2):  # the second pass runs from the caches
        got = enc.leaf_hashes(batch)
        want = [
            leaf_hash(
                leaf.encode(
                    r.topic, r.partition, r.offset, r.timestamp_ms, r.key, r.headers, r.value
                )
            )
            for r in batch
        ]
        assert got == want


def test_query_columns() -> None:
    r = StoredRecord(
        "hub.audit",
        0,
        0,
        0,
        b"res-key",
        b"v",
        (
            ("ce_source", b"alice"),
            ("ce_type", b"hub.X"),
            ("hub_action", b"evidence.export"),
            ("ce_subject", b"evidence/x"),
            ("ce_tenant", b"t1"),
        ),
    )
    assert query_columns(r) == ("alice", "evidence.export", "evidence/x", "t1")
    r2 = StoredRecord("trades", 0, 0, 0, b"\xff\x00", b"v", (("ce_type", b"hub.T"),))
    assert query_columns(r2) == (None, "hub.T", "0xff00", None)


def test_tree_builder_matches_memory_tree() -> None:
    rng = random.Random(7)
    chunks: dict[tuple[int, int], bytes] = {}

    class Reader:
        def node(self, level: int, index: int) -> bytes:
            data = chunks[(level, index // CHUNK)]
            off = (index % CHUNK) * 32
            if off + 32 > len(data):
                raise IndexError
            return data[off : off + 32]

    mt = MemoryTree()
    size = 0
    for _ in range(40):
        n = rng.choice([0, 1, 2, 3, 255, 256, 257, 700])
        hashes = [leaf_hash(os.urandom(6)) for _ in range(n)]
        builder = TreeBuilder(size, lambda lv, c: chunks[(lv, c)])  # reloaded each batch
        for lv, c, data in builder.append(b"".join(hashes)):
            chunks[(lv, c)] = data
        mt.append_leaf_hashes(hashes)
        size += n
        assert range_root(Reader(), 0, size) == mt.root()
        if size:
            i = rng.randrange(size)
            assert inclusion_proof(Reader(), i, size) == mt.inclusion_proof(i, size)


def test_local_signer_creates_a_private_key_file_and_verifiable_notes(tmp_path: Path) -> None:
    key_file = tmp_path / "keys" / "ledger.key"
    s = LocalKeyFileSigner(key_file, "hub.test/ledger")
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    pub = parse_verifier_key((tmp_path / "keys" / "ledger.pub").read_text())
    assert pub.encode() == s.verifier_key()
    note = s.sign_note("hello\n")
    assert open_note(note, [pub]).text == "hello\n"
    again = LocalKeyFileSigner(key_file, "hub.test/ledger")  # the same key on restart
    assert again.public_key == s.public_key
    with pytest.raises(ConfigError):
        LocalKeyFileSigner(key_file, "another/origin")
    key_file.chmod(0o644)
    with pytest.raises(ConfigError, match="chmod 600"):
        LocalKeyFileSigner(key_file, "hub.test/ledger")


def test_local_objectstore_is_write_once(tmp_path: Path) -> None:
    store = LocalObjectStore(tmp_path / "w")
    store.put("a/b.note", b"one")
    assert store.get("a/b.note") == b"one"
    assert (
        stat.S_IMODE((tmp_path / "w" / "a" / "b.note").stat().st_mode) == 0o400
    )  # read-only, and the owner's alone (umask ignored)
    with pytest.raises(ObjectExists):
        store.put("a/b.note", b"two")
    assert store.put_if_absent("a/b.note", b"two") is False
    assert store.put_if_absent("a/c.note", b"three") is True
    assert store.get("a/b.note") == b"one"
    assert store.list("a/") == ["a/b.note", "a/c.note"] and store.exists("a/c.note")
    with pytest.raises(ObjectNotFound):
        store.get("nope")
    for bad in ("", "../x", "a//b", "a/./b"):
        with pytest.raises(InvalidInput):
            store.put(bad, b"x")
