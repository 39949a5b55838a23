"""Pattern matches (complex event processing) as alert events on ``hub.alerts``.

Both engines find the matches of a pattern (``projections.patterns``): the embedded engine
(``find_matches`` over the log) and Flink's ``MATCH_RECOGNIZE`` job (alert rows upserted into
PostgreSQL, ``FlinkViews.alert_rows``). ``PatternAlerts.raise_alerts(pattern, rows, engine)``
turns each match into one ``hub.AlertFired`` event through the hub's publisher, like the alert
rules' events (``hub.console.alerts``), so the console's alert list and the ledger see them.

Contract:
1. One match, one event per engine: the ``alert_id`` is derived from (engine, pattern, the
   match's key, ``projections.patterns.alert_key``), a UUIDv5, not a random UUIDv7, so that a
   detector run again (a restarted Flink job re-upserting its rows, the embedded engine
   re-reading the log) finds the id on the topic and appends nothing.
2. The rule is ``pattern.<name>``; the summary names the engine and the match's events; the
   value and threshold are exact decimal text (the amount against the reporting threshold, the
   trade price against the quote's ask plus the spike percentage).
3. Pattern alerts are fired, never resolved: a match is a finding for an analyst, not a
   condition that comes and goes.

Operational triggers (``PATTERNS`` are the patterns in force, the definitions' defaults):
- embedded engine: ``PatternDetector`` (the embedded twin of the Flink CEP job) reads the
  patterns' topics from where it stopped, a batch at a time, feeds each pattern's
  ``projections.pattern_state.PatternState`` (``find_matches`` incrementally, keeping only what
  can still take part in a match) and raises the new matches. ``hub serve`` runs it in
  a background thread beside the projection runners (``HUB_PATTERN_ALERTS``, on by default, and
  only when ``HUB_PROJECTION_ENGINE=embedded``; with leader election only in the leader), and
  ``hub projection run`` runs one pass (``--follow``: continuously);
- Flink: ``hub projection run --engine flink`` submits the patterns' ``MATCH_RECOGNIZE`` job
  with the projections (``projections.flink.service.FlinkProjections``) and raises what its alert
  table holds after a bounded run, or on every supervision pass of the unbounded jobs.
A restart of either reads from the beginning again and raises nothing new (contract 1).
Memory: the embedded twin holds per partition key the events of one window plus the allowed
lateness (``hub_pattern_state_events``); like Flink it drops events behind its watermark
(``hub_pattern_late_events_total``; the rule: ``projections.pattern_state``), and like Flink's
unbounded jobs it lets a partition with nothing to read for ``IDLE_TIMEOUT_MS`` (10 s) stop
holding the watermark back.
"""

from __future__ import annotations

import io
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from decimal import Context, Decimal
from typing import TYPE_CHECKING, Any, Literal

from core.events import OutgoingEvent
from core.ports.eventlog import StoredRecord
from hub.console.alerts import ALERTS_TOPIC, FIRED
from projections.pattern_batch import PatternBatch, items_of
from projections.pattern_state import PatternState
from projections.patterns import Pattern, PriceSpike, Structuring, alert_key, topics_of

if TYPE_CHECKING:
    from hub.bootstrap import Hub

Engine = Literal["embedded", "flink"]
_NAMESPACE = uuid.UUID("6f1d8a52-2b0e-5c1e-9a57-0c6a3f3b7e11")
PRODUCER = "hub.patterns"
_EXACT = Context(prec=80)  # decimal(38, s) values and their products, never rounded
PATTERNS: tuple[Pattern, ...] = (Structuring(), PriceSpike())  # the patterns in force
log = logging.getLogger("hub.patterns")


def alert_id(engine: Engine, pattern: Pattern, row: Mapping[str, Any]) -> str:
    key = "\x1f".join(str(row[k]) for k in alert_key(pattern))
    return str(uuid.uuid5(_NAMESPACE, f"{engine}\x1e{pattern.name}\x1e{key}"))


def alert_value(engine: Engine, pattern: Pattern, row: Mapping[str, Any]) -> dict[str, Any]:
    """The ``hub.AlertFired`` value of one match (step 2 of the module docstring)."""
    if isinstance(pattern, Structuring):
        summary = (
            f"AML structuring: {row['payments']} payments just under {pattern.threshold} from "
            f"account {row['account_id']} (tenant {row['tenant']}) within "
            f"{pattern.within_ms // 60_000} minutes, {row['amount']} in total; first payment "
            f"at {pattern.topic}/{row['first_partition']}@{row['first_offset']}; found by "
            f"{engine}."
        )
        value, threshold, severity = row["amount"], pattern.threshold, "high"
    else:
        limit = _EXACT.divide(_EXACT.multiply(Decimal(row["ask"]), 100 + pattern.pct), 100)
        summary = (
            f"Price spike: trade {row['trade_id']} in {row['instrument']} (tenant "
            f"{row['tenant']}) at {row['price']}, more than {pattern.pct} % above the quoted "
            f"ask {row['ask']}; trade at {pattern.trades_topic}/{row['trade_partition']}@"
            f"{row['trade_offset']}; found by {engine}."
        )
        value, threshold, severity = row["price"], limit, "medium"
    return {
        "alert_id": alert_id(engine, pattern, row),
        "rule": f"pattern.{pattern.name}",
        "severity": severity,
        "summary": summary,
        "value": format(Decimal(value).normalize(_EXACT), "f"),
        "threshold": format(Decimal(threshold).normalize(_EXACT), "f"),
        "fired_at": datetime.now(UTC).isoformat(),
    }


