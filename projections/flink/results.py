"""Analytics views from Flink into the hub's ClickHouse-SQL store (chDB embedded, ClickHouse).

There is no Flink 2.x ClickHouse sink, so a Flink job writes each analytics table's partial rows
(one per view key and source partition, a running total: ``projections.flink.compile``) to a
*result topic* ``flink.<table>`` with the ``upsert-kafka`` connector (key: the partial row's key,
JSON; value: the row, JSON, decimals as plain numbers), and ``ResultLoader`` folds the topics
into the analytics ``ViewStore`` under the target ``Target(<projection>, "flink")``, whose read
views merge the partial rows exactly as the embedded runner's do (``adapters.clickhouse_views``):
the digests compare byte for byte.

Why a topic and a loader rather than a sink of our own inside Flink: the hub's store is chDB
inside the hub's process (one process may open it), so only the hub can write it; a result topic
is replayable (the loader can rebuild the views from it at any time), and the same loader works
against a ClickHouse server.

``load(projection, tables)`` is incremental: the result topics' positions are committed with the
rows (the store's write protocol: rows and positions of one load are both there or both absent),
and a load reads only the records past them:
  1. ``recover`` drops what a crashed load left uncommitted; the committed positions are read;
  2. first load (no positions): every record, the newest value per key winning, into
     ``Target(projection, "flink_next")`` with the end offsets as positions, swapped in as
     ``Target(projection, "flink")`` (readers see the old or the new views, never half a load);
  3. later loads: the records in ``[position, end)``, newest per key; each changed partial row
     becomes a *delta* partial row written to the live target with the new end offsets in ONE
     store write: its ``sum`` columns are the new running value minus the one loaded before,
     every other column (keys, min/max, first/last with their times, the source range) the new
     value, which the read view's merge (min, max, argMin, argMax) makes win anyway;
  4. a signed delete (below) of a key already loaded falls back to a full reload (step 2):
     a delta row cannot retract min/max.
The previous value of each key is the loader's memory of what it loaded. With a ``memory`` file
the loader saves it after each committed load, beside the positions it holds; a loader new to the
process (a restart) reads that file, and uses it only when its positions are the store's
committed ones (a crash between the store write and the file leaves them different). Without
the file, or with a stale one, it rebuilds the memory once by reading the topics up to the
committed positions (reading, not writing; ``prefix_records`` counts them); from then on each
load reads only what is new. One loader per store (the hub's single writer of its analytics
views). With a ``memory_key`` the file carries an HMAC-SHA256 of its content under that key (the
hub derives it from its local MAC key): a file edited without the key (values changed, positions
kept) fails the check and is ignored like a stale one, so the loaded rows come from the topics.

Every row must carry the job's ``row_mac`` (``projections.flink.rowmac``) over its table and
values, and sit under its own Kafka key; a row that does not (a producer to ``flink.*`` without
the hub's key writing another tenant's rows, a genuine row re-keyed to be loaded twice) is
refused: not loaded, counted in ``refused``, logged with its offset and reason. A key is its
columns made canonical (``_ident``), not its bytes: the same key spelled another way is the
same partial row. Its offset is
still passed (a refused row never blocks the rows after it).

Versions: a row's ``src_last`` (the source offset its key's partial row was folded up to; inside
its MAC) only grows while the job runs. The loader keeps, per key, the newest version it
accepted and refuses a row of a lower one (``stale`` += 1, in ``refusals``, the first logged):
re-sending an older genuine row no longer rolls a running total back. An equal version is
accepted (the same fold: a restart from a checkpoint re-emits it). A job re-run from the
earliest offsets (no state) rewinds: it emits each key's rows again from its first event, all
older than what the loader holds, so they are refused and the loaded value stays the newest
until the re-run passes it, then moves on; at the re-run's end every key is at its final row
again (the source's offsets only grow, so the re-run reaches at least the old versions). Readers
so never see a re-run's partial totals; the cost is refusals counted during a re-run. A source
topic recreated (offsets from 0 again) needs new result topics and a fresh loader: its rows
would all be older.

Deletes: a tombstone is applied only when signed (``rowmac.DELETE_HEADER``, over the table, the
key and a version V): it removes a key held at a version <= V, and the key's rows of a version
<= V are refused afterwards (a replayed row cannot bring it back). An unsigned one is ignored:
counted in ``ignored_tombstones``, the first logged (a producer to ``flink.*`` could otherwise
delete a loaded row, or force the full reload that drops it). The order of records decides
nothing an attacker can append: per key the newest version wins, as in a full reload.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from decimal import Context, Decimal
from pathlib import Path
from typing import Any

from core.errors import DuplicateEnvelopeHeader
from core.ports.eventlog import EventLog, StoredRecord, envelope_header
from core.ports.views import Checkpoint, Position, Target, ViewStore
from core.projection import Projection, Row, Table
from projections.digest import digest
from projections.flink import rowmac
from projections.flink.compile import partial_columns, result_topic

_EXACT = Context(prec=80)  # decimals of up to 38 digits, never rounded (the default has 28)

log = logging.getLogger(__name__)

LIVE, NEXT = "flink", "flink_next"
# how the memory file names keys (``_ident``); a file without it is not used
_KEYS = "canonical-columns/v2"

# A result key's identity (``_ident``)
Ident = tuple[str | None, ...]
# A key's state in a read: (version, its row; None: deleted as of that version)
Held = tuple[int, Row | None]


class ResultLoader:
    def __init__(
        self,
        log: EventLog,
        store: ViewStore,
        batch: int = 5000,
        memory: Path | None = None,
        memory_key: bytes | None = None,
        row_key: bytes | None = None,
    ) -> None:
        """``row_key``: the key of the rows' MACs (``projections.flink.rowmac``; the hub derives
        it and gives it to its Flink jobs). Without it every row is refused: the loader loads
        only rows it can authenticate."""
        self.log = log
        self.store = store
        self.batch = batch
        self.memory = memory  # a folder for the memory files, one per projection
        self.memory_key = memory_key  # their MAC key (None: files are trusted as they are)
        # per result topic: the newest partial row loaded per key (its store row form)
        self._loaded: dict[str, dict[Ident, Row]] = {}
        self.read_records = 0  # records the last ``load`` read (all partitions, all tables)
        self.prefix_records = 0  # records read to rebuild the memory (a restart without file)
        self.row_key = row_key
        # rows not loaded because they fail authentication (since this loader was made), and
        # the newest of them (topic, partition, offset, reason): nothing is dropped unseen
        self.refused = 0
        self.refusals: list[tuple[str, int, int, str]] = []
        # genuine rows older than the version held for their key (a replay, or a re-run not yet
        # past it), and tombstones without a valid signature: counted, the first logged
        self.stale = 0
        self.ignored_tombstones = 0
        # per result topic: the keys deleted by a signed delete, and the version it was as of
        self._deleted: dict[str, dict[Ident, int]] = {}

    def _row(
        self, t: Table, r: StoredRecord, partition: int, count: bool = True
    ) -> tuple[Ident, Held] | None:
        """(version, the store row of result record ``r``; None: a signed delete), or None
        (logged and counted unless ``count`` is false) when it is not a row of ``t`` the hub's
        Flink job wrote: no valid MAC over the table and its values, or a key that is not the
        row's own (a genuine row under another key would be loaded twice, and its sums
        doubled), or a tombstone without a valid delete signature."""
        if r.value is None:
            reason, version, ident = _signed_delete(self.row_key, t, r)
            if reason is None:
                return ident, (version, None)
            if count:
                self.ignored_tombstones += 1
                if self.ignored_tombstones == 1:  # one line: a flood must not flood the log
                    log.warning(
                        "Flink result tombstone %s/%d@%d ignored, nothing deleted: %s (further "
                        "ones are counted in ignored_tombstones, not logged)",
                        result_topic(t),
                        partition,
                        r.offset,
                        reason,
                    )
            return None
        reason, value, ident = _authentic(self.row_key, t, r)
        if reason is None:
            return ident, (_version(t, value), _physical(t, value))
        if count:
            self._refuse(result_topic(t), partition, r.offset, reason)
        return None

    def _refuse(self, topic: str, partition: int, offset: int, reason: str) -> None:
        self.refused += 1
        self.refusals = [*self.refusals[-99:], (topic, partition, offset, reason)]
        log.warning(
            "Flink result record %s/%d@%d refused, not loaded: %s", topic, partition, offset, reason
        )

    def _fold(
        self,
        t: Table,
        r: StoredRecord,
        partition: int,
        latest: dict[Ident, Held],
        held: Callable[[Ident], Held | None],
        count: bool,
    ) -> None:
        """Record ``r`` into ``latest`` (the keys changed by this read) when it is authentic and
        not older than what is known of its key (``latest``, else ``held``)."""
        found = self._row(t, r, partition, count)
        if found is None:
            return
        ident, got = found  # the key by its columns: its bytes may be spelled many ways
        known = latest.get(ident) or held(ident)
        if known is None or _newer(got, known):
            latest[ident] = got
        elif count:
            self.stale += 1
            reason = (
                f"its version ({_said(got)}) is older than its key's ({_said(known)}): a "
                "replayed older row, or a re-run of the job not yet past it"
            )
            self.refusals = [*self.refusals[-99:], (result_topic(t), partition, r.offset, reason)]
            if self.stale == 1:
                log.warning(
                    "Flink result record %s/%d@%d not loaded: %s (further ones are counted in "
                    "stale, not logged)",
                    result_topic(t),
                    partition,
                    r.offset,
                    reason,
                )

    def _held(self, t: Table) -> Callable[[Ident], Held | None]:
        """What the loader holds of a key of ``t`` (a loaded row or a signed delete, versioned),
        looked up per key: a load costs what it reads, not what is loaded."""
        topic = result_topic(t)
        loaded, deleted = self._loaded.get(topic, {}), self._deleted.get(topic, {})

        def held(k: Ident) -> Held | None:
            row = loaded.get(k)
            if row is not None:
                return _row_version(t, row), row
            version = deleted.get(k)
            return None if version is None else (version, None)

        return held

    def _keep(self, t: Table, changed: Mapping[Ident, Held]) -> None:
        """Make the keys ``changed`` (their newest) what the loader holds of them."""
        topic = result_topic(t)
        loaded = self._loaded.setdefault(topic, {})
        deleted = self._deleted.setdefault(topic, {})
        for k, (version, row) in changed.items():
            if row is None:
                loaded.pop(k, None)
                deleted[k] = version
            else:
                loaded[k] = row
                deleted.pop(k, None)

    def ensure_topics(self, tables: Sequence[Table]) -> None:
        """Create the result topics before a job writes them (the broker does not auto-create
        topics). One partition: the loader reads each topic whole."""
        for t in tables:
            self.log.create_topic(result_topic(t), 1)

    def _read(
        self,
        t: Table,
        since: Mapping[int, int] | None,
        held: Callable[[Ident], Held | None],
        counted: Mapping[int, int] | None = None,
    ) -> tuple[dict[Ident, Held], dict[tuple[str, int], Position], int]:
        """The keys changed in ``[since, end)`` of ``t``'s topic (``since`` None: from the
        beginning) past what is ``held`` of them, each with its newest (version, row; None: a
        signed delete), the end offsets read up to, and the records read. Records below
        ``counted`` (a full reload after loads) were counted and logged when first read."""
        topic = result_topic(t)
        latest: dict[Ident, Held] = {}
        positions, read = {}, 0
        starts = self.log.beginning_offsets(topic)
        for partition, end in sorted(self.log.end_offsets(topic).items()):
            offset = max(starts.get(partition, 0), (since or {}).get(partition, 0))
            while offset < end:
                records = self.log.read(topic, partition, offset, self.batch)
                if not records:
                    break
                read += len(records)
                below = (counted or {}).get(partition, 0)
                for r in records:
                    self._fold(t, r, partition, latest, held, count=r.offset >= below)
                offset = records[-1].offset + 1
            positions[(topic, partition)] = Position(max(end, offset))
        return latest, positions, read

    def load(self, p: Projection, tables: Sequence[Table]) -> dict[str, int]:
        """The module docstring's steps; the partial rows written per table."""
        live = Target(p.name, LIVE)
        self.store.ensure(live, tables)
        self.store.recover(live, tables)  # 1.
        committed = self.store.checkpoint(live)
        since = {
            t.name: {
                part: pos.next_offset
                for (topic, part), pos in committed.positions.items()
                if topic == result_topic(t)
            }
            for t in tables
        }
        if not all(since.values()):
            return self._full(p, tables)  # 2.
        self.read_records = 0
        if any(result_topic(t) not in self._loaded for t in tables):
            self._recall(p, committed.positions)
        for t in tables:  # a restarted loader without its memory: what it loaded, read once
            if result_topic(t) not in self._loaded:
                self._loaded[result_topic(t)], self._deleted[result_topic(t)] = {}, {}
                self._keep(t, self._read_until(t, since[t.name]))
        rows: dict[str, list[Row]] = {}
        changed: dict[str, dict[Ident, Held]] = {}
        positions: dict[tuple[str, int], Position] = {}
        for t in tables:  # 3.
            latest, at, read = self._read(t, since[t.name], self._held(t))
            self.read_records += read
            positions |= at
            loaded = self._loaded[result_topic(t)]
            if any(row is None and k in loaded for k, (_, row) in latest.items()):
                return self._full(p, tables, since)  # 4.
            changed[t.name] = latest
            rows[t.name] = [
                _delta(t, loaded.get(k), row) for k, (_, row) in latest.items() if row is not None
            ]
        if not any(rows.values()) and all(
            committed.positions.get(k) == v for k, v in positions.items()
        ):
            return {t.name: 0 for t in tables}
        self.store.write(live, tables, rows, Checkpoint(committed.batch_seq + 1, positions))
        for t in tables:
            self._keep(t, changed[t.name])
        self._remember(p, tables, positions)
        return {name: len(r) for name, r in rows.items()}

    def _memory_file(self, p: Projection) -> Path | None:
        return None if self.memory is None else self.memory / f"{p.name}.json"

    def _remember(
        self, p: Projection, tables: Sequence[Table], positions: Mapping[tuple[str, int], Position]
    ) -> None:
        """Save the memory of ``tables`` with the positions it holds (write, then rename)."""
        path = self._memory_file(p)
        if path is None:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        state = {
            "keys": _KEYS,
            "positions": sorted([t, part, pos.next_offset] for (t, part), pos in positions.items()),
            "loaded": {
                result_topic(t): [
                    [list(k), _jsonable(row)] for k, row in self._loaded[result_topic(t)].items()
                ]
                for t in tables
            },
            "deleted": {
                result_topic(t): [
                    [list(k), version]
                    for k, version in self._deleted.get(result_topic(t), {}).items()
                ]
                for t in tables
            },
        }
        text = json.dumps(state, default=str)
        if self.memory_key is not None:
            text = json.dumps({"mac": self._mac(text), "state": text})
        tmp = path.with_suffix(".tmp")
        tmp.write_text(text)
        os.replace(tmp, path)

    def _mac(self, text: str) -> str:
        assert self.memory_key is not None
        return hmac.new(self.memory_key, text.encode(), hashlib.sha256).hexdigest()

    def _recall(self, p: Projection, committed: Mapping[tuple[str, int], Position]) -> None:
        """The saved memory, when it holds exactly the committed positions."""
        path = self._memory_file(p)
        if path is None or not path.exists():
            return
        try:
            text = path.read_text()
            if self.memory_key is not None:
                sealed = json.loads(text)
                text = sealed["state"] if isinstance(sealed, dict) else ""
                if not isinstance(text, str) or not hmac.compare_digest(
                    str(sealed.get("mac", "")), self._mac(text)
                ):
                    log.warning(
                        "the Flink result loader's memory %s fails its MAC (edited, or written "
                        "under another key): ignored, the loaded rows are read from the topics",
                        path,
                    )
                    return
            state = json.loads(text, parse_float=Decimal)
        except (OSError, ValueError, KeyError):
            return  # unreadable: rebuilt from the topics
        want = sorted([t, part, pos.next_offset] for (t, part), pos in committed.items())
        if state.get("positions") != want:
            return  # a crash between the store write and the file: rebuilt from the topics
        tables = {result_topic(t): t for t in p.tables}
        if state.get("keys") != _KEYS:
            return  # keyed by record bytes (before signed deletes): rebuilt from the topics
        for topic, items in state["loaded"].items():
            if topic in tables:
                self._loaded[topic] = {
                    tuple(k): _physical(tables[topic], _partial(tables[topic], row))
                    for k, row in items
                }
                self._deleted[topic] = {
                    tuple(k): int(version) for k, version in state["deleted"].get(topic, [])
                }

    def _read_until(self, t: Table, until: Mapping[int, int]) -> dict[Ident, Held]:
        """The newest (version, row) per key below the committed positions ``until`` (counted
        in ``prefix_records``): what the loads up to them held."""
        topic = result_topic(t)
        latest: dict[Ident, Held] = {}
        starts = self.log.beginning_offsets(topic)
        for partition, end in sorted(until.items()):
            offset = starts.get(partition, 0)
            while offset < end:
                records = self.log.read(topic, partition, offset, min(self.batch, end - offset))
                if not records:
                    break
                for r in records:
                    if r.offset >= end:
                        break
                    self.prefix_records += 1
                    # counted when first read
                    self._fold(t, r, partition, latest, _nothing, count=False)
                offset = records[-1].offset + 1
        return latest

    def _full(
        self,
        p: Projection,
        tables: Sequence[Table],
        counted: Mapping[str, Mapping[int, int]] | None = None,
    ) -> dict[str, int]:
        """Step 2: every record into the next target, swapped in; the memory reseeded.
        ``counted``: per table, the offsets below which records were counted already."""
        live, nxt = Target(p.name, LIVE), Target(p.name, NEXT)
        self.store.drop(nxt, tables)
        self.store.ensure(nxt, tables)
        rows: dict[str, list[Row]] = {}
        positions: dict[tuple[str, int], Position] = {}
        self.read_records = 0
        for t in tables:
            latest, at, read = self._read(t, None, _nothing, (counted or {}).get(t.name))
            self.read_records += read
            positions |= at
            self._loaded[result_topic(t)], self._deleted[result_topic(t)] = {}, {}
            self._keep(t, latest)
            rows[t.name] = list(self._loaded[result_topic(t)].values())
        self.store.write(nxt, tables, rows, Checkpoint(1, positions))
        self.store.swap(live, nxt, tables)
        self._remember(p, tables, positions)
        return {name: len(r) for name, r in rows.items()}

    def rows(self, p: Projection, t: Table) -> list[Row]:
        return self.store.rows(Target(p.name, LIVE), t)

    def digest(self, p: Projection, t: Table) -> dict[str, Any]:
        d, n = digest(t, self.rows(p, t))
        return {"digest": d, "rows": n}

    def positions(self, p: Projection) -> dict[str, int]:
        """The committed next offset per result topic partition (``topic/partition``)."""
        committed = self.store.checkpoint(Target(p.name, LIVE))
        return {
            f"{topic}/{part}": pos.next_offset for (topic, part), pos in committed.positions.items()
        }


