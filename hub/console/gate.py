"""Who may reach a console path: the session cookie, CSRF, and the console's security headers.

``AuthMiddleware`` hands every console path (``/`` and ``/ui...``) to :func:`console_gate`
instead of asking for an API key header. The gate:

1. lets the public paths through without a principal: ``GET /`` (a redirect), the login page and
   its form, the enrolment redemption page (static; it calls the public ``POST /v1/enrol``),
   and the static files (code, never data);
2. resolves the ``hub_session`` cookie to a live session (``SessionStore``) and the session to
   its API key, re-read on every request (a revoked or expired key ends the session); with none,
   a page answers a redirect to the login page and a data call (``/ui/api/...``) 401;
3. refuses a state-changing request (anything but GET/HEAD) unless its ``X-CSRF-Token`` header
   equals the session's token and it is not from another site (``hub.api.sameorigin``: its
   ``Origin``, when sent, is this host; ``Sec-Fetch-Site`` not cross-site): 403 ``csrf``;
4. puts the principal where ``authorize(...)`` finds it, so every page and data call is then
   decided by the PolicyEngine (and recorded) like any API route;
5. adds security headers to every console answer (no framing, a CSP allowing only this
   origin's scripts, no referrer, no caching of data), and turns a 401/403 error of a page into
   an HTML page that states it.
"""

from __future__ import annotations

import html
import json
from datetime import UTC, datetime
from http.cookies import CookieError, SimpleCookie
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from core.errors import NotFound
from hub.api.sameorigin import foreign_origin, header
from hub.console.sessions import COOKIE, Session, SessionStore, same_token

if TYPE_CHECKING:
    from hub.bootstrap import Hub

# /ui/enrol: a static page for a person who has no key yet (hub.console.enrolments)
PUBLIC_PATHS = {"/", "/ui/login", "/ui/enrol"}
STATIC_PREFIX = "/ui/static/"
API_PREFIX = "/ui/api/"
SECURITY_HEADERS = [
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (
        b"content-security-policy",
        b"default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        b"connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
    ),
]


def is_console_path(path: str) -> bool:
    return path == "/" or path == "/ui" or path.startswith("/ui/")


def cookie_value(scope: Scope, name: str) -> str:
    raw = header(scope, b"cookie")
    if not raw:
        return ""
    jar: SimpleCookie = SimpleCookie()
    try:
        jar.load(raw)
    except CookieError:
        return ""
    morsel = jar.get(name)
    return morsel.value if morsel is not None else ""


def sessions_of(scope: Scope) -> SessionStore:
    store: SessionStore = scope["app"].state.console_sessions
    return store


async def _answer(send: Send, status: int, body: bytes, ctype: bytes, extra: list[Any]) -> None:
    headers = [(b"content-type", ctype), *SECURITY_HEADERS, *extra]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _refuse(scope: Scope, send: Send, status: int, reason: str, message: str) -> None:
    path = scope["path"]
    if path.startswith(API_PREFIX) or scope["method"] not in ("GET", "HEAD"):
        body = json.dumps(
            {"error_code": status * 100 + 1, "reason": reason, "message": message}
        ).encode()
        await _answer(send, status, body, b"application/json", [])
        return
    # A page: to the login page, coming back here afterwards.
    query = scope.get("query_string", b"").decode("latin-1")
    target = path + ("?" + query if query else "")
    location = "/ui/login?next=" + quote(target, safe="")
    await _answer(send, 303, b"", b"text/plain", [(b"location", location.encode("latin-1"))])


def live_session(hub: Hub, store: SessionStore, token: str) -> tuple[Session, Any] | None:
    """The session of a cookie value and its key's principal, or None (and the session closed)
    when the key is gone, revoked or expired."""
    session = store.get(token)
    if session is None:
        return None
    try:
        key = hub.keys.get(session.key_id)
    except NotFound:
        key = None
    if key is None or key.state(datetime.now(UTC)) != "active":
        store.close(token)
        return None
    return session, key.principal


async def console_gate(hub: Hub, app: ASGIApp, scope: Scope, receive: Receive, send: Send) -> None:
    """Steps 1-5 of the module docstring, for one console request."""
    path, method = scope["path"], scope["method"]
    send = _with_headers(scope, send)
    # 1. public paths
    if path in PUBLIC_PATHS or path.startswith(STATIC_PREFIX):
        await app(scope, receive, send)
        return
    # 2. the session and its key
    token = cookie_value(scope, COOKIE)
    found = live_session(hub, sessions_of(scope), token)
    if found is None:
        hub.metrics.auth_failures.inc()
        await _refuse(
            scope,
            send,
            401,
            "unauthenticated",
            "This console call needs a session: log in at /ui/login with an API key.",
        )
        return
    session, principal = found
    # 3. CSRF on anything that may change state
    if method not in ("GET", "HEAD"):
        foreign = foreign_origin(scope)  # the state-changing half (reads need the cookie)
        if foreign is not None:
            await _refuse(scope, send, 403, "csrf", foreign)
            return
        if not same_token(header(scope, b"x-csrf-token"), session.csrf):
            await _refuse(
                scope,
                send,
                403,
                "csrf",
                "The X-CSRF-Token header is missing or wrong: reload the page and retry.",
            )
            return
    # 4. the principal for authorize(...)
    state = scope.setdefault("state", {})
    state["principal"] = principal
    state["console_session"] = session
    state["console_token"] = token
    await app(scope, receive, send)


def _with_headers(scope: Scope, send: Send) -> Send:
    """5. security headers on every answer; a page's 401/403 JSON error becomes an HTML page."""
    is_page = not scope["path"].startswith(API_PREFIX) and scope["method"] in ("GET", "HEAD")
    held: dict[str, Any] = {}

    async def wrapped(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = [
                (k, v) for k, v in message.get("headers", []) if k.lower() != b"cache-control"
            ]
            headers += [*SECURITY_HEADERS, (b"cache-control", b"no-store")]
            message = {**message, "headers": headers}
            ctype = dict(headers).get(b"content-type", b"")
            if (
                is_page
                and message["status"] in (401, 403)
                and ctype.startswith(b"application/json")
            ):
                held["start"] = message
                held["body"] = b""
                return
        elif message["type"] == "http.response.body" and "start" in held:
            held["body"] += message.get("body", b"")
            if message.get("more_body"):
                return
            await _error_page(send, held["start"], held["body"])
            return
        await send(message)

    return wrapped


async def _error_page(send: Send, start: Message, body: bytes) -> None:
    try:
        message = str(json.loads(body).get("message", ""))
    except ValueError:
        message = body.decode("utf-8", "replace")
    status = start["status"]
    title = "Access refused" if status == 403 else "Not logged in"
    page = (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        f"<title>{title} · hub</title><link rel=stylesheet href=/ui/static/console.css></head>"
        f"<body><main class=refused><h1>{title}</h1><p id=refusal>{html.escape(message)}</p>"
        "<p>This refusal is recorded on the audit ledger. <a href=/ui>Back to the console</a>"
        " · <a href=/ui/login>Log in with another key</a></p></main></body></html>"
    ).encode()
    headers = [
        (k, v) for k, v in start["headers"] if k.lower() not in (b"content-type", b"content-length")
    ]
    headers += [
        (b"content-type", b"text/html; charset=utf-8"),
        (b"content-length", str(len(page)).encode()),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": page})
