"""OpenTelemetry traces across ingest -> log -> projection, and where their context is kept.

Off by default (``HUB_OTEL_EXPORTER=none``): then :func:`tracer` is ``None`` and every
instrumented place takes its untraced path after one ``is None`` test, so publishing costs what
it cost before (``benchmarks/test_tracing_overhead.py`` measures it).

When on, the hub makes these spans:
- ``HTTP <method> <route>`` (server): one per request, child of an incoming W3C ``traceparent``;
  the access log line carries its ``trace.id`` and ``span.id`` (ECS fields);
- ``publish <topic>`` (producer): one per published batch, with ``log.append`` as its child;
  the append span carries the topic, the partitions, the first offset in each and the record
  count;
- ``projection.apply <projection>`` (consumer): one per applied batch, a new trace *linked* to
  the publish span of every batch whose records it applied.

Where the link travels: not in the record headers. Headers are part of a record's ledger leaf
(``audit.leaf.encode`` hashes them), so a ``traceparent`` header would make the ledger prove a
random per-request value, change the leaves of otherwise identical records (replays, the
embedded/Kafka byte-for-byte comparison) and grow every record by 70 bytes. The publish side
instead files ``(topic, partition, first offset, last offset) -> traceparent`` in a
:class:`TraceLinks` store beside the log (``adapters/sqlite_tracelinks.py``: a SQLite file in
the data folder, shared by the processes of one host); the projection side looks up the ranges
it applied. What the ledger proves is unchanged, whether traces are on or off.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from opentelemetry import trace
from opentelemetry.trace import Link, SpanContext, SpanKind, TraceFlags

if TYPE_CHECKING:
    from opentelemetry.trace import Span, Tracer

    from core.ports.eventlog import EncodedColumns, RecordColumns, RecordMetadata

TRACER_NAME = "hub"
_M = TypeVar("_M", bound="Sequence[RecordMetadata]")  # an append's answer (a list or columns)


class TraceLinks(Protocol):
    """Which publish span wrote which offsets: ``put`` at publish, ``find`` at apply."""

    def put(self, entries: Sequence[tuple[str, int, int, int, str]]) -> None:
        """File ``(topic, partition, first offset, last offset, traceparent)`` entries."""
        ...

    def find(self, topic: str, partition: int, first: int, last: int) -> list[str]:
        """The traceparents of the batches overlapping ``first..last`` (inclusive)."""
        ...


class _State:
    tracer: Tracer | None = None
    links: TraceLinks | None = None


_state = _State()


def install(tracer: Tracer | None, links: TraceLinks | None = None) -> None:
    """Turn tracing on with ``tracer`` (``None``: off). The process keeps one tracer."""
    _state.tracer = tracer
    _state.links = links if tracer is not None else None


def use_links(links: TraceLinks | None) -> None:
    """The store the trace links go to (set by the composition root when tracing is on)."""
    _state.links = links


def tracer() -> Tracer | None:
    """The tracer when tracing is on, else ``None`` (the fast path)."""
    return _state.tracer


def traceparent(span: Span) -> str:
    """The W3C ``traceparent`` of ``span``."""
    ctx = span.get_span_context()
    return f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-{int(ctx.trace_flags):02x}"


def parse_traceparent(value: str) -> SpanContext | None:
    """A remote span context from a W3C ``traceparent``, or ``None`` when it is malformed."""
    parts = value.strip().split("-")
    if len(parts) != 4 or parts[0] != "00" or len(parts[1]) != 32 or len(parts[2]) != 16:
        return None
    try:
        trace_id, span_id, flags = int(parts[1], 16), int(parts[2], 16), int(parts[3], 16)
    except ValueError:
        return None
    if trace_id == 0 or span_id == 0:
        return None
    return SpanContext(trace_id, span_id, is_remote=True, trace_flags=TraceFlags(flags))


def ids(span: Span | None = None) -> tuple[str, str] | None:
    """(trace id, span id) in hex of ``span`` (default: the current one) when it is recording."""
    if _state.tracer is None:
        return None
    span = span or trace.get_current_span()
    ctx = span.get_span_context()
    if not ctx.is_valid:
        return None
    return f"{ctx.trace_id:032x}", f"{ctx.span_id:016x}"


def publishing(topic: str, events: int, source: str | None = None) -> AbstractContextManager[Any]:
    """``publish <topic>`` when tracing is on, else a context that does nothing."""
    tr = _state.tracer
    if tr is None:
        return nullcontext()
    attributes: dict[str, Any] = {
        "messaging.destination.name": topic,
        "messaging.batch.message_count": events,
    }
    if source is not None:
        attributes["hub.ingest.source"] = source
    return tr.start_as_current_span(
        f"publish {topic}", kind=SpanKind.PRODUCER, attributes=attributes
    )


@contextmanager
def append_span(tr: Tracer, topic: str, records: int) -> Iterator[Span]:
    """``log.append``: call :func:`appended` with the metadata before it ends."""
    with tr.start_as_current_span(
        "log.append",
        kind=SpanKind.INTERNAL,
        attributes={"hub.log.topic": topic, "hub.log.record_count": records},
    ) as span:
        yield span


def traced_append(topic: str, records: int, append: Callable[[], _M]) -> _M:
    """``append()`` inside a ``log.append`` span (a plain call when tracing is off)."""
    tr = _state.tracer
    if tr is None:
        return append()
    publish = trace.get_current_span()
    with append_span(tr, topic, records) as span:
        meta = append()
        appended(span, publish if publish.get_span_context().is_valid else span, topic, meta)
    return meta


def appended(span: Span, publish: Span, topic: str, meta: Sequence[RecordMetadata]) -> None:
    """Set the append span's partition/offset attributes and file the trace links."""
    ranges: dict[int, list[int]] = {}
    columns = getattr(meta, "parts", None)  # ``AppendedMetadata``: the ranges without records
    if columns is not None:
        for p, base, idx in columns:
            ranges[p] = [base, base + (len(meta) if idx is None else len(idx)) - 1]
    for m in meta if columns is None else ():
        r = ranges.setdefault(m.partition, [m.offset, m.offset])
        r[0], r[1] = min(r[0], m.offset), max(r[1], m.offset)
    parts = sorted(ranges)
    span.set_attribute("hub.log.partitions", parts)
    span.set_attribute("hub.log.first_offsets", [ranges[p][0] for p in parts])
    if len(parts) == 1:
        span.set_attribute("hub.log.partition", parts[0])
        span.set_attribute("hub.log.first_offset", ranges[parts[0]][0])
    links = _state.links
    if links is not None and parts:
        parent = traceparent(publish)
        links.put([(topic, p, ranges[p][0], ranges[p][1], parent) for p in parts])


