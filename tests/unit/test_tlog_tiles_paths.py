"""``audit.tiles``: the C2SP tlog-tiles path encoding and entry bundles."""

from __future__ import annotations

import pytest

from audit.tiles import (
    TilePath,
    decode_bundle,
    encode_bundle,
    encode_tile_index,
    parse_tile_index,
    parse_tile_path,
    tile_path,
)


def test_tile_index_encoding_follows_the_spec() -> None:
    assert encode_tile_index(1234067) == "x001/x234/067"
    assert encode_tile_index(0) == "000" and encode_tile_index(999) == "999"
    assert encode_tile_index(1000) == "x001/000"
    for n in (0, 7, 999, 1000, 1234067, 10**12 + 5):
        assert parse_tile_index(encode_tile_index(n).split("/")) == n


@pytest.mark.parametrize(
    "bad", [["1"], ["x1", "000"], ["001", "000"], ["x000", "001"], ["x00a", "001"], ["x001"]]
)
def test_non_canonical_indexes_are_refused(bad: list[str]) -> None:
    with pytest.raises(ValueError):
        parse_tile_index(bad)


def test_paths_round_trip() -> None:
    assert tile_path(0, 1234067) == "tile/0/x001/x234/067"
    assert tile_path(1, 5, 17) == "tile/1/005.p/17"
    assert tile_path(None, 3) == "tile/entries/003"
    assert parse_tile_path("0/x001/x234/067") == TilePath(0, 1234067, 256)
    assert parse_tile_path("2/005.p/17") == TilePath(2, 5, 17)
    assert parse_tile_path("entries/x001/000.p/255") == TilePath(None, 1000, 255)
    assert parse_tile_path("2/005.p/17").partial


@pytest.mark.parametrize(
    "bad", ["0", "01/000", "a/000", "0/000.p/0", "0/000.p/256", "0/000.p/07", "64/000", "0/0"]
)
def test_bad_paths_are_refused(bad: str) -> None:
    with pytest.raises(ValueError):
        parse_tile_path(bad)


def test_bundles_round_trip_and_refuse_truncation() -> None:
    entries = [b"", b"a", bytes(300)]
    data = encode_bundle(entries)
    assert data[:2] == b"\x00\x00" and data[2:5] == b"\x00\x01a"
    assert decode_bundle(data) == entries
    for cut in (1, len(data) - 1):
        with pytest.raises(ValueError):
            decode_bundle(data[:cut])
    with pytest.raises(ValueError):
        encode_bundle([bytes(70_000)])
