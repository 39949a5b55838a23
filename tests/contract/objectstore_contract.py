"""The ObjectStore contract (``core/ports/objectstore.py``), run against every adapter.

Subclass ``ObjectStoreContract`` once per adapter (as ``Test...``) and provide the fixtures
``make_store`` (``make_store(write_once=True)`` returns an adapter; two calls with the same
``write_once`` reach the same storage, as two processes would) . Each test gets fresh storage
(a new folder, or a new key prefix on a shared server), so the suite can run against one server.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest

from core.errors import InvalidInput
from core.ports.objectstore import (
    ObjectExists,
    ObjectImmutable,
    ObjectNotFound,
    ObjectStore,
    ObjectTooLarge,
)

MakeStore = Callable[..., ObjectStore]


class ObjectStoreContract:
    """Adapter-independent tests; not collected itself (its name does not start with Test)."""

    @pytest.fixture
    def make_store(self) -> MakeStore:
        raise NotImplementedError("the adapter's test class provides make_store")

    @pytest.fixture
    def store(self, make_store: MakeStore) -> ObjectStore:
        return make_store(write_once=True)

    @pytest.fixture
    def scratch(self, make_store: MakeStore) -> ObjectStore:
        return make_store(write_once=False)

    # -- round trip ---------------------------------------------------------------------------
    @pytest.mark.parametrize("data", [b"", b"checkpoint\n", bytes(range(256)) * 4096])
    def test_round_trip(self, store: ObjectStore, data: bytes) -> None:
        store.put("a/b/object.bin", data)
        assert store.get("a/b/object.bin") == data
        assert store.exists("a/b/object.bin")
        assert store.size("a/b/object.bin") == len(data)

    def test_stream_yields_the_bytes_in_bounded_blocks(self, store: ObjectStore) -> None:
        data = bytes(range(256)) * 4096  # 1 MiB
        store.put("s/obj", data)
        blocks = list(store.stream("s/obj", max_bytes=len(data), block=64 << 10))
        assert b"".join(blocks) == data
        assert max(len(b) for b in blocks) <= 64 << 10
        assert list(store.stream("s/obj", max_bytes=1 << 40)) != []

    def test_stream_stops_past_max_bytes(self, store: ObjectStore) -> None:
        """A reader that expects n bytes never holds more than n (+ one block) of a bigger one."""
        data = b"x" * (300 << 10)
        store.put("s/big", data)
        got = 0
        with pytest.raises(ObjectTooLarge) as err:
            for block in store.stream("s/big", max_bytes=100 << 10, block=16 << 10):
                got += len(block)
        assert got <= 100 << 10
        assert "s/big" in err.value.message
        with pytest.raises(ObjectNotFound):
            list(store.stream("s/missing", max_bytes=10))
        store.put("s/empty", b"")
        assert b"".join(store.stream("s/empty", max_bytes=0)) == b""

    def test_objects_survive_a_new_adapter(self, make_store: MakeStore) -> None:
        make_store(write_once=True).put("kept/1", b"one")
        again = make_store(write_once=True)
        assert again.get("kept/1") == b"one"
        assert again.list("kept/") == ["kept/1"]

    # -- write-once -----------------------------------------------------------------------------
    def test_write_once_refuses_an_overwrite_and_keeps_the_first_bytes(
        self, store: ObjectStore
    ) -> None:
        assert store.write_once
        store.put("witness/00000042.note", b"first")
        with pytest.raises(ObjectExists) as err:
            store.put("witness/00000042.note", b"second")
        assert "witness/00000042.note" in err.value.message
        with pytest.raises(ObjectExists):
            store.put("witness/00000042.note", b"first")  # even identical bytes
        assert store.get("witness/00000042.note") == b"first"

    def test_put_if_absent_stores_once(self, store: ObjectStore) -> None:
        assert store.put_if_absent("k", b"1") is True
        assert store.put_if_absent("k", b"2") is False
        assert store.get("k") == b"1"

    def test_racing_writers_cannot_both_win(self, store: ObjectStore) -> None:
        wins: list[bytes] = []
        barrier = threading.Barrier(6)

        def writer(i: int) -> None:
            data = f"writer-{i}".encode()
            barrier.wait()
            if store.put_if_absent("race/object", data):
                wins.append(data)

        threads = [threading.Thread(target=writer, args=(i,)) for i in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(wins) == 1
        assert store.get("race/object") == wins[0]

    def test_write_once_refuses_delete(self, store: ObjectStore) -> None:
        store.put("backups/b1/manifest.json", b"{}")
        with pytest.raises(ObjectImmutable):
            store.delete("backups/b1/manifest.json")
        assert store.get("backups/b1/manifest.json") == b"{}"

    # -- scratch stores -------------------------------------------------------------------------
    def test_scratch_store_replaces_and_deletes(self, scratch: ObjectStore) -> None:
        assert not scratch.write_once
        scratch.put("cold/seg", b"v1")
        scratch.put("cold/seg", b"v2")
        assert scratch.get("cold/seg") == b"v2"
        scratch.delete("cold/seg")
        assert not scratch.exists("cold/seg")
        scratch.delete("cold/seg")  # deleting a missing object is a no-op
        assert scratch.list("cold/") == []

    # -- missing objects, listing, bad keys -------------------------------------------------------
    def test_missing_object(self, store: ObjectStore) -> None:
        assert not store.exists("nope/missing")
        with pytest.raises(ObjectNotFound) as err:
            store.get("nope/missing")
        assert "nope/missing" in err.value.message
        with pytest.raises(ObjectNotFound):
            store.size("nope/missing")

    def test_list_is_sorted_and_filtered_by_prefix(self, store: ObjectStore) -> None:
        for key in ("b/2", "a/1", "b/10", "b/1", "c"):
            store.put(key, key.encode())
        assert store.list() == ["a/1", "b/1", "b/10", "b/2", "c"]
        assert store.list("b/") == ["b/1", "b/10", "b/2"]
        assert store.list("b/1") == ["b/1", "b/10"]
        assert store.list("zzz") == []

    def test_list_start_after_returns_only_the_later_keys(self, store: ObjectStore) -> None:
        """What an incremental reader (the ledger verify's witness step) relies on: every key
        after the mark, none at or before it, in folders the adapter skips or not."""
        keys = ["a/1", "b/1", "b/10", "b/2", "b/x/y", "c"]
        for key in keys:
            store.put(key, key.encode())
        for mark in ("", "a", "a/1", "b/", "b/1", "b/w", "b/x/", "b/x/y", "b/y", "c", "d"):
            assert store.list(start_after=mark) == [k for k in keys if k > mark], mark
        assert store.list("b/", start_after="b/10") == ["b/2", "b/x/y"]
        assert store.list("b/x/", start_after="b/") == ["b/x/y"]
        assert store.list("a/", start_after="b/1") == []

    @pytest.mark.parametrize("bad", ["", "/abs", "a//b", "a/../b", "./a", "a/", "a\\b", "a\x00b"])
    def test_invalid_keys_are_refused(self, store: ObjectStore, bad: str) -> None:
        with pytest.raises(InvalidInput) as err:
            store.put(bad, b"x")
        assert "key" in err.value.message
        with pytest.raises(InvalidInput):
            store.get(bad)
        with pytest.raises(InvalidInput):
            store.exists(bad)
