"""How many analyst queries a principal, and a tenant, may run at once and per minute (pure).

A query over the views runs under the view store's lock: the projection runner's writes of every
tenant wait for it (``core.sqlguard``: at most ``QUERY_SECONDS`` each). Without a limit, one
analyst looping long queries on ``/v1/query`` kept that lock, and many keys of one tenant could
do the same in parallel, so every tenant's views stalled. ``QueryLimiter.admit`` therefore
refuses a query, before it runs, past any of:

- ``per_principal`` / ``per_tenant`` queries running at once (``query_concurrency``,
  ``query_tenant_concurrency``);
- a token bucket per principal and one per tenant: ``burst`` queries at once, refilled at
  ``rate`` per minute (``query_rate``, ``query_tenant_rate``).

A refusal is ``QueryLimited`` (HTTP 429) naming the limit, its setting and ``retry_after``
seconds (the answer's ``Retry-After``). A refused query takes no token and holds no slot, so
retrying at ``Retry-After`` is admitted. The tenant's limits are what stops one tenant's many
keys from crowding out the others; the principal's, one key crowding out its own colleagues.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from core.errors import HubError

# Seconds a caller refused for a running query is told to wait: queries end within
# QUERY_SECONDS, most of them far sooner; a shorter hint only makes more refused requests.
BUSY_RETRY_S = 2
# Idle buckets (full, nothing running) are forgotten past this many: the maps stay small
# whatever number of keys or tenants ask.
_KEEP = 10_000


class QueryLimited(HubError):
    """A query refused by a rate or concurrency limit: send it again after ``retry_after`` s."""

    code = "query_rate_limited"
    http_status = 429

    def __init__(self, message: str, code: str, retry_after: int) -> None:
        super().__init__(message, code=code)
        self.retry_after = max(1, retry_after)


@dataclass(frozen=True)
class QueryLimits:
    per_principal: int = 1  # queries running at once
    per_tenant: int = 2
    principal_rate: float = 60.0  # queries per minute, refilled continuously
    principal_burst: int = 30
    tenant_rate: float = 300.0
    tenant_burst: int = 100

    def __post_init__(self) -> None:
        for name in ("per_principal", "per_tenant", "principal_burst", "tenant_burst"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, not {getattr(self, name)}")
        for name in ("principal_rate", "tenant_rate"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be above 0, not {getattr(self, name)}")


class _Bucket:
    __slots__ = ("at", "tokens")

    def __init__(self, tokens: float, at: float) -> None:
        self.tokens = tokens
        self.at = at


class QueryLimiter:
    def __init__(
        self,
        limits: QueryLimits | None = None,
        clock: Callable[[], float] = time.monotonic,
        refused: Callable[[str], None] = lambda limit: None,
    ) -> None:
        self.limits = limits or QueryLimits()
        self._clock = clock
        self._refused = refused  # called with the refusal's code (the metric)
        self._mutex = threading.Lock()
        self._running: dict[tuple[str, str], int] = {}
        self._buckets: dict[tuple[str, str], _Bucket] = {}

    @contextmanager
    def admit(self, principal: str, tenant: str) -> Iterator[None]:
        """Hold a running slot of ``principal`` and of ``tenant`` while the block runs (one
        token of each bucket taken), or raise ``QueryLimited`` without taking anything."""
        p, t = ("principal", principal), ("tenant", tenant)
        with self._mutex:
            self._check(p, t)
            self._running[p] = self._running.get(p, 0) + 1
            self._running[t] = self._running.get(t, 0) + 1
        try:
            yield
        finally:
            with self._mutex:
                for k in (p, t):
                    n = self._running[k] - 1
                    if n:
                        self._running[k] = n
                    else:
                        del self._running[k]

    def _check(self, p: tuple[str, str], t: tuple[str, str]) -> None:
        lim = self.limits
        if self._running.get(p, 0) >= lim.per_principal:
            self._refuse(
                "query_concurrency",
                f"This principal already runs {lim.per_principal} "
                f"quer{'y' if lim.per_principal == 1 else 'ies'} (the most one principal may "
                "run at once, HUB_QUERY_MAX_RUNNING_PER_PRINCIPAL): wait for it to end",
                BUSY_RETRY_S,
            )
        if self._running.get(t, 0) >= lim.per_tenant:
            self._refuse(
                "query_tenant_concurrency",
                f"Your tenant's principals already run {lim.per_tenant} queries (the most one "
                "tenant may run at once, HUB_QUERY_MAX_RUNNING_PER_TENANT): wait for one to end",
                BUSY_RETRY_S,
            )
        now = self._clock()
        pb = self._bucket(p, lim.principal_burst, lim.principal_rate, now)
        tb = self._bucket(t, lim.tenant_burst, lim.tenant_rate, now)
        if pb.tokens < 1:
            self._refuse(
                "query_rate",
                f"This principal ran its {lim.principal_burst} queries allowed at "
                f"once, refilled at {lim.principal_rate:g} a minute "
                "(HUB_QUERY_BURST_PER_PRINCIPAL, HUB_QUERY_RATE_PER_PRINCIPAL)",
                _wait(pb, lim.principal_rate),
            )
        if tb.tokens < 1:
            self._refuse(
                "query_tenant_rate",
                f"Your tenant's principals ran the {lim.tenant_burst} queries it is allowed at "
                f"once, refilled at {lim.tenant_rate:g} a minute (HUB_QUERY_BURST_PER_TENANT, "
                "HUB_QUERY_RATE_PER_TENANT)",
                _wait(tb, lim.tenant_rate),
            )
        pb.tokens -= 1
        tb.tokens -= 1

    def _bucket(self, key: tuple[str, str], burst: int, rate: float, now: float) -> _Bucket:
        b = self._buckets.get(key)
        if b is None:
            if len(self._buckets) >= _KEEP:
                self._forget(now)
            b = self._buckets[key] = _Bucket(float(burst), now)
        else:  # refill since last seen; a clock going back refills nothing
            b.tokens = min(float(burst), b.tokens + max(0.0, now - b.at) * rate / 60.0)
            b.at = now
        return b

    def _forget(self, now: float) -> None:
        """Drop the buckets that would be full by now and have nothing running: forgetting one
        changes no answer (a new bucket starts full)."""
        lim = self.limits
        for key, b in list(self._buckets.items()):
            burst, rate = (
                (lim.principal_burst, lim.principal_rate)
                if key[0] == "principal"
                else (lim.tenant_burst, lim.tenant_rate)
            )
            full = b.tokens + max(0.0, now - b.at) * rate / 60.0 >= burst
            if full and key not in self._running:
                del self._buckets[key]

    def _refuse(self, code: str, what: str, retry_after: int) -> None:
        self._refused(code)
        raise QueryLimited(
            f"Query refused: {what}. Send it again after {retry_after} s (Retry-After).",
            code,
            retry_after,
        )


def _wait(b: _Bucket, rate: float) -> int:
    """Whole seconds until ``b`` holds one token again."""
    return math.ceil((1.0 - b.tokens) * 60.0 / rate)
