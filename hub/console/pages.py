"""The console's pages, login and static files.

A page is server-rendered HTML (``string.Template``, values escaped) plus one script from
``static/``; the script fetches its data from the console's data calls (``hub.console.data``).
Each page declares the policy action of what it shows with ``authorize(...)``: the decision is
taken (and recorded on the ledger) before anything renders, and a refusal answers 403.
"""

from __future__ import annotations

import html
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib import resources
from string import Template
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, urlsplit

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from core.errors import InvalidInput, Unauthenticated
from core.ports.policy import Principal
from hub.api.auth import credentials
from hub.api.deps import authorize, hub_of, read_body
from hub.console.gate import cookie_value, sessions_of
from hub.console.sessions import COOKIE, LOGIN_COOKIE, new_token, same_token

if TYPE_CHECKING:
    from hub.reports import ReportScheduler


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """While the app serves, evaluate the alert rules every ``HUB_ALERT_INTERVAL_S`` and run the
    daily reports at ``HUB_REPORT_DAILY_AT`` (when set); under leader election only in the
    leader (``hub.ha.while_leader``: they append events, one writer)."""
    from contextlib import ExitStack

    from hub.console.alerts import AlertEngine, engine_for
    from hub.ha import Guard, while_leader

    hub = app.state.hub
    engine = engine_for(hub)
    app.state.console_alerts = engine  # what the console reads (events, rules)

    def alerts(fence: Guard) -> AlertEngine:
        # one process: the engine the console reads; a leader: a new one on each election,
        # folding the firings appended until now (by the previous leader too), each append
        # inside the fence of its epoch
        running = engine if hub.leader is None else engine_for(hub, fence)
        running.start(hub.settings.alert_interval_s)
        return running

    def reports(fence: Guard) -> ReportScheduler:
        from hub.reports import ReportScheduler

        scheduler = ReportScheduler(hub, hub.settings.report_daily_at, fence=fence)
        scheduler.start(hub.settings.scheduler_check_s)
        return scheduler

    with ExitStack() as loops:
        if hub.settings.alert_interval_s > 0:
            loops.enter_context(while_leader(hub, "alerts", alerts))
        if hub.settings.report_daily_at:
            loops.enter_context(while_leader(hub, "reports", reports))
        yield


router = APIRouter(include_in_schema=False, lifespan=lifespan)

# (path, title, the action the page needs, its script)
PAGES = (
    ("markets", "Markets", "projection.read", "markets.js"),
    ("payments", "Payments and AML", "query.run", "payments.js"),
    ("ledger", "Ledger", "ledger.read", "ledger.js"),
    ("explore", "Explore", "query.run", "explore.js"),
    ("health", "Data health", "quarantine.read", "health.js"),
    ("security", "Security", "policy.read", "security.js"),
    ("enrolments", "Enrolments", "keys.read", "enrolments.js"),
    ("reports", "Reports", "report.read", "reports.js"),
)
_STATIC = re.compile(r"^[a-z][a-z0-9_-]{0,40}\.(js|css)$")
_MEDIA = {"js": "text/javascript; charset=utf-8", "css": "text/css; charset=utf-8"}


def _asset(folder: str, name: str) -> str:
    return (resources.files("hub.console") / folder / name).read_text(encoding="utf-8")


def render(request: Request, page: str, title: str, principal: Principal, script: str) -> str:
    """One page: the layout with its navigation, the user, the CSRF token and the body."""
    session = request.state.console_session
    nav = "".join(
        f'<a href="/ui/{p}"{" class=current" if p == page else ""}>{html.escape(t)}</a>'
        for p, t, _, _ in PAGES
    )
    return Template(_asset("templates", "layout.html")).substitute(
        title=html.escape(title),
        nav=nav,
        user=html.escape(f"{principal.id} ({', '.join(sorted(principal.roles))})"),
        csrf=html.escape(session.csrf),
        body=_asset("templates", f"{page}.html"),
        script=html.escape(script),
    )


@router.get("/")
def root() -> RedirectResponse:
    return RedirectResponse("/ui", status_code=307)


@router.get("/ui")
def home(_: Principal = Depends(authorize("projection.read", "/ui/markets"))) -> RedirectResponse:
    return RedirectResponse("/ui/markets", status_code=303)


def _page_route(page: str, title: str, action: str, script: str) -> None:
    def show(request: Request, principal: Principal = Depends(authorize(action))) -> HTMLResponse:
        return HTMLResponse(render(request, page, title, principal, script))

    show.__name__ = f"page_{page}"
    router.add_api_route(f"/ui/{page}", show, methods=["GET"], response_class=HTMLResponse)


for _page in PAGES:
    _page_route(*_page)


