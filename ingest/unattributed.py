"""Bounding the keys of unattributed quarantine entries (``ingest.quarantine``'s docstring).

A quarantined personal record that names no data subject is sealed under a key of its own,
``unattributed:<entry id>``. ``UnattributedKeys`` hands those out while the tenant has fewer
than ``limit`` of them among the entries the quarantine topic keeps; beyond it, the tenant's
shared ``unattributed:overflow:<tenant>``, so a sender flooding unparseable personal records
cannot grow the key store without bound (nothing is refused: the records are kept sealed).
This module reads the topic only through the port, so ``ingest.pipeline`` can use it."""

from __future__ import annotations

import threading
import time

from core.errors import InvalidInput, TopicNotFound
from core.events import tenant_of
from core.pii import UNATTRIBUTED
from core.ports.eventlog import EventLog, StoredRecord

UNATTRIBUTED_KEYS_PER_TENANT = 10_000
OVERFLOW = UNATTRIBUTED + "overflow:"  # + tenant: the shared subject beyond the limit


def sealed_for_unattributed(rec: StoredRecord, header: str) -> str | None:
    """The ``unattributed:*`` subject named by ``rec``'s ``header`` (the quarantine's
    sealed-for header), or None."""
    for k, v in rec.headers:
        if k == header and v.startswith(UNATTRIBUTED.encode()):
            return v.decode()
    return None


class UnattributedKeys:
    """Chooses the subject an unattributed quarantined original is sealed for: its own while
    the tenant has fewer than ``limit`` such keys among the entries of ``topic`` (records whose
    ``header`` names one), else the tenant's overflow subject. The count is read from the topic
    once, kept up to date by this process's own seals, and read again (at most once every
    ``RECOUNT_SECONDS``) while a tenant is at the limit, so retention's cuts and other
    processes' entries are taken into account without a scan per flooded record."""

    RECOUNT_SECONDS = 60.0

    def __init__(
        self, log: EventLog, topic: str, header: str, limit: int = UNATTRIBUTED_KEYS_PER_TENANT
    ) -> None:
        if limit < 1:
            raise InvalidInput(
                f"The unattributed quarantine key limit per tenant must be at least 1, not "
                f"{limit}.",
                code="invalid_unattributed_limit",
            )
        self._log = log
        self._topic = topic
        self._header = header
        self.limit = limit
        self._counts: dict[str, int] | None = None
        self._counted_at = 0.0
        self._lock = threading.Lock()

    def _recount(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        try:
            start = self._log.beginning_offsets(self._topic).get(0, 0)
            for rec in self._log.scan(self._topic, 0, start):
                subject = sealed_for_unattributed(rec, self._header)
                if subject is not None and not subject.startswith(OVERFLOW):
                    tenant = tenant_of(rec) or ""
                    counts[tenant] = counts.get(tenant, 0) + 1
        except TopicNotFound:
            pass
        self._counted_at = time.monotonic()
        return counts

    def subject_for(self, tenant: str, entry_id: str) -> tuple[str, bool]:
        """(the subject to seal under, True when it is the tenant's shared overflow one)."""
        with self._lock:
            if self._counts is None:
                self._counts = self._recount()
            full = self._counts.get(tenant, 0) >= self.limit
            if full and time.monotonic() - self._counted_at >= self.RECOUNT_SECONDS:
                self._counts = self._recount()
                full = self._counts.get(tenant, 0) >= self.limit
            if full:
                return OVERFLOW + tenant, True
            self._counts[tenant] = self._counts.get(tenant, 0) + 1
            return UNATTRIBUTED + entry_id, False
