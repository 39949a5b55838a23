"""The ObjectStore contract on the local folder adapter (the embedded default)."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from adapters.local_objectstore import LocalObjectStore
from core.ports.objectstore import ObjectStore
from tests.contract.objectstore_contract import MakeStore, ObjectStoreContract


class TestLocalObjectStore(ObjectStoreContract):
    @pytest.fixture
    def make_store(self, tmp_path: Path) -> MakeStore:
        def make(*, write_once: bool = True) -> ObjectStore:
            root = tmp_path / ("once" if write_once else "scratch")
            return LocalObjectStore(root, write_once=write_once)

        return make

    def test_write_once_files_are_read_only(self, store: ObjectStore) -> None:
        assert isinstance(store, LocalObjectStore)
        store.put("a/b", b"x")
        mode = stat.S_IMODE((store.root / "a" / "b").stat().st_mode)
        assert mode & 0o222 == 0