@router.get("/ui/static/{name}")
def static(name: str) -> Response:
    """The console's own scripts and styles (no CDN, no build step)."""
    if not _STATIC.match(name):
        raise InvalidInput(f"{name!r} is not a console asset name.", code="not_found")
    try:
        text = _asset("static", name)
    except FileNotFoundError:
        return Response(f"No console asset {name!r}.", status_code=404, media_type="text/plain")
    return Response(text, media_type=_MEDIA[name.rsplit(".", 1)[1]])


def _safe_next(target: str) -> str:
    """Where to go after login: a console path on this host only (no open redirect)."""
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not parts.path.startswith("/ui") or "\\" in target:
        return "/ui"
    return target


def secure_cookies(request: Request) -> bool:
    """Whether the console's cookies carry ``Secure``: always with ``HUB_COOKIE_SECURE``; else
    when the request came over https, as the hub sees it or, only with ``HUB_TRUST_PROXY``, as
    the proxy's ``X-Forwarded-Proto`` says (its first value: the client-facing hop). A client's
    own ``X-Forwarded-Proto`` is ignored without ``HUB_TRUST_PROXY``."""
    settings = hub_of(request).settings
    if settings.cookie_secure or request.url.scheme == "https":
        return True
    if not settings.trust_proxy:
        return False
    proto = request.headers.get("x-forwarded-proto", "")
    return proto.split(",")[0].strip().lower() == "https"


def _login_page(
    next_url: str, csrf: str, message: str = "", status: int = 200, *, secure: bool = False
) -> HTMLResponse:
    body = Template(_asset("templates", "login.html")).substitute(
        next=html.escape(_safe_next(next_url)),
        csrf=html.escape(csrf),
        message=html.escape(message),
    )
    response = HTMLResponse(body, status_code=status)
    response.set_cookie(
        LOGIN_COOKIE,
        csrf,
        httponly=True,
        samesite="strict",
        path="/ui/login",
        max_age=900,
        secure=secure,
    )
    return response


@router.get("/ui/login")
def login_form(request: Request, next: str = "/ui") -> HTMLResponse:
    return _login_page(next[:2000], new_token(), secure=secure_cookies(request))


@router.post("/ui/login")
async def login(request: Request) -> Response:
    """Log in with an API key (``KEY_ID:SECRET``): a new session, its cookie, then ``next``.

    The form carries a token that must equal the login cookie's (double submit), so another
    site cannot log a browser in under the attacker's key."""
    body = await read_body(request)
    if len(body) > 16_384:
        raise InvalidInput("The login form is too large.", code="invalid_login")
    form = {k: v[0] for k, v in parse_qs(body.decode("utf-8", "replace")).items()}
    next_url = form.get("next", "/ui")[:2000]
    if not same_token(form.get("csrf", ""), cookie_value(request.scope, LOGIN_COOKIE)):
        return _login_page(
            next_url,
            new_token(),
            "The login form expired: enter the key again.",
            status=403,
            secure=secure_cookies(request),
        )
    hub = hub_of(request)
    try:
        principal = hub.keys.verify(*credentials("Bearer " + form.get("key", "").strip()))
    except Unauthenticated as exc:
        hub.metrics.auth_failures.inc()
        return _login_page(
            next_url, new_token(), exc.message, status=401, secure=secure_cookies(request)
        )
    key_id = principal.attributes["key_id"]
    token, _ = sessions_of(request.scope).open(key_id, principal.id)
    # A session's start and end are on the ledger, so an auditor sees who used the console with
    # which key and when (a failed login is not: anyone could write those; it is a metric).
    hub.ledger.record_action(
        principal.id, "console.login", f"key:{key_id}", tenant=principal.tenant
    )
    response = RedirectResponse(_safe_next(next_url), status_code=303)
    response.set_cookie(
        COOKIE,
        token,
        httponly=True,
        samesite="strict",
        path="/",
        secure=secure_cookies(request),
    )
    response.delete_cookie(LOGIN_COOKIE, path="/ui/login")
    return response


@router.post("/ui/logout")
def logout(request: Request) -> Response:
    """End the session (the gate checked the session and its CSRF token)."""
    sessions_of(request.scope).close(request.state.console_token)
    principal = request.state.principal
    hub_of(request).ledger.record_action(
        principal.id,
        "console.logout",
        f"key:{request.state.console_session.key_id}",
        tenant=principal.tenant,
    )
    response = Response(status_code=204)
    response.delete_cookie(COOKIE, path="/")
    return response


def page_actions() -> dict[str, str]:
    """Each page's path and the action it needs (for tests and the README)."""
    return {f"/ui/{p}": a for p, _, a, _ in PAGES}


__all__ = ["PAGES", "page_actions", "render", "router"]