class PatternAlerts:
    def __init__(self, hub: Hub) -> None:
        self.hub = hub

    def alert_ids(self) -> set[str]:
        """The ``alert_id`` of every alert event on the topic."""
        log = self.hub.log
        if ALERTS_TOPIC not in {t.name for t in log.topics()}:
            return set()
        out: set[str] = set()
        for part, end in log.end_offsets(ALERTS_TOPIC).items():
            offset = log.beginning_offsets(ALERTS_TOPIC).get(part, 0)
            while offset < end:
                batch = self.hub.reader.read(ALERTS_TOPIC, part, offset, 1000)
                if not batch:
                    break
                out.update(str((r["value"] or {}).get("alert_id", "")) for r in batch)
                offset = batch[-1]["offset"] + 1
        return out

    def raise_alerts(
        self,
        pattern: Pattern,
        rows: Iterable[Mapping[str, Any]],
        engine: Engine,
        seen: set[str] | None = None,
    ) -> list[dict[str, Any]]:
        """One ``hub.AlertFired`` per match not alerted yet by ``engine`` (appended in one
        batch); the values appended. ``seen``: the alert ids known to be on the topic (read
        from it when not given), updated with the new ones."""
        seen = self.alert_ids() if seen is None else seen
        values = []
        for row in rows:
            value = alert_value(engine, pattern, row)
            if value["alert_id"] not in seen:
                seen.add(value["alert_id"])
                values.append((str(row.get("tenant") or "default"), value))
        by_tenant: dict[str, list[OutgoingEvent]] = {}
        for tenant, value in values:
            by_tenant.setdefault(tenant, []).append(
                OutgoingEvent(value=value, event_type=FIRED, key=value["rule"])
            )
        for tenant, events in by_tenant.items():
            self.hub.publisher.publish(ALERTS_TOPIC, events, producer=PRODUCER, tenant=tenant)
        return [v for _, v in values]


def decoder_of(hub: Hub) -> Callable[[bytes], tuple[str, Mapping[str, Any]]]:
    """A Confluent wire-format value -> (record name, datum), PII fields left as ciphertext
    (the patterns read amounts, accounts, instruments and prices only)."""
    import fastavro

    def decode(value: bytes) -> tuple[str, Mapping[str, Any]]:
        schema, name = hub.projections.decoder.schema(int.from_bytes(value[1:5], "big"))
        datum = fastavro.schemaless_reader(io.BytesIO(value[5:]), schema, None)
        return name, datum if isinstance(datum, dict) else {}

    return decode


