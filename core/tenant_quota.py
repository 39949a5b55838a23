"""Per-tenant limits that keep one tenant from starving the others (pure, no I/O).

Session 22's exhaustion red team found nothing bounded what one tenant's keys ingest: tenant B
could fill the data disk (then every tenant got 507 ``storage_full``), flood the quarantine, and
create subjects and schema versions without end. Each limit here is a setting, off (0) by
default, and every refusal names its setting:

- ``IngestRateLimiter``: a token bucket of records and one of bytes per tenant (refilled at
  ``records_per_s`` / ``bytes_per_s``, holding ``*_burst``), shared by every ingest source of
  the tenant's keys (HTTP bodies, files, connectors: ``IngestPipeline``'s two commit paths). A
  batch is admitted whole or refused whole (``TenantRateLimited``, HTTP 429 with
  ``Retry-After``) before anything of it is written, so nothing is partially accepted. A batch
  larger than the bucket is admitted when the bucket is full and leaves it in debt (the tenant
  waits for the refill): refusing it for ever would make the limit a size limit too.
- ``QuarantineQuota``: the bytes of quarantine entries a tenant may hold
  (``max_bytes``). Counted from the quarantine topic (``count``: the caller's fold of the log,
  caught up at every check that carries rejects, so entries that another process appended to
  the same log count too: a second ``hub serve``, an HA instance, a ``hub ingest file``; when
  it was counted once at start, a tenant whose requests reached N processes held N times its
  quota). A batch whose rejects would pass it is refused whole (``TenantQuotaExceeded``, HTTP
  507 ``tenant_quarantine_full``): rejected bytes are never dropped silently, and the accepted
  records of such a batch are not kept without their rejects. Retention's cuts are seen at the
  next start (until then the count is high: it refuses early, never late).
- ``StoredQuota``: the bytes one tenant holds in the log, accepted and quarantined values
  together (``max_bytes``, ``HUB_STORED_MAX_BYTES_PER_TENANT``): one fold at start (every
  external topic and the quarantine), then this process's appends; a batch that would pass it is
  refused whole (``TenantQuotaExceeded``, HTTP 507 ``tenant_storage_full``), so one tenant can no
  longer fill the data disk for every tenant. Retention's cuts are seen at the next start.

The registry's caps (subjects and schema versions a tenant creates) are counted from the
registry's folded state (``registry.service``), which a restart rebuilds from ``_schemas``.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import NoReturn

from core.errors import HubError

# Idle buckets (full) are forgotten past this many: the map stays small whatever tenants ask.
_KEEP = 10_000


class TenantRateLimited(HubError):
    """A tenant's ingest over its rate: nothing of the batch was written; send it again after
    ``retry_after`` seconds."""

    code = "tenant_rate_limited"
    http_status = 429

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = max(1, retry_after)


class TenantQuotaExceeded(HubError):
    """A tenant at one of its storage caps (quarantine bytes, subjects, schema versions):
    nothing of the request was written. HTTP 507 Insufficient Storage (RFC 4918), the tenant's
    share of it; not retryable as such (the operator raises the cap, or the tenant frees
    room)."""

    code = "tenant_quota_exceeded"
    http_status = 507


@dataclass(frozen=True)
class IngestRates:
    """Records and bytes a second refilled into a tenant's buckets, and the most they hold
    (0: that limit is off; a burst of 0 holds one second's refill)."""

    records_per_s: float = 0.0
    records_burst: float = 0.0
    bytes_per_s: float = 0.0
    bytes_burst: float = 0.0

    def __post_init__(self) -> None:
        for name in ("records_per_s", "records_burst", "bytes_per_s", "bytes_burst"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be 0 (off) or above, not {getattr(self, name)}")

    @property
    def on(self) -> bool:
        return self.records_per_s > 0 or self.bytes_per_s > 0


class _Bucket:
    __slots__ = ("at", "tokens")

    def __init__(self, tokens: float, at: float) -> None:
        self.tokens = tokens
        self.at = at


class IngestRateLimiter:
    """Token buckets of records and bytes per tenant (see the module docstring)."""

    def __init__(
        self,
        rates: IngestRates,
        clock: Callable[[], float] = time.monotonic,
        refused: Callable[[str, str], None] = lambda tenant, limit: None,
    ) -> None:
        self.rates = rates
        self.on = rates.on
        self._clock = clock
        self._refused = refused  # (tenant, limit): the metric
        self._mutex = threading.Lock()
        self._buckets: dict[tuple[str, str], _Bucket] = {}
        r = rates
        # (kind, per second, burst, setting names, unit)
        self._shapes = [
            (k, rate, burst or rate, names, unit)
            for k, rate, burst, names, unit in (
                (
                    "records",
                    r.records_per_s,
                    r.records_burst,
                    "HUB_INGEST_RECORDS_PER_S_PER_TENANT, HUB_INGEST_RECORDS_BURST_PER_TENANT",
                    "records",
                ),
                (
                    "bytes",
                    r.bytes_per_s,
                    r.bytes_burst,
                    "HUB_INGEST_BYTES_PER_S_PER_TENANT, HUB_INGEST_BYTES_BURST_PER_TENANT",
                    "bytes",
                ),
            )
            if rate > 0
        ]

    def check(self, tenant: str, records: int, nbytes: int) -> None:
        """Raise ``TenantRateLimited`` unless ``tenant``'s buckets hold a batch of ``records``
        and ``nbytes`` (a full bucket holds any batch); takes nothing (an early refusal, before
        a body is read: the batch itself is admitted by ``take``)."""
        if not self.on or not (records or nbytes):  # a position-only commit takes nothing
            return
        with self._mutex:
            self._check(tenant, records, nbytes, self._clock())

    def take(self, tenant: str, records: int, nbytes: int) -> None:
        """``check``, and take the batch from ``tenant``'s buckets in the same step (into debt
        for a batch larger than they held): batches decided side by side each see what the
        others took, so together they never pass the rate (within this process; before,
        ``check`` then ``charge`` after the write let every concurrent batch pass one full
        bucket). ``refund`` gives it back when the batch is not written."""
        if not self.on or not (records or nbytes):
            return
        with self._mutex:
            now = self._clock()
            self._check(tenant, records, nbytes, now)
            self._add(tenant, -records, -nbytes, now)

    def refund(self, tenant: str, records: int, nbytes: int) -> None:
        """Give back what ``take`` took for a batch that was not written (up to the burst)."""
        if not self.on or not (records or nbytes):
            return
        with self._mutex:
            self._add(tenant, records, nbytes, self._clock())

    def _check(self, tenant: str, records: int, nbytes: int, now: float) -> None:
        for kind, rate, burst, names, unit in self._shapes:
            cost = records if kind == "records" else nbytes
            b = self._bucket((kind, tenant), burst, rate, now)
            need = min(float(cost), burst)
            if b.tokens < need:
                wait = math.ceil((need - b.tokens) / rate)
                self._refused(tenant, f"ingest_{kind}")
                raise TenantRateLimited(
                    f"Ingest refused: tenant {tenant!r} is over its ingest rate of "
                    f"{rate:g} {unit}/s (holding at most {burst:g}; {names}); this batch "
                    f"of {cost} {unit} needs {need - b.tokens:.0f} more. Nothing of it was "
                    f"written: send it again after {max(1, wait)} s (Retry-After).",
                    wait,
                )

    def _add(self, tenant: str, records: int, nbytes: int, now: float) -> None:
        for kind, rate, burst, _, _ in self._shapes:
            b = self._bucket((kind, tenant), burst, rate, now)
            b.tokens = min(burst, b.tokens + (records if kind == "records" else nbytes))

    def _bucket(self, key: tuple[str, str], burst: float, rate: float, now: float) -> _Bucket:
        b = self._buckets.get(key)
        if b is None:
            if len(self._buckets) >= _KEEP:
                self._forget(now)
            b = self._buckets[key] = _Bucket(burst, now)
        else:  # refill since last seen; a clock going back refills nothing
            b.tokens = min(burst, b.tokens + max(0.0, now - b.at) * rate)
            b.at = now
        return b

    def _forget(self, now: float) -> None:
        """Drop the buckets that are full by now: a new bucket starts full, no answer changes."""
        shapes = {k: (rate, burst) for k, rate, burst, _, _ in self._shapes}
        for key, b in list(self._buckets.items()):
            rate, burst = shapes[key[0]]
            if b.tokens + max(0.0, now - b.at) * rate >= burst:
                del self._buckets[key]


class QuarantineQuota:
    """The bytes of quarantine entries each tenant holds, against ``max_bytes`` (0: off).

    ``count`` returns the bytes per tenant that the quarantine topic holds now, whichever
    process appended them (the caller keeps a fold that reads only what the log gained since
    its last call). It runs at each ``held`` and at each ``check`` of a batch that carries
    rejects, never while the quota is off (the composition root calls ``held`` at start so that
    no ingest commit waits for the first, whole fold). This process's own appends are counted
    as every other's: read back from the log."""

    def __init__(
        self,
        max_bytes: int,
        count: Callable[[], Mapping[str, int]],
        refused: Callable[[str, str], None] = lambda tenant, limit: None,
    ) -> None:
        if max_bytes < 0:
            raise ValueError(f"max_bytes must be 0 (off) or above, not {max_bytes}")
        self.max_bytes = max_bytes
        self.on = max_bytes > 0
        self._count = count
        self._refused = refused
        self._held: dict[str, int] | None = None
        self._reserved: dict[str, int] = {}  # per tenant: passed the check, not yet settled
        self._mutex = threading.Lock()

    def held(self, tenant: str) -> int:
        """Bytes of quarantine entries ``tenant`` holds (counted now)."""
        with self._mutex:
            return self._counted().get(tenant, 0)

    def _counted(self) -> dict[str, int]:
        """The log's count now."""
        self._held = dict(self._count())
        return self._held

    def check(self, tenant: str, nbytes: int) -> None:
        """Raise ``TenantQuotaExceeded`` when ``nbytes`` more would pass ``tenant``'s quota
        (what it holds and what is reserved for its batches being written)."""
        if not self.on or nbytes <= 0:
            return
        with self._mutex:
            held = self._counted().get(tenant, 0) + self._reserved.get(tenant, 0)
        if held + nbytes > self.max_bytes:
            self._refuse(tenant, held, nbytes)

    def reserve(self, tenant: str, nbytes: int) -> None:
        """``check`` and reserve ``nbytes`` for ``tenant`` in one step: every later check counts
        them until ``settle``. Batches decided side by side (one group commit, other topics'
        committers) each see the others' reservations, so together they never pass the quota
        (within this process; the README's settings give the bound for processes sharing a data
        folder).
        The caller settles every reservation exactly once, written or not."""
        if not self.on or nbytes <= 0:
            return
        with self._mutex:
            held = self._counted().get(tenant, 0) + self._reserved.get(tenant, 0)
            if held + nbytes <= self.max_bytes:
                self._reserved[tenant] = self._reserved.get(tenant, 0) + nbytes
                return
        self._refuse(tenant, held, nbytes)

    def settle(self, tenant: str, nbytes: int, *, written: bool) -> None:
        """End a reservation of ``reserve``: held once its write committed (``written``),
        released when it was not written."""
        if not self.on or nbytes <= 0:
            return
        with self._mutex:
            left = self._reserved.get(tenant, 0) - nbytes
            if left > 0:
                self._reserved[tenant] = left
            else:
                self._reserved.pop(tenant, None)
            if written:
                self._written(tenant, nbytes)

    def _written(self, tenant: str, nbytes: int) -> None:
        """The quarantine's count reads written entries back from the log (the next check's
        fold): nothing to add. Between the commit and ``settle`` a check counts them twice
        (held and reserved): it refuses early for that moment, never late."""

    def reserved(self, tenant: str) -> int:
        """Bytes reserved for ``tenant``'s batches being written (0 once all are settled)."""
        with self._mutex:
            return self._reserved.get(tenant, 0)

    def _refuse(self, tenant: str, held: int, nbytes: int) -> NoReturn:
        """Count the refusal under this quota's metric label and raise, naming the setting."""
        self._refused(tenant, "quarantine_bytes")
        raise TenantQuotaExceeded(
            f"Ingest refused: the quarantine holds {held} bytes of tenant {tenant!r}'s "
            f"rejected records and this batch's {nbytes} more would pass its quota of "
            f"{self.max_bytes} bytes (HUB_QUARANTINE_MAX_BYTES_PER_TENANT). Nothing of the "
            "batch was written (its rejects are not dropped, its accepted records not kept "
            "without them): fix the records the quarantine holds and replay or let retention "
            "cut them, send fewer bad records, or ask the operator to raise the quota.",
            code="tenant_quarantine_full",
        )


class StoredQuota(QuarantineQuota):
    """The bytes of values each tenant holds in the log (accepted records on the external topics
    and quarantine entries), against ``max_bytes`` (0: off). Unlike the quarantine's, this count
    is folded once (every topic: too costly to catch up at each batch), then kept by this
    process's own appends (``settle``): another process's appends are seen at the next start."""

    def _counted(self) -> dict[str, int]:
        """The fold made once, kept up to date by ``settle``."""
        if self._held is None:
            self._held = dict(self._count())
        return self._held

    def add(self, tenant: str, nbytes: int) -> None:
        """Count ``nbytes`` of values stored for ``tenant`` without a reservation (``reserve``
        and ``settle`` are the way for a batch that may be written side by side with others)."""
        if not self.on or nbytes <= 0:
            return
        with self._mutex:
            self._written(tenant, nbytes)

    def _written(self, tenant: str, nbytes: int) -> None:
        """Count ``nbytes`` of values stored for ``tenant`` (under the mutex)."""
        held = self._counted()
        held[tenant] = held.get(tenant, 0) + nbytes

    def _refuse(self, tenant: str, held: int, nbytes: int) -> NoReturn:
        self._refused(tenant, "stored_bytes")
        raise TenantQuotaExceeded(
            f"Refused: tenant {tenant!r} holds {held} bytes of stored records (accepted and "
            f"quarantined) and this batch's {nbytes} more would pass its storage quota of "
            f"{self.max_bytes} bytes (HUB_STORED_MAX_BYTES_PER_TENANT). Nothing of the batch "
            "was written. Let retention cut old records (counted again at the hub's next "
            "start), or ask the operator to raise the quota.",
            code="tenant_storage_full",
        )
