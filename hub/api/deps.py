"""FastAPI dependencies shared by every router: the hub instance and policy-checked principals.

Authentication happens once, in ``hub.api.auth.AuthMiddleware``, for every path but ``/health``;
it puts the ``Principal`` on ``request.state.principal``. Each route then declares the action it
performs with ``Depends(authorize("schema.write"))``, which asks the PolicyEngine port and raises
``Forbidden`` on deny (fail closed: an engine error is a deny too).
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from fastapi import Request
from fastapi.dependencies.models import Dependant
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect
from starlette.types import Receive

from core import jsonkeys
from core.errors import (
    Forbidden,
    HubError,
    InvalidInput,
    PayloadTooLarge,
    Retryable,
    Unauthenticated,
)
from core.ports.policy import HUB_TENANT, Decision, Principal
from governance.decisions import HeldDecision, HeldRecord, RecordingPolicyEngine
from hub.api.models import MAX_INT64 as MAX_INT64  # the routes import it from here
from hub.observability import route_template

if TYPE_CHECKING:
    from hub.bootstrap import Hub


def hub_of(request: Request) -> Hub:
    hub: Hub = request.app.state.hub
    return hub


_DEFAULT_MAX_BODY = 32 * 1_048_576
MAX_PARTITION = 2**31 - 1  # Kafka's partition numbers are int32
MAX_JSON_DEPTH = 64  # nesting of arrays and objects in any JSON body

_KEEP = b'[]{}"'
_DROP = bytes(b for b in range(256) if b not in _KEEP)
_JSON_STRING = re.compile(rb'"[^"]*"')
_INNERMOST = re.compile(rb"\[\]|\{\}")


def json_depth_exceeds(body: bytes, limit: int = MAX_JSON_DEPTH) -> bool:
    """True when arrays and objects in ``body`` nest deeper than ``limit``.

    Scans without recursion, at C speed: escaped backslashes and quotes dropped, then everything
    but brackets and quotes, then strings, then the innermost bracket pairs once per level; so a
    body nested 10,000 deep is refused before a recursive parser sees it. Costs about half a
    ``json.loads`` of the same body.
    """
    if body.count(b"[") + body.count(b"{") <= limit:
        return False
    bare = body.replace(b"\\\\", b"").replace(b'\\"', b"").translate(None, _DROP)
    # Two adjacent quotes: an empty string, or two strings with no bracket between (the ``:``
    # and ``,`` are gone); removing them keeps every bracket's inside/outside, at C speed.
    bare = bare.replace(b'""', b"")
    brackets = _JSON_STRING.sub(b"", bare) if b'"' in bare else bare
    for _ in range(limit):
        brackets, removed = _INNERMOST.subn(b"", brackets)
        if not brackets or not removed:  # done, or unbalanced: the parser names that error
            return False
    return bool(brackets)


def _finite_float(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise ValueError(f"{text} is out of the range of a double: send a smaller number")
    return value


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number: send a finite number or a string")


def parse_json(
    body: bytes,
    *,
    exact_decimals: bool = True,
    unique_members: bool = True,
    what: str = "Request body",
) -> Any:
    """``body`` as JSON, or ``InvalidInput`` (code ``malformed_json``) naming the problem.

    Refused: text that is not UTF-8, nesting deeper than ``MAX_JSON_DEPTH``, ``NaN`` and
    ``Infinity``, and with ``unique_members`` a member name twice in one object (code
    ``duplicate_key``, naming it: parsers disagree on which value wins, and the data routes keep
    the original bytes, so a record must have one reading; ``core.jsonkeys``). The data routes'
    columnar paths never take a duplicate (Arrow and ``hub_native.json_rows`` refuse it), so
    the check costs only the per-record reference. With ``exact_decimals`` numbers with a
    fraction become ``Decimal`` (money never a float).
    """
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidInput(
            f"{what} is not UTF-8 text: byte {exc.start} ({body[exc.start : exc.start + 1]!r}) "
            "cannot be decoded; send JSON encoded as UTF-8.",
            code="malformed_json",
        ) from exc
    if json_depth_exceeds(body):
        raise InvalidInput(
            f"{what} nests arrays or objects deeper than {MAX_JSON_DEPTH} levels: flatten it.",
            code="malformed_json",
        )
    try:
        return json.loads(
            text,
            parse_float=Decimal if exact_decimals else _finite_float,
            parse_constant=_no_constant,
            object_pairs_hook=jsonkeys.unique_members if unique_members else None,
        )
    except jsonkeys.DuplicateKey as exc:
        raise InvalidInput(
            f"{what} is ambiguous JSON: {exc}; parsers disagree on which value a repeated "
            "member has.",
            code="duplicate_key",
        ) from exc
    except json.JSONDecodeError as exc:
        raise InvalidInput(
            f"{what} is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}.",
            code="malformed_json",
        ) from exc
    except (ValueError, RecursionError) as exc:
        raise InvalidInput(f"{what} is not acceptable JSON: {exc}.", code="malformed_json") from exc


async def read_body(request: Request) -> bytes:
    """The raw request body; 413 over HUB_MAX_REQUEST_BYTES."""
    hub = getattr(request.app.state, "hub", None)
    limit = int(getattr(getattr(hub, "settings", None), "max_request_bytes", _DEFAULT_MAX_BODY))
    return within_limit(await request.body(), limit)


def within_limit(body: bytes, limit: int) -> bytes:
    """``body``, or 413 when it is over ``limit`` (HUB_MAX_REQUEST_BYTES)."""
    if len(body) > limit:
        raise PayloadTooLarge(
            f"Request body is {len(body)} bytes, over the limit of {limit} "
            "(HUB_MAX_REQUEST_BYTES): split the batch."
        )
    return body


async def receive_body(receive: Receive) -> bytes:
    """The whole request body from an ASGI ``receive`` channel, as ``Request.body`` reads it
    (``ClientDisconnect`` when the client hangs up first), for a layer that answers before
    FastAPI without building a ``Request`` and its stream (``hub.api.registry_fast``)."""
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] == "http.request":
            body = message.get("body", b"")
            if body:
                chunks.append(body)
            if not message.get("more_body", False):
                return b"".join(chunks)
        elif message["type"] == "http.disconnect":
            raise ClientDisconnect()


async def read_json(
    request: Request, *, exact_decimals: bool = True, unique_members: bool = True
) -> Any:
    """The request body as JSON (``parse_json``); 413 over HUB_MAX_REQUEST_BYTES, 422 when empty
    or malformed."""
    body = await read_body(request)
    return json_of(body, exact_decimals=exact_decimals, unique_members=unique_members)


def json_of(body: bytes, *, exact_decimals: bool = True, unique_members: bool = True) -> Any:
    """``read_json``'s reading of a body already read and within the limit: 422 when empty or
    malformed."""
    if not body.strip():
        raise InvalidInput("Request body is empty: send a JSON object.", code="malformed_json")
    return parse_json(body, exact_decimals=exact_decimals, unique_members=unique_members)


def principal_of(request: Request) -> Principal:
    principal = getattr(request.state, "principal", None)
    if principal is None:
        raise Unauthenticated(
            "This route requires an API key (HTTP Basic KEY_ID:SECRET or Bearer)."
        )
    return principal  # type: ignore[no-any-return]


def route_of(request: Request) -> str:
    """The matched route's template (``/schemas/ids/{schema_id}``), the label of its metrics
    and what a log line names (``hub.observability.route_template``)."""
    return route_template(request.scope)


def path_resource(path: str) -> str:
    """The decoded ASGI ``path`` as ``request.url.path`` gives it, the resource ``authorize``
    names by default: Starlette escapes ``?``, ``#`` and ``\\`` again (``%3F``, ``%23``,
    ``%5C``). A layer deciding before FastAPI (``registry_fast``) MUST name the same."""
    return path.replace("?", "%3F").replace("#", "%23").replace("\\", "%5C")


def context_of(method: str, headers: Iterable[tuple[bytes, bytes]]) -> dict[str, Any]:
    """The context a request's decision is made in: its method, and the purpose of use and
    the case it names (``X-Hub-Purpose``, ``X-Hub-Case``; the first of each, as
    ``request.headers`` reads them), from the ASGI scope's raw headers."""
    found: dict[str, str] = {}
    for name, value in headers:
        key = _CONTEXT_HEADERS.get(name.lower())
        if key is not None and key not in found:  # purpose of use, e.g. an investigation
            found[key] = value.decode("latin-1")
    context: dict[str, Any] = {"method": method}
    for key in ("purpose", "case"):
        if key in found:
            context[key] = found[key]
    return context


