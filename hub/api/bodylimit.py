"""The request body limit (``HUB_MAX_REQUEST_BYTES``) for every HTTP request, before any route.

A body is refused with 413 ``payload_too_large`` as soon as it is known to be too large: at once
when its ``Content-Length`` says so (nothing of it is read), or when the bytes received pass the
limit (a chunked body, or one that runs past its declared length). So memory held for one
request is bounded by the limit, whatever a client sends; before, routes read the whole body
and compared its length afterwards, and routes whose body FastAPI parses had no limit at all.

The bodies of all requests together are held to a budget (``HUB_MAX_REQUEST_BYTES_IN_FLIGHT``,
``BodyBudget``): a request's body is counted from the moment it is admitted until its answer has
been sent (routes hold the body, and what they build from it, that long; ingest bodies wait for
a pool thread holding theirs). A request whose declared ``Content-Length`` would pass the budget
is answered 503 ``body_budget_full`` with ``Retry-After`` before any of its body is read; a
chunked body is counted as it arrives and refused the same way when the next piece would pass
it. Nothing of a refused request has reached a route, so nothing accepted is lost. A body alone
is always admitted, so a budget under ``HUB_MAX_REQUEST_BYTES`` never starves a request.

No one tenant holds the whole budget (``TenantShareMiddleware``, inside authentication): the
bodies of one tenant's requests together, and those of all unauthenticated requests (the console
login form) together, are held to the budget less one ``HUB_MAX_REQUEST_BYTES`` body (at least
one such body). Before, one globex key (any role: FastAPI reads a body before the route's
authorization) or no key at all (``POST /ui/login``) declared large bodies and sent them slowly,
and every other tenant's ingest was answered 503 for as long as those connections stayed open.

A body is read as sent: the hub undoes no ``Content-Encoding``, so a request naming any but
``identity`` is refused with 415 ``unsupported_encoding`` before anything reads it (s20: a gzip
NDJSON body was split at the compressed stream's 0x0a bytes and quarantined in pieces no replay
could join, and a plain body labelled gzip was ingested, read otherwise by whatever sat between).

A body is bounded in time too (``HUB_REQUEST_BODY_TIMEOUT_S`` plus one second per
``HUB_REQUEST_BODY_MIN_RATE`` bytes received, Apache ``mod_reqtimeout``'s rule; uvicorn has no
body timeout): a chunked body declared large and trickled a byte a second held its connection,
and its share of the budget, for as long as the client liked. Only the time spent waiting in
``receive`` counts (a slow route or a busy server is not charged to the client); a late body is
answered 408 ``body_timeout`` with ``Connection: close``. At the defaults (30 s, 16 KiB/s) a
largest body (32 MiB) may take 30 min; a client on an ordinary link never meets the bound.

503, not 429: the budget is the process's, shared by every client; the one refused has not sent
too much itself (429 says it has), and another client's request would be refused the same way.
503 with ``Retry-After`` is HTTP's "overloaded for now, come back".
"""

from __future__ import annotations

import asyncio
import json
import threading
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from core.errors import BodyBudgetFull, HubError, PayloadTooLarge
from core.metrics import Metrics

RETRY_AFTER_S = 1


class UnsupportedEncoding(HubError):
    """A request body in a ``Content-Encoding`` the hub does not undo (any but identity)."""

    code = "unsupported_encoding"
    http_status = 415


class BodyTimeout(HubError):
    """A request body that arrived later than its time bound (see the module docstring)."""

    code = "body_timeout"
    http_status = 408


def _too_slow(received: int, waited: float, timeout_s: float, min_rate: int) -> BodyTimeout:
    return BodyTimeout(
        f"The request body arrived too slowly: {received} bytes in {waited:.1f} s, past "
        f"HUB_REQUEST_BODY_TIMEOUT_S ({timeout_s:g} s) plus one second per "
        f"HUB_REQUEST_BODY_MIN_RATE ({min_rate}) bytes received: send the body at once, or "
        "raise the settings."
    )


def _encoding_refused(value: bytes) -> UnsupportedEncoding | None:
    codings = [c.strip().lower() for c in value.decode("latin-1").split(",") if c.strip()]
    if all(c == "identity" for c in codings):
        return None
    return UnsupportedEncoding(
        f"Request body has Content-Encoding {value.decode('latin-1')!r}; the hub reads bodies "
        "as sent and decodes no encoding: send it uncompressed, without the header."
    )


