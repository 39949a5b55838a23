"""``ingest.files._jsonl_lines`` reads JSON lines files by blocks of lines; it gives exactly the
batches of the line-by-line reference (numbered lines, ends stripped, blank lines skipped, runs
of ``batch_size``) on random files with blank, whitespace-only and CR lines."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path

import pytest

from ingest import files


def reference(path: Path, batch_size: int) -> Iterator[list[tuple[int, bytes]]]:
    """The line-by-line reader the block reader replaced."""
    with path.open("rb") as f:
        numbered = ((n, line.rstrip(b"\r\n")) for n, line in enumerate(f, 1))
        yield from files._nonblank_batches(numbered, batch_size)


PIECES = [b'{"a": 1}', b"", b" ", b"\t", b"\r", b"\r\r", b"\x0b\x0c", b'{"b": "x y"}  ', b"\xff"]


@pytest.mark.parametrize("seed", range(30))
def test_random_files_give_the_references_batches(
    seed: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = random.Random(seed)
    lines = [rng.choice(PIECES) + rng.choice([b"", b"\r"]) for _ in range(rng.randrange(0, 400))]
    data = b"\n".join(lines) + rng.choice([b"", b"\n", b"\r\n", b"\n\n"])
    path = tmp_path / "f.jsonl"
    path.write_bytes(data)
    # small blocks: batches and blank lines straddle block ends
    monkeypatch.setattr(files, "_LINES_BLOCK_BYTES", rng.choice([1, 7, 64, 1 << 22]))
    size = rng.choice([1, 2, 3, 10, 64, 1000])
    assert list(files._jsonl_lines(path, size)) == list(reference(path, size))


def test_an_empty_file_gives_no_batch(tmp_path: Path) -> None:
    path = tmp_path / "f.jsonl"
    path.write_bytes(b"")
    assert list(files._jsonl_lines(path, 10)) == []