class PatternDetector:
    """The embedded twin of the Flink CEP job (module docstring): ``step()`` is one pass.

    One ``PatternState`` per pattern holds what can still take part in a match (bounded by the
    pattern's window and lateness); records are decoded a partition batch at a time
    (``PatternBatch``). A pass:
    1. names the partitions holding records to every pattern reading them (the watermark), with
       those that have records to read and the processing time (``clock``): a partition with
       none for ``IDLE_TIMEOUT_MS`` stops holding the watermark back, as in Flink's unbounded
       CEP jobs (``projections.pattern_state``, contract 6); rows it settles are queued;
    2. reads each partition from its remembered position, offers each batch's events to the
       patterns, moves the position past the batch and queues the rows the batch made (so a
       pass failing half-way neither reads a record twice nor forgets a match);
    3. raises the queued rows not alerted yet and empties the queue (a failed raise keeps it
       for the next pass);
    4. sets the state gauge and counts the late events."""

    def __init__(
        self,
        hub: Hub,
        patterns: Sequence[Pattern] = PATTERNS,
        batch: int = 5000,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.hub = hub
        self.clock = clock  # processing time in seconds (idle partitions)
        self.patterns = tuple(patterns)
        self.batch = batch
        self.alerts = PatternAlerts(hub)
        self.schema_of = hub.projections.decoder.schema
        self.positions: dict[tuple[str, int], int] = {}  # next offset per topic partition
        self.states = {p.name: PatternState(p) for p in self.patterns}
        self.queued: list[tuple[Pattern, dict[str, Any]]] = []  # rows not raised yet
        self.seen: set[str] | None = None  # alert ids on hub.alerts (read once)
        self.raised = 0
        self._late = {p.name: 0 for p in self.patterns}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _read_new(self) -> int:
        """Steps 1 and 2 of the class docstring: read every pattern topic from the remembered
        positions to its stable offset (past transaction markers only after two empty reads in a
        row: the event log's contract); the records read."""
        log_, read = self.hub.log, 0
        existing = {t.name for t in log_.topics()}
        topics = sorted({t for p in self.patterns for t in topics_of(p)} & existing)
        spans: dict[str, tuple[dict[int, int], dict[int, int]]] = {}
        holding: list[tuple[str, int]] = []
        unread: list[tuple[str, int]] = []
        now_ms = int(self.clock() * 1000)
        for topic in topics:  # 1.
            starts, ends = log_.beginning_offsets(topic), log_.stable_offsets(topic)
            spans[topic] = (starts, ends)
            for p, end in ends.items():
                start = starts.get(p, 0)
                if end > start:
                    holding.append((topic, p))
                if end > max(start, self.positions.get((topic, p), 0)):
                    unread.append((topic, p))
        for state in self.states.values():
            mine = [tp for tp in holding if tp[0] in state.topics]
            rows = state.expect(mine, [tp for tp in unread if tp[0] in state.topics], now_ms)
            self.queued += [(state.pattern, r) for r in rows]
        for topic in topics:  # 2.
            starts, ends = spans[topic]
            readers = [s for s in self.states.values() if topic in s.topics]
            for part, end in sorted(ends.items()):
                offset = max(self.positions.get((topic, part), 0), starts.get(part, 0))
                while offset < end:
                    records = log_.read(topic, part, offset, self.batch)
                    if not records:
                        records = log_.read(topic, part, offset, self.batch)
                    if not records:
                        offset = end  # only marker offsets lie between
                        break
                    read += len(records)
                    self._offer(readers, records)
                    offset = records[-1].offset + 1
                    self.positions[(topic, part)] = offset
                self.positions[(topic, part)] = max(offset, self.positions.get((topic, part), 0))
        return read

    def _offer(self, readers: Sequence[PatternState], records: Sequence[StoredRecord]) -> None:
        b = PatternBatch.of(records, self.schema_of)
        for state in readers:
            ok = state.on_time(b.topic, b.partition, b.at_ms, b.log_ms)
            rows = state.offer(items_of(state.pattern, b, ok))
            self.queued += [(state.pattern, r) for r in rows]

    def step(self) -> list[dict[str, Any]]:
        """Read what is new; raise the matches it made that are not alerted yet
        (``hub.AlertFired``); the alert values appended."""
        read = self._read_new()
        for state in self.states.values():  # the matches of the events read so far
            self.queued += [(state.pattern, r) for r in state.flush()]
        if not read and self.seen is not None and not self.queued:
            return []
        if self.seen is None:
            self.seen = self.alerts.alert_ids()
        added: list[dict[str, Any]] = []
        for p in self.patterns:  # 3.
            new = [r for q, r in self.queued if q is p]
            new = [r for r in new if alert_id("embedded", p, r) not in self.seen]
            if new:
                added += self.alerts.raise_alerts(p, new, "embedded", self.seen)
        self.queued = []
        self.raised += len(added)
        metrics = self.hub.metrics  # 4.
        for name, state in self.states.items():
            metrics.pattern_state_events.labels(name).set(state.retained())
            metrics.pattern_late_events.labels(name).inc(state.late - self._late[name])
            self._late[name] = state.late
        return added

    def start(self, poll_s: float = 1.0, active: Callable[[], bool] = lambda: True) -> None:
        """Run ``step`` every ``poll_s`` in a background thread while ``active()`` (e.g. this
        process is the leader); a failing pass is logged and retried on the next one."""

        def loop() -> None:
            while not self._stop.wait(poll_s):
                if not active():
                    continue
                try:
                    added = self.step()
                except Exception:  # keep detecting: the next pass retries
                    log.exception("pattern detection pass failed")
                    continue
                if added:
                    log.warning("pattern alerts raised", extra={"alerts": len(added)})

        self._stop.clear()
        self._thread = threading.Thread(target=loop, name="pattern-detector", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None


@contextmanager
def detecting(hub: Hub, run: bool = True) -> Iterator[PatternDetector | None]:
    """``hub serve``'s embedded pattern detector while inside: only with ``run`` (the projection
    runners follow the log), ``HUB_PATTERN_ALERTS`` and the embedded engine; with leader election
    it detects only while this process leads (alert ids dedupe a handover's overlap)."""
    s = hub.settings
    if not (run and s.pattern_alerts and s.projection_engine == "embedded"):
        yield None
        return
    detector = PatternDetector(hub)
    leader = getattr(hub, "leader", None)
    detector.start(active=lambda: leader is None or leader.is_leader())
    try:
        yield detector
    finally:
        detector.stop()


def engine_of(event: Mapping[str, Any]) -> str | None:
    """Which engine found a pattern alert (from its summary), or None for other alerts."""
    if not str(event.get("rule", "")).startswith("pattern."):
        return None
    text = str(event.get("summary", ""))
    return text.rsplit("found by ", 1)[-1].rstrip(".") if "found by " in text else None


def by_engine(events: Sequence[Mapping[str, Any]]) -> dict[str, list[Mapping[str, Any]]]:
    out: dict[str, list[Mapping[str, Any]]] = {}
    for e in events:
        engine = engine_of(e)
        if engine is not None:
            out.setdefault(engine, []).append(e)
    return out