_CONTEXT_HEADERS = {b"x-hub-purpose": "purpose", b"x-hub-case": "case"}


def decision_context(request: Request) -> dict[str, Any]:
    """``context_of`` a request."""
    return context_of(request.method, request.scope["headers"])


def engine_failed(hub: Hub, route: str, action: str, exc: Exception) -> Forbidden:
    """The deny for an engine that failed (fail closed), counted; ``Retryable`` is not one."""
    hub.metrics.count_decision(action, "error", route)
    if isinstance(exc, HubError):
        return Forbidden(f"Access denied because the policy engine failed: {exc.message}")
    return Forbidden(f"Access denied because the policy engine failed: {exc!r}")


def policy_failed(request: Request, action: str, exc: Exception) -> Forbidden:
    """``engine_failed`` for a request."""
    return engine_failed(hub_of(request), route_of(request), action, exc)


def count_decision(hub: Hub, route: str, action: str, decision: Decision) -> None:
    """Count a decision; raise ``Forbidden`` on deny."""
    hub.metrics.count_decision(action, "allow" if decision.allow else "deny", route)
    if not decision.allow:
        hub.metrics.policy_denials.labels(action).inc()
        raise Forbidden(f"Access denied: {decision.reason} (policy {decision.policy_version}).")


def settle(request: Request, action: str, decision: Decision) -> None:
    """Count a decision; raise ``Forbidden`` on deny, else leave it on ``request.state``."""
    count_decision(hub_of(request), route_of(request), action, decision)
    request.state.decision = decision  # its obligations (mask, row_filter) for the route


