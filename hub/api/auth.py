"""Authentication for every HTTP path except the probes ``GET /health`` and ``GET /ready``.

The web console's paths (``/`` and ``/ui...``) authenticate by session cookie instead
(``hub.console.gate``); everything else by API key.

Accepted credentials: HTTP Basic ``KEY_ID:SECRET`` (what Confluent clients send with
``basic.auth.user.info``) and ``Authorization: Bearer KEY_ID:SECRET``. A pure ASGI middleware, so
no route (including the OpenAPI document) can be added without it.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from typing import TYPE_CHECKING

from starlette.types import ASGIApp, Receive, Scope, Send

from core.errors import Unauthenticated
from core.ports.policy import Principal
from hub.console.gate import console_gate, is_console_path

if TYPE_CHECKING:
    from hub.bootstrap import Hub

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


class AuthMiddleware:
    def __init__(self, app: ASGIApp, hub: Hub) -> None:
        self.app = app
        self.hub = hub

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or (scope["method"], scope["path"]) in PUBLIC:
            await self.app(scope, receive, send)
            return
        if is_console_path(scope["path"]):  # the web console: a session cookie, not a key header
            await console_gate(self.hub, self.app, scope, receive, send)
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
            principal: Principal = self.hub.keys.verify(*credentials(header))
        except Unauthenticated as exc:
            self.hub.metrics.auth_failures.inc()
            body = json.dumps(
                {"error_code": 40101, "reason": exc.code, "message": exc.message}
            ).encode()
            await send(
                {
                    "type": "http.response.start",
                    "status": 401,
                    "headers": [
                        (b"content-type", b"application/json"),
                        (b"www-authenticate", b'Basic realm="hub"'),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": body})
            return
        scope.setdefault("state", {})["principal"] = principal
        await self.app(scope, receive, send)
