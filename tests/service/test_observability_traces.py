"""OpenTelemetry traces across ingest -> log -> projection, with the real SDK and its in-memory
exporter: a publish over HTTP makes a request span, a publish span and a ``log.append`` span in
one trace; the projection's apply is a new trace linked to that publish span; the access log
line carries the trace and span ids; and the records (so the ledger leaves) are the same with
traces on or off."""

from __future__ import annotations

import base64
import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from core import tracing
from core.errors import ConfigError
from hub.api.app import create_app
from hub.bootstrap import Hub, bootstrap
from hub.logs import configure
from hub.settings import load_settings
from hub.tracing import exporter_for

pytestmark = pytest.mark.timeout(600)

PAYMENT = {
    "payment_id": "P1",
    "account_id": "A1",
    "amount": "100.50",
    "currency": "EUR",
    "counterparty_name": "x",
    "counterparty_iban": "y",
    "counterparty_country": "DE",
    "initiated_at": "2026-11-24T10:00:00Z",
}
INCOMING_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{INCOMING_TRACE}-00f067aa0ba902b7-01"


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.install(provider.get_tracer(tracing.TRACER_NAME))
    try:
        yield exporter
    finally:
        tracing.install(None)
        provider.shutdown()


def _hub(tmp: Path) -> Hub:
    return bootstrap(load_settings(environ={}, data_dir=tmp / "data", projection_autostart=False))


def _auth(hub: Hub) -> dict[str, str]:
    token = hub.keys.create(["admin"], principal="root").token
    return {"Authorization": "Basic " + base64.b64encode(token.encode()).decode()}


def _one(spans: list[ReadableSpan], name: str) -> ReadableSpan:
    found = [s for s in spans if s.name == name]
    assert len(found) == 1, [s.name for s in spans]
    return found[0]


def _publish(client: TestClient, auth: dict[str, str], n: int, **headers: str) -> Any:
    events = [
        {"value": {**PAYMENT, "payment_id": f"P{i}"}, "event_type": "hub.payments.PaymentInitiated"}
        for i in range(n)
    ]
    r = client.post("/v1/topics/payments/events", json={"events": events}, headers=auth | headers)
    assert r.status_code in (200, 201), r.text
    return r


def test_publish_and_projection_apply_are_one_linked_trace(
    tmp_path: Path, spans: InMemorySpanExporter
) -> None:
    hub = _hub(tmp_path)
    logs = io.StringIO()
    configure("INFO", json_lines=True)
    handler = logging.getLogger().handlers[0]
    assert isinstance(handler, logging.StreamHandler)
    handler.setStream(logs)
    try:
        auth = _auth(hub)
        client = TestClient(create_app(hub))
        spans.clear()
        _publish(client, auth, 3, traceparent=TRACEPARENT, **{"X-Request-Id": "trace-req-1"})
        finished = list(spans.get_finished_spans())
        request = _one(finished, "HTTP POST /v1/topics/{topic}/events")
        publish = _one(finished, "publish payments")
        append = _one(finished, "log.append")
        # One trace, continuing the caller's: request -> publish -> append.
        assert f"{request.context.trace_id:032x}" == INCOMING_TRACE
        assert request.parent is not None and request.parent.span_id == 0x00F067AA0BA902B7
        assert publish.context.trace_id == append.context.trace_id == request.context.trace_id
        assert publish.parent is not None and publish.parent.span_id == request.context.span_id
        assert append.parent is not None and append.parent.span_id == publish.context.span_id
        assert request.attributes is not None and append.attributes is not None
        assert request.attributes["http.response.status_code"] in (200, 201)
        assert request.attributes["http.route"] == "/v1/topics/{topic}/events"
        assert append.attributes["hub.log.topic"] == "payments"
        assert append.attributes["hub.log.record_count"] == 3
        parts = list(append.attributes["hub.log.partitions"])  # type: ignore[arg-type]
        firsts = list(append.attributes["hub.log.first_offsets"])  # type: ignore[arg-type]
        assert len(parts) == len(firsts) >= 1
        landed = {p: hub.log.end_offsets("payments")[p] for p in parts}
        assert all(0 <= f < landed[p] for p, f in zip(parts, firsts, strict=True))

        # The access log line names the request span.
        lines = [json.loads(x) for x in logs.getvalue().splitlines() if x]
        (line,) = [
            x
            for x in lines
            if x["log"]["logger"] == "hub.access"
            and x.get("http", {}).get("request", {}).get("id") == "trace-req-1"
        ]
        assert line["trace"]["id"] == INCOMING_TRACE
        assert line["span"]["id"] == f"{request.context.span_id:016x}"

        # The projection's apply: a new trace, linked to the publish span.
        spans.clear()
        runner = hub.projections.runner("payments")
        runner.catch_up()
        applies = [s for s in spans.get_finished_spans() if s.name.startswith("projection.apply")]
        assert applies, [s.name for s in spans.get_finished_spans()]
        linked = [
            (link.context.trace_id, link.context.span_id) for s in applies for link in s.links
        ]
        assert (publish.context.trace_id, publish.context.span_id) in linked
        for s in applies:
            assert s.parent is None and s.context.trace_id != publish.context.trace_id
        assert applies[0].attributes is not None
        assert applies[0].attributes["hub.projection"].startswith("payments")  # type: ignore[union-attr]
        assert sum(s.attributes["hub.projection.record_count"] for s in applies) >= 3  # type: ignore[index,misc]
    finally:
        logging.getLogger().handlers[:] = []
        hub.close()


def test_traces_do_not_touch_the_records_the_ledger_proves(
    tmp_path: Path, spans: InMemorySpanExporter
) -> None:
    """The trace context travels beside the log, never in a record's headers (leaf input)."""
    hub = _hub(tmp_path)
    try:
        auth = _auth(hub)
        client = TestClient(create_app(hub))
        _publish(client, auth, 2, traceparent=TRACEPARENT)
        assert spans.get_finished_spans()
        records = [
            r
            for p, end in hub.log.end_offsets("payments").items()
            if end > 0
            for r in hub.log.read("payments", p, 0, end)
        ]
        assert len(records) >= 2
        for r in records:
            names = {k.lower() for k, _ in r.headers}
            assert "traceparent" not in names and "tracestate" not in names
            assert not any(INCOMING_TRACE.encode() in v for _, v in r.headers)
        assert (tmp_path / "data" / "trace-links.sqlite").exists()
    finally:
        hub.close()


def test_tracing_off_makes_no_spans_and_no_link_file(tmp_path: Path) -> None:
    assert tracing.tracer() is None
    hub = _hub(tmp_path)
    try:
        client = TestClient(create_app(hub))
        r = _publish(client, _auth(hub), 1, traceparent=TRACEPARENT)
        assert r.status_code in (200, 201)
        assert not (tmp_path / "data" / "trace-links.sqlite").exists()
    finally:
        hub.close()


def test_an_otlp_exporter_without_an_endpoint_is_refused_by_name() -> None:
    with pytest.raises(ConfigError, match="HUB_OTEL_ENDPOINT"):
        exporter_for("otlp", "")
    with pytest.raises(ConfigError, match="otel_exporter"):
        load_settings(environ={"HUB_OTEL_EXPORTER": "zipkin"})
