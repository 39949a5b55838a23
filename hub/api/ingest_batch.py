"""The body of ``POST /v1/ingest/{topic}`` into records: column-wise, with the per-record path
as the reference.

``reference_records`` is the reference: the body parsed whole (``{"events": [...]}``) or line
by line (NDJSON), each event made a ``RawRecord`` by ``event_record`` and ingested one by one
(``IngestPipeline.ingest``).

``ingest_body`` gives exactly the reference's result (counts, rejections with reasons, stored
records but ids, quarantine entries with their originals) through the columnar path
(``columnar.ingest_arrow``), as the JSON lines files do:
1. The events as texts: NDJSON lines as the reference splits them; a JSON body cut into its
   elements by ``jsonsplit.events`` (None: the body has another shape, the reference parses it).
   An envelope that holds only ``"value"`` (``{"value": {...}}``) gives its inner object, which
   the reference treats like the bare record.
2. Arrow's JSON reader reads the texts against the schema's columns (``arrowread.json_batch``);
   every text it cannot vouch for is forced through the per-record path, where it is made a
   ``RawRecord`` by the reference's own code, with its own original bytes.
3. A batch goes to the reference whole when the columnar path cannot say what it would do: a
   schema without an Arrow layout, with PII to encrypt, or with a field named ``value`` (an
   object holding one is an envelope); a forced event with envelope members (``event_type``,
   ``key``, ``event_id``, ``occurred_at``: the columnar path stamps neither ids nor times); and,
   for a JSON body, a forced element Python's parser refuses or nests too deep (the reference
   then refuses the whole body with its own message); an internal topic (the reference refuses
   it after the parse, so a malformed body keeps its 422).
"""

from __future__ import annotations

import json
import re
import struct
from collections.abc import Sequence
from typing import Any

import numpy as np

from core import tracing
from core.errors import HubError, InvalidInput
from core.events import is_internal_topic
from hub.api.deps import MAX_JSON_DEPTH, json_depth_exceeds, parse_json
from ingest.arrowread import check_time_range
from ingest.groupcommit import Companion
from ingest.pipeline import JSON, IngestPipeline, IngestResult, RawRecord

NDJSON = "application/x-ndjson"
_ALLOWED = {"value", "event_type", "key", "event_id", "occurred_at"}
_ENVELOPE = re.compile(rb'\{ *"value" *: *')


def event_record(item: Any, original: bytes | None, i: int) -> RawRecord:
    """One event of a batch or NDJSON line: an envelope ``{"value": {...}, "key": ...}``, or a
    bare record. The rule: an object with a ``"value"`` member is an envelope (its value must be
    an object); an object without one is the record itself, with no envelope fields. A record
    whose schema has a field named ``value`` must therefore be sent in an envelope.

    ``original`` is the NDJSON line (byte-exact); None for a JSON batch, whose quarantine
    original is then the canonical JSON of the event's value."""
    ctype = NDJSON if original is not None else JSON
    if isinstance(item, dict) and "value" not in item:
        item = {"value": item}  # a bare record
    if original is None:
        inner = item.get("value", item) if isinstance(item, dict) else item
        original = json.dumps(inner, default=str, separators=(",", ":")).encode()
    if not isinstance(item, dict) or not isinstance(item.get("value"), dict):
        return RawRecord(
            original,
            content_type=ctype,
            error=f"Event {i} must be a JSON object: the record itself, or an envelope whose "
            f'"value" is the record (got {_kind(item)}).',
        )
    unknown = set(item) - _ALLOWED
    if unknown:
        return RawRecord(
            original,
            content_type=ctype,
            error=f"Event {i} has unknown member(s) {', '.join(sorted(unknown))}.",
        )
    for name in ("event_type", "event_id", "occurred_at"):
        if item.get(name) is not None and not isinstance(item[name], str):
            return RawRecord(
                original,
                content_type=ctype,
                error=f'Event {i}: "{name}" must be a string, not {type(item[name]).__name__}.',
            )
    return RawRecord(
        original,
        content_type=ctype,
        value=item["value"],
        event_type=item.get("event_type"),
        key=None if item.get("key") is None else str(item["key"]),
        event_id=item.get("event_id"),
        occurred_at=item.get("occurred_at"),
        position={"index": i},
    )


