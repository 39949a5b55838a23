"""The ObjectStore contract against the local folder adapter (``adapters/local_objectstore.py``),
plus what only it has: stored files are read-only and no temporary file stays behind."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from adapters.local_objectstore import LocalObjectStore
from core.ports.objectstore import ObjectStore
from tests.contract.objectstore_contract import ObjectStoreContract


class TestLocalObjectStore(ObjectStoreContract):
    @pytest.fixture
    def store(self, tmp_path: Path) -> ObjectStore:
        return LocalObjectStore(tmp_path / "objects")

    @pytest.fixture
    def mutable(self, tmp_path: Path) -> ObjectStore:
        return LocalObjectStore(tmp_path / "mutable", write_once=False)


def test_objects_are_read_only_files_without_leftovers(tmp_path: Path) -> None:
    store = LocalObjectStore(tmp_path)
    store.put("checkpoints/1.note", b"x")
    assert not store.put_if_absent("checkpoints/1.note", b"y")
    path = tmp_path / "checkpoints" / "1.note"
    assert stat.S_IMODE(path.stat().st_mode) == 0o444
    assert [p.name for p in (tmp_path / "checkpoints").iterdir()] == ["1.note"]
