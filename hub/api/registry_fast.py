"""The registry's schema-by-id reads served in front of FastAPI: one pure ASGI layer.

``GET /schemas/ids/{id}`` and ``GET /schemas/ids/{id}/schema`` are what Confluent serialisers
and deserialisers send on their hot path. ``RegistryFastPath`` is the outermost middleware of
the hub's app (``hub.api.app.create_app``); it answers those two requests itself, doing what
the full stack does for them, in the same order and through the same functions:

1. the request id (``X-Request-Id``: a sane incoming one is kept) and, at the end, one access
   line (``hub.observability.request_id_of``, ``log_access``);
2. the API key (``hub.keys.verify``, which sees revocations: it catches up with the keys
   topic first);
3. the ``schema.read`` decision for the request path, with the method, purpose and case of
   the request, recorded on ``hub.decisions`` and counted (``hub.api.deps.decide_async``:
   a synced read awaits its durable record in the event loop; a deny or an engine failure
   answers 403, a record that cannot be stored 500 (50001), as the twins answer);
4. the schema from memory (an id never changes its schema), its answer encoded once per id
   and reused (``RegistryResponse``'s bytes);
5. the route metrics (``hub_http_requests_total``, ``hub_http_request_seconds``, labelled with
   the route template).

Every failure after step 2 answers in Confluent's shape (``registry_error_handler``). Anything
it does not serve exactly as the full stack would, it hands to the full stack untouched before
any side effect: another method or path, an id that is not a plain number within int32, an
``Accept`` header that admits none of the registry's types (406), a missing or rejected key
(401), tracing switched on (the full stack opens the spans). The FastAPI routes stay the
reference: ``tests/service/test_registry_fast.py`` sends every request to both.
"""

from __future__ import annotations

import re
import time
from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from core import tracing
from core.ports.policy import Principal
from hub.api.auth import credentials
from hub.api.deps import context_of, decide_async
from hub.api.routers.registry import (
    MEDIA_TYPE,
    RegistryResponse,
    check_accept,
    registry_error_handler,
    schema_fields,
)
from hub.logs import request_id
from hub.observability import log_access, request_id_of
from registry.service import StoredSchema

if TYPE_CHECKING:
    from prometheus_client.metrics import Counter, Histogram

    from hub.bootstrap import Hub

ACTION = "schema.read"
BY_ID = "/schemas/ids/{schema_id}"
RAW_BY_ID = "/schemas/ids/{schema_id}/schema"
# A plain decimal id within int32 (the FastAPI twin accepts -2^31..2^31-1; negative, padded or
# signed ids are left to it).
_PATH = re.compile(r"/schemas/ids/(0|[1-9][0-9]{0,9})(/schema)?")
_MAX_ID = 2**31 - 1
_TYPE = MEDIA_TYPE.encode("latin-1")


class _Encoded:
    """A schema's two answers, encoded once: ``{"schema": ...}`` and the schema text."""

    __slots__ = ("by_id", "raw", "stored")

    def __init__(self, stored: StoredSchema) -> None:
        body = {"schema": stored.text}  # SchemaOut's order: its declared member first
        body.update(schema_fields(stored))
        self.stored = stored
        self.by_id = bytes(RegistryResponse(body).body)
        self.raw = stored.text.encode("utf-8")


class RegistryFastPath:
    """Pure ASGI middleware: schema-by-id reads answered before FastAPI (module docstring)."""

    def __init__(self, app: ASGIApp, hub: Hub) -> None:
        self.app = app
        self.hub = hub
        self._encoded: dict[int, _Encoded] = {}
        self._requests: dict[tuple[str, int], Counter] = {}
        self._seconds: dict[str, Histogram] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "GET":
            await self.app(scope, receive, send)
            return
        found = _PATH.fullmatch(scope["path"])
        if found is None or tracing.tracer() is not None:
            await self.app(scope, receive, send)
            return
        schema_id = int(found.group(1))
        auth = accept = None
        for name, value in scope["headers"]:  # the first of each, as the full stack reads them
            if name == b"authorization" and auth is None:
                auth = value
            elif name == b"accept" and accept is None:
                accept = value
        try:
            if schema_id > _MAX_ID or auth is None:
                raise LookupError
            check_accept(None if accept is None else accept.decode("latin-1"))
            principal = self.hub.keys.verify(*credentials(auth.decode("latin-1")))
        except Exception:  # LookupError, 406 or 401: the full stack answers (nothing done yet)
            await self.app(scope, receive, send)
            return
        await self._serve(scope, receive, send, principal, schema_id, found.group(2) is None)

    async def _serve(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        principal: Principal,
        schema_id: int,
        whole: bool,
    ) -> None:
        started = time.perf_counter()
        raw = scope["headers"]
        headers = dict(raw)
        rid = request_id_of(headers)
        token = request_id.set(rid)
        state = scope.setdefault("state", {})
        state["principal"] = principal
        route = BY_ID if whole else RAW_BY_ID
        status = 200
        body = b""
        try:
            try:  # 3. and 4.
                await decide_async(
                    self.hub, route, principal, ACTION, scope["path"], context_of("GET", raw)
                )
                encoded = self._answer(schema_id)
            except Exception as exc:  # in Confluent's shape, as the twins answer
                response = registry_error_handler(Request(scope), exc)
                status, body = response.status_code, bytes(response.body)
                response.raw_headers.append((b"x-request-id", rid.encode("latin-1")))
                await response(scope, receive, send)
            else:
                body = encoded.by_id if whole else encoded.raw
                start: Message = {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [
                        (b"content-length", b"%d" % len(body)),
                        (b"content-type", _TYPE),
                        (b"x-request-id", rid.encode("latin-1")),
                    ],
                }
                await send(start)
                await send({"type": "http.response.body", "body": body})
            state["route"] = route
            self._count(route, status, started)  # 5.
        finally:
            log_access(scope, headers, status, len(body), started)  # 1.
            request_id.reset(token)

    def _answer(self, schema_id: int) -> _Encoded:
        stored = self.hub.registry.get_by_id(schema_id)
        encoded = self._encoded.get(schema_id)
        if encoded is None or encoded.stored is not stored:
            encoded = self._encoded[schema_id] = _Encoded(stored)
        return encoded

    def _count(self, route: str, status: int, started: float) -> None:
        counter = self._requests.get((route, status))
        if counter is None:
            counter = self.hub.metrics.http_requests.labels("GET", route, str(status))
            self._requests[(route, status)] = counter
        seconds = self._seconds.get(route)
        if seconds is None:
            seconds = self._seconds[route] = self.hub.metrics.http_seconds.labels("GET", route)
        counter.inc()
        seconds.observe(time.perf_counter() - started)
