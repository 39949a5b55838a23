"""The request body limit (``HUB_MAX_REQUEST_BYTES``) for every HTTP request, before any route.

A body is refused with 413 ``payload_too_large`` as soon as it is known to be too large: at once
when its ``Content-Length`` says so (nothing of it is read), or when the bytes received pass the
limit (a chunked body, or one that runs past its declared length). So memory held for one
request is bounded by the limit, whatever a client sends; before, routes read the whole body
and compared its length afterwards, and routes whose body FastAPI parses had no limit at all.
"""

from __future__ import annotations

import json

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from core.errors import PayloadTooLarge


def _too_large(size: str, limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(
        f"Request body is {size} bytes, over the limit of {limit} (HUB_MAX_REQUEST_BYTES): "
        "split the batch."
    )


class BodyLimitMiddleware:
    """Refuse request bodies over ``limit`` bytes (see the module docstring)."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", ()):
            if name == b"content-length" and value.isdigit() and int(value) > self.limit:
                await _answer(send, _too_large(value.decode("ascii"), self.limit))
                return
        seen = 0
        started = False

        async def capped() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise _too_large(f"more than {self.limit}", self.limit)
            return message

        async def watched(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, capped, watched)
        except PayloadTooLarge as exc:
            if started:  # an answer is under way: nothing else can be sent
                raise
            await _answer(send, exc)


async def _answer(send: Send, exc: PayloadTooLarge) -> None:
    body = json.dumps(
        {"error_code": exc.http_status * 100 + 1, "reason": exc.code, "message": exc.message}
    ).encode()
    await send(
        {
            "type": "http.response.start",
            "status": exc.http_status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", b"%d" % len(body)),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
