"""An optional allow-list of ``Host`` names (``HUB_ALLOWED_HOSTS``; off when empty).

Contract: when the list is set, every HTTP request whose ``Host`` (its port ignored, compared
without case) is not on it, or that has no ``Host``, is answered 400 ``host_not_allowed``
naming the host and the setting (two ``Host`` headers are refused too, RFC 9112 section 3.2),
before any other layer reads it (only the security headers
of ``hub.api.headers`` are added). An entry is a host name, an IPv4 address, an IPv6 address
in brackets (``[::1]``), or ``*.`` and a domain: any name under that domain (not the domain
itself). Nothing of the hub reflects ``Host``; the list keeps a hub from answering under a name
it does not know (DNS rebinding: a page whose name now resolves to the hub is, to the browser,
the hub's own origin, so the same-origin checks of the API and console cannot tell it apart).
"""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from core.errors import HubError
from core.hostnames import host_name, parse_allowed
from hub.api.bodylimit import answer_error


class HostNotAllowed(HubError):
    code = "host_not_allowed"
    http_status = 400


class AllowedHostsMiddleware:
    """Refuse requests whose ``Host`` is not allowed (see the module docstring)."""

    def __init__(self, app: ASGIApp, allowed: str) -> None:
        self.app = app
        self.exact, self.suffixes = parse_allowed(allowed)

    def allows(self, host: str) -> bool:
        name = host_name(host)
        return bool(name) and (name in self.exact or name.endswith(self.suffixes))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        hosts = [v.decode("latin-1") for k, v in scope.get("headers", ()) if k == b"host"]
        host = hosts[0] if len(hosts) == 1 else ", ".join(hosts)  # two: refused (RFC 9112 3.2)
        if len(hosts) == 1 and self.allows(host):
            await self.app(scope, receive, send)
            return
        await answer_error(
            send,
            HostNotAllowed(
                f"Host {host!r} is not one this hub answers for (HUB_ALLOWED_HOSTS): use one "
                "of the hub's names, or add this one to HUB_ALLOWED_HOSTS."
            ),
        )


__all__ = ["AllowedHostsMiddleware", "HostNotAllowed"]