def _authentic(key: bytes | None, t: Table, r: StoredRecord) -> tuple[str | None, Any, Ident]:
    """(Why result record ``r`` is not an authentic row of ``t``, None, ()); or (None, its
    value, its key's identity: ``_ident``)."""
    try:
        value = _DECODE((r.value or b"").decode())
        record_key = _DECODE((r.key or b"").decode())
    except ValueError as exc:  # UnicodeDecodeError included
        return f"its key or value is not JSON ({exc})", None, ()
    if not isinstance(value, dict) or not isinstance(record_key, dict):
        return "its key or value is not a JSON object", None, ()
    columns, key_names = _shape(t)
    try:
        canon = {
            n: rowmac.canonical(
                Decimal(value[n]) if decimal and isinstance(value[n], str) else value[n]
            )  # a decimal as JSON text is the number it reads as (``_physical`` takes it so)
            for n, decimal in columns
        }
    except KeyError as exc:
        return f"it lacks column {exc}", None, ()
    except rowmac.RowMacInvalid as exc:
        return f"it holds {exc}", None, ()
    except ArithmeticError:
        return "it holds a decimal column that is no number", None, ()
    reason = rowmac.check_canonical(key, t.name, list(canon.values()), value.get(rowmac.COLUMN))
    if reason is not None:
        return reason, None, ()
    try:
        same = len(record_key) == len(key_names) and all(
            n in record_key and rowmac.canonical(record_key[n]) == canon[n] for n in key_names
        )
    except rowmac.RowMacInvalid:
        same = False
    if not same:
        return (
            f"its Kafka key {(r.key or b'')[:200]!r} is not its row's ({', '.join(key_names)})",
            None,
            (),
        )
    return None, value, _ident([canon[n] for n in key_names])


