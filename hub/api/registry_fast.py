"""The registry's hot requests served in front of FastAPI: one pure ASGI layer.

What Confluent serialisers, deserialisers and schema tooling send on their hot path:

- ``GET /schemas/ids/{id}`` and ``GET /schemas/ids/{id}/schema``;
- ``GET /subjects/{subject}/versions/{version}`` and ``.../schema`` (``latest`` or a plain
  version number, no query);
- ``POST /compatibility/subjects/{subject}/versions[/{version}]`` (no query but
  ``normalize``, which the registry accepts and ignores: it always compares canonical forms).

- ``POST /subjects/{subject}/versions`` (register; no query but ``normalize``).

Register decides as its twin's ``authorize_held("schema.write")`` does: the allow is held
(``RecordingPolicyEngine.decide_held``) and stored with the ``_schemas`` record in one
transaction, or alone (``settle``) before the answer when nothing was registered. Its body is
read in the event loop first, then the decision, the twin's checks and the registration run in
ONE thread-pool call (the twin takes three hops: the held dependency's enter and exit and the
route; docs/benchmarks/s15-registry.md). A body that cannot be read or parsed is kept as its
error and raised after the decision, so the answer (403 before 415/413/422) and the recorded
decision are the twin's.

``RegistryFastPath`` is the outermost middleware of the hub's app (``hub.api.app.create_app``);
it answers those requests itself, doing what the full stack does for them, in the same order
and through the same functions:

1. the request id (``X-Request-Id``: a sane incoming one is kept) and, at the end, one access
   line (``hub.observability.request_id_of``, ``log_access``);
2. the API key (``hub.keys.verify`` through ``hub.api.auth.KeyChecks``: it sees revocations
   made before the request arrived, catching up with the keys topic in the thread pool, one
   catch-up shared by the requests that arrived before it began);
3. the ``schema.read`` decision for the request path,
   with the method, purpose and case of the request, recorded on ``hub.decisions`` and counted
   (``hub.api.deps.decide_async``: a synced decision awaits its durable record in the event
   loop; a deny or an engine failure answers 403, a record that cannot be stored 500 (50001),
   as the twins answer);
4. the answer, through the twin route's own helpers: a schema by id from memory (an id never
   changes its schema, so its answer is encoded once and reused); a subject's version from
   the registry; for a compatibility check, ``json_body``'s checks (415, 413, 422) and
   ``_compatibility_answer`` (``_Candidate`` and the registry's ``check``);
5. the route metrics (``hub_http_requests_total``, ``hub_http_request_seconds``, labelled with
   the method and the route template).

Every failure after step 2 answers in Confluent's shape (``registry_error_handler``). Anything
it does not serve exactly as the full stack would, it hands to the full stack untouched before
any side effect (the body is not read yet): another method or path, an id or version that is
not a plain number within int32, a query it does not know, an ``Accept`` header that admits
none of the registry's types (406), a missing or rejected key (401), tracing switched on (the
full stack opens the spans). The FastAPI routes stay the reference:
``tests/service/test_registry_fast.py`` sends every request to both.
"""

from __future__ import annotations

import re
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from core import tracing
from core.errors import Retryable
from core.ports.policy import HUB_TENANT, Principal
from governance.decisions import HeldDecision, RecordingPolicyEngine
from hub.api.auth import KeyChecks, credentials
from hub.api.deps import (
    context_of,
    count_decision,
    decide_async,
    engine_failed,
    json_of,
    path_resource,
    receive_body,
    within_limit,
)
from hub.api.routers.registry import (
    MEDIA_TYPE,
    RegistryResponse,
    _compatibility_answer,
    _version_json,
    check_accept,
    check_content_type,
    register_body,
    registry_error_handler,
    schema_fields,
    scope_for,
)
from hub.api.sameorigin import foreign_subresource
from hub.logs import request_id
from hub.observability import log_access, request_id_of
from hub.registry_scope import RegistryScope, open_id
from registry.service import StoredSchema

