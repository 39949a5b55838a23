"""The web console, served by the hub itself (issue 15).

Pages (``hub.console.pages``) and their data calls (``hub.console.data``) live under ``/ui``;
``/`` redirects there. A person logs in with an API key and gets a session cookie
(``hub.console.sessions``); ``hub.console.gate`` admits console paths by that cookie, checks
CSRF on state-changing calls, and hands the principal to ``authorize(...)``, so every page and
data call is a PolicyEngine decision recorded on the ledger, like any API call.

No CDN and no JavaScript build: the charts are hand-written SVG in plain scripts under
``static/``, shipped as package data with the HTML templates under ``templates/``.
"""

from __future__ import annotations

from fastapi import FastAPI

from hub.console.sessions import SessionStore


def install(app: FastAPI, sessions: SessionStore | None = None) -> None:
    """Add the console's routes and session store to ``app``."""
    from hub.console import data, enrolments, pages

    if sessions is None:
        settings = app.state.hub.settings
        if settings.session_store == "redis":
            from hub.console.redis_sessions import RedisSessionStore

            sessions = RedisSessionStore(  # type: ignore[assignment]
                settings.session_redis_url,
                mac_key=app.state.hub.keys.derived_key("console-sessions"),
            )
        else:
            sessions = SessionStore()
    app.state.console_sessions = sessions
    app.state.console_alerts = None  # an AlertEngine while the app serves (pages.lifespan)
    app.include_router(pages.router)
    app.include_router(data.router)
    app.include_router(enrolments.router)