def _too_large(size: str, limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(
        f"Request body is {size} bytes, over the limit of {limit} (HUB_MAX_REQUEST_BYTES): "
        "split the batch."
    )


class BodyBudget:
    """Bytes of request bodies held at once, at most ``limit`` (a body alone is always let in).

    Thread-safe: the test client runs requests on event loops of their own threads."""

    def __init__(
        self, limit: int, metrics: Metrics | None = None, owner: str | None = None
    ) -> None:
        self.limit = limit
        self.held = 0
        self._lock = threading.Lock()
        self._metrics = metrics
        self.owner = owner  # a tenant's share (``TenantShares``); None: the whole process's

    def take(self, size: int) -> bool:
        """Count ``size`` more bytes as held; False (nothing counted) when that would pass the
        limit while other bodies are held."""
        with self._lock:
            if self.held and self.held + size > self.limit:
                refused = True
            else:
                self.held += size
                refused = False
        if self._metrics is not None:
            if refused:
                self._metrics.http_bodies_refused.inc()
            elif self.owner is None:  # a share's bytes are counted by the process's budget
                self._metrics.http_body_bytes_in_flight.inc(size)
        return not refused

    def give_back(self, size: int) -> None:
        with self._lock:
            self.held -= size
        if self._metrics is not None and self.owner is None:
            self._metrics.http_body_bytes_in_flight.dec(size)


class TenantShares:
    """One ``BodyBudget`` per tenant (and one for unauthenticated requests), each of ``limit``
    bytes: the process's budget less one largest body, so another tenant's body always fits."""

    def __init__(self, budget: int, max_body: int, metrics: Metrics | None = None) -> None:
        self.limit = max(max_body, budget - max_body)
        self._metrics = metrics
        self._shares: dict[str, BodyBudget] = {}
        self._lock = threading.Lock()

    def of(self, owner: str) -> BodyBudget:
        with self._lock:
            found = self._shares.get(owner)
            if found is None:
                found = self._shares[owner] = BodyBudget(self.limit, self._metrics, owner)
            return found


def _budget_full(size: int, budget: BodyBudget) -> BodyBudgetFull:
    if budget.owner is not None:
        return BodyBudgetFull(
            f"Requests of {budget.owner} hold {budget.held} bytes of request bodies; {size} "
            f"more would pass its share ({budget.limit}: HUB_MAX_REQUEST_BYTES_IN_FLIGHT less "
            f"one HUB_MAX_REQUEST_BYTES body): send again after {RETRY_AFTER_S} s (Retry-After)."
        )
    return BodyBudgetFull(
        f"The server holds {budget.held} bytes of request bodies; {size} more would pass "
        f"HUB_MAX_REQUEST_BYTES_IN_FLIGHT ({budget.limit}): send again after {RETRY_AFTER_S} s "
        "(Retry-After)."
    )


class BodyLimitMiddleware:
    """Refuse request bodies over ``limit`` bytes, and bodies that would pass ``budget`` (see
    the module docstring)."""

    def __init__(
        self,
        app: ASGIApp,
        limit: int,
        budget: BodyBudget | None = None,
        timeout_s: float | None = None,
        min_rate: int = 1,
    ) -> None:
        self.app = app
        self.limit = limit
        self.budget = budget
        self.timeout_s = timeout_s  # None: no time bound (the inner, per-tenant layer)
        self.min_rate = min_rate

    def budget_for(self, scope: Scope) -> BodyBudget | None:
        """The budget ``scope``'s body is counted against."""
        return self.budget

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = None
        for name, value in scope.get("headers", ()):
            if name == b"content-encoding":
                refused = _encoding_refused(value)
                if refused is not None:
                    await answer_error(send, refused)
                    return
            if name == b"content-length" and value.isdigit():
                declared = int(value)
                if declared > self.limit:
                    await answer_error(send, _too_large(value.decode("ascii"), self.limit))
                    return
        budget = self.budget_for(scope)
        taken = 0  # bytes counted against the budget for this request
        if budget is not None and declared:
            if not budget.take(declared):
                await answer_error(send, _budget_full(declared, budget))
                return
            taken = declared
        seen = 0
        started = False
        waited = 0.0  # seconds spent waiting in receive() for the body
        whole = self.timeout_s is None  # True once the body's last piece has arrived

        async def timed() -> Message:
            nonlocal waited
            assert self.timeout_s is not None
            allowed = self.timeout_s + seen / self.min_rate - waited
            began = time.monotonic()
            try:  # asyncio's own timeout: about half the CPU of anyio's cancel scope
                async with asyncio.timeout(max(allowed, 0.0)):
                    message = await receive()
            except TimeoutError:
                waited += time.monotonic() - began
                raise _too_slow(seen, waited, self.timeout_s, self.min_rate) from None
            waited += time.monotonic() - began
            return message

        async def capped() -> Message:
            nonlocal seen, taken, whole
            message = await (receive() if whole else timed())
            if message["type"] == "http.request":
                whole = whole or not message.get("more_body", False)
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise _too_large(f"more than {self.limit}", self.limit)
                if budget is not None and seen > taken:  # chunked, or past its declared length
                    if not budget.take(seen - taken):
                        raise _budget_full(seen - taken, budget)
                    taken = seen
            return message

        async def watched(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, capped, watched)
        except (PayloadTooLarge, BodyBudgetFull, BodyTimeout) as exc:
            if started:  # an answer is under way: nothing else can be sent
                raise
            await answer_error(send, exc)
        finally:
            if taken and budget is not None:
                budget.give_back(taken)


ANONYMOUS = "unauthenticated requests"


class TenantShareMiddleware(BodyLimitMiddleware):
    """``BodyLimitMiddleware`` with the share of the request's tenant (``TenantShares``; the
    principal ``AuthMiddleware`` or the console gate put in the scope), so that one tenant, or
    clients with no key, cannot hold every body the process admits. Installed inside
    authentication, where the tenant is known; the process's budget stays outermost."""

    def __init__(self, app: ASGIApp, limit: int, shares: TenantShares) -> None:
        super().__init__(app, limit)
        self.shares = shares

    def budget_for(self, scope: Scope) -> BodyBudget | None:
        principal = scope.get("state", {}).get("principal")
        tenant = getattr(principal, "tenant", None)
        return self.shares.of(f"tenant {tenant!r}" if tenant is not None else ANONYMOUS)


async def answer_error(send: Send, exc: HubError) -> None:
    """Answer ``exc`` as the hub's JSON error body, closing the connection (nothing of the
    request reached a route)."""
    body = json.dumps(
        {"error_code": exc.http_status * 100 + 1, "reason": exc.code, "message": exc.message}
    ).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", b"%d" % len(body)),
        (b"connection", b"close"),
    ]
    if isinstance(exc, BodyBudgetFull):
        headers.append((b"retry-after", b"%d" % RETRY_AFTER_S))
    await send({"type": "http.response.start", "status": exc.http_status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