if TYPE_CHECKING:
    from prometheus_client.metrics import Counter, Histogram

    from hub.bootstrap import Hub

READ = "schema.read"
WRITE = "schema.write"
# The answer decides itself (register: the decision is held for the registration's transaction).
SELF = ""
BY_ID = "/schemas/ids/{schema_id}"
RAW_BY_ID = "/schemas/ids/{schema_id}/schema"
VERSION = "/subjects/{subject}/versions/{version}"
RAW_VERSION = "/subjects/{subject}/versions/{version}/schema"
COMPATIBILITY = "/compatibility/subjects/{subject}/versions/{version}"
COMPATIBILITY_ALL = "/compatibility/subjects/{subject}/versions"
REGISTER = "/subjects/{subject}/versions"
# A plain decimal number within int32 (the FastAPI twins accept more: negative, padded or
# signed numbers are left to them). A subject is one path segment, as Starlette matches it.
_BY_ID = re.compile(r"/schemas/ids/(0|[1-9][0-9]{0,9})(/schema)?")
_V = r"(latest|[1-9][0-9]{0,9})"  # a version: ``latest`` or a plain number (int32: _version)
_VERSION = re.compile(rf"/subjects/([^/]+)/versions/{_V}(/schema)?")
_COMPATIBILITY = re.compile(rf"/compatibility/subjects/([^/]+)/versions(?:/{_V})?")
_REGISTER = re.compile(r"/subjects/([^/]+)/versions")
_BODY_QUERY = re.compile(rb"(normalize=(true|false))?")
_MAX_ID = 2**31 - 1
_TYPE = MEDIA_TYPE.encode("latin-1")

# What step 4 answers: the body of a 200 answer (raises to answer an error).
Answer = Callable[[Scope, Receive], Awaitable[bytes]]


class _Encoded:
    """A schema's two answers, encoded once: ``{"schema": ...}`` and the schema text."""

    __slots__ = ("by_id", "raw", "stored")

    def __init__(self, stored: StoredSchema) -> None:
        body = {"schema": stored.text}  # SchemaOut's order: its declared member first
        body.update(schema_fields(stored))
        self.stored = stored
        self.by_id = bytes(RegistryResponse(body).body)
        self.raw = stored.text.encode("utf-8")


def _version(text: str) -> int | str:
    number = "latest" if text == "latest" else int(text)
    if isinstance(number, int) and number > _MAX_ID:
        raise LookupError(text)
    return number