def _signed_delete(key: bytes | None, t: Table, r: StoredRecord) -> tuple[str | None, int, Ident]:
    """(Why tombstone ``r`` is not a signed delete of ``t``'s row under its key, 0, ()), or
    (None, the version it is as of, its key's identity: ``_ident``)."""
    try:
        record_key = _DECODE((r.key or b"").decode())
        header = envelope_header(r.headers, rowmac.DELETE_HEADER)
    except (ValueError, DuplicateEnvelopeHeader) as exc:  # not JSON/UTF-8; the header twice
        return f"its key or {rowmac.DELETE_HEADER} header is unreadable ({exc})", 0, ()
    _, key_names = _shape(t)
    if not isinstance(record_key, dict) or sorted(record_key) != sorted(key_names):
        return f"its Kafka key {(r.key or b'')[:200]!r} is not a key of {t.name}", 0, ()
    values = [record_key[n] for n in key_names]
    reason, version = rowmac.check_delete(key, t.name, values, header)
    if reason is not None:
        return reason, 0, ()
    return None, version, _ident([rowmac.canonical(v) for v in values])


def _ident(canon: Sequence[str | None]) -> Ident:
    """A result key's identity: its columns made canonical (``rowmac.canonical``), in key
    order. Not the record's key bytes: the same key spelled another way (column order, spaces,
    ``1.0`` for ``1``) is the same partial row, which must not be loaded twice."""
    return tuple(canon)


