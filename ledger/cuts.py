"""The topic retention cuts the ledger records (``retention.delete`` entries on ``topic:*``).

Each entry's details name a (topic, partition) and the cut's end ``to`` (the new beginning
offset); an entry with ``"tier": "cold"`` cut the hot log only (its records moved to the cold
tier, which still serves them), any other cut removed the records from both tiers. The ledger is
what vouches for a removal: ``hub ledger verify`` (step 6) compares the hot log's start with the
highest cut, and the cold tier (``storage.tiering``) starts where the highest both-tier cut
says, never where a marker in the object store says.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from core.errors import HubError
from ledger.service import AUDIT_TOPIC, Ledger


@dataclass(frozen=True)
class Cut:
    index: int  # the ledger entry that records it
    topic: str
    partition: int
    to: int
    cold_only: bool  # "tier": "cold": the hot log's cut behind the cold tier


@dataclass(frozen=True)
class UnreadableCut:
    index: int
    topic: str  # where the entry's own record sits (the audit topic)
    partition: int
    offset: int
    why: str


def audit_details(ledger: Ledger, value: bytes | None) -> dict[str, Any]:
    """The ``details`` object of an audit record's value; ValueError when it has none."""
    from core.avro.serde import decode, split_wire

    if value is None:
        raise ValueError("the audit record has no value")
    registry = ledger.registry
    if registry is None:
        raise ValueError("this ledger has no schema registry to decode audit records")
    schema_id, _ = split_wire(value)
    datum: Any = decode(value, registry.parsed(schema_id))
    details = json.loads(datum["details"])
    if not isinstance(details, dict):
        raise ValueError("its details are not a JSON object")
    return details


def iter_cuts(ledger: Ledger, after: int = -1) -> Iterator[Cut | UnreadableCut]:
    """The topic cuts on the ledger from entry ``after + 1`` on, in entry order (projection
    cuts, which record rows of views, are skipped)."""
    while True:
        rows = ledger.store.query(action="retention.delete", after=after, limit=1000)
        if not rows:
            return
        for row in rows:
            idx, topic, part, off = row[0], row[1], row[2], row[3]
            resource = row[7]
            if topic != AUDIT_TOPIC or not (resource or "").startswith("topic:"):
                continue
            rec = ledger.record_at(topic, part, off)
            try:
                d = audit_details(ledger, None if rec is None else rec.value)
                yield Cut(
                    idx, str(d["topic"]), int(d["partition"]), int(d["to"]), d.get("tier") == "cold"
                )
            except (HubError, ValueError, KeyError, TypeError) as exc:
                yield UnreadableCut(idx, topic, part, off, str(exc))
        after = rows[-1][0]


class RecordedCuts:
    """Per (topic, partition) the highest cut of both tiers on the ledger, read incrementally
    (each call asks the store only for entries after the last one it read); thread-safe.

    A cut counts once its entry has a leaf (the next ledger sync after the retention run); an
    unreadable entry counts as no cut, so the cold tier then serves (or fails on) more, never
    less."""

    def __init__(self, ledger: Ledger) -> None:
        self._ledger = ledger
        self._lock = threading.Lock()
        self._after = -1
        self._both: dict[tuple[str, int], int] = {}

    def cold_cut(self, topic: str, partition: int) -> int:
        with self._lock:
            size = self._ledger.store.tree_size()
            if size - 1 > self._after:
                last = self._after
                for cut in iter_cuts(self._ledger, self._after):
                    last = max(last, cut.index)
                    if isinstance(cut, Cut) and not cut.cold_only:
                        tp = (cut.topic, cut.partition)
                        self._both[tp] = max(self._both.get(tp, 0), cut.to)
                self._after = max(last, size - 1)
            return self._both.get((topic, partition), 0)
