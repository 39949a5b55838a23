"""How many analyst queries a principal, and a tenant, may run at once and per minute (pure).

A query over the views takes the store's engine from everyone else: on chDB the writers' session
for up to 0.25 s and then one of two reader processes (``adapters.chdb_views``), elsewhere the
database's cores (``core.sqlguard``: at most ``QUERY_SECONDS`` each). Without a limit, one
analyst looping long queries on ``/v1/query`` kept that lock, and many keys of one tenant could
do the same in parallel, so every tenant's views stalled. ``QueryLimiter.admit`` therefore
refuses a query, before it runs, past any of:

- ``per_principal`` / ``per_tenant`` queries running at once (``query_concurrency``,
  ``query_tenant_concurrency``);
- a token bucket per principal and one per tenant: ``burst`` queries at once, refilled at
  ``rate`` per minute (``query_rate``, ``query_tenant_rate``);
- a budget of query-seconds per principal and one per tenant (``query_seconds``,
  ``query_tenant_seconds``): each query's run time, charged when it ends (a failed or stopped
  one too), refilled at ``*_seconds`` per minute up to ``*_seconds_burst``; a key or tenant
  whose budget is spent waits until it is above zero again. A count alone let one key keep a
  reader busy with back-to-back 30 s queries (60 a minute allowed); seconds are what a query
  takes from the others (on chDB the reader processes, elsewhere the database's cores).

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
    # query-seconds a minute, and the most held: a principal half of one reader's time, a
    # tenant one reader's (of ``adapters.chdb_views.READERS``); both above one full query
    # (``core.sqlguard.QUERY_SECONDS``)
    principal_seconds: float = 30.0
    principal_seconds_burst: float = 60.0
    tenant_seconds: float = 60.0
    tenant_seconds_burst: float = 120.0

    def __post_init__(self) -> None:
        for name in ("per_principal", "per_tenant", "principal_burst", "tenant_burst"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, not {getattr(self, name)}")
        for name in (
            "principal_rate",
            "tenant_rate",
            "principal_seconds",
            "principal_seconds_burst",
            "tenant_seconds",
            "tenant_seconds_burst",
        ):
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
        self._freed = threading.Condition(self._mutex)  # a running slot was given back
        self._running: dict[tuple[str, str], int] = {}
        self._buckets: dict[tuple[str, str], _Bucket] = {}

    @contextmanager
    def admit(self, principal: str, tenant: str, *, wait_s: float = 0.0) -> Iterator[None]:
        """Hold a running slot of ``principal`` and of ``tenant`` while the block runs (one
        token of each bucket taken), or raise ``QueryLimited`` without taking anything.
        ``wait_s``: wait up to that long for a running slot (the console's pages send their
        few queries at once, and one principal runs one at a time); a rate or query-seconds
        limit still refuses at once."""
        p, t = ("principal", principal), ("tenant", tenant)
        with self._mutex:
            if wait_s > 0:
                deadline = time.monotonic() + wait_s
                while self._busy(p, t) and (left := deadline - time.monotonic()) > 0:
                    self._freed.wait(left)
            self._check(p, t)
            self._running[p] = self._running.get(p, 0) + 1
            self._running[t] = self._running.get(t, 0) + 1
            started = self._clock()
        try:
            yield
        finally:
            with self._mutex:
                # the run time, whatever the outcome: a query stopped at its bound used it all
                took = max(0.0, self._clock() - started)
                for k in (p, t):
                    n = self._running[k] - 1
                    if n:
                        self._running[k] = n
                    else:
                        del self._running[k]
                self._charge(principal, tenant, took)
                self._freed.notify_all()

    def _busy(self, p: tuple[str, str], t: tuple[str, str]) -> bool:
        """Whether ``p`` or ``t`` runs as many queries as it may at once."""
        lim = self.limits
        return self._running.get(p, 0) >= lim.per_principal or (
            self._running.get(t, 0) >= lim.per_tenant
        )

    def _spent(self, key: tuple[str, str], now: float) -> _Bucket | None:
        """The seconds budget ``key`` refilled to ``now``, or None if never charged (full)."""
        if key not in self._buckets:
            return None
        return self._bucket(key, *self._shape(key[0]), now)

    def _charge(self, principal: str, tenant: str, took: float) -> None:
        if took <= 0:
            return
        now = self._clock()
        for key in (("principal-s", principal), ("tenant-s", tenant)):
            burst, rate = self._shape(key[0])
            self._bucket(key, burst, rate, now).tokens -= took

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
        # a budget never charged is full: looked up, not made (no entry per idle key)
        ps = self._spent(("principal-s", p[1]), now)
        ts = self._spent(("tenant-s", t[1]), now)
        if ps is not None and ps.tokens <= 0:
            self._refuse(
                "query_seconds",
                f"This principal's queries used its {lim.principal_seconds_burst:g} query-seconds, "
                f"refilled at {lim.principal_seconds:g} a minute "
                "(HUB_QUERY_SECONDS_BURST_PER_PRINCIPAL, HUB_QUERY_SECONDS_PER_PRINCIPAL); "
                "shorter queries (a WHERE, a LIMIT) use less",
                _wait(ps, lim.principal_seconds, above=0.0),
            )
        if ts is not None and ts.tokens <= 0:
            self._refuse(
                "query_tenant_seconds",
                f"Your tenant's queries used its {lim.tenant_seconds_burst:g} query-seconds, "
                f"refilled at {lim.tenant_seconds:g} a minute "
                "(HUB_QUERY_SECONDS_BURST_PER_TENANT, HUB_QUERY_SECONDS_PER_TENANT)",
                _wait(ts, lim.tenant_seconds, above=0.0),
            )
        pb.tokens -= 1
        tb.tokens -= 1

    def _shape(self, kind: str) -> tuple[float, float]:
        """(burst, rate a minute) of the buckets of ``kind``."""
        lim = self.limits
        return {
            "principal": (lim.principal_burst, lim.principal_rate),
            "tenant": (lim.tenant_burst, lim.tenant_rate),
            "principal-s": (lim.principal_seconds_burst, lim.principal_seconds),
            "tenant-s": (lim.tenant_seconds_burst, lim.tenant_seconds),
        }[kind]

    def _bucket(self, key: tuple[str, str], burst: float, rate: float, now: float) -> _Bucket:
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
        for key, b in list(self._buckets.items()):
            burst, rate = self._shape(key[0])
            full = b.tokens + max(0.0, now - b.at) * rate / 60.0 >= burst
            running = (key[0].removesuffix("-s"), key[1]) in self._running
            if full and not running:
                del self._buckets[key]

    def _refuse(self, code: str, what: str, retry_after: int) -> None:
        self._refused(code)
        raise QueryLimited(
            f"Query refused: {what}. Send it again after {retry_after} s (Retry-After).",
            code,
            retry_after,
        )


def _wait(b: _Bucket, rate: float, above: float = 1.0) -> int:
    """Whole seconds until ``b`` holds ``above`` tokens again (one query; above zero seconds)."""
    return math.ceil((above - b.tokens) * 60.0 / rate + (1e-9 if above == 0.0 else 0.0))
