"""``ingest.lines.Lines`` (lines as one buffer and offsets) gives what the lists of lines gave.

Random regions with blank, whitespace-only, CR-ended and empty lines: ``Lines.block`` +
``nonblank`` equals ``split`` + ``rstrip`` + ``strip``; slices, ``joined`` (Arrow's input) and
``concat`` equal the list operations; ``batches`` cuts runs as the line readers did; and the
CSV block reader (``files._csv_pieces``) gives the rows of the line-by-line loop (quotes open
over lines, CRs, blank rows, any block size).
"""

from __future__ import annotations

import io
import random
from pathlib import Path

import numpy as np
import pytest

from ingest import files
from ingest.lines import Lines, batches

PIECES = [b'{"a": 1}', b"", b" ", b"\t", b"\r", b"\r\r", b"\x0b\x0c", b" x", b"x,y", b"\xff"]


def _region(rng: random.Random) -> bytes:
    return b"\n".join(
        rng.choice(PIECES) + rng.choice([b"", b"\r", b"\r\r"]) for _ in range(rng.randrange(1, 60))
    )


@pytest.mark.parametrize("seed", range(40))
def test_lines_equal_the_list_operations(seed: int) -> None:
    rng = random.Random(seed)
    region = _region(rng)
    first = rng.randrange(1, 100)
    every = [(first + i, x.rstrip(b"\r")) for i, x in enumerate(region.split(b"\n"))]
    lines = Lines.block(region, first)
    assert lines.pairs() == every
    want = [(n, x) for n, x in every if x.strip()]
    kept = lines.nonblank()
    assert kept.pairs() == want
    assert kept.data == b"\n".join(x for _, x in want)
    a, b = sorted(rng.randrange(0, len(want) + 1) for _ in range(2))
    assert kept[a:b].pairs() == want[a:b]
    idx = sorted(rng.sample(range(len(want)), rng.randrange(0, len(want) + 1)))
    assert kept.joined(idx) == b"".join(want[i][1] + b"\n" for i in idx)
    assert kept.joined() == b"".join(x + b"\n" for _, x in want)
    other = Lines.block(_region(rng), 1000).nonblank()
    both = Lines.concat([kept, other])
    assert both.pairs() == want + other.pairs()
    assert both.data == b"\n".join(x for _, x in both.pairs())
    size = rng.choice([1, 2, 3, 7, 100])
    got = [b.pairs() for b in batches([kept, other, kept[a:b]], size)]
    flat = want + other.pairs() + want[a:b]
    assert got == [flat[i : i + size] for i in range(0, len(flat), size)]


def test_cut_lines_stay_their_objects() -> None:
    cut = files._cut(b"x" * 50, 10)
    lines = Lines.of([(1, b"a"), (2, cut), (3, b"b")])
    assert lines.line(1) is cut and lines[1:].line(0) is cut
    assert Lines.concat([Lines.of([(0, b"z")]), lines]).line(2) is cut
    assert np.array_equal(lines.numbers, [1, 2, 3])


def _csv_rows_by_line(data: bytes, max_bytes: int) -> list[tuple[int, bytes]]:
    """The line loop the block reader replaced, on whole lines (no cut line)."""
    out = []
    parts: list[bytes] = []
    start = 0
    for lineno, raw in enumerate(io.BytesIO(data), 1):
        line = raw[:-1] if raw.endswith(b"\n") else raw
        odd = line.count(b'"') % 2
        if not parts:
            if not odd:
                out.append((lineno, line.rstrip(b"\r")))
                continue
            start = lineno
        parts.append(line)
        if parts[1:] and odd:
            out.append((start, b"\n".join(parts).rstrip(b"\r\n")))
            parts = []
    if parts:
        out.append((start, b"\n".join(parts).rstrip(b"\r\n")))
    return out


@pytest.mark.parametrize("seed", range(30))
def test_csv_blocks_give_the_line_loops_rows(
    seed: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = random.Random(seed)
    pieces = [b"a,b,c", b"", b"  ", b'"q,1",2,3', b'"open', b'close"', b"1,2,3\r", b"x\r\r", b'""']
    data = b"\n".join(rng.choice(pieces) for _ in range(rng.randrange(0, 200)))
    data += rng.choice([b"", b"\n", b"\r\n"])
    monkeypatch.setattr(files, "_LINES_BLOCK_BYTES", rng.choice([1, 7, 64, 1 << 22]))
    path = tmp_path / "t.csv"
    path.write_bytes(data)
    got = list(files._csv_rows(path, 10**6))
    assert got == _csv_rows_by_line(data, 10**6)


def test_a_long_run_of_crs_is_stripped_in_linear_time() -> None:
    """A line of CRs (or CRs inside a line) before its end: every one before the end goes,
    in one numpy pass (a replace per CR was quadratic: 200k CRs would take minutes)."""
    import time

    region = b"a\r\rb" + b"\r" * 200_000 + b"\n" + b"\r" * 100_000 + b"c\r" * 3 + b"\n\r\r"
    started = time.process_time()
    lines = Lines.block(region, 1)
    assert time.process_time() - started < 2.0
    want = [(i + 1, x.rstrip(b"\r")) for i, x in enumerate(region.split(b"\n"))]
    assert lines.pairs() == want


@pytest.mark.parametrize("seed", range(20))
def test_batches_across_pieces_equal_the_line_lists(seed: int) -> None:
    """Batches that fall within a piece (slices) and across pieces (joined), cut lines kept as
    their objects: the same numbered lines, each batch's bytes the join of its lines."""
    rng = random.Random(seed)
    pieces, flat = [], []
    number = 1
    for _ in range(rng.randrange(0, 8)):
        pairs = []
        for _ in range(rng.choice([0, 1, 2, 5, 13, 40])):
            line = (
                files._cut(b"y" * 30, 10)
                if rng.random() < 0.1
                else rng.choice(PIECES[:1] + PIECES[7:])
            )
            pairs.append((number, line))
            number += rng.choice([1, 2])
        pieces.append(Lines.of(pairs))
        flat += pairs
    size = rng.choice([1, 2, 3, 5, 13, 40, 100])
    got = list(batches(pieces, size))
    assert [b.pairs() for b in got] == [flat[i : i + size] for i in range(0, len(flat), size)]
    for b in got:
        assert b.data == b"\n".join(
            b.data[int(s) : int(e)] for s, e in zip(b.starts, b.ends, strict=True)
        )
        for i, (_, line) in enumerate(b.pairs()):
            if type(line) is not bytes:
                assert b.line(i) is line


@pytest.mark.parametrize("seed", range(20))
def test_native_line_starts_equal_the_numpy_pass(
    seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``Lines.block``'s lines from the native memchr walk (``line_starts``) equal numpy's:
    random regions, a region of newlines only, none, one at either end, the empty region."""
    from ingest import lines as lines_module

    if lines_module._native_line_starts is None:
        pytest.skip("hub_native is not built")
    rng = random.Random(seed)
    regions = [_region(rng), b"", b"\n", b"\n" * 300, b"x" * 5000, b"\nab\n", b"a\n\nb"]
    regions.append(bytes(rng.choice(b"\n\r x") for _ in range(rng.randrange(0, 10_000))))
    for region in regions:
        got = Lines.block(region, 7)
        with monkeypatch.context() as m:
            m.setattr(lines_module, "_native_line_starts", None)
            want = Lines.block(region, 7)
        assert got.data == want.data
        for a, b in ((got.starts, want.starts), (got.ends, want.ends), (got.numbers, want.numbers)):
            assert a.dtype == b.dtype == np.int64
            assert a.tolist() == b.tolist()