async def decide_async(
    hub: Hub,
    route: str,
    principal: Principal,
    action: str,
    resource: str,
    context: dict[str, Any],
) -> Decision:
    """What ``authorize(action)`` decides, for an async caller: the same decision, record,
    metrics and errors, awaited in the event loop (a recording engine awaits its durable
    record without a thread). A decision that may block (``RecordingPolicyEngine.blocks``: OPA
    over HTTP, a case looked up in the cases log) and any other engine are asked in the thread
    pool, as a sync dependency would be. Raises ``Forbidden`` on deny or engine failure,
    ``Retryable`` when the record cannot be stored."""
    policy = hub.policy
    try:
        if isinstance(policy, RecordingPolicyEngine) and not policy.blocks(context):
            decision = await policy.decide_async(principal, action, resource, context)
        else:
            decision = await run_in_threadpool(policy.decide, principal, action, resource, context)
    except Retryable:
        raise
    except Exception as exc:  # fail closed on anything unexpected
        raise engine_failed(hub, route, action, exc) from exc
    count_decision(hub, route, action, decision)
    return decision


def authorize(action: str, resource: str | None = None) -> Callable[..., Any]:
    """A dependency that allows the request only if the policy engine allows ``action``.

    ``resource`` defaults to the request path, so decisions name what was touched. Decided in
    the event loop (``decide_async``): no thread-pool hop for the decision, and no pool thread
    blocked while an allow's record is made durable; the route itself still runs where
    FastAPI runs it (a ``def`` route in the thread pool). Raises ``Forbidden`` on deny or
    engine failure, ``Retryable`` (503, nothing ran) when the decision cannot be stored.
    """

    async def dependency(request: Request) -> Principal:
        principal = principal_of(request)
        target = resource or request.url.path
        hub, route = hub_of(request), route_of(request)
        ctx = decision_context(request)
        decision = await decide_async(hub, route, principal, action, target, ctx)
        request.state.decision = decision  # its obligations (mask, row_filter) for the route
        return principal

    dependency.__name__ = f"authorize_{action.replace('.', '_')}"
    dependency.hub_action = action  # type: ignore[attr-defined]  # read by ``route_actions``
    return dependency


def authorize_hub_wide(action: str, resource: str | None = None) -> Callable[..., Any]:
    """``authorize(action, resource)`` for something no single tenant owns (``HUB_TENANT``):
    decided with ``context.tenant`` the hub's own tenant, so the policy's tenant isolation
    refuses a key of another tenant unless it holds ``tenant.all`` (or a grant of it).
    ``resource`` defaults to the request path, as ``authorize``'s."""

    async def dependency(request: Request) -> Principal:
        principal = principal_of(request)
        hub, route = hub_of(request), route_of(request)
        ctx = {**decision_context(request), "tenant": HUB_TENANT}
        target = resource or request.url.path
        decision = await decide_async(hub, route, principal, action, target, ctx)
        request.state.decision = decision
        return principal

    dependency.__name__ = f"authorize_{action.replace('.', '_')}_hub_wide"
    dependency.hub_action = action  # type: ignore[attr-defined]  # read by ``route_actions``
    return dependency


async def allowed_hub_wide(
    request: Request, principal: Principal, action: str, resource: str
) -> bool:
    """Whether ``principal``, already allowed ``action`` for its own tenant, would also be
    allowed it as the hub's own tenant's (``authorize_hub_wide``): a key holding ``tenant.all``
    or of ``HUB_TENANT``. For a route that shows a tenant-limited reader less of something no
    tenant owns (a hub-wide policy bundle's text names every tenant's principals). The
    decision is recorded like any other; a deny or an engine failure answers False."""
    hub, route = hub_of(request), route_of(request)
    ctx = {**decision_context(request), "tenant": HUB_TENANT}
    try:
        decision = await decide_async(hub, route, principal, action, resource, ctx)
    except Forbidden:
        return False
    return decision.allow