class RegistryFastPath:
    """Pure ASGI middleware: the registry's hot requests answered before FastAPI (module
    docstring)."""

    def __init__(self, app: ASGIApp, hub: Hub, checks: KeyChecks | None = None) -> None:
        self.app = app
        self.hub = hub
        self.checks = checks or KeyChecks(hub)
        self._encoded: dict[int, _Encoded] = {}
        self._requests: dict[tuple[str, str, int], Counter] = {}
        self._seconds: dict[tuple[str, str], Histogram] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or tracing.tracer() is not None:
            await self.app(scope, receive, send)
            return
        try:
            found = self._match(scope)
            auth = accept = None
            for name, value in scope["headers"]:  # the first of each, as the full stack reads
                if name == b"authorization" and auth is None:
                    auth = value
                elif name == b"accept" and accept is None:
                    accept = value
            if found is None or auth is None or foreign_subresource(scope) is not None:
                raise LookupError  # another site's subresource: the full stack refuses it
            check_accept(None if accept is None else accept.decode("latin-1"))
            principal = await self.checks.verify(*credentials(auth.decode("latin-1")))
        except Exception:  # LookupError, 406 or 401: the full stack answers (nothing done yet)
            await self.app(scope, receive, send)
            return
        await self._serve(scope, receive, send, principal, *found)

    def _match(self, scope: Scope) -> tuple[str, str, Answer] | None:
        """(route template, action, answer) of a request this layer serves, else None."""
        method, path, query = scope["method"], scope["path"], scope["query_string"]
        if method == "GET":
            by_id = _BY_ID.fullmatch(path)
            if by_id is not None:  # the twins ignore their query (subject, format)
                schema_id = int(by_id.group(1))
                if schema_id > _MAX_ID:
                    return None
                if by_id.group(2) is None:
                    return BY_ID, READ, lambda s, _: self._by_id(s, schema_id, True)
                return RAW_BY_ID, READ, lambda s, _: self._by_id(s, schema_id, False)
            version = _VERSION.fullmatch(path)
            if version is None or query:
                return None
            subject, number = version.group(1), _version(version.group(2))
            whole = version.group(3) is None
            return (
                VERSION if whole else RAW_VERSION,
                READ,
                lambda s, _: self._subject_version(s, subject, number, whole),
            )
        if method == "POST" and _BODY_QUERY.fullmatch(query):
            compatibility = _COMPATIBILITY.fullmatch(path)
            if compatibility is not None:
                subject, text = compatibility.groups()
                if text is None:
                    return COMPATIBILITY_ALL, READ, lambda s, r: self._check(s, r, subject, None)
                number = _version(text)
                return COMPATIBILITY, READ, lambda s, r: self._check(s, r, subject, number)
            register = _REGISTER.fullmatch(path)
            if register is not None:
                name = register.group(1)
                return REGISTER, SELF, lambda s, r: self._register(s, r, name)
        return None

    async def _serve(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        principal: Principal,
        route: str,
        action: str,
        answer: Answer,
    ) -> None:
        started = time.perf_counter()
        raw = scope["headers"]
        headers = dict(raw)
        rid = request_id_of(headers)
        token = request_id.set(rid)
        state = scope.setdefault("state", {})
        state["principal"] = principal
        method = scope["method"]
        status = 200
        body = b""
        try:
            try:  # 3. and 4.
                if action != SELF:
                    resource = path_resource(scope["path"])  # as the twin's request.url.path
                    await decide_async(
                        self.hub, route, principal, action, resource, context_of(method, raw)
                    )
                body = await answer(scope, receive)
            except Exception as exc:  # in Confluent's shape, as the twins answer
                response = registry_error_handler(Request(scope), exc)
                status, body = response.status_code, bytes(response.body)
                response.raw_headers.append((b"x-request-id", rid.encode("latin-1")))
                await response(scope, receive, send)
            else:
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
            self._count(method, route, status, started)  # 5.
        finally:
            log_access(scope, headers, status, len(body), started)  # 1.
            request_id.reset(token)

    # -- 4. the answers -------------------------------------------------------------------------
    def _scope(self, scope: Scope, route: str) -> RegistryScope:
        return scope_for(
            self.hub,
            scope["state"]["principal"],
            path_resource(scope["path"]),
            context_of(scope["method"], scope["headers"]),
            route,
        )

    async def _by_id(self, scope: Scope, schema_id: int, whole: bool) -> bytes:
        # another tenant's schema reads as unknown, and an unknown one asks the same question
        # (hub.registry_scope); asking the policy again may wait for its record: in the thread
        # pool, and only then
        if not open_id(self.hub.registry, schema_id, scope["state"]["principal"].tenant):
            route = BY_ID if whole else RAW_BY_ID
            await run_in_threadpool(self._scope(scope, route).require_readable_id, schema_id)
        stored = self.hub.registry.get_by_id(schema_id)
        encoded = self._encoded.get(schema_id)
        if encoded is None or encoded.stored is not stored:
            encoded = self._encoded[schema_id] = _Encoded(stored)
        return encoded.by_id if whole else encoded.raw

    async def _subject_version(
        self, scope: Scope, subject: str, version: int | str, whole: bool
    ) -> bytes:
        registry = self.hub.registry
        try:
            sv = registry.get_version(subject, version)  # catches up with _schemas first
        finally:  # an error of another tenant's subject (40402) would tell that it exists;
            # a missing one asks the same recorded question (hub.registry_scope). As folded by
            # get_version (a second catch-up would double this answer's cost)
            owner = registry.owner(subject, refresh=False)
            if owner not in (HUB_TENANT, scope["state"]["principal"].tenant):
                route = VERSION if whole else RAW_VERSION
                await run_in_threadpool(self._scope(scope, route).require_readable, subject)
        if not whole:
            return sv.schema.text.encode("utf-8")
        # SubjectVersionOut's order: its declared members first, then the others as given
        body = {"subject": sv.subject, "version": sv.version, "id": sv.id, "schema": ""}
        body.update(_version_json(sv))
        return bytes(RegistryResponse(body).body)

    async def _json_body(self, scope: Scope, receive: Receive) -> Any:
        """The twins' ``json_body``, read straight from ``receive`` (no ``Request``, headers
        object or stream generator): the same checks, errors and order (415, 413, 422)."""
        ctype = None
        for name, value in scope["headers"]:  # the first, as ``request.headers.get`` reads
            if name == b"content-type":
                ctype = value.decode("latin-1")
                break
        check_content_type(ctype)
        body = within_limit(await receive_body(receive), self.hub.settings.max_request_bytes)
        return json_of(body, exact_decimals=False)

    async def _check(
        self, scope: Scope, receive: Receive, subject: str, version: int | str | None
    ) -> bytes:
        body = await self._json_body(scope, receive)
        route = COMPATIBILITY_ALL if version is None else COMPATIBILITY
        view = self._scope(scope, route)
        owner = self.hub.registry.owner(subject, refresh=False)  # check() catches up: below
        if owner in (HUB_TENANT, view.principal.tenant):  # no decision to wait for
            answer = _compatibility_answer(view, subject, body, version, False)
        else:
            answer = await run_in_threadpool(
                _compatibility_answer, view, subject, body, version, False
            )
        return bytes(RegistryResponse(answer).body)

    async def _register(self, scope: Scope, receive: Receive, subject: str) -> bytes:
        body: object
        try:  # in the loop (the receive channel); its error is raised after the decision
            body = await self._json_body(scope, receive)
        except Exception as exc:
            body = exc
        context = context_of(scope["method"], scope["headers"])
        resource = path_resource(scope["path"])
        principal = scope["state"]["principal"]
        return await run_in_threadpool(
            self._register_held, principal, resource, context, body, subject, scope["state"]
        )

    def _register_held(
        self,
        principal: Principal,
        resource: str,
        context: dict[str, object],
        body: object,
        subject: str,
        state: dict[str, object],
    ) -> bytes:
        """What the twin's ``authorize_held`` and ``register`` do, in one worker thread."""
        hub = self.hub
        policy = hub.policy
        held: HeldDecision | None = None
        try:
            if isinstance(policy, RecordingPolicyEngine):
                decision, held = policy.decide_held(principal, WRITE, resource, context)
            else:
                decision = policy.decide(principal, WRITE, resource, context)
        except Retryable:  # the decision could not be stored: 503, and nothing ran
            raise
        except Exception as exc:  # fail closed on anything unexpected
            raise engine_failed(hub, REGISTER, WRITE, exc) from exc
        try:
            count_decision(hub, REGISTER, WRITE, decision)  # raises on deny
            state["decision"] = decision
            if isinstance(body, Exception):
                raise body
            scope = scope_for(hub, principal, resource, context, REGISTER)
            schema_id = register_body(scope, subject, body, held)
            return bytes(RegistryResponse({"id": schema_id}).body)
        finally:
            if held is not None:  # stored before the answer, alone if nothing was registered
                held.settle()

    def _count(self, method: str, route: str, status: int, started: float) -> None:
        counter = self._requests.get((method, route, status))
        if counter is None:
            counter = self.hub.metrics.http_requests.labels(method, route, str(status))
            self._requests[(method, route, status)] = counter
        seconds = self._seconds.get((method, route))
        if seconds is None:
            seconds = self.hub.metrics.http_seconds.labels(method, route)
            self._seconds[(method, route)] = seconds
        counter.inc()
        seconds.observe(time.perf_counter() - started)
