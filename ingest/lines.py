"""Lines of a text file as one buffer and offsets: the JSON lines and CSV readers' batches.

A ``Lines`` holds lines without their ends as ``data`` (the lines joined by ``\\n``) and where
each starts and ends in it, with each line's number in the file: what the readers gave before as
a list of ``(number, bytes)`` pairs (``pairs()`` still gives it, for the per-record path), built
from a block of the file by a few C-level passes (``block``) instead of a Python object per line.
Arrow's readers take ``data`` whole, and only the lines the columnar path cannot vouch for are
made ``bytes`` objects of their own (``line``).

A line the reader gave cut (``files._CutLine``: over the record limit, with the whole line's size
and digest) is kept as that object in ``cut``; its first bytes are in ``data`` as any line's.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

I64 = npt.NDArray[np.int64]
_WS = b" \t\n\r\x0b\x0c"  # what ``bytes.strip()`` strips
_IS_WS = np.zeros(256, dtype=np.bool_)
_IS_WS[list(_WS)] = True


class Lines:
    """Numbered lines: line ``i`` is ``data[starts[i]:ends[i]]``, numbered ``numbers[i]``, and
    ``data`` is exactly ``b"\\n".join`` of the lines (``ends[i] + 1 == starts[i + 1]``)."""

    __slots__ = ("cut", "data", "ends", "numbers", "starts")

    def __init__(
        self, data: bytes, starts: I64, ends: I64, numbers: I64, cut: Mapping[int, bytes] = {}
    ) -> None:
        self.data, self.starts, self.ends, self.numbers = data, starts, ends, numbers
        self.cut = cut

    @classmethod
    def of(cls, pairs: Sequence[tuple[int, bytes]]) -> Lines:
        """The lines of ``(number, line)`` pairs (a line may be a ``_CutLine``, kept as such)."""
        texts = [raw for _, raw in pairs]
        numbers = np.fromiter((n for n, _ in pairs), dtype=np.int64, count=len(pairs))
        cut = {i: raw for i, raw in enumerate(texts) if type(raw) is not bytes}
        return cls.texts(texts, numbers, cut)

    @classmethod
    def texts(
        cls, texts: Sequence[bytes], numbers: I64 | None = None, cut: Mapping[int, bytes] = {}
    ) -> Lines:
        """Lines from their texts (numbered from 1 unless ``numbers`` are given)."""
        n = len(texts)
        lens = np.fromiter(map(len, texts), dtype=np.int64, count=n)
        ends = np.cumsum(lens + 1) - 1
        starts = ends - lens
        if numbers is None:
            numbers = np.arange(1, n + 1, dtype=np.int64)
        return cls(b"\n".join(texts), starts, ends, numbers, cut)

    @classmethod
    def block(cls, region: bytes, first: int) -> Lines:
        """Every line of ``region`` (split at ``\\n``, trailing CRs stripped, blank lines
        included), numbered from ``first``."""
        if b"\r" in region and _native_strip is not None and type(region) is bytes:
            # One native pass (csv_rows.rs), ~6x the passes below, which it equals.
            region = _native_strip(region)
        elif b"\r" in region:
            # A CR stays only inside a line: the ones before a line end go, however many (one
            # C-level pass for the usual single CR; a longer run in one numpy pass, linear: a
            # replace per CR of a run would be quadratic in a crafted line of CRs).
            region = region.replace(b"\r\n", b"\n")
            if b"\r\n" in region:
                region = _without_trailing_crs(region)
            region = region.rstrip(b"\r")  # the last line's (no ``\n`` after it)
        starts = line_starts(region)
        ends = np.empty(len(starts), dtype=np.int64)
        ends[:-1] = starts[1:]
        ends[:-1] -= 1  # each line's ``\n``
        ends[-1] = len(region)
        numbers = np.arange(first, first + len(starts), dtype=np.int64)
        return cls(region, starts, ends, numbers)

    def __len__(self) -> int:
        return len(self.starts)

    def __getitem__(self, cut: slice) -> Lines:
        """The lines ``cut`` selects (a slice without a step)."""
        a, b, step = cut.indices(len(self))
        assert step == 1, "Lines are sliced without a step"
        if b <= a:
            return _EMPTY
        if a == 0 and b == len(self):
            return self
        lo, hi = int(self.starts[a]), int(self.ends[b - 1])
        cuts = {i - a: raw for i, raw in self.cut.items() if a <= i < b} if self.cut else {}
        return Lines(
            self.data[lo:hi],
            self.starts[a:b] - lo,
            self.ends[a:b] - lo,
            self.numbers[a:b],
            cuts,
        )

    def line(self, i: int) -> bytes:
        """Line ``i`` as the line-by-line reader gave it."""
        found = self.cut.get(i) if self.cut else None
        if found is not None:
            return found
        return self.data[int(self.starts[i]) : int(self.ends[i])]

    def number(self, i: int) -> int:
        return int(self.numbers[i])

    def pairs(self) -> list[tuple[int, bytes]]:
        """``(number, line)`` of every line, as the line-by-line readers give them."""
        return [(self.number(i), self.line(i)) for i in range(len(self))]

    def lengths(self) -> I64:
        return self.ends - self.starts

    def nonblank(self) -> Lines:
        """The lines that are not only whitespace (``bytes.strip``); a cut line is never blank
        here (the readers give a blank cut line only where it counts as blank: not at all)."""
        n = len(self)
        if not n:
            return self
        a = np.frombuffer(self.data, dtype=np.uint8)
        # A line whose first byte is not whitespace is not blank: one pass over the first
        # bytes; only the others (empty, or opening with whitespace) are looked at one by one.
        lens = self.lengths()
        first = a[np.minimum(self.starts, max(len(a) - 1, 0))] if len(a) else np.zeros(n, np.uint8)
        maybe = np.flatnonzero((lens == 0) | _IS_WS[first])
        if not len(maybe):
            return self
        cut = self.cut
        blank = [
            i
            for i in maybe.tolist()
            if i not in cut and not self.data[int(self.starts[i]) : int(self.ends[i])].strip()
        ]
        if not blank:
            return self
        keep = np.ones(n, dtype=np.bool_)
        keep[blank] = False
        return self.take(np.flatnonzero(keep))

    def take(self, idx: I64) -> Lines:
        """The lines at ``idx`` (ascending), joined anew."""
        at = idx.tolist()
        cut = self.cut
        texts = [self.line(i) for i in at]
        cuts = {k: texts[k] for k, i in enumerate(at) if i in cut} if cut else {}
        return Lines.texts(texts, self.numbers[idx], cuts)

    def joined(self, idx: Sequence[int] | I64 | None = None) -> bytes:
        """The lines at ``idx`` (ascending; all when None) each followed by ``\\n``: what
        ``b"\\n".join(lines) + b"\\n"`` gives, by one numpy selection of bytes."""
        n = len(self)
        if idx is None or len(idx) == n:
            return self.data + b"\n"
        if not len(idx):
            return b""
        # Only the span from the first line asked for to the last is looked at: the columnar
        # reader halves a refused batch down to single lines, and a mask over the whole body
        # per call made a body of bad lines cost its size times its line count.
        at = np.asarray(idx, dtype=np.int64)
        first, last = int(at[0]), int(at[-1])
        lo, hi = int(self.starts[first]), int(self.ends[last])
        if last - first + 1 == len(at):  # consecutive lines: one slice
            return self.data[lo:hi] + b"\n"
        keep = np.zeros(last - first + 1, dtype=np.bool_)
        keep[at - first] = True
        a = np.frombuffer(self.data[lo:hi] + b"\n", dtype=np.uint8)
        # each line and its ``\n``
        return a[
            np.repeat(keep, self.ends[first : last + 1] - self.starts[first : last + 1] + 1)
        ].tobytes()

    @staticmethod
    def concat(parts: Sequence[Lines]) -> Lines:
        parts = [p for p in parts if len(p)]
        if not parts:
            return _EMPTY
        if len(parts) == 1:
            return parts[0]
        shifts = np.cumsum([0] + [len(p.data) + 1 for p in parts[:-1]])
        sizes = np.cumsum([0] + [len(p) for p in parts[:-1]])
        cut: dict[int, bytes] = {}
        for p, k in zip(parts, sizes.tolist(), strict=True):
            for i, raw in p.cut.items():
                cut[i + k] = raw
        return Lines(
            b"\n".join(p.data for p in parts),
            np.concatenate([p.starts + s for p, s in zip(parts, shifts, strict=True)]),
            np.concatenate([p.ends + s for p, s in zip(parts, shifts, strict=True)]),
            np.concatenate([p.numbers for p in parts]),
            cut,
        )


def _load_strip() -> Any:
    try:
        import hub_native
    except ImportError:  # not built: the replace and numpy passes
        return None
    return getattr(hub_native, "without_trailing_crs", None)


_native_strip = _load_strip()


def _load_line_starts() -> Any:
    try:
        import hub_native
    except ImportError:  # not built: the numpy pass
        return None
    return getattr(hub_native, "line_starts", None)


_native_line_starts = _load_line_starts()


def line_starts(region: bytes) -> I64:
    """0 and the offset after every ``\n`` of ``region``: one native memchr walk
    (line_ends.rs), or the numpy reference, whose ``a == 10`` is a temporary as long as the
    region (a fresh 4 MiB block: its page faults cost more than the scan)."""
    if _native_line_starts is not None and type(region) is bytes:
        return np.frombuffer(_native_line_starts(region), dtype="<i8")
    nl = np.flatnonzero(np.frombuffer(region, dtype=np.uint8) == 0x0A)
    starts = np.empty(len(nl) + 1, dtype=np.int64)
    starts[0] = 0
    starts[1:] = nl + 1
    return starts


def _without_trailing_crs(region: bytes) -> bytes:
    """``region`` with every CR that only CRs follow up to its line's end (a ``\\n``, or the
    region's end) removed: ``rstrip(b"\\r")`` of each line, in numpy passes."""
    a = np.frombuffer(region, dtype=np.uint8)
    n = len(a)
    is_cr = a == 0x0D
    # The first position at or after each byte that is not a CR (n: none is left).
    after = np.minimum.accumulate(np.where(is_cr, n, np.arange(n))[::-1])[::-1]
    trailing = is_cr & (np.append(a, np.uint8(0x0A))[after] == 0x0A)
    return bytes(a[~trailing].tobytes())


def batches(pieces: Iterable[Lines], batch_size: int) -> Iterator[Lines]:
    """Batches of ``batch_size`` lines (the last one shorter) of the ``Lines`` pieces, in
    order; a batch is given once it is full, as the line-by-line readers gave them. A batch
    within one piece is a slice of it; only one that spans pieces is joined (``concat``):
    joining each whole piece to the last one's rest first copied every byte twice more."""
    pending: list[Lines] = []  # the start of the next batch, from the pieces before
    count = 0
    for piece in pieces:
        n = len(piece)
        if not n:
            continue
        at = 0
        if count:
            at = min(batch_size - count, n)
            pending.append(piece[:at])
            count += at
            if count < batch_size:
                continue
            yield Lines.concat(pending)
            pending, count = [], 0
        while n - at >= batch_size:
            yield piece[at : at + batch_size]
            at += batch_size
        if at < n:
            pending, count = [piece[at:]], n - at
    if pending:
        yield Lines.concat(pending)


_EMPTY = Lines(b"", np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int64))
