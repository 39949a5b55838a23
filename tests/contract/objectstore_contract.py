"""The ObjectStore contract (``core/ports/objectstore.py``): one suite, run against every adapter.

Adapter-agnostic: subclasses provide ``store`` (an empty write-once store) and ``mutable`` (an
empty store with ``write_once`` false) of their adapter, nothing else; an adapter that has no
mutable mode skips ``mutable`` with its reason.
"""

from __future__ import annotations

import threading

import pytest

from core.errors import InvalidInput
from core.ports.objectstore import ObjectExists, ObjectNotFound, ObjectStore


class ObjectStoreContract:
    """Not collected itself (no ``Test`` prefix); subclass it once per adapter."""

    def test_put_get_exists(self, store: ObjectStore) -> None:
        assert not store.exists("a/b.note")
        store.put("a/b.note", b"\x00bytes\xff")
        assert store.exists("a/b.note")
        assert store.get("a/b.note") == b"\x00bytes\xff"
        store.put("empty", b"")
        assert store.get("empty") == b""

    def test_a_missing_object(self, store: ObjectStore) -> None:
        with pytest.raises(ObjectNotFound, match="nope"):
            store.get("nope")
        assert not store.exists("nope")

    def test_write_once_refuses_a_replacement(self, store: ObjectStore) -> None:
        assert store.write_once
        store.put("k", b"one")
        with pytest.raises(ObjectExists):
            store.put("k", b"two")
        with pytest.raises(ObjectExists):
            store.put("k", b"one")  # identical bytes too
        assert store.get("k") == b"one"

    def test_put_if_absent(self, store: ObjectStore) -> None:
        assert store.put_if_absent("k", b"first")
        assert not store.put_if_absent("k", b"second")
        assert store.get("k") == b"first"

    def test_racing_put_if_absent_has_one_winner(self, store: ObjectStore) -> None:
        wins: list[int] = []
        start = threading.Barrier(8)

        def race(i: int) -> None:
            start.wait()
            if store.put_if_absent("race", b"%d" % i):
                wins.append(i)

        threads = [threading.Thread(target=race, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert len(wins) == 1
        assert store.get("race") == b"%d" % wins[0]

    def test_list_by_prefix_sorted(self, store: ObjectStore) -> None:
        for key in ("checkpoints/002.note", "checkpoints/001.note", "evidence/x.zip", "c"):
            store.put(key, key.encode())
        assert store.list() == [
            "c",
            "checkpoints/001.note",
            "checkpoints/002.note",
            "evidence/x.zip",
        ]
        assert store.list("checkpoints/") == ["checkpoints/001.note", "checkpoints/002.note"]
        assert store.list("none/") == []

    @pytest.mark.parametrize("key", ["", "/a", "a/", "a//b", "a/../b", "./a", "a\\b", "a\x00"])
    def test_invalid_keys_are_refused(self, store: ObjectStore, key: str) -> None:
        with pytest.raises(InvalidInput, match="invalid"):
            store.put(key, b"x")
        with pytest.raises(InvalidInput):
            store.get(key)

    def test_a_mutable_store_replaces(self, mutable: ObjectStore) -> None:
        assert not mutable.write_once
        mutable.put("k", b"one")
        mutable.put("k", b"two")
        assert mutable.get("k") == b"two"
        assert not mutable.put_if_absent("k", b"three")
        assert mutable.list() == ["k"]
