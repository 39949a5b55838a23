"""The Parquet decoder, run in a process of its own: ``python -m ingest.parquet_child``.

pyarrow 16.1.0 crashes the process (SIGSEGV, or an abort on ``std::bad_array_new_length``) on
some damaged files: one byte changed in a 3 KB file was enough, inside ``iter_batches``, with no
exception to catch (docs/benchmarks/s19-redteam-hostile.md). Decoding in the hub's own process
let any uploaded or dropped file take the hub down. The hub therefore decodes in a child
(``ingest.parquet_pool`` starts and reuses it) and reads the decoded record batches back as an
Arrow IPC stream; a child that dies is one refused file, not a dead hub.

The child is long-lived (``serve``: one file after another over a Unix socket, a fresh pipe per
file), its data segment capped (``RLIMIT_DATA``: an allocation past the cap is a refusal naming
the cap), and the parent bounds the time it waits on each file. A refusal (``FileUnreadable``)
travels as the file's reply; the batches streamed before it stay the parent's, as when the
reader ran in-process.

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
    except pa.ArrowMemoryError:
        raise  # the memory cap, reported as such by the server loop (``_decode``)
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
    except pa.ArrowMemoryError:
        raise
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


def _apply(args: dict[str, Any]) -> None:
    """Set the bounds of one request: every request carries all of them, so nothing of the
    file before stays in force."""
    global PARQUET_BATCH_BYTES, PARQUET_EXPANSION, PARQUET_FLOOR
    parquetpages.PAGES_BYTES = int(args["pages_bytes"])
    PARQUET_BATCH_BYTES = int(args["batch_bytes"])
    PARQUET_EXPANSION = int(args["expansion"])
    PARQUET_FLOOR = int(args["floor"])


def _decode(fd: int, out_fd: int, args: dict[str, Any]) -> dict[str, Any]:
    """Decode one file (descriptor ``fd``) into one IPC stream on ``out_fd``; both are closed
    here, the stream before the reply is sent. The reply: ``ok``, or ``refused`` with the
    message (and ``retire`` when this process must not take another file)."""
    import pyarrow as pa

    _apply(args)
    max_bytes = None if args["max_bytes"] is None else int(args["max_bytes"])
    name = str(args["name"])
    reply: dict[str, Any] = {"id": args["id"], "ok": True}
    with os.fdopen(out_fd, "wb") as out, os.fdopen(fd, "rb") as f:
        writer = None
        try:
            for rb in read_batches(f, name, int(args["batch_size"]), max_bytes):
                if writer is None:
                    writer = pa.ipc.new_stream(out, rb.schema)
                writer.write_batch(rb)
                out.flush()  # the parent works on this batch while the next one decodes
            if writer is None:
                writer = pa.ipc.new_stream(out, pa.schema([]))
        except FileUnreadable as exc:
            reply = {"id": args["id"], "refused": exc.message}
        except (MemoryError, pa.ArrowMemoryError) as exc:
            reply = {
                "id": args["id"],
                "refused": f"Parquet file {name!r}: the Parquet decoder ran out of its "
                f"{args['memory_mib']} MiB (HUB_PARQUET_DECODER_MEMORY_MIB) on this file "
                f"({exc or 'MemoryError'}); nothing after the records already published was "
                "read: write it with smaller row groups or pages, or raise the cap.",
                "retire": True,  # the allocator's state after a failure is not worth keeping
            }
        if writer is not None:
            writer.close()  # the end-of-stream mark; the reply still decides (see serve)
    return reply


def _warm_up() -> None:
    """Decode a one-row file so that Arrow's thread pools and its allocator's threads exist
    before the memory cap: a thread started under the cap can fail to get its stack, and
    Arrow aborts the process then, where an allocation failing is an exception to report."""
    import io

    import pyarrow as pa
    import pyarrow.parquet as pq

    # two null columns: building values from Python objects would import pandas (0.2 s)
    table = pa.Table.from_arrays([pa.nulls(2, pa.string()), pa.nulls(2, pa.int64())], ["s", "n"])
    out = io.BytesIO()
    with pq.ParquetWriter(out, table.schema, store_schema=False) as writer:
        writer.write_table(table)
    for _ in pq.ParquetFile(io.BytesIO(out.getvalue())).iter_batches():
        pass


def serve(sock_fd: int, memory_mib: int) -> int:
    """Serve files until the parent closes the socket (``ingest.parquet_pool``).

    Each request is one datagram: JSON of the file's name, bounds and request ``id``, with two
    descriptors passed along (``SCM_RIGHTS``): the opened file, read from its start, and the
    write end of a pipe made for this file alone. The batches go down that pipe as one IPC
    stream, the pipe is closed, and only then the reply (JSON, the same ``id``) is sent on the
    socket: the parent takes a file as whole only on an ``ok`` reply with its ``id``, never on
    the stream alone, so a process that dies part way is a refused file however its stream
    ended. Nothing of one file is kept for the next but the imported modules."""
    import resource
    import socket

    import pyarrow as pa

    sock = socket.socket(fileno=sock_fd)
    _warm_up()
    cap = memory_mib << 20
    resource.setrlimit(resource.RLIMIT_DATA, (cap, cap))
    sock.sendall(json.dumps({"ready": os.getpid()}).encode())
    while True:
        try:
            msg, fds, _flags, _addr = socket.recv_fds(sock, 1 << 16, 2)
        except ConnectionError:
            return 0
        if not msg:  # the parent closed the socket: the pool is closing or the hub is gone
            return 0
        if len(fds) != 2:
            for fd in fds:
                os.close(fd)
            sys.stderr.write(f"parquet decoder: a request came with {len(fds)} descriptors\n")
            return 1
        args = json.loads(msg)
        args["memory_mib"] = memory_mib
        reply = _decode(fds[0], fds[1], args)
        pa.default_memory_pool().release_unused()
        sock.sendall(json.dumps(reply).encode())
        if reply.get("retire"):
            return 0


def main(argv: list[str]) -> int:
    return serve(int(argv[1]), int(argv[2]))


if __name__ == "__main__":
    sys.exit(main(sys.argv))
