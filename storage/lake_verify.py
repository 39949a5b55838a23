"""``hub lake verify``: every row of a ``raw.<topic>`` lake table checked against the log and
the ledger, as an auditor would (``storage.lake`` writes the tables); each
``views.<projection>__<table>`` against the digest its export recorded on the ledger
(``verify_view_table``, below).

What is checked, per table (streamed: one Arrow batch of a data file at a time, plus per
partition a list of covered offset runs, so memory does not grow with the table):
    1. each row's (partition, offset) has a ledger leaf, and the log record the leaf commits to
       (its leaf hash recomputed with ``ledger.leaves``) is still in the log: the row MUST be
       exactly what the export writes for that record (every column, the decoded value too);
       a record retention removed from the log is checked against the leaf's position and
       timestamp only (the row's headers and key are not stored losslessly, so its leaf hash
       cannot be recomputed from the row), and counted as such;
       a row the ledger has not reached yet (beyond its positions) is checked against the log
       record alone, and counted as such;
    2. no (partition, offset) twice;
    3. no row at or beyond ``hub.next_offsets`` (a lowered property re-exports rows);
    4. no hole: no record in the log, nor leaf in the ledger, below ``hub.next_offsets`` that
       the lake lacks (a deleted data file, a deleted row, or a raised property that made the
       next export skip records);
    5. ``hub.next_offsets`` not beyond the log's end;
    6. ``hub.next_offsets`` not behind what the newest ``lake.export`` entry of the ledger
       records for the table: the catalog's pointer moved back to an older metadata file
       (Iceberg keeps every one) gives a shorter table that checks 1-5 find consistent.
The first problem found is the one reported (:class:`LakeTampered`); a clean table returns a
:class:`TableCheck`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from core.ports.eventlog import EventLog, StoredRecord
from core.ports.ledgerstore import LedgerStore
from storage.lake import (
    NEXT_OFFSETS,
    RAW_NS,
    RAW_SCHEMA,
    _raw_rows,
    _table_name,
    lake_tampered,
)

Decode = Callable[[StoredRecord], dict[str, Any]]
# records -> their RFC 9162 leaf hashes (``ledger.leaves.LeafEncoder.leaf_hashes``; storage does
# not import the ledger package, the caller hands it in)
LeafHashes = Callable[[Sequence[StoredRecord]], list[bytes]]


@dataclass
class TableCheck:
    table: str
    rows: int = 0
    against_log_and_ledger: int = 0
    ledger_only: int = 0  # the log no longer holds the record (retention): position and time
    log_only: int = 0  # the ledger has not reached the record yet

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


class _Runs:
    """Sorted, disjoint [lo, hi) offset runs of one partition; adding an offset already in a
    run is a duplicate. Exports append offsets in order, so the list stays short."""

    def __init__(self) -> None:
        self.runs: list[list[int]] = []

    def add_sorted(self, offsets: list[int]) -> int | None:
        """Add ascending offsets; the first one already present (a duplicate), else None."""
        import bisect

        for o in offsets:
            i = bisect.bisect_right(self.runs, [o, float("inf")]) - 1
            if i >= 0 and self.runs[i][0] <= o < self.runs[i][1]:
                return o
            if i >= 0 and self.runs[i][1] == o:
                self.runs[i][1] = o + 1
                if i + 1 < len(self.runs) and self.runs[i + 1][0] == o + 1:
                    self.runs[i][1] = self.runs.pop(i + 1)[1]
            elif i + 1 < len(self.runs) and self.runs[i + 1][0] == o + 1:
                self.runs[i + 1][0] = o
            else:
                self.runs.insert(i + 1, [o, o + 1])
        return None

    def holes(self, lo: int, hi: int) -> Iterator[tuple[int, int]]:
        """The [a, b) ranges of [lo, hi) that no run covers."""
        at = lo
        for a, b in self.runs:
            if a > at:
                yield at, min(a, hi)
            at = max(at, b)
            if at >= hi:
                return
        if at < hi:
            yield at, hi


_fail = lake_tampered


def _log_records(
    log: EventLog, topic: str, part: int, offsets: list[int]
) -> dict[int, StoredRecord]:
    """The log's records at ``offsets`` (ascending): only those are kept, so a tampered batch
    spanning far-apart offsets costs a longer scan, not memory."""
    wanted = set(offsets)
    out: dict[int, StoredRecord] = {}
    for r in log.scan(topic, part, offsets[0]):
        if r.offset > offsets[-1]:
            break
        if r.offset in wanted:
            out[r.offset] = r
    return out


def _leaves(ledger: LedgerStore, topic: str, part: int, offsets: list[int]) -> list[Any]:
    """The leaf rows of ``offsets`` (ascending) of one partition, None where there is none.
    Leaves of one partition are usually consecutive in the tree: one range read, then one
    lookup per position only where that guess is wrong."""
    out: list[Any] = [None] * len(offsets)
    first = ledger.index_of(topic, part, offsets[0])
    if first is not None:
        got = next(ledger.iter_leaves(first, len(offsets)), [])
        for i, row in zip(range(len(offsets)), got, strict=False):  # a store's own batch size
            if row[1] == topic and row[2] == part and row[3] == offsets[i]:
                out[i] = row
    for i, o in enumerate(offsets):
        if out[i] is None:
            idx = ledger.index_of(topic, part, o)
            out[i] = None if idx is None else ledger.leaf(idx)
    return out


def verify_topic_table(
    catalog: Any,
    log: EventLog,
    ledger: LedgerStore,
    topic: str,
    decode: Decode,
    leaf_hashes: LeafHashes,
    recorded: Mapping[int, int] | None = None,
) -> TableCheck:
    """Check ``raw.<topic>`` against the log and the ledger; raise :class:`LakeTampered`.
    ``recorded``: the ``hub.next_offsets`` the ledger's newest ``lake.export`` entry records
    for the table (step 6)."""
    ident = f"{RAW_NS}.{_table_name(topic)}"
    table = catalog.load_table(ident)
    check = TableCheck(ident)
    try:
        done = {int(p): int(o) for p, o in json.loads(table.properties[NEXT_OFFSETS]).items()}
    except (KeyError, ValueError, TypeError, AttributeError) as exc:
        raise _fail(ident, f"its {NEXT_OFFSETS} property is missing or not a JSON map") from exc
    ends = log.end_offsets(topic)
    starts = log.beginning_offsets(topic)
    covered = ledger.positions()
    for p, o in sorted(done.items()):
        if p not in ends or o > ends[p] or o < 0:
            raise _fail(
                ident,
                f"{NEXT_OFFSETS} says partition {p} was exported up to offset {o}, but the log's "
                f"partition ends at {ends.get(p)}: the property was edited",
            )
    runs: dict[int, _Runs] = {}
    reader = table.scan().to_arrow_batch_reader()
    for batch in reader:
        if batch.num_rows == 0:
            continue
        order = pc.sort_indices(batch, [("partition", "ascending"), ("offset", "ascending")])
        rows = pa.Table.from_batches([batch]).take(order)
        parts = rows.column("partition").to_pylist()
        offs = rows.column("offset").to_pylist()
        i = 0
        while i < len(parts):
            p = parts[i]
            j = i
            while j < len(parts) and parts[j] == p:
                j += 1
            _check_run(
                ident, topic, p, offs[i:j], rows.slice(i, j - i), log, ledger, decode,
                leaf_hashes, done, covered, starts, runs, check,
            )  # fmt: skip
            i = j
    for p, end in sorted(done.items()):
        r = runs.get(p, _Runs())
        lo = min([starts.get(p, 0)] + [a for a, _ in r.runs[:1]])
        for a, b in r.holes(lo, end):
            missing = _first_missing(log, ledger, topic, p, a, b, starts.get(p, 0))
            if missing is not None:
                last = r.runs[-1][1] if r.runs else lo
                why = (
                    f"{NEXT_OFFSETS} says partition {p} was exported up to offset {end}, but the "
                    f"lake's rows stop before {last}: the property was raised (the next export "
                    "skipped records) or the last rows were deleted"
                    if a >= last
                    else "a data file or row was deleted"
                )
                raise _fail(
                    ident,
                    f"the record at partition {p} offset {missing} is not in the lake ({why})",
                )
    for p in runs:
        if p not in done:
            raise _fail(
                ident, f"it holds rows of partition {p}, which {NEXT_OFFSETS} does not list"
            )
    # last: a lowered property with rows past it is named above, more precisely
    for p, o in sorted((recorded or {}).items()):
        if done.get(p, 0) < o:
            raise _fail(
                ident,
                f"{NEXT_OFFSETS} says partition {p} was exported up to offset {done.get(p, 0)}, "
                f"but the export the ledger records reached offset {o}: the table was rolled "
                "back to an older metadata file or snapshot (the newest exported rows are hidden)",
            )
    return check


def _first_missing(
    log: EventLog, ledger: LedgerStore, topic: str, p: int, a: int, b: int, start: int
) -> int | None:
    """The first offset in [a, b) the log still holds or the ledger has a leaf for."""
    for o in range(a, min(b, start)):  # removed from the log by retention: the ledger knows
        if ledger.index_of(topic, p, o) is not None:
            return o
    for r in log.scan(topic, p, max(a, start)):
        return r.offset if r.offset < b else None
    return None


def _check_run(
    ident: str,
    topic: str,
    p: int,
    offsets: list[int],
    rows: pa.Table,
    log: EventLog,
    ledger: LedgerStore,
    decode: Decode,
    leaf_hashes: LeafHashes,
    done: dict[int, int],
    covered: Any,
    starts: dict[int, int],
    runs: dict[int, _Runs],
    check: TableCheck,
) -> None:
    """One batch's rows of partition ``p`` (ascending offsets): steps 1 to 3 of the module."""
    for k in range(1, len(offsets)):
        if offsets[k] == offsets[k - 1]:
            raise _fail(ident, f"partition {p} offset {offsets[k]} is in the lake twice")
    dup = runs.setdefault(p, _Runs()).add_sorted(offsets)
    if dup is not None:
        raise _fail(ident, f"partition {p} offset {dup} is in the lake twice")
    end = done.get(p)
    if end is not None and offsets[-1] >= end:
        raise _fail(
            ident,
            f"partition {p} offset {offsets[-1]} is at or beyond {NEXT_OFFSETS} ({end}): the "
            "property was lowered (the next export writes rows again) or the row was planted",
        )
    check.rows += len(offsets)
    records = _log_records(log, topic, p, offsets)
    reached = covered.get((topic, p), 0)
    leaves = (
        _leaves(ledger, topic, p, [o for o in offsets if o < reached])
        if offsets[0] < (reached)
        else []
    )
    have = [records.get(o) for o in offsets]
    present = [r for r in have if r is not None]
    hashes = iter(leaf_hashes(present)) if present else iter(())
    timestamps = rows.column("timestamp").cast(pa.int64()).to_pylist()
    for k, o in enumerate(offsets):
        record = have[k]
        leaf = leaves[k] if k < len(leaves) else None
        if o < reached and leaf is None:
            raise _fail(
                ident,
                f"partition {p} offset {o} has no ledger leaf, though the ledger has passed it: "
                "a planted row",
            )
        if record is None:
            if leaf is None:
                raise _fail(
                    ident, f"partition {p} offset {o} is neither in the log nor in the ledger"
                )
            ts_us = leaf[4] * 1000
            if timestamps[k] != ts_us:
                raise _fail(
                    ident, f"partition {p} offset {o}: its timestamp differs from the leaf's"
                )
            check.ledger_only += 1
            continue
        h = next(hashes)
        if leaf is None:
            check.log_only += 1
        elif bytes(leaf[9]) != h:
            raise _fail(
                ident,
                f"partition {p} offset {o}: the log record no longer matches its ledger leaf "
                "(run `hub ledger verify`)",
            )
        else:
            check.against_log_and_ledger += 1
    if present:
        _compare(ident, p, rows, offsets, have, present, decode)


