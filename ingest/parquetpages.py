"""The page sizes a Parquet file's column chunks declare, read before Arrow decodes any.

Arrow decompresses a data page whole, to the size its page header states (up to 2 GB, an
i32), and a row group's reader holds the current page of every column at once. A page of
plain-encoded strings compresses about 1000 times with gzip, so a 1 MB upload of three string
columns in one page each grew the process by 1.1 GB before the record limit refused its first
batch, and tens of such columns (a file of tens of MB) ask for more memory than the host has:
the batch checks of ``ingest.files.parquet_batches`` see a batch only after its pages are
decoded. ``check_pages`` walks each column chunk's page headers (Thrift compact protocol,
``PageHeader`` of parquet.thrift: field 2 ``uncompressed_page_size``, field 3
``compressed_page_size``) and refuses a row group whose columns' largest pages add up to more
than ``PAGES_BYTES``, and a chunk whose page headers do not parse (the footer points elsewhere,
or the file is cut).
"""

from __future__ import annotations

from typing import Any

PAGES_BYTES = 512 << 20  # Arrow writes 1 MB pages; one row group's columns' pages together


class PagesTooLarge(ValueError):
    """A row group's pages decode to more than ``PAGES_BYTES`` at once, or do not parse."""


class _Thrift:
    """Thrift compact protocol values read from a binary file, from its current position."""

    def __init__(self, f: Any) -> None:
        self.f = f

    def byte(self) -> int:
        b = self.f.read(1)
        if not b:
            raise PagesTooLarge("a page header runs past the end of the file")
        return int(b[0])

    def varint(self) -> int:
        shift = out = 0
        while True:
            b = self.byte()
            out |= (b & 0x7F) << shift
            if not b & 0x80:
                return out
            shift += 7
            if shift > 70:
                raise PagesTooLarge("a page header holds a malformed varint")

    def zigzag(self) -> int:
        n = self.varint()
        return (n >> 1) ^ -(n & 1)

    def skip(self, kind: int, depth: int = 0) -> None:
        if depth > 32:
            raise PagesTooLarge("a page header nests too deeply")
        if kind in (1, 2):  # a bool field: its value is the type
            return
        if kind == 3:
            self.byte()
        elif kind in (4, 5, 6):
            self.varint()
        elif kind == 7:
            self._skip_bytes(8)
        elif kind == 8:
            self._skip_bytes(self.varint())
        elif kind in (9, 10):
            head = self.byte()
            size = head >> 4 if head >> 4 != 15 else self.varint()
            for _ in range(size):
                if head & 0x0F in (1, 2):  # bools in a list: one byte each
                    self.byte()
                else:
                    self.skip(head & 0x0F, depth + 1)
        elif kind == 11:
            size = self.varint()
            if size:
                kv = self.byte()
                for _ in range(size):
                    self.skip(kv >> 4, depth + 1)
                    self.skip(kv & 0x0F, depth + 1)
        elif kind == 12:
            self.struct(depth + 1)
        else:
            raise PagesTooLarge(f"a page header holds an unknown Thrift type {kind}")

    def _skip_bytes(self, n: int) -> None:
        if len(self.f.read(n)) != n:
            raise PagesTooLarge("a page header runs past the end of the file")

    def struct(self, depth: int = 0, want: tuple[int, ...] = ()) -> dict[int, int]:
        """Skip a struct, giving the integer fields ``want``."""
        got: dict[int, int] = {}
        last = 0
        while True:
            head = self.byte()
            if head == 0:
                return got
            kind = head & 0x0F
            last = last + (head >> 4) if head >> 4 else self.zigzag()
            if last in want and kind in (4, 5, 6):
                got[last] = self.zigzag()
            else:
                self.skip(kind, depth)


def check_pages(f: Any, metadata: Any) -> None:
    """Raise ``PagesTooLarge`` if a row group's columns' largest pages add up to more than
    ``PAGES_BYTES`` or a column chunk's page headers do not parse; ``f`` is the file (its
    position is changed). Where the pages end against the footer's size is Arrow's to check
    (older writers got that size wrong)."""
    for g in range(metadata.num_row_groups):
        group = metadata.row_group(g)
        at_once = 0
        for c in range(group.num_columns):
            chunk = group.column(c)
            # 0 (the file's magic) or None: no such page (a chunk of no rows has only its
            # dictionary page, and a data page offset of 0)
            starts = [o for o in (chunk.data_page_offset, chunk.dictionary_page_offset) if o]
            if not starts:
                continue
            pos = min(starts)
            end = pos + chunk.total_compressed_size
            widest = 0
            f.seek(pos)
            reader = _Thrift(f)
            while pos < end:
                sizes = reader.struct(want=(2, 3))
                if 2 not in sizes or 3 not in sizes or min(sizes[2], sizes[3]) < 0:
                    raise PagesTooLarge(
                        f"a page header of row group {g}, column {chunk.path_in_schema!r} has "
                        "no sizes"
                    )
                widest = max(widest, sizes[2])
                pos = f.tell() + sizes[3]
                f.seek(pos)
            at_once += widest
        if at_once > PAGES_BYTES:
            raise PagesTooLarge(
                f"row group {g}'s columns hold pages that decode to {at_once} bytes at once, more "
                f"than {PAGES_BYTES} (a compression bomb, or pages far larger than Parquet writers "
                "make): write it with smaller pages or fewer columns per file"
            )
