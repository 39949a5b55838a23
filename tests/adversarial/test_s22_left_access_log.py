"""Session 22 (trust leftovers, 1): a data subject's identifier in a request's path must not
outlive ``hub erase`` in the hub's own operational outputs.

Before: the access log wrote the raw path (``url.path`` and the message), the request span
carried it (``url.path``), and an unexpected failure logged it (``extra={"path": ...}``): after
the subject was erased, every request that named it was still readable there. Now they carry the
route template (``/v1/projections/{name}/rows/{key}/sources``) and a keyed digest of the path
(a per-process key never written anywhere), and metrics labels stay route templates.

The real stack: a bootstrapped hub, the ASGI app with the real middleware, the real
OpenTelemetry SDK (in-memory exporter), the ECS log formatter, the metrics registry's render.
"""

from __future__ import annotations

import base64
import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from core import tracing
from core.ports.policy import Principal
from hub.api.app import create_app
from hub.bootstrap import bootstrap
from hub.logs import configure
from hub.settings import load_settings

pytestmark = pytest.mark.timeout(600)

SUBJECT = "ACC-ERASE-77310"
OPERATOR = Principal(id="dpo", roles=frozenset({"admin"}))
PAYMENT = {
    "payment_id": "P-ERASE-1",
    "account_id": SUBJECT,
    "amount": "10.00",
    "currency": "EUR",
    "counterparty_name": "x",
    "counterparty_iban": "y",
    "counterparty_country": "DE",
    "initiated_at": "2026-11-24T10:00:00Z",
}
# Paths naming the subject: a matched route with it as a path parameter, routes that answer
# 404 for it, a path no route matches, and a query string.
PATHS = [
    f"/v1/projections/account_balances/rows/{SUBJECT}/sources",
    f"/v1/cases/{SUBJECT}",
    f"/v1/quarantine/{SUBJECT}",
    f"/v1/no-such-route/{SUBJECT}",
    f"/v1/events?subject={SUBJECT}",
]


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


def test_an_erased_subjects_id_is_in_no_log_trace_or_metric(
    tmp_path: Path, spans: InMemorySpanExporter
) -> None:
    hub = bootstrap(
        load_settings(environ={}, data_dir=tmp_path / "data", projection_autostart=False)
    )
    logs = io.StringIO()
    configure("INFO", json_lines=True)
    root = logging.getLogger()
    handler = root.handlers[0]
    assert isinstance(handler, logging.StreamHandler)
    handler.setStream(logs)
    try:
        token = hub.keys.create(["admin"], principal="root").token
        auth = {"Authorization": "Basic " + base64.b64encode(token.encode()).decode()}
        client = TestClient(create_app(hub), raise_server_exceptions=False)
        r = client.post(
            "/v1/topics/payments/events",
            json={"events": [{"value": PAYMENT, "event_type": "hub.payments.PaymentInitiated"}]},
            headers=auth,
        )
        assert r.status_code in (200, 201, 202), r.text
        for path in PATHS:
            client.get(path, headers=auth)
            client.get(path)  # no key: 401, logged too
        hub.eraser.erase(OPERATOR, SUBJECT, "DSR-22-1", tenant_scope=None)
        metrics = hub.metrics.render().decode()
        # Every line the hub wrote: not the test client's own (httpx logs what it sends).
        hub_lines = [
            x
            for x in logs.getvalue().splitlines()
            if x.strip() and not json.loads(x)["log"]["logger"].startswith("httpx")
        ]
        lines = [json.loads(x) for x in hub_lines]
        access = [x for x in lines if x.get("event", {}).get("dataset") == "hub.access"]
        assert len(access) >= 2 * len(PATHS), "every request has its access line"
        served = [s for s in spans.get_finished_spans() if s.name.startswith("HTTP ")]
        assert len(served) >= 2 * len(PATHS)
        assert not [x for x in hub_lines if SUBJECT in x][:3]
        for s in served:
            text = json.dumps({"name": s.name, "attributes": dict(s.attributes or {})})
            assert SUBJECT not in text, text
        assert SUBJECT not in metrics
        # The operator still learns what was asked: the route template, and a digest that
        # tells two requests for the same path apart from others (not what the path was).
        routes = {x.get("hub", {}).get("route") for x in access}
        assert "/v1/projections/{name}/rows/{key}/sources" in routes
        digests = {x["hub"]["path"]["digest"] for x in access}
        assert len(digests) >= len(PATHS)
    finally:
        root.handlers[:] = []
        hub.close()