def _compare(
    ident: str,
    p: int,
    rows: pa.Table,
    offsets: list[int],
    have: list[Any],
    present: list[StoredRecord],
    decode: Decode,
) -> None:
    """The rows whose record the log holds MUST equal what the export writes for them."""
    keep = pa.array([r is not None for r in have])
    actual = rows.filter(keep).select(RAW_SCHEMA.names)
    expected = _raw_rows(present, decode).cast(actual.schema)
    for name in RAW_SCHEMA.names:
        a, e = actual.column(name), expected.column(name)
        if a.equals(e):
            continue
        same = pc.fill_null(pc.equal(a, e), False)
        both_null = pc.and_(pc.is_null(a), pc.is_null(e))
        bad = pc.invert(pc.or_(same, both_null))
        k = pc.index(bad, True).as_py()
        off = [o for o, r in zip(offsets, have, strict=True) if r is not None][k]
        raise _fail(
            ident,
            f"partition {p} offset {off}: its {name!r} differs from the log record the ledger "
            "commits to (a changed row)",
        )


# -- views.<projection>__<table> ------------------------------------------------------------------
# A view table is replaced whole on each export with the projection's rows at that moment, so
# unlike a raw table its rows cannot be re-derived from the log afterwards (the view moved on).
# What the hub can vouch for is what it wrote: the export records each view table's digest and
# row count on its ``lake.export`` ledger entry (under a signed checkpoint), and verify
# recomputes the digest over the table the catalog serves now. An edited, added or deleted row,
# a deleted data file, a changed column, or the catalog pointed back at an older metadata file
# all change it.

