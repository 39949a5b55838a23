"""Turning OpenTelemetry traces on from the settings (``core.tracing`` holds the spans).

``HUB_OTEL_EXPORTER``: ``none`` (default: no tracer, the instrumented code takes its untraced
path), ``console`` (spans as JSON on stdout) or ``otlp`` (OTLP/HTTP protobuf to
``HUB_OTEL_ENDPOINT``, e.g. an OpenTelemetry Collector's ``http://127.0.0.1:4318/v1/traces``).
Spans leave through a ``BatchSpanProcessor`` (a background thread; flushed at exit). The SDK is
imported only when traces are on. The trace links (which publish span wrote which offsets) go
to ``<data_dir>/trace-links.sqlite``.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from adapters.sqlite_tracelinks import SqliteTraceLinks
from core import tracing
from core.errors import ConfigError

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter

    from hub.settings import Settings

LINKS_FILE = "trace-links.sqlite"
_lock = threading.Lock()
_providers: dict[tuple[str, str], TracerProvider] = {}
_links: dict[str, SqliteTraceLinks] = {}


def exporter_for(kind: str, endpoint: str) -> SpanExporter:
    if kind == "console":
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        return ConsoleSpanExporter()
    if kind == "otlp":
        if not endpoint.startswith(("http://", "https://")):
            raise ConfigError(
                f"HUB_OTEL_EXPORTER=otlp needs HUB_OTEL_ENDPOINT, an http(s) URL of an OTLP/HTTP "
                f"traces receiver (got {endpoint!r}); set e.g. "
                "HUB_OTEL_ENDPOINT=http://127.0.0.1:4318/v1/traces."
            )
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter(endpoint=endpoint)
    raise ConfigError(f"HUB_OTEL_EXPORTER={kind!r} is not one of none, console, otlp.")


def provider_for(exporter: SpanExporter) -> TracerProvider:
    """A tracer provider naming the service ``hub``, exporting in batches to ``exporter``."""
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = TracerProvider(resource=Resource.create({"service.name": "hub"}))
    provider.add_span_processor(BatchSpanProcessor(exporter))
    return provider


def links_for(settings: Settings) -> SqliteTraceLinks:
    path = str(settings.data_dir / LINKS_FILE)
    with _lock:
        if path not in _links:
            _links[path] = SqliteTraceLinks(path)
        return _links[path]


def configure_tracing(settings: Settings) -> None:
    """Install the tracer the settings ask for (one provider per process and exporter).

    With ``none``, a tracer installed by the embedding program (a test with the SDK's in-memory
    exporter) is kept and given this hub's trace-link store.
    """
    if settings.otel_exporter == "none":
        if tracing.tracer() is not None:
            tracing.use_links(links_for(settings))
        return
    key = (settings.otel_exporter, settings.otel_endpoint)
    with _lock:
        provider = _providers.get(key)
        if provider is None:
            provider = provider_for(exporter_for(*key))
            _providers[key] = provider
    tracing.install(provider.get_tracer(tracing.TRACER_NAME), links_for(settings))
