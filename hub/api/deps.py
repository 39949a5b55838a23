"""FastAPI dependencies shared by every router: the hub instance and policy-checked principals.

Authentication happens once, in ``hub.api.auth.AuthMiddleware``, for every path but ``/health``;
it puts the ``Principal`` on ``request.state.principal``. Each route then declares the action it
performs with ``Depends(authorize("schema.write"))``, which asks the PolicyEngine port and raises
``Forbidden`` on deny (fail closed: an engine error is a deny too).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from fastapi import Request

from hub.errors import (
    Forbidden,
    HubError,
    InvalidInput,
    PayloadTooLarge,
    Retryable,
    Unauthenticated,
)
from hub.ports.policy import Principal

if TYPE_CHECKING:
    from hub.bootstrap import Hub


def hub_of(request: Request) -> Hub:
    hub: Hub = request.app.state.hub
    return hub


_DEFAULT_MAX_BODY = 32 * 1_048_576


async def read_json(request: Request, *, exact_decimals: bool = True) -> Any:
    """The request body as JSON; 413 over HUB_MAX_REQUEST_BYTES, 422 when empty or malformed.

    With ``exact_decimals`` JSON numbers with a fraction become ``Decimal``, so money never
    passes through a float.
    """
    hub = getattr(request.app.state, "hub", None)
    limit = int(getattr(getattr(hub, "settings", None), "max_request_bytes", _DEFAULT_MAX_BODY))
    body = await request.body()
    if len(body) > limit:
        raise PayloadTooLarge(
            f"Request body is {len(body)} bytes, over the limit of {limit} "
            "(HUB_MAX_REQUEST_BYTES): split the batch."
        )
    if not body.strip():
        raise InvalidInput("Request body is empty: send a JSON object.", code="malformed_json")
    try:
        return json.loads(body, parse_float=Decimal if exact_decimals else float)
    except UnicodeDecodeError as exc:
        raise InvalidInput(
            f"Request body is not UTF-8 text: {exc}.", code="malformed_json"
        ) from exc
    except json.JSONDecodeError as exc:
        raise InvalidInput(
            f"Request body is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}.",
            code="malformed_json",
        ) from exc


def principal_of(request: Request) -> Principal:
    principal = getattr(request.state, "principal", None)
    if principal is None:
        raise Unauthenticated(
            "This route requires an API key (HTTP Basic KEY_ID:SECRET or Bearer)."
        )
    return principal  # type: ignore[no-any-return]


def authorize(action: str, resource: str | None = None) -> Callable[[Request], Principal]:
    """A dependency that allows the request only if the policy engine allows ``action``.

    ``resource`` defaults to the request path, so decisions name what was touched.
    """

    def dependency(request: Request) -> Principal:
        principal = principal_of(request)
        hub = hub_of(request)
        target = resource or request.url.path
        try:
            context = {"method": request.method}
            for header, key in (("x-hub-purpose", "purpose"), ("x-hub-case", "case")):
                if header in request.headers:  # purpose of use, e.g. an open investigation
                    context[key] = request.headers[header]
            decision = hub.policy.decide(principal, action, target, context)
        except Retryable:  # e.g. the decision could not be stored: 503, and nothing ran
            raise
        except HubError as exc:
            raise Forbidden(
                f"Access denied because the policy engine failed: {exc.message}"
            ) from exc
        except Exception as exc:  # fail closed on anything unexpected
            raise Forbidden(f"Access denied because the policy engine failed: {exc!r}") from exc
        if not decision.allow:
            raise Forbidden(f"Access denied: {decision.reason} (policy {decision.policy_version}).")
        request.state.decision = decision  # its obligations (mask, row_filter) for the route
        return principal

    dependency.__name__ = f"authorize_{action.replace('.', '_')}"
    return dependency