def _kind(item: Any) -> str:
    if isinstance(item, dict):
        return f'"value" of type {type(item.get("value")).__name__}'
    return f"a JSON {type(item).__name__}"


def ndjson_lines(body: bytes) -> list[bytes]:
    """The NDJSON body's non-blank lines, without their line ends."""
    return [x.rstrip(b"\r") for x in body.split(b"\n") if x.strip()]


def line_record(line: bytes, i: int) -> RawRecord:
    """NDJSON line ``i`` as the reference makes it (not UTF-8 or not JSON: an error record)."""
    try:
        line.decode("utf-8")
    except UnicodeDecodeError as exc:
        return RawRecord(line, error=f"Line {i} is not UTF-8: {exc.reason}.", error_code="not_utf8")
    try:
        item = parse_json(line, what=f"Line {i}")
    except InvalidInput as exc:
        return RawRecord(line, error=exc.message, error_code=exc.code)
    return event_record(item, line, i)


def reference_records(body: bytes, ndjson: bool) -> list[RawRecord]:
    """The body's events, one ``RawRecord`` each; raises ``InvalidInput`` for a JSON body that
    is not JSON or not ``{"events": [...]}`` with at least one event."""
    if ndjson:
        return [line_record(line, i) for i, line in enumerate(ndjson_lines(body))]
    payload = parse_json(body)
    items = payload.get("events") if isinstance(payload, dict) else None
    if not isinstance(items, list) or not items:
        raise InvalidInput(
            'Body must be {"events": [ ... ]} with at least one event.', code="invalid_batch"
        )
    return [event_record(item, None, i) for i, item in enumerate(items)]


def ingest_body(
    pipeline: IngestPipeline,
    topic: str,
    body: bytes,
    *,
    ndjson: bool,
    source: str,
    producer: str,
    tenant: str,
    columnar: bool = True,
    companions: Sequence[Companion] = (),
) -> IngestResult:
    """Ingest the body's events (see the module docstring); the reference's result exactly.
    ``columnar=False`` runs the reference alone. ``companions`` are stored in the batch's
    transaction (``IngestPipeline.ingest``)."""
    kwargs: dict[str, Any] = dict(
        source=source, producer=producer, tenant=tenant, companions=companions
    )
    if columnar and not is_internal_topic(topic):  # the reference refuses it, after the parse
        result = _columnar(pipeline, topic, body, ndjson, kwargs)
        if result is not None:
            return result
    return pipeline.ingest(topic, reference_records(body, ndjson), **kwargs)


def _layout(pipeline: IngestPipeline, topic: str) -> Any:
    from ingest.arrowread import layout

    try:
        t = pipeline.target(topic, None)
    except HubError:
        return None
    lay = None if t.encrypts else layout(t.plain.parsed)
    if lay is None or any(c.name == "value" for c in lay.columns):
        return None
    return lay


