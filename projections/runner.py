"""The projection runner: catch-up and live folding of the log into a ViewStore, exactly once.

Each ``step`` processes one batch in numbered steps (the store's ``write`` numbers its own):
  1. read: from the positions committed in the view store, each assigned partition in sorted
     order, up to ``batch_records`` in total (and never past ``bound``), as columns
     (``EventLog.read_columns``: the SQL path takes the values and header columns as they are;
     the Python path builds the ``StoredRecord``s it folds from them); where the SQL path may
     run and the log offers them, as the stored batches (``EventLog.read_encoded``), decoded in
     place (``columnar.decode_stored``) or, when that declines, by the log as columns;
  2. decode and fold, per partition chunk; a record that cannot be decoded or folded is a
     poison event: it goes to the quarantine (projection name, reason, original bytes) and the
     projection keeps going (its offset is still consumed);
  3. ``store.write``: rows and the new checkpoint (batch number + 1, every position and
     watermark), atomically as the store's contract defines (hooks ``rows:<table>``,
     ``offsets``, and for SQL stores ``commit``);
  4. tell the commit listeners (``on_commit``: the console's live streams push on it); advisory:
     mirror positions into the log's consumer group ``projection.<name>`` (so Kafka tooling sees
     the lag), update metrics (hook ``mirrored``).
A crash anywhere replays from the store's checkpoint after ``store.recover``: nothing is lost
(positions never run ahead of rows) and nothing is counted twice (rows never outlive the
positions that reflect them).
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from decimal import Context, localcontext
from itertools import chain
from typing import Any

import pyarrow as pa

from core import tracing
from core.errors import HubError
from core.leadership import NotLeader, WriterFence
from core.ports.eventlog import (
    EncodedColumns,
    EventLog,
    RecordColumns,
    StoredRecord,
    TopicPartition,
)
from core.ports.views import Checkpoint, Hook, Position, Target, ViewStore, no_hook
from core.projection import (
    Event,
    FoldContext,
    Projection,
    Row,
    Windowing,
    WindowState,
    event_time_us,
)
from projections.columnar import Unsupported, decode_stored, decode_values, envelope_of_columns
from projections.decode import Decoder, Poison
from projections.folds import merge_src

log = logging.getLogger("hub.projections")
# Folds run under this context: Python's default has 28 digits and rounds a sum of decimal(38, s)
# values (or a product of two 18-digit ones) silently. Rounding mode and traps: the default's.
_FOLD_DECIMALS = Context(prec=80)

Quarantine = Callable[[str, StoredRecord, str, str], None]
# What step 1 reads per partition: columns, or (the SQL path, when the log offers it) the stored
# batches still encoded, decoded in place by ``decode_stored`` or on demand by ``_columns``
Chunk = RecordColumns | EncodedColumns

# ``follow`` mirrors positions and refreshes the lag when caught up; a runner that never catches
# up does it every BUSY_MIRROR_FACTOR * mirror_every_s instead
BUSY_MIRROR_FACTOR = 10


@dataclass(frozen=True, slots=True)
class Bound:
    """Where a run stops: per-partition end offsets (exclusive) and/or a log time (ms, inclusive)
    and/or an event time (µs, inclusive).

    Records after ``time_ms`` are skipped (time travel by log time); events whose own time
    (``model.event_time_us``: ``executed_at``, ``initiated_at``, ...) is after ``event_time_us``
    are skipped too (time travel by event time; the Python path folds such runs). A partition
    without an offset bound stops at the end offset seen when the run started.
    """

    offsets: Mapping[tuple[str, int], int] = field(default_factory=dict)
    time_ms: int | None = None
    event_time_us: int | None = None


@dataclass(slots=True)
class StepResult:
    events: int = 0
    quarantined: int = 0
    rows: int = 0


class ProjectionRunner:
    def __init__(
        self,
        projection: Projection,
        event_log: EventLog,
        store: ViewStore,
        decoder: Decoder,
        *,
        target: Target | None = None,
        windowing: Windowing | None = None,
        batch_records: int = 20_000,
        quarantine: Quarantine | None = None,
        metrics: Any = None,
        hook: Hook = no_hook,
        mirror_group: bool = True,
        columnar: bool = True,
        fence: Callable[[], WriterFence | None] | None = None,
    ) -> None:
        self.projection = projection
        self.log = event_log
        self.store = store
        self.decoder = decoder
        self.target = target or Target(projection.name)
        # decrypt only the PII fields the projection stores (the rest stay ciphertext)
        self.pii_fields = frozenset(c.name for t in projection.tables for c in t.columns if c.pii)
        self.needs_pii = bool(self.pii_fields)
        self.ctx = FoldContext(windowing or Windowing(), projection.params)
        self.batch_records = batch_records
        self.quarantine = quarantine
        self.metrics = metrics
        self.hook = hook
        self.mirror_group = mirror_group and not self.target.suffix
        # fold aggregate tables column-wise in SQL when the projection and the store can
        self.columnar = columnar
        # several hub processes (core.leadership): the leader's token goes with every batch
        self.fence = fence
        self.columnar_batches = 0  # batches folded by the SQL path (the rest: Python)
        # the advisory consumer-group mirror: every batch by default; ``follow`` throttles it
        self.mirror_every_s = 0.0
        self._mirrored_at = 0.0
        self._listeners: list[Callable[[int, Mapping[str, Any]], None]] = []
        self.lock = threading.RLock()
        self._cp: Checkpoint | None = None
        self._windows = WindowState()

    # -- state -------------------------------------------------------------------------------------
    def open(self) -> Checkpoint:
        """Create the tables, undo a crashed batch, and load the committed checkpoint."""
        self.store.ensure(self.target, self.projection.tables)
        removed = self.store.recover(self.target, self.projection.tables)
        if removed:
            log.warning(
                "recovered projection",
                extra={"projection": self.target.id, "uncommitted_rows_removed": removed},
            )
        cp = self.store.checkpoint(self.target)
        positions = dict(cp.positions)
        for topic in self.projection.topics:
            for p, start in self.log.beginning_offsets(topic).items():
                positions.setdefault((topic, p), Position(start))
        self._cp = Checkpoint(cp.batch_seq, positions)
        self._windows = WindowState(
            {k: v.watermark_us for k, v in positions.items() if v.watermark_us is not None}
        )
        return self._cp

    def reset(self) -> None:
        """Forget in-memory state (after a swap); the next step reloads it."""
        self._cp = None

    @property
    def checkpoint(self) -> Checkpoint:
        return self._cp if self._cp is not None else self.open()

    def lag(self) -> int:
        cp = self.checkpoint
        total = 0
        for topic in self.projection.topics:
            for p, end in self.log.end_offsets(topic).items():
                total += max(0, end - cp.positions.get((topic, p), Position(0)).next_offset)
        return total

    def on_commit(self, listener: Callable[[int], None]) -> Callable[[], None]:
        """Call ``listener(batch_seq)`` after every committed batch, from the runner's thread (so
        it must return at once: set an event, schedule a callback); returns the unsubscribe."""
        return self.on_commit_rows(lambda seq, _rows: listener(seq))

    def on_commit_rows(
        self, listener: Callable[[int, Mapping[str, Any]], None]
    ) -> Callable[[], None]:
        """As ``on_commit``, with the rows the batch wrote per table (lists of rows, or Arrow
        tables from the SQL folds: partial rows of aggregate tables, as stored). The listener
        MUST NOT change them."""
        with self.lock:
            self._listeners = [*self._listeners, listener]

        def unsubscribe() -> None:
            with self.lock:
                self._listeners = [f for f in self._listeners if f is not listener]

        return unsubscribe

    @contextmanager
    def between_batches(self) -> Iterator[Checkpoint]:
        """Hold off the next batch: inside, the store holds exactly the batches up to the
        checkpoint given (a reader's snapshot then matches a batch number). Keep it short: the
        runner waits."""
        with self.lock:
            yield self.checkpoint

    # -- one batch ---------------------------------------------------------------------------------
    def step(self, bound: Bound | None = None) -> StepResult:
        with self.lock:
            started = time.perf_counter()
            cp = self.checkpoint
            # 1. read from the committed positions, partitions in sorted order
            chunks = self._read(cp, bound)
            if not chunks and not self._skips:
                return StepResult()
            with tracing.applying(self.target.id, chunks):
                self.hook("read")
                # 2. decode and fold (poison events to the quarantine)
                windows = WindowState(self._windows.max_seen)
                with localcontext(_FOLD_DECIMALS):  # sums of decimal(38, s) keep every digit
                    fast = self._fold_columnar(chunks, windows, bound)
                    if fast is None:
                        records = {tp: _columns(c).records() for tp, c in chunks.items()}
                        fast = self._fold(records, windows, bound)
                rows, result = fast
                positions = dict(cp.positions)
                for (topic, part), cols in chunks.items():
                    wm = windows.max_seen.get((topic, part))
                    positions[(topic, part)] = Position(_next_offset(cols), wm)
                for tp, offset in self._skips.items():  # past offsets without records (markers)
                    at = positions.get(tp, Position(0))
                    positions[tp] = Position(max(at.next_offset, offset), at.watermark_us)
                new = Checkpoint(cp.batch_seq + 1, positions)
                self.hook("folded")
                # 3. rows + checkpoint, atomically per the store's protocol (fenced: refused when
                #    a newer leader wrote this projection)
                token = None
                if self.fence is not None and (token := self.fence()) is None:
                    raise NotLeader(
                        f"This hub process is not the leader; projection "
                        f"{self.projection.name!r} is run by the leader only."
                    )
                try:
                    self.store.write(
                        self.target, self.projection.tables, rows, new, self.hook, fence=token
                    )
                except HubError as exc:
                    if exc.code == "view_checkpoint_moved":  # another writer committed since
                        self.reset()  # the next step reloads the committed checkpoint
                    raise
                self._cp, self._windows = new, windows
                # 4. the commit listeners, the advisory mirror of positions, metrics
                for listener in self._listeners:
                    try:
                        listener(new.batch_seq, rows)
                    except Exception:  # a listener's failure is its own, never the batch's
                        log.exception("projection commit listener failed")
                if (
                    self.mirror_group
                    and time.monotonic() - self._mirrored_at >= self.mirror_every_s
                ):
                    self._mirror(new)
                    self._mirrored_at = time.monotonic()
                self.hook("mirrored")
                if self.metrics is not None:
                    name = self.projection.name
                    self.metrics.projection_events.labels(name).inc(result.events)
                    self.metrics.projection_batch_seconds.labels(name).observe(
                        time.perf_counter() - started
                    )
                return result

    def _sql_path(self, bound: Bound | None) -> bool:
        """Whether batches may take the SQL path (``_fold_columnar`` still declines one it
        cannot fold exactly)."""
        proj = self.projection
        return (
            self.columnar
            and proj.columnar is not None
            and not proj.entities
            and not self.needs_pii
            and getattr(self.store, "can_select_over", False)
            and (bound is None or (bound.time_ms is None and bound.event_time_us is None))
        )

    def _read(self, cp: Checkpoint, bound: Bound | None) -> dict[tuple[str, int], Chunk]:
        budget = self.batch_records
        chunks: dict[tuple[str, int], Chunk] = {}
        # the SQL path decodes the stored batches in place when the log hands them out
        encoded = self._sql_path(bound)
        # Offsets that hold no record (Kafka transaction markers, mirrored by the SQLite log):
        # when two reads in a row find nothing below the stable offset taken before them, the
        # position may move there. The stable offsets are asked for only once a read came back
        # empty (then two more reads follow): on Kafka each ask is a ListOffsets round trip to
        # the broker, and asked before every read it cost a live step ~10 % of the follower's
        # samples (docs/benchmarks/s15-visible.md); a step that found records needs none.
        self._skips: dict[tuple[str, int], int] = {}
        stable: dict[str, dict[int, int]] = {}
        for tp in sorted(cp.positions):
            if budget <= 0:
                break
            start = cp.positions[tp].next_offset
            limit = budget
            if bound is not None and tp in bound.offsets:
                limit = min(limit, bound.offsets[tp] - start)
            if limit <= 0:
                continue
            recs: Chunk | None = None
            if encoded:
                recs = self.log.read_encoded(tp[0], tp[1], start, limit)
            if recs is None:
                recs = self.log.read_columns(tp[0], tp[1], start, limit)
            if bound is not None and tp in bound.offsets:
                recs = recs.below(bound.offsets[tp])
            if not len(recs):
                if tp[0] not in stable:
                    stable[tp[0]] = self.log.stable_offsets(tp[0])
                target = stable[tp[0]].get(tp[1], 0)
                if bound is not None and tp in bound.offsets:
                    target = min(target, bound.offsets[tp])
                # Two empty reads after the stable offset was taken tell marker offsets from a
                # read that came back early (a Kafka fetch right after a broker restart): only
                # then skip to the target.
                if (
                    target > start
                    and not self.log.read(tp[0], tp[1], start, 1)
                    and not self.log.read(tp[0], tp[1], start, 1)
                ):
                    self._skips[tp] = target
            if len(recs):
                chunks[tp] = recs
                budget -= len(recs)
        return chunks

    def _fold(
        self,
        chunks: Mapping[tuple[str, int], Sequence[StoredRecord]],
        windows: WindowState,
        bound: Bound | None,
    ) -> tuple[dict[str, Any], StepResult]:
        proj = self.projection
        result = StepResult()
        out: dict[str, list[Row]] = {t.name: [] for t in proj.tables}
        late_name = f"{proj.name}_late"
        decoded: list[tuple[tuple[str, int], list[Event]]] = []
        for tp, recs in chunks.items():
            # the whole chunk column-wise when it can (no PII to decrypt, no log-time cut, one
            # writer schema); else record by record, which owns every poison decision
            fast = None
            if not self.needs_pii and (bound is None or bound.time_ms is None):
                fast = self.decoder.decode_batch(recs)
            if fast is not None:
                if bound is not None and bound.event_time_us is not None:
                    cut = bound.event_time_us
                    fast = [e for e in fast if event_time_us(proj, e) <= cut]
                decoded.append((tp, fast))
                result.events += len(fast)
                continue
            events = []
            for r in recs:
                if (
                    bound is not None
                    and bound.time_ms is not None
                    and r.timestamp_ms > bound.time_ms
                ):
                    continue
                try:
                    ev = (
                        self.decoder.decode(r, seal=self.pii_fields)
                        if self.store.seals_pii  # PII stays ciphertext in the store
                        else self.decoder.decode(r, decrypt=self.pii_fields)
                    )
                except Poison as exc:
                    self._poison(r, exc.code, exc.reason, result)
                    continue
                if (
                    bound is not None
                    and bound.event_time_us is not None
                    and event_time_us(proj, ev) > bound.event_time_us
                ):
                    continue
                events.append(ev)
            decoded.append((tp, events))
            result.events += len(events)
        # aggregate / append tables: the batch fold, one partition chunk at a time
        if proj.fold is not None:
            for tp, events in decoded:
                produced = self._safe_fold(events, windows, chunks[tp], result)
                for table, rows in produced.items():
                    name = late_name if table == "late_events" else table
                    if name in out:
                        for row in rows:
                            if "src_first" in row:
                                row["src_topic"], row["src_partition"] = tp
                        out[name].extend(rows)
        # entity tables: load the touched keys once, apply events in log order per partition
        for rule in proj.entities:
            spec = proj.table(rule.table)
            touched: list[tuple[Any, ...]] = []
            for _, events in decoded:
                touched += [rule.key(e) for e in events if e.event_type in rule.event_types]
            if not touched:
                continue
            states: dict[tuple[Any, ...], Row] = self.store.load(self.target, spec, touched)
            changed: dict[tuple[Any, ...], Row] = {}
            for _, events in decoded:
                for e in events:
                    if e.event_type not in rule.event_types:
                        continue
                    key = rule.key(e)
                    try:
                        row = rule.fold(states.get(key), e, self.ctx)
                    except Exception as exc:  # a fold bug or an unexpected payload
                        self._poison(self._record_of(chunks, e), "fold_failed", repr(exc), result)
                        continue
                    row["src_offsets"] = merge_src(
                        states[key]["src_offsets"] if key in states else None, e
                    )
                    states[key] = changed[key] = row
            out[rule.table].extend(changed.values())
        result.rows = sum(len(v) for v in out.values())
        return out, result

    def _fold_columnar(
        self,
        chunks: Mapping[tuple[str, int], Chunk],
        windows: WindowState,
        bound: Bound | None,
    ) -> tuple[dict[str, Any], StepResult] | None:
        """The SQL path: decode column-wise, fold in the analytics engine. None when the
        projection, the store or this batch needs the Python path (which is the reference and
        owns every poison decision): the batch is then folded there, from the same state."""
        proj = self.projection
        if not self.columnar or proj.columnar is None or proj.entities or self.needs_pii:
            return None
        if not getattr(self.store, "can_select_over", False):
            return None
        if bound is not None and bound.event_time_us is not None:
            return None  # event-time cuts are per decoded event: the Python path
        time_ms = None if bound is None else bound.time_ms
        tables: list[tuple[tuple[str, int], pa.Table]] = []
        try:
            kept: list[tuple[tuple[str, int], Chunk]] = []
            for tp, chunk in chunks.items():
                if time_ms is not None:
                    chunk = _logged_by(_columns(chunk), time_ms)
                if len(chunk):
                    kept.append((tp, chunk))
            # Stored batches (every chunk read encoded): one native pass over their bodies.
            # Otherwise (or when it leaves the batch to the reference) the chunks as columns.
            stored = None
            if kept and all(isinstance(c, EncodedColumns) for _, c in kept):
                stored = decode_stored(
                    [b for _, c in kept for b in c.batches],  # type: ignore[union-attr]
                    lambda i: self.decoder.schema(i)[0],
                    lambda i: self.decoder.schema(i)[1],
                )
            if stored is not None:
                fields, _, tenants, types, offsets = stored
            elif kept:
                kept = [(tp, _columns(c)) for tp, c in kept]
            # One decode for the whole batch, then a slice per partition chunk: the column-wise
            # decoder costs ~2 ms per call however few records it gets, and a live batch holds
            # a few records of every partition.
            if kept and stored is None:
                cols_kept = [c for _, c in kept if isinstance(c, RecordColumns)]
                values = (
                    cols_kept[0].values
                    if len(cols_kept) == 1
                    else list(chain.from_iterable(c.values for c in cols_kept))
                )
                fields, ids = decode_values(values, lambda i: self.decoder.schema(i)[0])
                tenants, types, offsets = envelope_of_columns(
                    cols_kept, ids, lambda i: self.decoder.schema(i)[1]
                )
            if kept:
                for extra in ("src_offset", "tenant", "event_type"):
                    if extra in fields.column_names:
                        raise Unsupported(f"a field called {extra}")
                fields = (
                    fields.append_column("src_offset", pa.array(offsets))
                    .append_column("tenant", tenants)
                    .append_column("event_type", types)
                )
                at = 0
                for tp, cols in kept:
                    tables.append((tp, fields.slice(at, len(cols))))
                    at += len(cols)
            trial = WindowState(windows.max_seen)
            produced = proj.columnar(tables, trial, self.ctx, self.store.select_over)
        except (Unsupported, Poison) as exc:
            log.debug(
                "batch folded in Python",
                extra={"projection": proj.name, "reason": str(exc)},
            )
            return None
        windows.max_seen = trial.max_seen
        out: dict[str, Any] = {t.name: [] for t in proj.tables}
        late_name = f"{proj.name}_late"
        for table, got in produced.items():
            name = late_name if table == "late_events" else table
            if name in out:
                out[name] = got
        result = StepResult(events=sum(t.num_rows for _, t in tables))
        result.rows = sum(len(v) for v in out.values())
        self.columnar_batches += 1
        return out, result

    def _safe_fold(
        self,
        events: list[Event],
        windows: WindowState,
        recs: Sequence[StoredRecord],
        result: StepResult,
    ) -> dict[str, list[Row]]:
        assert self.projection.fold is not None
        before = dict(windows.max_seen)
        try:
            return self.projection.fold(events, windows, self.ctx)
        except Exception:
            pass
        # find the poison events one by one, then fold the rest
        windows.max_seen = before
        good = []
        by_offset = {r.offset: r for r in recs}
        for e in events:
            try:
                self.projection.fold([e], WindowState(before), self.ctx)
                good.append(e)
            except Exception as exc:
                self._poison(by_offset[e.offset], "fold_failed", repr(exc), result)
        return self.projection.fold(good, windows, self.ctx)

    @staticmethod
    def _record_of(
        chunks: Mapping[tuple[str, int], Sequence[StoredRecord]], e: Event
    ) -> StoredRecord:
        for r in chunks[(e.topic, e.partition)]:
            if r.offset == e.offset:
                return r
        raise KeyError(e.offset)

    def _poison(self, rec: StoredRecord, code: str, reason: str, result: StepResult) -> None:
        result.quarantined += 1
        result.events -= 0
        if self.metrics is not None:
            self.metrics.projection_errors.labels(self.projection.name, code).inc()
        log.warning(
            "poison event quarantined",
            extra={
                "projection": self.projection.name,
                "topic": rec.topic,
                "partition": rec.partition,
                "offset": rec.offset,
                "reason": reason,
            },
        )
        if self.quarantine is not None and not self.target.suffix.startswith("at_"):
            self.quarantine(self.projection.name, rec, code, reason)

    def _mirror(self, cp: Checkpoint) -> None:
        try:
            self.log.commit_offsets(
                f"projection.{self.projection.name}",
                {TopicPartition(t, p): pos.next_offset for (t, p), pos in cp.positions.items()},
            )
        except HubError as exc:  # advisory only: the store holds the truth
            log.warning("could not mirror projection offsets", extra={"error": exc.message})

    # -- loops -------------------------------------------------------------------------------------
    def catch_up(self, bound: Bound | None = None) -> int:
        """Process until every partition reached ``bound`` (default: the end offsets now)."""
        cp = self.checkpoint
        if bound is None or not bound.offsets:
            ends = {
                (t, p): end
                for t in self.projection.topics
                for p, end in self.log.end_offsets(t).items()
            }
            bound = replace(bound or Bound(), offsets=ends)
        done = 0
        while True:
            cp = self.checkpoint
            if all(
                cp.positions.get(tp, Position(0)).next_offset >= end
                for tp, end in bound.offsets.items()
            ):
                break
            got = self.step(bound)
            done += got.events + got.quarantined
            if not got.events and not got.quarantined and not self._progressed(cp):
                break
        if self.metrics is not None and not self.target.suffix:
            self.metrics.projection_lag.labels(self.projection.name).set(self.lag())
        return done

    def _progressed(self, before: Checkpoint) -> bool:
        return self.checkpoint.batch_seq != before.batch_seq

    def follow(
        self, stop: threading.Event, poll_s: float = 0.05, mirror_every_s: float = 0.5
    ) -> None:
        """Live processing until ``stop`` is set; errors are counted and retried, never fatal.

        Latency: a batch is whatever arrived since the last one (up to ``batch_records``), so
        batches are small when caught up and large when behind. Batches are not cut smaller to
        meet a latency budget: each batch pays a fixed cost (decode set-up, one INSERT per
        table, the checkpoint), and on a CPU-starved machine smaller batches fell further
        behind (measured at 1,000 trades/s, load 22-31: p99 35-41 s with ~200-record batches
        against 9.4-12.3 s uncut; ``docs/benchmarks.md``, console section). A batch that found
        records is followed at once by the next ``step`` (no wait while records may be waiting).
        When idle, the runner sleeps in ``EventLog.wait_for_append`` on its own topics: an append
        to one of them made through the same log object (the embedded log, this process's Kafka
        producer) wakes it at once, and it reads without asking the log for offsets first;
        appends to other topics and offset commits do not wake it. Appends the log object cannot
        see (another process) are found by an end-offset check every ``poll_s``, which is also
        how soon ``stop`` is seen.

        The advisory group mirror and the lag metric (each a log round trip, the mirror a write
        transaction that waits for the disk) are kept off the path between an append and its
        commit: they run when the runner has caught up (a step found nothing), at most every
        ``mirror_every_s``, and while it never catches up, every ``BUSY_MIRROR_FACTOR`` times
        that (``docs/benchmarks/s9-visible-latency.md``).
        """
        self.mirror_every_s = math.inf  # ``step`` leaves the mirror to this loop
        topics = list(self.projection.topics)
        housekept = time.monotonic()
        try:
            while not stop.is_set():
                try:
                    got = self.step()
                    idle = not got.events and not got.quarantined
                    since = time.monotonic() - housekept
                    if since >= (mirror_every_s if idle else BUSY_MIRROR_FACTOR * mirror_every_s):
                        self._housekeep()
                        housekept = time.monotonic()
                    if idle:
                        # read the counter before checking: an append in between is not missed
                        seen = self.log.append_generation(topics)
                        while not stop.is_set() and not self._behind():
                            if self.log.wait_for_append(seen, poll_s, topics) != seen:
                                break  # an append to our topics: read it now
                except HubError as exc:
                    if self.metrics is not None:
                        self.metrics.projection_errors.labels(self.projection.name, exc.code).inc()
                    log.error(
                        "projection batch failed; retrying",
                        extra={"projection": self.projection.name, "error": exc.message},
                    )
                    self.reset()
                    stop.wait(1.0)
        finally:
            self.mirror_every_s = 0.0
            if self.mirror_group and self._cp is not None:
                self._mirror(self._cp)

    def _housekeep(self) -> None:
        """The advisory mirror of the committed positions and the lag metric (``follow``)."""
        with self.lock:
            cp = self._cp
        if self.mirror_group and cp is not None:
            self._mirror(cp)
            self._mirrored_at = time.monotonic()
        if self.metrics is not None:
            self.metrics.projection_lag.labels(self.projection.name).set(self.lag())

    def _behind(self) -> bool:
        """Whether the log has records past the in-memory positions (one end-offsets query per
        topic; errors count as "go and read", so ``step`` reports them)."""
        cp = self._cp
        if cp is None:
            return True
        try:
            for topic in self.projection.topics:
                for p, end in self.log.end_offsets(topic).items():
                    if end > cp.positions.get((topic, p), Position(0)).next_offset:
                        return True
        except HubError:
            return True
        return False


def _logged_by(cols: RecordColumns, time_ms: int) -> RecordColumns:
    """The records of ``cols`` with a log time at or before ``time_ms`` (a time-travel cut)."""
    if all(t <= time_ms for t in cols.timestamps):
        return cols
    kept = [r for r in cols.records() if r.timestamp_ms <= time_ms]
    return RecordColumns.from_records(cols.topic, cols.partition, kept)


def _columns(chunk: Chunk) -> RecordColumns:
    """A chunk as columns (stored batches decoded by the log's own decoder)."""
    return chunk if isinstance(chunk, RecordColumns) else chunk.columns()


def _next_offset(chunk: Chunk) -> int:
    """The offset after a non-empty chunk's last record."""
    if isinstance(chunk, RecordColumns):
        return chunk.offsets[-1] + 1
    return chunk.next_offset()
