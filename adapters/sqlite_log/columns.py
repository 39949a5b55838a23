"""The embedded log's column read (``EventLog.read_columns``): stored batches decoded into
columns and joined without a ``StoredRecord`` per record."""

from __future__ import annotations

from collections.abc import Sequence
from itertools import chain, pairwise, repeat

from adapters.sqlite_log.batch import BatchColumns
from core.ports.eventlog import Headers, RecordColumns

Piece = tuple[int, BatchColumns]
"""(offset of the first record, the records taken from one stored batch, decoded)."""


def _rows(b: BatchColumns) -> Sequence[Headers]:
    if b.rows is not None:
        return b.rows
    if not b.names:
        return [()] * b.count
    cols = [
        zip(repeat(name), col, strict=False) for name, col in zip(b.names, b.columns, strict=True)
    ]
    return list(zip(*cols, strict=True))


def join(topic: str, partition: int, pieces: list[Piece]) -> RecordColumns:
    """The records of ``pieces``, in order, as one ``RecordColumns``: header columns when every
    piece stores the same header names as columns, else headers per record."""
    if not pieces:
        return RecordColumns(topic, partition, range(0), [], [], [], header_names=())
    if len(pieces) == 1:
        first, b = pieces[0]
        offsets: Sequence[int] = range(first, first + b.count)
        if b.names is not None:
            return RecordColumns(
                topic, partition, offsets, b.timestamps, b.keys, b.values, b.names, b.columns
            )
        return RecordColumns(
            topic, partition, offsets, b.timestamps, b.keys, b.values, headers=_rows(b)
        )
    first = pieces[0][0]
    dense = all(p[0] + p[1].count == q[0] for p, q in pairwise(pieces))
    n = sum(b.count for _, b in pieces)
    offsets = (
        range(first, first + n)
        if dense
        else list(chain.from_iterable(range(o, o + b.count) for o, b in pieces))
    )
    ts_all = list(chain.from_iterable(b.timestamps for _, b in pieces))
    keys_all = list(chain.from_iterable(b.keys for _, b in pieces))
    values_all = list(chain.from_iterable(b.values for _, b in pieces))
    names = pieces[0][1].names
    if names is not None and all(b.names == names for _, b in pieces):
        cols = tuple(
            list(chain.from_iterable(b.columns[j] for _, b in pieces)) for j in range(len(names))
        )
        return RecordColumns(topic, partition, offsets, ts_all, keys_all, values_all, names, cols)
    rows = list(chain.from_iterable(_rows(b) for _, b in pieces))
    return RecordColumns(topic, partition, offsets, ts_all, keys_all, values_all, headers=rows)
