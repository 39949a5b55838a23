"""The Parquet decoder, run in a process of its own: ``python -m ingest.parquet_child``.

pyarrow 16.1.0 crashes the process (SIGSEGV, or an abort on ``std::bad_array_new_length``) on
some damaged files: one byte changed in a 3 KB file was enough, inside ``iter_batches``, with no
exception to catch (docs/benchmarks/s19-redteam-hostile.md). Decoding in the hub's own process
let any uploaded or dropped file take the hub down. ``ingest.files.parquet_batches`` therefore
starts this module as a child, hands it the opened file's descriptor, and reads the decoded
record batches back as an Arrow IPC stream on the child's stdout; a child that dies is one
refused file, not a dead hub.

Protocol (the parent is the only caller): ``argv[1]`` the descriptor (inherited, read from its
start), ``argv[2]`` JSON of the name and bounds (passed rather than read here, so the parent's
values are the ones applied). stdout: one IPC stream, the batches in file order (an empty
schema when there are none). A refusal (``FileUnreadable``) is written as one JSON line
``{"refused": message}`` on stderr and the exit status is ``REFUSED``; the batches streamed
before it stay the parent's, as when the reader ran in-process.

The reader itself (``read_batches``) is the same as before it moved here: the page walk of
``ingest.parquetpages`` before any page is decoded, batch rows cut for dictionary bombs, each
batch's decoded size checked against the record limit and the file's expansion limit.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from typing import Any

from ingest import parquetpages
from ingest.localfile import FileUnreadable
from ingest.parquetpages import PagesTooLarge, check_pages

REFUSED = 3  # exit status of a file refused with a message (Python itself exits 1 or 2)

PARQUET_EXPANSION = 1024  # decoded bytes allowed per byte of a Parquet file (beyond the floor)
PARQUET_FLOOR = 64 << 20  # decoded bytes any Parquet file may give, however small


def _decoded_bytes(rb: Any) -> int:
    """The bytes of a record batch once its dictionary columns are decoded: ``nbytes`` (a sum
    over the buffers), except that a dictionary column (a file that stored its Arrow schema)
    counts each row's value, not the dictionary once."""
    import pyarrow as pa
    import pyarrow.compute as pc

    total = rb.nbytes
    for column in rb.columns:
        if pa.types.is_dictionary(column.type):
            values = column.dictionary
            if pa.types.is_string(values.type) or pa.types.is_binary(values.type):
                per = pc.binary_length(values)
            else:
                per = pa.array([values.type.bit_width // 8 or 1] * len(values), pa.int64())
            total += pc.sum(pc.take(per, column.indices)).as_py() or 0
    return int(total)


PARQUET_BATCH_BYTES = 64 << 20  # most bytes one batch of a file's widest values may decode to


def _parquet_batch_rows(f: Any, pf: Any, batch_size: int, allowed: int, max_bytes: int) -> int:
    """Rows per batch such that a batch whose every row holds each string column's widest
    dictionary value decodes to at most ``PARQUET_BATCH_BYTES``: ``batch_size`` for an ordinary
    file, fewer for a dictionary bomb (one 1 MB value behind 10,000 rows made 10 GB).

    Each row group's dictionaries are read as they are stored (``read_dictionary``: the
    dictionary page, not one copy per row) from its first row of the string and binary
    columns, and their longest value measured. A column chunk stored without a dictionary
    (plain pages) has no such spike: a page decodes to its own stated size, which Arrow checks.

    When rows times those widest values could pass ``allowed`` (the file's expansion limit),
    the string columns' exact decoded size is summed first, still as stored (indices and one
    dictionary), and a file over ``allowed`` is refused (``ParquetTooLarge``) before any batch
    is given: smaller batches must not let a bomb's first rows in before it is seen."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    def stringy(t: Any) -> bool:
        return bool(
            pa.types.is_string(t)
            or pa.types.is_large_string(t)
            or pa.types.is_binary(t)
            or pa.types.is_large_binary(t)
        )

    names = [
        fld.name
        for fld in pf.schema_arrow
        if stringy(fld.type) or (pa.types.is_dictionary(fld.type) and stringy(fld.type.value_type))
    ]
    if not names:
        return batch_size
    probe = pq.ParquetFile(f, read_dictionary=names)
    rows = batch_size
    most = 0  # rows times the widest values, summed over the row groups
    for group in range(pf.num_row_groups):
        first = next(probe.iter_batches(batch_size=1, row_groups=[group], columns=names), None)
        if first is None:
            continue
        widest = 0
        for column in first.columns:
            values = column.dictionary if pa.types.is_dictionary(column.type) else column
            if len(values):
                widest += pc.max(pc.binary_length(values)).as_py() or 0
        rows = min(rows, max(1, PARQUET_BATCH_BYTES // max(widest, 1)))
        most += widest * pf.metadata.row_group(group).num_rows
    if most > allowed:
        total = 0
        for rb in probe.iter_batches(batch_size=rows, columns=names):
            nbytes = _decoded_bytes(rb)
            total += nbytes
            if nbytes > max_bytes * max(rb.num_rows, 1) or total > allowed:
                raise ParquetTooLarge(nbytes, rb.num_rows, total)
    return rows


class ParquetTooLarge(Exception):
    """A batch of a Parquet file, or the file so far, decodes past its limits."""

    def __init__(self, nbytes: int, rows: int, total: int) -> None:
        super().__init__(nbytes, rows, total)
        self.nbytes, self.rows, self.total = nbytes, rows, total


def _parquet_refusal(
    name: str, size: int, allowed: int, max_bytes: int, exc: ParquetTooLarge
) -> FileUnreadable:
    per_row = exc.nbytes > max_bytes * max(exc.rows, 1)
    return FileUnreadable(
        f"Parquet file {name!r} ({size} bytes) decodes to more than "
        + (
            f"{max_bytes} bytes per row, the record limit (HUB_MAX_RECORD_BYTES), in a batch "
            f"of {exc.rows} rows ({exc.nbytes} bytes)"
            if per_row
            else f"{allowed} bytes ({PARQUET_FLOOR} plus {PARQUET_EXPANSION}x its size)"
        )
        + ": a dictionary or compression bomb, or a file to split into smaller ones."
    )


def read_batches(f: Any, name: str, batch_size: int, max_bytes: int | None = None) -> Iterator[Any]:
    """Arrow record batches of the Parquet file ``f``, decoded in this process (the child's).

    With ``max_bytes`` (the record limit) the decoded size of each batch is checked as it comes
    (``RecordBatch.nbytes``: a sum over the column buffers, not a pass over the values), and the
    file is refused once (a) a batch decodes to more than ``max_bytes`` per row, or (b) all
    batches so far decode to more than ``PARQUET_FLOOR + PARQUET_EXPANSION`` times the file's
    size. A dictionary or compression bomb (a 551-byte file decoding to 100 MB: one 100 KB
    dictionary value repeated) is refused at its first batch instead of being ingested whole;
    the footer's sizes are not used, since the writer can make them up. The one batch that
    reveals a bomb is bounded as well: batches are first cut so that one batch of each string
    column's widest dictionary value stays within ``PARQUET_BATCH_BYTES``
    (``_parquet_batch_rows``); an ordinary file keeps ``batch_size``.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(f)
    except (pa.ArrowException, OSError) as exc:
        raise FileUnreadable(
            f"{name!r} is not a readable Parquet file ({exc}); it may be truncated: re-export it."
        ) from exc
    size = os.fstat(f.fileno()).st_size
    allowed = PARQUET_FLOOR + PARQUET_EXPANSION * size
    try:  # before any page is decoded: Arrow inflates a page whole, every column's at once
        check_pages(f, pf.metadata)
    except PagesTooLarge as exc:
        raise FileUnreadable(f"Parquet file {name!r} ({size} bytes): {exc}.") from None
    decoded = 0
    try:
        if max_bytes is not None:
            try:
                batch_size = _parquet_batch_rows(f, pf, batch_size, allowed, max_bytes)
            except ParquetTooLarge as exc:
                raise _parquet_refusal(name, size, allowed, max_bytes, exc) from None
        for rb in pf.iter_batches(batch_size=batch_size):
            if max_bytes is not None:
                nbytes = _decoded_bytes(rb)
                decoded += nbytes
                if nbytes > max_bytes * max(rb.num_rows, 1) or decoded > allowed:
                    raise _parquet_refusal(
                        name,
                        size,
                        allowed,
                        max_bytes,
                        ParquetTooLarge(nbytes, rb.num_rows, decoded),
                    )
            yield rb
    except (pa.ArrowException, OSError) as exc:
        raise FileUnreadable(f"Reading Parquet file {name!r} failed: {exc}.") from exc


def bounds() -> dict[str, int]:
    """The bounds as the parent holds them now (tests lower them; the child must see that)."""
    return {
        "pages_bytes": parquetpages.PAGES_BYTES,
        "batch_bytes": PARQUET_BATCH_BYTES,
        "expansion": PARQUET_EXPANSION,
        "floor": PARQUET_FLOOR,
    }


def main(argv: list[str]) -> int:
    import pyarrow as pa

    global PARQUET_BATCH_BYTES, PARQUET_EXPANSION, PARQUET_FLOOR
    fd = int(argv[1])
    args = json.loads(argv[2])
    parquetpages.PAGES_BYTES = int(args["pages_bytes"])
    PARQUET_BATCH_BYTES = int(args["batch_bytes"])
    PARQUET_EXPANSION = int(args["expansion"])
    PARQUET_FLOOR = int(args["floor"])
    max_bytes = None if args["max_bytes"] is None else int(args["max_bytes"])
    out = os.fdopen(os.dup(1), "wb")
    writer = None
    try:
        with os.fdopen(fd, "rb") as f:
            for rb in read_batches(f, str(args["name"]), int(args["batch_size"]), max_bytes):
                if writer is None:
                    writer = pa.ipc.new_stream(out, rb.schema)
                writer.write_batch(rb)
                out.flush()  # the parent works on this batch while the next one decodes
    except FileUnreadable as exc:
        if writer is not None:
            writer.close()
        out.close()
        sys.stderr.write("\n" + json.dumps({"refused": exc.message}) + "\n")
        sys.stderr.flush()
        return REFUSED
    if writer is None:
        writer = pa.ipc.new_stream(out, pa.schema([]))
    writer.close()
    out.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