def _version(t: Table, value: Mapping[str, Any]) -> int:
    """The version of an authentic result row: the source offset its key was folded up to
    (covered by its MAC); -1 when it has none (an append table's rows never change)."""
    last = value.get("src_last") if t.kind != "append" else None
    return last if type(last) is int else -1


def _row_version(t: Table, row: Row) -> int:
    """``_version`` of a loaded row (the store's row form)."""
    if t.kind == "aggregate":
        last = row.get("src_last")
    elif t.kind == "entity":
        last = row["src_offsets"][0][3]
    else:
        last = None
    return last if type(last) is int else -1


def _nothing(k: Ident) -> Held | None:
    """What a read from the beginning holds of any key before it."""
    return None


def _newer(got: Held, known: Held) -> bool:
    """Whether ``got`` replaces ``known`` for one key: a row of a version at least the row's
    held (a restart re-emits the same one), or above a delete's; a delete as of a version at
    least the one held."""
    if got[1] is not None and known[1] is None:
        return got[0] > known[0]
    return got[0] >= known[0]


def _said(h: Held) -> str:
    return f"{'deleted as of' if h[1] is None else 'src_last'} {h[0]}"


_DECODE = json.JSONDecoder(parse_float=Decimal).decode  # one decoder, not one per record
Shape = tuple[tuple[tuple[str, bool], ...], tuple[str, ...]]
_SHAPES: dict[int, tuple[Table, Shape]] = {}  # by id: hashing a Table hashes all its columns


