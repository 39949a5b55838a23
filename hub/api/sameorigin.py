"""Whether a state-changing request came from a page of another site (cross-site request forgery).

A browser attaches what it holds for the hub's origin to requests that any site's page makes: the
console's cookie (``SameSite=Strict`` keeps it off cross-site requests) and the HTTP Basic
credentials it keeps after a ``WWW-Authenticate: Basic`` prompt (nothing keeps those off). A
page of another site cannot read the answer, but a form it submits (``enctype=text/plain`` posts
a JSON body) changes state with them. Browsers say where a request comes from: ``Origin`` on
every POST/PUT/PATCH/DELETE (``null`` from sandboxed frames and ``data:`` pages) and
``Sec-Fetch-Site``. Clients that are not browsers (curl, SDKs, Kafka Connect, serializers) send
neither, and are not refused.

Contract: :func:`foreign_origin` returns a sentence naming the refused origin for a request that
MUST NOT be served, None otherwise:

- a state-changing request (not GET, HEAD or OPTIONS) whose ``Origin`` is not this host, or that
  the browser marks ``Sec-Fetch-Site: cross-site`` / ``same-site``;
- a read that another site's page loads as a subresource (``Sec-Fetch-Site`` cross-site or
  same-site, and not a top-level navigation: ``Sec-Fetch-Mode: navigate`` with
  ``Sec-Fetch-Dest: document``). Its answer stays opaque to that page, but the hub decided and
  recorded the read as the person's (:func:`foreign_subresource`). The console's gate asks only
  for state changes: its ``SameSite=Strict`` cookie is not sent with such reads.
"""

from __future__ import annotations

from starlette.types import Scope

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_OTHER_SITES = ("cross-site", "same-site")  # same-site: a sibling subdomain is another origin


def header(scope: Scope, name: bytes) -> str:
    """The first value of request header ``name`` (lower case), or ``""``."""
    for key, value in scope.get("headers", ()):
        if key == name:
            return str(value.decode("latin-1"))
    return ""


def foreign_origin(scope: Scope) -> str | None:
    """Why this request is refused as coming from another site, or None (see the contract)."""
    if scope["method"] in SAFE_METHODS:
        return foreign_subresource(scope)
    host = header(scope, b"host")
    origin = header(scope, b"origin")
    if origin and origin.split("://", 1)[-1] != host:
        return f"Origin {origin!r} is not this hub ({host})."
    site = header(scope, b"sec-fetch-site").strip().lower()
    if site in _OTHER_SITES:
        return f"The browser marked this request {site} (Sec-Fetch-Site): it is not from this hub."
    return None


def foreign_subresource(scope: Scope) -> str | None:
    """Why a read is refused as another site's subresource (an image, script, fetch, frame),
    or None. The browser sends the credentials it holds with those too: the read is decided
    and recorded as the person's, and spends their query limits, though they never made it. A
    link followed into the hub (a top-level page the person sees) is not refused."""
    site = header(scope, b"sec-fetch-site").strip().lower()
    if site not in _OTHER_SITES:
        return None
    mode = header(scope, b"sec-fetch-mode").strip().lower()
    dest = header(scope, b"sec-fetch-dest").strip().lower()
    if mode == "navigate" and dest == "document":
        return None
    return (
        f"A page of another site loaded this as a subresource (Sec-Fetch-Site {site}, mode "
        f"{mode or 'none'}, destination {dest or 'none'}): it is not a request of this hub's."
    )


__all__ = ["SAFE_METHODS", "foreign_origin", "foreign_subresource", "header"]