def apply_links(chunks: dict[tuple[str, int], tuple[int, int]]) -> list[Link]:
    """Links to the publish spans of the ranges ``(topic, partition) -> (first, last)``."""
    links = _state.links
    if links is None:
        return []
    seen: set[str] = set()
    out: list[Link] = []
    for (topic, part), (first, last) in sorted(chunks.items()):
        for value in links.find(topic, part, first, last):
            ctx = parse_traceparent(value)
            if ctx is not None and value not in seen:
                seen.add(value)
                out.append(Link(ctx, {"hub.log.topic": topic, "hub.log.partition": part}))
    return out


def applying(
    projection: str, chunks: Mapping[tuple[str, int], RecordColumns | EncodedColumns]
) -> AbstractContextManager[Any]:
    """``projection.apply <name>`` over the records read per partition (off: does nothing).

    A new trace (the apply happens later, in another request or process), linked to the publish
    span of every batch it applies records of.
    """
    tr = _state.tracer
    if tr is None:
        return nullcontext()
    ranges = {tp: (c.offsets[0], c.offsets[-1]) for tp, c in chunks.items() if len(c)}
    return tr.start_as_current_span(
        f"projection.apply {projection}",
        context=trace.set_span_in_context(trace.INVALID_SPAN),
        kind=SpanKind.CONSUMER,
        links=apply_links(ranges),
        attributes={
            "hub.projection": projection,
            "hub.projection.record_count": sum(len(r) for r in chunks.values()),
            "hub.log.topics": sorted({t for t, _ in ranges}),
        },
    )
