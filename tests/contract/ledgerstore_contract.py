"""The LedgerStore contract (``core/ports/ledgerstore.py``): one suite, run against every adapter.

Subclasses provide ``store`` (an empty store, closed after the test) and ``peer`` (a second,
independent handle on the SAME store, as another process would open it). Trees are built with
the ledger's own ``TreeBuilder`` and checked against ``audit.merkle`` computed from the leaf
hashes alone, so a store that loses, reorders or mixes up a node fails here.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from itertools import accumulate
from pathlib import Path

import pytest

from audit.merkle import (
    EMPTY_ROOT,
    MemoryTree,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    range_root,
)
from core.errors import HubError
from core.ports.ledgerstore import (
    AMBIGUOUS_TENANT,
    CHUNK,
    LeafBatch,
    LeafRow,
    LedgerStore,
    StoredCheckpoint,
)
from ledger.tree import TreeBuilder

Peer = Callable[[], LedgerStore]


def reference(hashes: list[bytes]) -> MemoryTree:
    """The tree of ``hashes`` held in memory: what the store is compared with."""
    tree = MemoryTree()
    tree.append_leaf_hashes(hashes)
    return tree


def rows(
    start: int, n: int, topic: str = "trades", part: int = 0, ts: int = 1_000
) -> list[LeafRow]:
    return [
        (
            i,
            topic,
            part,
            i,
            ts + i,
            f"actor-{i % 3}",
            "event.publish" if i % 2 else "policy.decide",
            f"res-{i % 5}",
            "acme" if i % 4 else None,
            leaf_hash(b"leaf %d" % i),
        )
        for i in range(start, start + n)
    ]


def append(store: LedgerStore, new: list[LeafRow], **positions: int) -> None:
    """Append ``new`` the way the ledger does: leaves, changed chunks and positions at once."""
    with store.write() as txn:
        size = txn.size()
        builder = TreeBuilder(size, txn.chunk)
        txn.append(new, builder.append(b"".join(r[9] for r in new)))
        txn.set_positions({(t, 0): o for t, o in positions.items()})


def checkpoint(size: int, root: bytes, t: int = 1) -> StoredCheckpoint:
    return StoredCheckpoint(size, root, t, b"note %d\n" % size, bytes([size % 256]) * 32)


class LedgerStoreContract:
    """Not collected itself (no ``Test`` prefix); subclass it once per adapter."""

    def test_an_empty_store(self, store: LedgerStore) -> None:
        assert store.tree_size() == 0
        assert store.positions() == {}
        assert store.leaf(0) is None and store.index_of("trades", 0, 0) is None
        assert list(store.iter_leaves()) == [] and list(store.iter_chunks()) == []
        assert store.checkpoints() == [] and store.latest_checkpoint() is None
        assert store.root(0) == EMPTY_ROOT
        with pytest.raises(IndexError):
            store.read_chunk(0, 0)

    def test_leaves_come_back_as_appended(self, store: LedgerStore) -> None:
        first, second = rows(0, 300), rows(300, 5)
        append(store, first, trades=300)
        append(store, second, trades=305)
        assert store.tree_size() == 305
        assert store.leaf(7) == first[7] and store.leaf(302) == second[2]
        assert store.leaf(305) is None
        assert store.index_of("trades", 0, 301) == 301
        assert store.index_of("trades", 1, 301) is None
        batches = list(store.iter_leaves(batch=128))
        assert [len(b) for b in batches] == [128, 128, 49]
        assert [r for b in batches for r in b] == first + second
        assert [r for b in store.iter_leaves(start=299, batch=4) for r in b] == (first + second)[
            299:
        ]

    def test_leaf_batches_are_the_leaves_as_columns(self, store: LedgerStore) -> None:
        first, second = rows(0, 300), rows(300, 5)
        append(store, first, trades=300)
        append(store, second, trades=305)
        for start in (0, 1, 299, 300, 304, 305):
            got = list(store.iter_leaf_batches(start=start))
            assert [r for b in got for r in b.rows()] == (first + second)[start:]
            assert [b.first for b in got] == list(accumulate([start] + [len(b) for b in got]))[
                : len(got)
            ]
        assert LeafBatch.of_rows(second).rows() == second

    def test_the_tree_it_keeps_gives_the_reference_roots_and_proofs(
        self, store: LedgerStore
    ) -> None:
        hashes: list[bytes] = []
        for start, n in ((0, 1), (1, 2), (3, 254), (257, 300), (557, 1)):
            new = rows(start, n)
            append(store, new)
            hashes += [r[9] for r in new]
        ref = reference(hashes)
        size = len(hashes)
        for s in (1, 2, 3, 256, 257, 300, size):
            assert store.root(s) == range_root(ref, 0, s), s
        for index, s in ((0, 1), (0, size), (255, 256), (256, 557), (size - 1, size), (100, 300)):
            assert store.inclusion_proof(index, s) == inclusion_proof(ref, index, s)
        for a, b in ((1, 2), (3, 257), (256, 512), (300, size)):
            assert store.consistency_proof(a, b) == consistency_proof(ref, a, b)
        assert store.node(1, 200) == ref.node(1, 200)
        assert store.node(0, size - 1) == hashes[-1]
        with pytest.raises(IndexError):
            store.node(0, size)
        assert store.nodes([(0, 3), (2, 1), (0, size + 5)]) == {
            (0, 3): hashes[3],
            (2, 1): ref.node(2, 1),
        }

    def test_chunks_grow_at_the_right_edge_and_read_back_uncached(self, store: LedgerStore) -> None:
        append(store, rows(0, CHUNK + 10))
        full, edge = store.read_chunk(0, 0), store.read_chunk(0, 1)
        assert len(full) == CHUNK * 32 and len(edge) == 10 * 32
        assert store.node(0, CHUNK + 9) == edge[-32:]  # cached now
        append(store, rows(CHUNK + 10, 5))
        assert len(store.read_chunk(0, 1)) == 15 * 32  # the right edge grew in place
        assert store.node(0, CHUNK + 14) == rows(CHUNK + 14, 1)[0][9]  # past the cached prefix
        levels = sorted({(lv, ch) for lv, ch, _ in store.iter_chunks()})
        assert (0, 0) in levels and (0, 1) in levels and (1, 0) in levels
        got = store.read_chunks([(0, 1), (0, 0), (7, 7)])
        assert set(got) == {(0, 0), (0, 1)} and got[(0, 0)] == full

    def test_positions_are_upserted(self, store: LedgerStore) -> None:
        with store.write() as txn:
            txn.set_positions({("a", 0): 3, ("a", 1): 7})
        with store.write() as txn:
            txn.set_positions({("a", 0): 5, ("b", 2): 1})
            assert txn.positions() == {("a", 0): 5, ("a", 1): 7, ("b", 2): 1}
        assert store.positions() == {("a", 0): 5, ("a", 1): 7, ("b", 2): 1}

    def test_checkpoints(self, store: LedgerStore) -> None:
        append(store, rows(0, 40))
        cps = [checkpoint(s, store.root(s), t=s * 10) for s in (10, 20, 40)]
        for cp in reversed(cps):  # stored in any order, read back by size
            with store.write() as txn:
                txn.add_checkpoint(cp)
        assert store.checkpoints() == cps
        assert store.checkpoints(min_size=11, max_size=40) == cps[1:]
        assert store.checkpoint(20) == cps[1] and store.checkpoint(21) is None
        assert store.latest_checkpoint() == cps[2]
        assert store.first_checkpoint_covering(9) == cps[0]
        assert store.first_checkpoint_covering(10) == cps[1]
        assert store.first_checkpoint_covering(40) is None
        with store.write() as txn:
            assert txn.latest_checkpoint() == cps[2]
        with pytest.raises(HubError), store.write() as txn:
            txn.add_checkpoint(checkpoint(20, bytes(32)))
        assert store.checkpoint(20) == cps[1]

    def test_witness_intents_commit_with_their_checkpoint(self, store: LedgerStore) -> None:
        append(store, rows(0, 40))
        with pytest.raises(RuntimeError), store.write() as txn:
            txn.add_checkpoint(checkpoint(10, store.root(10)))
            txn.add_witness_intents([10])
            raise RuntimeError("crash before commit")
        assert store.witness_intents() == [] and store.checkpoints() == []
        with store.write() as txn:
            for s in (40, 10, 20):
                txn.add_checkpoint(checkpoint(s, store.root(s)))
            txn.add_witness_intents([40, 10])
            txn.add_witness_intents([20, 10])  # one already recorded stays once
        assert store.witness_intents() == [10, 20, 40]
        with store.write() as txn:
            txn.clear_witness_intents([10, 40, 99])
        assert store.witness_intents() == [20]

    def test_query_filters_and_pages(self, store: LedgerStore) -> None:
        new, audit = rows(0, 50, ts=1_000), rows(50, 10, topic="hub.audit", ts=2_000)
        append(store, new)
        append(store, audit)
        got = store.query(actor="actor-1", topic="trades", limit=1000)
        assert got == [r for r in new if r[5] == "actor-1"]
        got = store.query(action="event.publish", resource="res-3", limit=1000)
        assert got == [r for r in new + audit if r[6] == "event.publish" and r[7] == "res-3"]
        assert [r[0] for r in store.query(topic="hub.audit", limit=3)] == [50, 51, 52]
        assert [r[0] for r in store.query(topic="hub.audit", after=58)] == [59]
        assert [r[0] for r in store.query(since_ms=1_045, until_ms=2_051, limit=1000)] == [
            45,
            46,
            47,
            48,
            49,
            50,
        ]
        assert len(store.query(topics=["trades", "hub.audit"], limit=1000)) == 60
        assert store.query(topics=[]) == []
        assert store.count_by_topic(1_000, 2_055) == {"hub.audit": 5, "trades": 50}
        assert store.count_by_topic(0, 1) == {}

    def test_query_keeps_to_a_tenant_scope_and_pages_across_its_gaps(
        self, store: LedgerStore
    ) -> None:
        """``tenant_scope``: that tenant's leaves and those with no tenant, never another's."""
        globex = [(*r[:8], "globex", r[9]) for r in rows(6, 30)]
        acme = rows(0, 6) + rows(36, 6)  # tenant acme, every fourth one none
        every = acme[:6] + globex + acme[6:]
        append(store, every)
        assert store.query(tenant_scope="globex", limit=1000) == [
            r for r in every if r[8] in ("globex", None)
        ]
        assert store.query(tenant_scope="acme", actor="actor-1", limit=1000) == [
            r for r in every if r[8] in ("acme", None) and r[5] == "actor-1"
        ]
        assert store.query(tenant_scope="other", limit=1000) == [r for r in every if r[8] is None]
        paged, after = [], -1  # pages of 2 across the 30 globex leaves between acme's
        while page := store.query(tenant_scope="acme", after=after, limit=2):
            paged += page
            after = page[-1][0]
        assert paged == acme

    def test_an_ambiguous_tenant_is_seen_by_no_tenant_scope(self, store: LedgerStore) -> None:
        """A leaf stored with ``AMBIGUOUS_TENANT`` (its record carried ``ce_tenant`` twice)
        matches no tenant's scope, unlike a null tenant (hub-wide); unscoped reads see it."""
        made = rows(0, 8)  # tenant acme, every fourth one none
        every = [(*r[:8], AMBIGUOUS_TENANT, r[9]) if r[0] % 4 == 1 else r for r in made]
        append(store, every)
        hidden = {r[0] for r in every if r[8] == AMBIGUOUS_TENANT}
        assert hidden and store.query(limit=1000) == every
        for scope in ("acme", "globex"):
            got = store.query(tenant_scope=scope, limit=1000)
            assert not hidden & {r[0] for r in got}, scope
        assert store.query(tenant_scope="acme", limit=1000) == [
            r for r in every if r[8] in ("acme", None)
        ]

    def test_a_failed_write_leaves_nothing(self, store: LedgerStore) -> None:
        append(store, rows(0, 3), trades=3)
        with pytest.raises(RuntimeError), store.write() as txn:
            builder = TreeBuilder(3, txn.chunk)
            new = rows(3, 300)
            txn.append(new, builder.append(b"".join(r[9] for r in new)))
            txn.set_positions({("trades", 0): 303})
            txn.add_checkpoint(checkpoint(303, bytes(32)))
            assert txn.size() == 303  # the transaction sees its own writes
            raise RuntimeError("crash before commit")
        assert store.tree_size() == 3 and store.positions() == {("trades", 0): 3}
        assert store.checkpoints() == [] and store.leaf(3) is None
        with pytest.raises(IndexError):
            store.read_chunk(0, 1)
        assert len(store.read_chunk(0, 0)) == 3 * 32

    def test_a_leaf_is_never_stored_twice(self, store: LedgerStore) -> None:
        append(store, rows(0, 3))
        with pytest.raises(HubError), store.write() as txn:
            txn.append(rows(2, 1), [])
        dup = [(3, "trades", 0, 1, 1, None, None, None, None, bytes(32))]  # position of leaf 1
        with pytest.raises(HubError), store.write() as txn:
            txn.append(dup, [])
        assert store.tree_size() == 3 and store.leaf(2) == rows(2, 1)[0]

    def test_a_second_handle_sees_committed_state_only(
        self, store: LedgerStore, peer: Peer
    ) -> None:
        other = peer()
        append(store, rows(0, 10), trades=10)
        assert other.tree_size() == 10 and other.root(10) == store.root(10)
        inside = threading.Event()
        release = threading.Event()

        def writer() -> None:
            with store.write() as txn:
                txn.append(
                    rows(10, 5),
                    TreeBuilder(10, txn.chunk).append(b"".join(r[9] for r in rows(10, 5))),
                )
                inside.set()
                release.wait(10)

        t = threading.Thread(target=writer)
        t.start()
        assert inside.wait(10)
        assert other.tree_size() == 10  # not committed yet
        release.set()
        t.join(10)
        assert other.tree_size() == 15 and other.leaf(14) == rows(14, 1)[0]

    def test_two_writers_serialize(self, store: LedgerStore, peer: Peer) -> None:
        """Each writer reads the size inside its transaction; no leaf index is lost or doubled."""
        other = peer()
        errors: list[BaseException] = []

        def work(s: LedgerStore, n: int) -> None:
            try:
                for _ in range(n):
                    with s.write() as txn:
                        size = txn.size()
                        time.sleep(0.002)  # widen the race window
                        new = rows(size, 3)
                        txn.append(
                            new, TreeBuilder(size, txn.chunk).append(b"".join(r[9] for r in new))
                        )
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(s, 8)) for s in (store, other)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert not errors, errors
        assert store.tree_size() == 48
        hashes = [r[9] for b in store.iter_leaves() for r in b]
        assert [r[0] for b in store.iter_leaves() for r in b] == list(range(48))
        store.clear_caches()
        assert store.root(48) == range_root(reference(hashes), 0, 48)


class FileLedgerStoreContract(LedgerStoreContract):
    """The contract for a store kept in one file: the subclass says how to open it
    (``open_store``); ``store`` and ``peer`` open the same file in the test's folder, and every
    store a test opened is closed after it."""

    def open_store(self, folder: Path) -> LedgerStore:
        raise NotImplementedError("the adapter's test class says how to open its store")

    @pytest.fixture
    def store(self, tmp_path: Path) -> Iterator[LedgerStore]:
        s = self.open_store(tmp_path)
        yield s
        s.close()

    @pytest.fixture
    def peer(self, tmp_path: Path) -> Iterator[Peer]:
        opened: list[LedgerStore] = []

        def peer() -> LedgerStore:
            opened.append(self.open_store(tmp_path))
            return opened[-1]

        yield peer
        for s in opened:
            s.close()