def authorize_held(action: str) -> Callable[[Request], Iterator[Principal]]:
    """``authorize(action)`` for a route whose action appends records: an allow's record is
    held (``RecordingPolicyEngine.decide_held``) and left on ``request.state.held_decision``
    for the route to store with its own records in one transaction (``held_decision``). The
    dependency's exit (scope ``function``: before any answer is sent, the route's error
    answers and validation errors included) stores the decision alone if the route did not,
    so every decision is durable before its answer, and fails closed (503) if it cannot be.
    Use as ``Depends(authorize_held(action), scope="function")``."""

    def dependency(request: Request) -> Iterator[Principal]:
        principal = principal_of(request)
        hub = hub_of(request)
        policy = hub.policy
        context = decision_context(request)
        held: HeldDecision | None = None
        try:
            if isinstance(policy, RecordingPolicyEngine):
                decision, held = policy.decide_held(principal, action, request.url.path, context)
            else:
                decision = policy.decide(principal, action, request.url.path, context)
        except Retryable:  # e.g. the decision could not be stored: 503, and nothing ran
            raise
        except Exception as exc:  # fail closed on anything unexpected
            raise policy_failed(request, action, exc) from exc
        request.state.held_decision = held
        try:
            settle(request, action, decision)
            yield principal
        finally:
            if held is not None:
                held.settle()

    dependency.__name__ = f"authorize_held_{action.replace('.', '_')}"
    dependency.hub_action = action  # type: ignore[attr-defined]  # read by ``route_actions``
    return dependency


def authorize_in_loop(action: str) -> Callable[[Request], AsyncIterator[Principal]]:
    """``authorize(action)`` for the ingest routes: decided in the event loop, and on a log
    that ``commits_locally`` an allow's record is held (``RecordingPolicyEngine.decide_held``)
    for the route's ingest to store in its own log transaction (``held_companions``): one
    commit and fsync for the decision and the batch instead of two. The dependency's exit
    (scope ``function``: before any answer is sent, error answers included) stores the
    decision alone, awaited without a thread, when the ingest did not store it (a refused
    body, a quota, a failed transaction), so every decision is durable before its answer;
    503 if it cannot be. Elsewhere (Kafka, no recording, a sink without companions) it is
    ``authorize(action)``. Use as ``Depends(authorize_in_loop(action), scope="function")``."""

    async def dependency(request: Request) -> AsyncIterator[Principal]:
        principal = principal_of(request)
        hub, route = hub_of(request), route_of(request)
        policy = hub.policy
        context = decision_context(request)
        resource = request.url.path
        if not (
            isinstance(policy, RecordingPolicyEngine)
            and policy.committer.takes_companions
            and hub.log.commits_locally
        ):
            decision = await decide_async(hub, route, principal, action, resource, context)
            request.state.decision = decision  # its obligations (mask, row_filter)
            yield principal
            return
        try:
            if policy.blocks(context):  # OPA over HTTP, a case read from the log
                decision, held = await run_in_threadpool(
                    policy.decide_held, principal, action, resource, context
                )
            else:  # queues a denial's record, never waits for one (an allow is held)
                decision, held = policy.decide_held(principal, action, resource, context)
        except Retryable:  # e.g. the decision could not be stored: 503, and nothing ran
            raise
        except Exception as exc:  # fail closed on anything unexpected
            raise engine_failed(hub, route, action, exc) from exc
        request.state.held_decision = held
        try:
            count_decision(hub, route, action, decision)
            request.state.decision = decision
            yield principal
        finally:
            if held is not None:
                await held.settle_async()

    dependency.__name__ = f"authorize_in_loop_{action.replace('.', '_')}"
    dependency.hub_action = action  # type: ignore[attr-defined]  # read by ``route_actions``
    return dependency


def held_companions(request: Request) -> list[HeldRecord]:
    """The held decision's record for the route's ingest to store in its transaction
    (``authorize_in_loop``); none when the decision is stored already or is not held."""
    held = held_decision(request)
    return [] if held is None else [held.companion()]


def held_decision(request: Request) -> HeldDecision | None:
    """The allow ``authorize_held`` left for this request to store; None when it is stored."""
    held = getattr(request.state, "held_decision", None)
    return held if isinstance(held, HeldDecision) else None


def route_actions(dependant: Dependant) -> list[str]:
    """The actions a route's ``authorize`` dependencies decide, in order (the route's own
    dependencies and its router's, at any depth)."""
    found: list[str] = []
    for sub in dependant.dependencies:
        action = getattr(sub.call, "hub_action", None)
        if isinstance(action, str):
            found.append(action)
        found.extend(route_actions(sub))
    return found
