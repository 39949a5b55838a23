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
from collections.abc import Sequence
from typing import Any

import numpy as np

from core import tracing
from core.errors import HubError, InvalidInput
from core.events import is_internal_topic
from hub.api.deps import MAX_JSON_DEPTH, json_depth_exceeds, parse_json
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
        item = parse_json(line, unique_members=False, what=f"Line {i}")
    except InvalidInput as exc:
        return RawRecord(line, error=exc.message, error_code="malformed_json")
    return event_record(item, line, i)


def reference_records(body: bytes, ndjson: bool) -> list[RawRecord]:
    """The body's events, one ``RawRecord`` each; raises ``InvalidInput`` for a JSON body that
    is not JSON or not ``{"events": [...]}`` with at least one event."""
    if ndjson:
        return [line_record(line, i) for i, line in enumerate(ndjson_lines(body))]
    payload = parse_json(body, unique_members=False)
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
) -> IngestResult:
    """Ingest the body's events (see the module docstring); the reference's result exactly.
    ``columnar=False`` runs the reference alone."""
    kwargs: dict[str, Any] = dict(source=source, producer=producer, tenant=tenant)
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
    from ingest.jsonsplit import events

    lay = _layout(pipeline, topic)
    if lay is None:
        return None
    # 1. The events as texts, an envelope holding only "value" as its inner object.
    texts = ndjson_lines(body) if ndjson else events(body)
    if not texts:
        return None
    whole = texts
    if b'"value"' in body:
        texts = [_unwrapped(x) for x in texts]
    # 2. Arrow reads them; a JSON body's canonical original may be 3x its text (``\\u00e9``
    # for ``é``, a decimal quoted), so texts over a third of the record limit are forced.
    limit = pipeline.max_record_bytes
    rb, force = json_batch(texts, lay, limit if ndjson else limit // 3)
    if texts is not whole:
        force |= np.fromiter(map(len, whole), dtype=np.int64, count=len(whole)) > limit
    # 3. What the reference makes of every forced event, decided before anything is written.
    made: dict[int, RawRecord] = {}
    for i in np.flatnonzero(force).tolist():
        raw = _reference_event(whole[i], i, ndjson)
        if raw is None or _enveloped(raw):
            return None
        made[i] = raw

    def originals(at: Sequence[int]) -> list[RawRecord]:
        out = []
        for i in at:
            raw = made.get(i)
            if raw is None:  # read by Arrow: a flat object the reference parses alike
                raw = _reference_event(whole[i], i, ndjson)
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


def _reference_event(text: bytes, i: int, ndjson: bool) -> RawRecord | None:
    """Event ``i`` as the reference makes it; None for a JSON body's element the reference's
    parse of the whole body refuses (not JSON, nested deeper than the limit)."""
    if ndjson:
        return line_record(text, i)
    if json_depth_exceeds(text, MAX_JSON_DEPTH - 2):  # inside {"events": [...]}
        return None
    try:
        item = parse_json(text, unique_members=False)
    except InvalidInput:
        return None
    return event_record(item, None, i)


def _enveloped(raw: RawRecord) -> bool:
    return any(x is not None for x in (raw.event_type, raw.key, raw.event_id, raw.occurred_at))
