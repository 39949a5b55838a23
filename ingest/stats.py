"""Quality statistics read from the log, so they hold across restarts and for every source.

- accepted per topic: the records appended to each data topic (every source: HTTP, files,
  watched folders, connectors, the strict publish route, the demo); records a retention cut
  removed before the first count are not seen, those removed later stay counted;
- rejected per topic and rule: the entries of ``hub.quarantine`` (rule id, else reason code);
- replayed per topic: the entries of ``hub.quarantine-replays`` by outcome.

Every count is kept per tenant (``core.events.tenant_of`` of the record: ``ce_tenant``,
``default`` without one, none when it is carried twice), so that :meth:`QualityStats.snapshot`
can give a reader limited to one tenant that tenant's counts only; with no scope, every tenant's
counts summed (a record of no tenant counted there only).

Counts are folded incrementally: each call reads only the records appended since the previous
one (per partition, from the last offset read), so a call costs the new records, not the log.
Duplicates are never stored, so their count comes from the process's metrics (since start).
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from typing import Any

from core.avro import serde
from core.events import tenant_of
from core.fold import TopicFold
from core.ports.eventlog import EventLog, StoredRecord
from registry.service import SchemaRegistry

QUARANTINE = "hub.quarantine"
REPLAYS = "hub.quarantine-replays"


def is_data_topic(name: str) -> bool:
    """Topics publishers write; ``hub.*`` and ``_schemas`` are the hub's own."""
    return not name.startswith(("hub.", "_"))


class QualityStats:
    """Counts of accepted, rejected and replayed records folded from the log (see module)."""

    def __init__(self, log: EventLog, registry: SchemaRegistry) -> None:
        self._log = log
        self._registry = registry
        self._lock = threading.RLock()
        self._folds: dict[str, TopicFold] = {}  # per topic, where its count stopped
        # keyed by tenant first (None: a record carrying ce_tenant twice, no tenant's)
        self._accepted: Counter[tuple[str | None, str]] = Counter()  # (tenant, topic)
        # (tenant, topic, rule or reason code) and (tenant, topic, outcome)
        self._rejected: Counter[tuple[str | None, str, str]] = Counter()
        self._replayed: Counter[tuple[str | None, str, str]] = Counter()

    def snapshot(self, tenant_scope: str | None = None) -> dict[str, Any]:
        """Fold what was appended since the last call and return the counts: every tenant's
        summed, or with ``tenant_scope`` that tenant's only (a reader limited to it)."""
        with self._lock:
            for t in self._log.topics():
                if is_data_topic(t.name):
                    self._fold(t.name, self._count_accepted)
            names = {t.name for t in self._log.topics()}
            if QUARANTINE in names:
                self._fold(QUARANTINE, self._count_rejected)
            if REPLAYS in names:
                self._fold(REPLAYS, self._count_replayed)
            accepted = _of_scope(self._accepted, tenant_scope)
            rejected = _of_scope(self._rejected, tenant_scope)
            replayed = _of_scope(self._replayed, tenant_scope)
        topics = sorted({t for (t,) in accepted} | {t for t, _ in rejected})
        return {
            "by_topic": [
                {
                    "topic": t,
                    "accepted": accepted[(t,)],
                    "rejected": sum(n for (tt, _), n in rejected.items() if tt == t),
                    "replayed": sum(n for (tt, _), n in replayed.items() if tt == t),
                }
                for t in topics
            ],
            "by_rule": [
                {"topic": t, "rule": rule, "count": n} for (t, rule), n in sorted(rejected.items())
            ],
            "replays": [
                {"topic": t, "outcome": outcome, "count": n}
                for (t, outcome), n in sorted(replayed.items())
            ],
            "accepted": sum(accepted.values()),
            "rejected": sum(rejected.values()),
        }

    def _fold(self, topic: str, count: Callable[[str, StoredRecord], None]) -> None:
        fold = self._folds.get(topic)
        if fold is None:
            fold = self._folds[topic] = TopicFold(
                self._log, topic, lambda rec: count(topic, rec), batch=5000, lock=self._lock
            )
        fold.catch_up()

    def _count_accepted(self, topic: str, rec: StoredRecord) -> None:
        self._accepted[(tenant_of(rec), topic)] += 1

    def _decode(self, value: bytes) -> dict[str, Any]:
        schema_id, _ = serde.split_wire(value)
        out: dict[str, Any] = serde.decode(value, self._registry.parsed(schema_id))
        return out

    def _count_rejected(self, topic: str, rec: StoredRecord) -> None:
        if rec.value is None:
            return
        v = self._decode(rec.value)
        self._rejected[(tenant_of(rec), v["topic"], v["rule_id"] or v["reason_code"])] += 1

    def _count_replayed(self, topic: str, rec: StoredRecord) -> None:
        if rec.value is None:
            return
        v = self._decode(rec.value)
        self._replayed[(tenant_of(rec), v["topic"], v["outcome"])] += 1


def _of_scope(
    counts: Counter[tuple[Any, ...]], tenant_scope: str | None
) -> Counter[tuple[str, ...]]:
    """``counts`` without their tenant: every tenant's summed (None), or one tenant's."""
    out: Counter[tuple[str, ...]] = Counter()
    for (tenant, *rest), n in counts.items():
        if tenant_scope is None or tenant == tenant_scope:
            out[tuple(rest)] += n
    return out
