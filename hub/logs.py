"""Structured logs: one JSON object per line in Elastic Common Schema (ECS) field names, so that
Filebeat/Logstash and Elasticsearch take them unchanged (or plain text), configured once.

A line carries ``@timestamp``, ``log.level``, ``log.logger``, ``message``, ``ecs.version``,
``service.name``, ``process.pid`` and, while a request is served, ``http.request.id`` (the
request id, also in the ``X-Request-Id`` response header), ``trace.id`` and ``span.id`` while
a span is current (traces on: ``core.tracing``); exceptions go to ``error.type``,
``error.message`` and ``error.stack_trace``. Extra fields given with ``extra=`` keep their name
when it is an ECS field (``http.*``, ``url.*``, ``event.*``, ``user.*``, ``client.*``...), and
go under ``hub.`` otherwise (ECS's advice for custom fields).

Secrets never reach a line: every value passes ``redact``, which replaces the secret half of
anything shaped like an API key (``hk_...:SECRET``), of ``Authorization`` header values and of a
URL's user information (``scheme://user:SECRET@host``).
"""

from __future__ import annotations

import contextvars
import json
import logging
import os
import re
import sys
from datetime import UTC, datetime
from typing import Any

from audit.printable import printable
from core import tracing

ECS_VERSION = "8.11.0"
SERVICE = "hub"

_STANDARD = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {
    "message",
    "asctime",
    "taskName",
}
# Top-level ECS field sets that an ``extra`` key may use as they are.
_ECS_ROOTS = {
    "client", "destination", "error", "event", "http", "labels", "log", "network", "process",
    "server", "service", "source", "span", "trace", "transaction", "url", "user", "user_agent",
}  # fmt: skip

# The request being served (set by hub.observability's middleware).
request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "hub_request_id", default=None
)

# KEY_ID:SECRET as `hub keys create` prints them, and Authorization header values.
_KEY = re.compile(r"\b(hk_[0-9A-Za-z]+):([A-Za-z0-9_\-.~+/=]{8,})")
_AUTH = re.compile(r"(?i)\b(basic|bearer)\s+[A-Za-z0-9_\-.~+/=:]{8,}")
# The password of a URL's user information (``postgresql://hub:PASSWORD@host``,
# ``https://user:TOKEN@hooks.example``): settings hold such URLs, and messages name URLs.
# The password runs to the last ``@`` before the query, fragment or end of the word: a password
# holding ``@`` or ``/`` unencoded (settings are typed by people) is redacted whole.
_URL_PASSWORD = re.compile(r"(?i)\b([a-z][a-z0-9+.\-]*://[^\s:/?#@\[\]]*):([^\s?#]+)@")


def redact(text: str) -> str:
    """``text`` with API key secrets, Authorization credentials and the passwords of URLs
    replaced by ``[redacted]``."""
    text = _URL_PASSWORD.sub(r"\1:[redacted]@", text)
    return _AUTH.sub(r"\1 [redacted]", _KEY.sub(r"\1:[redacted]", text))


def redact_url(url: str) -> str:
    """A setting's URL fit for a message, also one that does not parse: ``redact``, and then
    whatever precedes its last ``@`` (its user information, wherever a parser would have ended
    it) replaced by ``[redacted]``, so that no form of a password survives."""
    text = redact(url)
    head, at, tail = text.rpartition("@")
    if not at:
        return text
    scheme, sep, _ = head.partition("://")
    return f"{scheme}{sep}[redacted]@{tail}" if sep else f"[redacted]@{tail}"


def _clean(value: Any) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if isinstance(value, (int, float, bool)) or value is None:
        return value
    return redact(str(value))


def _put(entry: dict[str, Any], dotted: str, value: Any) -> None:
    """Nest ``a.b.c`` into ``entry["a"]["b"]["c"]`` (ECS documents are nested objects)."""
    parts = dotted.split(".")
    node = entry
    for part in parts[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            child = {}
            node[part] = child
        node = child
    node[parts[-1]] = value


class EcsFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "@timestamp": datetime.fromtimestamp(record.created, UTC).isoformat(
                timespec="milliseconds"
            ),
            "message": redact(record.getMessage()),
        }
        _put(entry, "log.level", record.levelname.lower())
        _put(entry, "log.logger", record.name)
        _put(entry, "ecs.version", ECS_VERSION)
        _put(entry, "service.name", SERVICE)
        _put(entry, "process.pid", record.process or os.getpid())
        rid = request_id.get()
        if rid is not None:
            _put(entry, "http.request.id", redact(rid))
        traced = tracing.ids()  # None when traces are off
        if traced is not None and "trace.id" not in record.__dict__:
            _put(entry, "trace.id", traced[0])
            _put(entry, "span.id", traced[1])
        for key, value in record.__dict__.items():
            if key in _STANDARD or key.startswith("_"):
                continue
            root = key.split(".", 1)[0]
            name = key if root in _ECS_ROOTS or root == SERVICE else f"{SERVICE}.{key}"
            _put(entry, name, _clean(value))
        if record.exc_info and record.exc_info[0] is not None:
            _put(entry, "error.type", record.exc_info[0].__name__)
            _put(entry, "error.message", redact(str(record.exc_info[1])))
            _put(entry, "error.stack_trace", redact(self.formatException(record.exc_info)))
        return json.dumps(entry, default=str, ensure_ascii=False)


class PlainFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(levelname)s %(name)s: %(message)s")

    def formatMessage(self, record: logging.LogRecord) -> str:
        # The message may carry a request's path or a record's text: one line, controls escaped
        # (a decoded ``%0a`` or ``ESC [`` in a path forged a line); the traceback keeps its lines.
        record.message = printable(record.message)
        return super().formatMessage(record)

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


# The name the earlier formatter had; kept for callers outside this module.
JsonFormatter = EcsFormatter


def configure(level: str = "INFO", json_lines: bool = True) -> None:
    """One handler on the root logger (stderr); uvicorn's loggers propagate to it."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(EcsFormatter() if json_lines else PlainFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers[:] = []
        logger.propagate = True
