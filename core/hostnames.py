"""Host names as the ``HUB_ALLOWED_HOSTS`` setting names them (``hub.api.hosts`` enforces the
list; ``hub.settings`` checks it when loaded, without importing the web framework)."""

from __future__ import annotations

import re

_NAME = re.compile(
    r"^(?:\*\.)?[a-z0-9_](?:[a-z0-9_-]*[a-z0-9_])?(?:\.[a-z0-9_](?:[a-z0-9_-]*[a-z0-9_])?)*\.?$"
)
_IPV6 = re.compile(r"^\[[0-9a-f:.]+\]$")


def parse_allowed(value: str) -> tuple[frozenset[str], tuple[str, ...]]:
    """``HUB_ALLOWED_HOSTS`` as (exact names, domain suffixes ``.example.com``); raises
    ValueError naming a malformed entry."""
    exact: set[str] = set()
    suffixes: list[str] = []
    for raw in value.split(","):
        entry = raw.strip().lower().rstrip(".")
        if not entry:
            continue
        if not (_NAME.match(entry) or _IPV6.match(entry)) or entry == "*":
            raise ValueError(
                f"HUB_ALLOWED_HOSTS entry {raw.strip()!r} is not a host name: give names such as "
                "hub.example.com, 10.0.0.5, [::1] or *.example.com (no scheme, port or path)."
            )
        if entry.startswith("*."):
            suffixes.append(entry[1:])
        else:
            exact.add(entry)
    return frozenset(exact), tuple(suffixes)


def host_name(value: str) -> str:
    """A ``Host`` header's name: its port dropped, lower case, no trailing dot."""
    value = value.strip().lower()
    if value.startswith("["):
        end = value.find("]")
        return value[: end + 1] if end > 0 else value
    return value.rsplit(":", 1)[0].rstrip(".") if ":" in value else value.rstrip(".")


__all__ = ["host_name", "parse_allowed"]
