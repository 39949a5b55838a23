"""The witness folder's two layouts (``ledger.witness``): copies in 10,000-size folders, and the
flat layout of older folders, listed together from a size without losing a larger one."""

from pathlib import Path

import pytest

from adapters.local_objectstore import LocalObjectStore
from ledger.witness import key_size, legacy_key, witness_key, witnessed, witnessed_sizes

FLAT = [9_999, 10_000, 10_001, 20_000, 123_456_789]
FOLDERS = [5, 9_998, 15_000, 19_999, 123_456_788]


@pytest.fixture
def witness(tmp_path: Path) -> LocalObjectStore:
    store = LocalObjectStore(tmp_path / "witness")
    for size in FLAT:
        store.put(legacy_key(size), b"flat")
    for size in FOLDERS:
        store.put(witness_key(size), b"folder")
    return store


def test_keys_name_their_size_in_either_layout() -> None:
    assert witness_key(123_456_789) == "checkpoints/0000000000012345/00000000000123456789.note"
    for size in (0, 1, 9_999, 10_000, 123_456_789):
        assert key_size(witness_key(size)) == size
        assert key_size(legacy_key(size)) == size
    for bad in (
        "checkpoints/0000000000000001/00000000000000000042.note",
        "checkpoints/x.note",
        "checkpoints/0000000000000000/00000000000000000042.txt",
        "other/42.note",
    ):
        assert key_size(bad) is None, bad


@pytest.mark.parametrize(
    "above", [-1, 0, 5, 9_998, 9_999, 10_000, 15_000, 19_999, 20_000, 123_456_788, 123_456_789]
)
def test_listing_from_a_size_misses_no_larger_copy_of_either_layout(
    witness: LocalObjectStore, above: int
) -> None:
    everything = sorted(FLAT + FOLDERS)
    assert witnessed_sizes(witness, above=above) == [s for s in everything if s > above]


def test_a_stray_key_is_listed_by_the_full_run_only(witness: LocalObjectStore) -> None:
    witness.put("checkpoints/0000000000000000/00000000000000099999.note", b"stray")
    assert (-1, "checkpoints/0000000000000000/00000000000000099999.note") in witnessed(witness)
    assert all(size >= 0 for size, _ in witnessed(witness, above=0))
