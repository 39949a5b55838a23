"""The embedded log's column read (``EventLog.read_columns``): stored batches decoded into
columns and joined without a ``StoredRecord`` per record."""

from __future__ import annotations

from collections.abc import Sequence
from itertools import chain, pairwise, repeat

from adapters.sqlite_log.batch import BatchColumns
from core.ports.eventlog import Headers, RecordColumns

Piece = tuple[int, BatchColumns, int, int]
"""(base offset, the decoded batch, first record taken, end of the records taken)."""


def _rows(b: BatchColumns, start: int, stop: int) -> Sequence[Headers]:
    if b.rows is not None:
        return b.rows[start:stop]
    if not b.names:
        return [()] * (stop - start)
    cols = [
        zip(repeat(name), col[start:stop], strict=False)
        for name, col in zip(b.names, b.columns, strict=True)
    ]
    return list(zip(*cols, strict=True))


def join(topic: str, partition: int, pieces: list[Piece]) -> RecordColumns:
    """The records ``pieces`` take, in order, as one ``RecordColumns``: header columns when
    every piece stores the same header names as columns, else headers per record."""
    if not pieces:
        return RecordColumns(topic, partition, range(0), [], [], [], header_names=())
    if len(pieces) == 1:
        base, b, start, stop = pieces[0]
        whole = start == 0 and stop == b.count
        offsets: Sequence[int] = range(base + start, base + stop)
        ts, keys, values = (
            (b.timestamps, b.keys, b.values)
            if whole
            else (b.timestamps[start:stop], b.keys[start:stop], b.values[start:stop])
        )
        if b.names is not None:
            cols = b.columns if whole else tuple(c[start:stop] for c in b.columns)
            return RecordColumns(topic, partition, offsets, ts, keys, values, b.names, cols)
        return RecordColumns(
            topic, partition, offsets, ts, keys, values, headers=_rows(b, start, stop)
        )
    first = pieces[0][0] + pieces[0][2]
    dense = all(prev[0] + prev[3] == nxt[0] + nxt[2] for prev, nxt in pairwise(pieces))
    n = sum(stop - start for _, _, start, stop in pieces)
    offsets = (
        range(first, first + n)
        if dense
        else list(chain.from_iterable(range(b + s, b + e) for b, _, s, e in pieces))
    )
    ts_all = list(chain.from_iterable(b.timestamps[s:e] for _, b, s, e in pieces))
    keys_all = list(chain.from_iterable(b.keys[s:e] for _, b, s, e in pieces))
    values_all = list(chain.from_iterable(b.values[s:e] for _, b, s, e in pieces))
    names = pieces[0][1].names
    if names is not None and all(b.names == names for _, b, _, _ in pieces):
        cols = tuple(
            list(chain.from_iterable(b.columns[j][s:e] for _, b, s, e in pieces))
            for j in range(len(names))
        )
        return RecordColumns(topic, partition, offsets, ts_all, keys_all, values_all, names, cols)
    rows = list(chain.from_iterable(_rows(b, s, e) for _, b, s, e in pieces))
    return RecordColumns(topic, partition, offsets, ts_all, keys_all, values_all, headers=rows)