def _columnar(
    pipeline: IngestPipeline, topic: str, body: bytes, ndjson: bool, kwargs: dict[str, Any]
) -> IngestResult | None:
    """The columnar result, or None when the reference must take the body whole."""
    from ingest.arrowread import json_batch
    from ingest.columnar import ingest_arrow
    from ingest.jsonsplit import event_lines
    from ingest.lines import Lines

    lay = _layout(pipeline, topic)
    if lay is None:
        return None
    # 1. The events as texts (one buffer and offsets: a JSON body's rewritten array is its
    # texts joined already), an envelope holding only "value" as its inner object.
    whole = Lines.texts(ndjson_lines(body)) if ndjson else event_lines(body)
    if whole is None or not len(whole):
        return None
    texts = whole
    if b'"value"' in body:
        texts = unwrapped_lines(whole)
    # 2. Arrow reads them; a JSON body's canonical original may be 3x its text (``\\u00e9``
    # for ``é``, a decimal quoted), so texts over a third of the record limit are forced.
    limit = pipeline.max_record_bytes
    rb, force = json_batch(texts, lay, limit if ndjson else limit // 3)
    if texts is not whole:
        force |= whole.lengths() > limit
    # 3. What the reference makes of every forced event, decided before anything is written.
    made: dict[int, RawRecord] = {}
    for i in np.flatnonzero(force).tolist():
        raw = _reference_event(whole.line(i), i, ndjson)
        if raw is None or _enveloped(raw):
            return None
        made[i] = raw

    def originals(at: Sequence[int]) -> list[RawRecord]:
        out = []
        for i in at:
            raw = made.get(i)
            if raw is None:  # read by Arrow: a flat object the reference parses alike
                raw = _reference_event(whole.line(i), i, ndjson)
                assert raw is not None
            out.append(raw)
        return out

    with tracing.publishing(topic, len(texts), kwargs["source"]):
        return ingest_arrow(pipeline, topic, rb, originals=originals, force=force, **kwargs)


def _unwrapped(text: bytes) -> bytes:
    """``{"value": X}`` as ``X`` (Arrow then checks that ``X`` is one whole object, which makes
    the text an envelope with no other member); any other text as it is."""
    m = _ENVELOPE.match(text)
    if m is None or not text.endswith(b"}"):
        return text
    inner = text[m.end() : -1].rstrip(b" ")
    return inner if inner.startswith(b"{") else text


_PREFIX = np.frombuffer(b'{"value": {', dtype=np.uint8)


def unwrapped_lines(whole: Any) -> Any:
    """``Lines.texts`` of every line ``_unwrapped``: by two ``bytes.replace`` when every line is
    ``{"value": {...}}`` as ``json.dumps`` writes it (that prefix, ending ``}}``: ``_unwrapped``
    then keeps the text between the prefix's ``{"value": `` and the last ``}``), else line by
    line. Lines hold no ``\n``, so ``\n{"value": {`` is only ever a line's start and ``}}\n``
    only a line's end."""
    from ingest.lines import Lines

    n, k = len(whole), len(_PREFIX)
    if n and not whole.cut:
        a = np.frombuffer(whole.data, dtype=np.uint8)
        s, e = whole.starts, whole.ends
        fast = bool((e - s >= k + 2).all())
        fast = fast and all(bool((a[s + j] == _PREFIX[j]).all()) for j in range(k))
        fast = fast and bool((a[e - 1] == 0x7D).all()) and bool((a[e - 2] == 0x7D).all())
        if fast:
            lens = (e - s) - k
            ends = np.cumsum(lens + 1) - 1
            data = whole.data[k - 1 : -1].replace(b'\n{"value": {', b"\n{")
            data = data.replace(b"}}\n", b"}\n")
            if len(data) == int(ends[-1]):
                numbers = np.arange(1, n + 1, dtype=np.int64)
                return Lines(data, ends - lens, ends, numbers)
    return Lines.texts([_unwrapped(whole.line(i)) for i in range(n)])


def _reference_event(text: bytes, i: int, ndjson: bool) -> RawRecord | None:
    """Event ``i`` as the reference makes it; None for a JSON body's element the reference's
    parse of the whole body refuses (not JSON, nested deeper than the limit)."""
    if ndjson:
        return line_record(text, i)
    if json_depth_exceeds(text, MAX_JSON_DEPTH - 2):  # inside {"events": [...]}
        return None
    try:
        item = parse_json(text)
    except InvalidInput:
        return None
    return event_record(item, None, i)


def _enveloped(raw: RawRecord) -> bool:
    return any(x is not None for x in (raw.event_type, raw.key, raw.event_id, raw.occurred_at))


# -- Arrow IPC stream bodies ------------------------------------------------------------------
ARROW_STREAM = "application/vnd.apache.arrow.stream"
_MIN_ROW_BYTES = 3
_FLAT = "bool, signed and unsigned ints, floats, decimal, utf8, timestamp, date32/64"


def ingest_arrow_body(
    pipeline: IngestPipeline,
    topic: str,
    body: bytes,
    *,
    source: str,
    producer: str,
    tenant: str,
    companions: Sequence[Companion] = (),
) -> IngestResult:
    """An Arrow IPC stream body (``ARROW_STREAM``): its rows are bare records, one column per
    schema field, ingested as the rows of a Parquet file are (``columnar.ingest_arrow``: rows
    the columnar path cannot vouch for go row by row as the JSON events they are, so they meet
    the JSON body's checks and reasons; a quarantined row keeps its canonical JSON as its
    original, which replays through the JSON path). No Python object is built per row the
    columnar path accepts."""
    from core.events import refuse_internal
    from ingest.columnar import ingest_arrow

    rb = arrow_batch(body)
    refuse_internal(topic)  # after the read, as the JSON body's reference refuses it
    fields = _field_names(pipeline, topic)
    unknown = [name for name in rb.schema.names if fields is not None and name not in fields]
    if unknown:
        raise InvalidInput(
            f"The Arrow IPC stream body has column(s) {', '.join(map(repr, unknown))}, not "
            f"field(s) of the topic's schema (fields: {', '.join(sorted(fields or ()))}).",
            code="invalid_arrow",
        )

    def originals(at: Sequence[int]) -> list[RawRecord]:
        """Rows the columnar path leaves to the per-record path, as the JSON body's events they
        are (``serde.to_json``: decimals as strings, times RFC 3339): the same checks in the
        same order, so the same outcome and reason; the quarantine keeps the row's canonical
        JSON, as it keeps a JSON body event's."""
        import pyarrow as pa

        from core.avro import serde

        rows = rb.take(pa.array(at, pa.int64())).to_pylist() if len(at) else []
        out = []
        for i, row in zip(at, rows, strict=True):
            value = serde.to_json(row)
            text = json.dumps(value, default=str, separators=(",", ":")).encode()
            out.append(RawRecord(text, value=value, position={"index": i}))
        return out

    with tracing.publishing(topic, rb.num_rows, source):
        return ingest_arrow(
            pipeline,
            topic,
            rb,
            originals=originals,
            source=source,
            producer=producer,
            tenant=tenant,
            companions=companions,
        )


def _field_names(pipeline: IngestPipeline, topic: str) -> frozenset[str] | None:
    try:
        parsed = pipeline.target(topic, None).plain.parsed
    except HubError:
        return None  # no schema: every row is quarantined with the target's error
    return (
        frozenset(f["name"] for f in parsed.get("fields", ())) if isinstance(parsed, dict) else None
    )


def arrow_batch(body: bytes) -> Any:
    """The body's record batches as one batch; ``InvalidInput`` (422) for a body that is not an
    uncompressed Arrow IPC stream of flat, distinctly named columns with at least one row.

    What a sender could use to make a small body decode into a large one is refused before
    anything is decoded: compressed buffers (LZ4/ZSTD: a 1 MB body could inflate to gigabytes)
    and dictionary-encoded columns (one long value repeated by index); so are null-typed
    columns and batches without columns, which claim rows without holding a byte for them.
    Without them every buffer is a slice of the body, every row has at least a bit in it (and
    at most one row per 3 bytes of body is accepted, as many as a JSON body could hold), and
    at most one column per schema field is accepted (checked by the caller before anything is
    done with the rows), so the batch is bounded by the body
    (itself within ``HUB_MAX_REQUEST_BYTES``). Each batch is then validated in full (offsets
    within their buffers, strings UTF-8): IPC readers trust them."""
    import pyarrow as pa

    def bad(why: str) -> InvalidInput:
        return InvalidInput(f"The Arrow IPC stream body {why}", code="invalid_arrow")

    if not body:
        raise bad("is empty: send an Arrow IPC stream (pyarrow.ipc.new_stream).")
    schema: Any = None
    batches = []
    try:
        for message in pa.ipc.MessageReader.open_stream(pa.py_buffer(body)):
            if message.type == "schema":
                if schema is not None:
                    raise bad("holds a second schema message.")
                schema = pa.ipc.read_schema(message)
                _check_schema(schema, bad)
            elif message.type == "record batch":
                if schema is None:
                    raise bad("has a record batch before its schema.")
                if _compressed(message.metadata):
                    raise bad(
                        "has compressed buffers: send it uncompressed (the request body limit "
                        "applies to what is decoded)."
                    )
                rb = pa.ipc.read_record_batch(message, schema)
                rb.validate(full=True)
                batches.append(rb)
            else:  # a dictionary batch (refused with the schema already), a tensor
                raise bad(f"holds a {message.type} message: only one schema and record batches.")
    except InvalidInput:
        raise
    except (pa.ArrowException, OSError, ValueError, TypeError, LookupError, struct.error) as exc:
        raise bad(f"is not readable: {exc}") from None
    rows = sum(b.num_rows for b in batches)
    if schema is None or not rows:
        raise bad("holds no rows: send at least one record.")
    if rows * _MIN_ROW_BYTES > len(body):
        # Bit-packed columns hold 8 rows a byte: without this, a body within the size limit
        # could hand the per-record path far more rows than any JSON body of that size.
        raise bad(
            f"holds {rows} rows in {len(body)} bytes: at most one row per {_MIN_ROW_BYTES} "
            "bytes (the densest JSON body, '{},' per event), so split the batch."
        )
    rb = batches[0] if len(batches) == 1 else _combined(batches, schema)
    check_time_range(rb, bad)
    return rb


def _combined(batches: list[Any], schema: Any) -> Any:
    import pyarrow as pa

    return pa.Table.from_batches(batches, schema).combine_chunks().to_batches()[0]


# Python's datetime range (years 1..9999) per Arrow unit: beyond it, a row cannot become the
# JSON event the per-record path checks (pyarrow raises OverflowError), so it is refused here.
def _check_schema(schema: Any, bad: Any) -> None:
    import pyarrow.types as t

    names = schema.names
    if not names:  # a batch of no columns could claim any number of rows in a few bytes
        raise bad("has no columns: send one column per field of the topic's schema.")
    if len(set(names)) != len(names):
        raise bad(f"names a column twice: {sorted({n for n in names if names.count(n) > 1})}.")
    for f in schema:
        ok = (
            t.is_boolean(f.type)
            or t.is_integer(f.type)
            or t.is_floating(f.type)
            or t.is_decimal(f.type)
            or t.is_string(f.type)
            or t.is_large_string(f.type)
            or t.is_timestamp(f.type)
            or t.is_date(f.type)
        )
        if not ok:
            raise bad(f"has column {f.name!r} of type {f.type}: only flat columns ({_FLAT}).")


def _compressed(metadata: Any) -> bool:
    """Whether an IPC record batch message says its buffers are compressed: field 3
    (``compression``) of the ``RecordBatch`` table that is field 2 (``header``) of the
    ``Message`` flatbuffer (Arrow's format/Message.fbs). Read by hand: pyarrow does not expose
    it, and decompressing to find out is what this check prevents."""
    b = metadata.to_pybytes()

    def field(table: int, index: int) -> int:
        vtable = table - struct.unpack_from("<i", b, table)[0]
        size = struct.unpack_from("<H", b, vtable)[0]
        at = 4 + 2 * index
        return struct.unpack_from("<H", b, vtable + at)[0] if at < size else 0

    message = struct.unpack_from("<I", b, 0)[0]
    header = field(message, 2)
    if not header:
        return False
    batch = message + header + struct.unpack_from("<I", b, message + header)[0]
    return field(batch, 3) != 0