def _shape(t: Table) -> Shape:
    """(column, is it a decimal) of ``t``'s result rows in MAC order, and their Kafka key's
    columns (the result sink's primary key)."""
    known = _SHAPES.get(id(t))
    if known is None or known[0] is not t:
        columns = tuple((n, ty.startswith("DECIMAL")) for n, ty in partial_columns(t))
        known = _SHAPES[id(t)] = (t, (columns, (*t.key, "src_topic", "src_partition")))
    return known[1]


def _delta(t: Table, old: Row | None, new: Row) -> Row:
    """The partial row that, merged with ``old`` by the read view, gives ``new`` (step 3)."""
    if old is None or t.kind != "aggregate":
        return new
    row = dict(new)
    for c in t.columns:
        if c.agg != "sum":
            continue
        a, b = new.get(c.name), old.get(c.name)
        if a is None and b is None:
            continue
        row[c.name] = (a or 0) - (b or 0)
    return row


def _physical(t: Table, partial: dict[str, Any]) -> Row:
    """A partial row from a result topic in the store's row form (``rows_to_arrow`` input)."""
    row: Row = {c.name: partial.get(c.name) for c in t.columns if c.agg != "derived"}
    for c in t.columns:
        v = row.get(c.name)
        if c.type == "decimal" and v is not None:
            row[c.name] = Decimal(v).quantize(Decimal(1).scaleb(-(c.scale or 0)), context=_EXACT)
    if t.kind == "aggregate":
        for name in ("src_topic", "src_partition", "src_first", "src_last"):
            row[name] = partial[name]
    else:
        row["src_offsets"] = [
            [
                partial["src_topic"],
                partial["src_partition"],
                partial["src_first"],
                partial["src_last"],
                partial["src_events"],
            ]
        ]
    return row


def _jsonable(row: Row) -> dict[str, Any]:
    """A memory row as the result topic's JSON value had it (``_partial`` reads it back)."""
    out: dict[str, Any] = {k: (str(v) if isinstance(v, Decimal) else v) for k, v in row.items()}
    if "src_offsets" in out:  # entity tables: the source range as the topic's columns
        topic, part, first, last, events = out.pop("src_offsets")[0]
        out |= {
            "src_topic": topic,
            "src_partition": part,
            "src_first": first,
            "src_last": last,
            "src_events": events,
        }
    return out


def _partial(t: Table, row: Mapping[str, Any]) -> dict[str, Any]:
    decimals = {c.name for c in t.columns if c.type == "decimal"}
    return {k: (Decimal(v) if isinstance(v, str) and k in decimals else v) for k, v in row.items()}
