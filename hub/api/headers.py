"""Security headers on every answer outside the console (the console's gate sets its own).

The API's answers carry tenant data and are read by browsers too (the docs page, a link opened
with the Basic credentials a browser keeps). Contract, for every HTTP answer whose path is not a
console path (``hub.console.gate.is_console_path``):

- ``X-Content-Type-Options: nosniff``: an error that echoes its path is never read as HTML;
- ``X-Frame-Options: DENY`` and ``Content-Security-Policy: frame-ancestors 'none'``: no other
  site frames the docs page (and clicks its buttons with the browser's credentials);
- ``Cache-Control: no-store`` unless the route chose its own (the tlog-tiles routes: full tiles
  ``private`` and immutable, the checkpoint and partial tiles ``no-cache``, all ``Vary:
  Authorization``): no browser or proxy keeps an answer.

Outermost middleware, so that refusals answered before any route (401, 413, 403 ``csrf``) and
the registry's lean reads carry them as well.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hub.console.gate import is_console_path

API_HEADERS = (
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"content-security-policy", b"frame-ancestors 'none'"),
)
NO_STORE = (b"cache-control", b"no-store")


class ApiHeadersMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or is_console_path(scope["path"]):
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", ()))
                if not any(k.lower() == b"cache-control" for k, _ in headers):
                    headers.append(NO_STORE)
                message = {**message, "headers": [*headers, *API_HEADERS]}
            await send(message)

        await self.app(scope, receive, with_headers)


__all__ = ["API_HEADERS", "ApiHeadersMiddleware"]