VIEW_DIGEST = "hub-lake-view/1"


def _canon(v: Any) -> Any:
    """One value as JSON, the same whether it comes from the Arrow table written or read back
    (decimals and timestamps as text)."""
    if v is None or isinstance(v, bool | int | str):
        return v
    if isinstance(v, float):
        return repr(v)
    if hasattr(v, "isoformat"):
        return v.isoformat()
    return str(v)


def view_digest(batches: Iterable[pa.RecordBatch], names: Sequence[str]) -> tuple[str, int]:
    """(SHA-256 hex, rows) of a view table's rows whatever their order (Iceberg does not keep
    the order written): the sorted SHA-256 of each row's canonical JSON, after the column names.
    Memory: 32 bytes per row."""
    digests = []
    for batch in batches:
        cols = [batch.column(n).to_pylist() for n in names]
        for row in zip(*cols, strict=True):
            enc = json.dumps([_canon(v) for v in row], separators=(",", ":"), ensure_ascii=False)
            digests.append(hashlib.sha256(enc.encode()).digest())
    digests.sort()
    h = hashlib.sha256(f"{VIEW_DIGEST}\n{json.dumps(list(names))}\n".encode())
    for d in digests:
        h.update(d)
    return h.hexdigest(), len(digests)


def verify_view_table(
    catalog: Any,
    ident: str,
    recorded: Mapping[str, Any] | None,
    pii_columns: Sequence[str] = (),
) -> TableCheck:
    """Check ``views.<projection>__<table>`` against what the ledger's newest ``lake.export``
    entry naming it recorded (``recorded``: ``{"sha256", "rows"}``), and that its PII columns
    hold nothing (the lake is outside the erasure path); raise :class:`LakeTampered`."""
    table = catalog.load_table(ident)
    if not recorded:
        raise _fail(
            ident,
            "no lake.export entry of the ledger records its digest: it was exported before "
            "view digests were recorded (run `hub lake export` again), or it was planted in the "
            "catalog",
        )
    names = table.schema().as_arrow().names
    pii_seen: list[str] = []

    def batches() -> Iterator[pa.RecordBatch]:  # streamed: one batch at a time
        for batch in table.scan().to_arrow_batch_reader():
            for c in pii_columns:
                if c in batch.schema.names and batch.column(c).null_count != batch.num_rows:
                    pii_seen.append(c)
            yield batch

    digest, rows = view_digest(batches(), names)
    if pii_seen:
        raise _fail(ident, f"its PII column {pii_seen[0]!r} holds values (the export writes NULL)")
    if rows != int(recorded.get("rows", -1)) or digest != recorded.get("sha256"):
        raise _fail(
            ident,
            f"its {rows} rows (digest {digest[:16]}...) are not the {recorded.get('rows')} rows "
            "the ledger's newest lake.export entry recorded (digest "
            f"{str(recorded.get('sha256'))[:16]}...): rows were edited, added or deleted, a "
            "data file changed, or the catalog points at an older metadata file",
        )
    return TableCheck(ident, rows=rows)
