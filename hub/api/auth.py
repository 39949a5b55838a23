"""Authentication for every HTTP path except the probes ``GET /health`` and ``GET /ready``.

The web console's paths (``/`` and ``/ui...``) authenticate by session cookie instead
(``hub.console.gate``); everything else by API key.

Accepted credentials: HTTP Basic ``KEY_ID:SECRET`` (what Confluent clients send with
``basic.auth.user.info``) and ``Authorization: Bearer KEY_ID:SECRET``. A pure ASGI middleware, so
no route (including the OpenAPI document) can be added without it.

A state-changing request that a browser sends from another site's page, or a read that such a
page loads as a subresource, is refused 403 ``csrf`` first, whatever it carries
(``hub.api.sameorigin``: a browser keeps the Basic credentials of a ``WWW-Authenticate`` prompt
and sends them with any site's form or image).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import re
from typing import TYPE_CHECKING

from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Receive, Scope, Send

from core.errors import Unauthenticated
from core.ports.policy import Principal
from hub.api.sameorigin import foreign_origin
from hub.console.gate import console_gate, is_console_path

if TYPE_CHECKING:
    from hub.bootstrap import Hub

Header = tuple[bytes, bytes]

# Probes: liveness and readiness (Kubernetes cannot send an API key, and neither shows data).
# What an Authorization scheme looks like (basic, bearer, digest, negotiate...): short, no ':'
_SCHEME = re.compile(r"^[a-z][a-z0-9-]{0,19}$")
PUBLIC = {("GET", "/health"), ("HEAD", "/health"), ("GET", "/ready"), ("HEAD", "/ready")}
# Enrolment: the person has no key yet; the one-time token in the body is the credential, and
# the route itself refuses a caller authenticated as anyone else (hub.api.routers.keys).
PUBLIC |= {("POST", "/v1/enrol")}


def credentials(header: str) -> tuple[str, str]:
    """(key id, secret) from an Authorization header value; raises ``Unauthenticated``."""
    scheme, _, value = header.partition(" ")
    scheme = scheme.lower()
    if scheme == "basic":
        try:
            text = base64.b64decode(value.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError) as exc:
            raise Unauthenticated("The Basic credentials are not valid base64 text.") from exc
    elif scheme == "bearer":
        text = value.strip()
    else:
        # Named only when it looks like a scheme: a key pasted without one ("hk_ID:SECRET")
        # would otherwise come back in the error body, which clients print and log.
        named = f" {scheme!r}" if _SCHEME.match(scheme) else ""
        raise Unauthenticated(
            f"Unsupported Authorization scheme{named}: use Basic or Bearer with KEY_ID:SECRET."
        )
    key_id, sep, secret = text.partition(":")
    if not sep or not key_id or not secret:
        raise Unauthenticated("Credentials must have the form KEY_ID:SECRET.")
    return key_id, secret


_CSRF_FIX = (
    " The API refuses what a browser sends for another site's page (a state change, or a read"
    " loaded as an image, script, frame or fetch); a client that is not a browser sends no"
    " Origin or Sec-Fetch-Site, and the hub's own pages send this hub's."
)


async def _refuse(send: Send, status: int, reason: str, message: str, *extra: Header) -> None:
    body = json.dumps({"error_code": status * 100 + 1, "reason": reason, "message": message})
    headers = [(b"content-type", b"application/json"), *extra]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body.encode()})


_Check = tuple[int, str, str, "asyncio.Future[Principal]"]


class KeyChecks:
    """API keys verified for the event loop, in batches, off the loop.

    ``ApiKeys.verify`` first catches up with the keys topic: on Kafka a ListOffsets round trip.
    Called in the event loop (as before s22) every request held the loop for its own round
    trip, one after another. Here a request takes the keyring's ticket when it arrives
    (``ApiKeys.ticket``) and joins the next batch; one thread-pool call verifies a batch in
    arrival order, each with its ticket: the first catch-up begun after a request arrived
    serves it (``core.fold.SharedCatchUps``), so a key revoked by another instance before the
    request arrived is refused to it, exactly as before; only the round trips and the loop's
    waits are shared. Requests that arrive while a batch runs form the next one.

    On a local log (``EventLog.remote`` false: the embedded one) a catch-up is a local read,
    cheaper than the hop to the thread pool: the key is verified in place, as before."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self._batch: list[_Check] = []
        self._running = False
        self._in_place = not hub.log.remote

    async def verify(self, key_id: str, secret: str) -> Principal:
        """``hub.keys.verify(key_id, secret)`` as of this call (raises what it raises)."""
        if self._in_place:
            return self.hub.keys.verify(key_id, secret)
        done: asyncio.Future[Principal] = asyncio.get_running_loop().create_future()
        self._batch.append((self.hub.keys.ticket(), key_id, secret, done))
        if not self._running:
            self._running = True
            asyncio.get_running_loop().create_task(self._drain())
        return await done

    async def _drain(self) -> None:
        try:
            while self._batch:
                batch, self._batch = self._batch, []
                try:
                    answers = await run_in_threadpool(self._verify_all, batch)
                except BaseException as exc:  # the pool itself failed (shutdown): tell each
                    answers = [exc] * len(batch)
                for (*_, done), answer in zip(batch, answers, strict=True):
                    if done.done():  # its request was cancelled meanwhile
                        continue
                    if isinstance(answer, BaseException):
                        done.set_exception(answer)
                    else:
                        done.set_result(answer)
        finally:
            self._running = False

    def _verify_all(self, batch: list[_Check]) -> list[Principal | BaseException]:
        answers: list[Principal | BaseException] = []
        for ticket, key_id, secret, _ in batch:
            try:
                answers.append(self.hub.keys.verify(key_id, secret, ticket=ticket))
            except Exception as exc:
                answers.append(exc)
        return answers


class AuthMiddleware:
    def __init__(self, app: ASGIApp, hub: Hub, checks: KeyChecks | None = None) -> None:
        self.app = app
        self.hub = hub
        self.checks = checks or KeyChecks(hub)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if is_console_path(scope["path"]):  # the web console: a session cookie, not a key header
            await console_gate(self.hub, self.app, scope, receive, send)
            return
        # A browser sends the Basic credentials it holds for this origin with any site's form or
        # image: no state change, and no read loaded as a subresource, from another site's page,
        # whatever the credentials (hub.api.sameorigin)
        foreign = foreign_origin(scope)
        if foreign is not None:
            await _refuse(send, 403, "csrf", foreign + _CSRF_FIX)
            return
        if (scope["method"], scope["path"]) in PUBLIC:
            await self.app(scope, receive, send)
            return
        header = ""
        for name, value in scope.get("headers", ()):
            if name == b"authorization":
                header = value.decode("latin-1")
                break
        try:
            if not header:
                raise Unauthenticated(
                    "This route requires an API key: send HTTP Basic KEY_ID:SECRET or "
                    "'Authorization: Bearer KEY_ID:SECRET' (create one with `hub keys create`)."
                )
            principal = await self.checks.verify(*credentials(header))
        except Unauthenticated as exc:
            self.hub.metrics.auth_failures.inc()
            await _refuse(
                send, 401, exc.code, exc.message, (b"www-authenticate", b'Basic realm="hub"')
            )
            return
        scope.setdefault("state", {})["principal"] = principal
        await self.app(scope, receive, send)
