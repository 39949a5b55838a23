"""Duplicate detection with bounded memory: event ids and natural keys seen recently, per topic.

The window
- Each (topic, scope) has a two-generation set (scope ``event_id``, or a ``unique`` rule's id
  for natural keys). Keys go into the current generation; when it holds ``max_keys // 2`` keys
  or is older than half the window, it becomes the previous one and the old previous one is
  dropped. A key is therefore remembered for at least ``min(window / 2, max_keys / 2 later
  keys)`` and at most ``window``; memory stays under ``max_keys`` keys per scope.
- The window of a natural key is its ``unique`` rule's ``window``; the window of event ids is
  ``event_id_window`` (24 h by default). Time is the ingest (receipt) time.

Rebuilt from the log
- On the first use of a topic in a process, the tail of the topic (at most ``max_keys`` records
  over all partitions, and only records whose log timestamp is inside the window) is read back:
  each accepted record carries its event id (``ce_id``) and, for subjects with ``unique`` rules,
  a ``hub-natural-key`` header (``<rule id>\\x1f<key>``), so the rebuild reads headers only.

Tenants
- A natural key is remembered per tenant (``Deduper.scope``): tenants share a topic and their
  business keys collide (two firms' ``T-1``). One window for all of them let a tenant's publisher
  see, by its duplicate count, which keys another tenant had used, and drop that tenant's next
  records by sending their keys first. The stored header stays ``<rule id>\\x1f<key>``; the
  rebuild reads the record's ``ce_tenant`` beside it.
- Event ids likewise (``Deduper.id_scope``): a sender may give them (an idempotent producer's
  retry key, often derived from its own business id; the Debezium source derives them from
  connector, table, LSN, operation and key), so one window for every tenant let globex send
  acme's next id first and acme's record was answered as a duplicate and never stored.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from datetime import timedelta

from core.ports.eventlog import EventLog

NK_HEADER = "hub-natural-key"
EVENT_ID_SCOPE = "event_id"
_SEP = "\x1f"
_TENANT_SEP = "\x1e"
_TENANT = "ce_tenant"  # domain.envelope.H_TENANT (no domain import in this small module)


class DistinctKeys(list[str]):
    """Keys in row order, all distinct, with their ``set`` (built anyway to check that): the
    window adds the set when it fits the current generation, a set-to-set merge that reuses the
    stored hashes and grows the table once (``update`` of the list: ~1.2x its CPU)."""

    __slots__ = ("as_set",)

    def __init__(self, keys: list[str], as_set: set[str]) -> None:
        super().__init__(keys)
        self.as_set = as_set


class KeyWindow:
    """A two-generation set of recently seen keys (see the module docstring)."""

    __slots__ = ("_cur", "_half_window", "_max", "_prev", "_started")

    def __init__(self, max_keys: int, window: timedelta) -> None:
        self._cur: set[str] = set()
        self._prev: set[str] = set()
        self._started = time.monotonic()
        self._max = max(2, max_keys)
        self._half_window = window.total_seconds() / 2

    def __contains__(self, key: object) -> bool:
        return key in self._cur or key in self._prev

    def __len__(self) -> int:
        return len(self._cur) + len(self._prev)

    def isdisjoint(self, keys: Iterable[str]) -> bool:
        """True when no key of ``keys`` is in the window (``keys`` read twice: a collection)."""
        return self._cur.isdisjoint(keys) and self._prev.isdisjoint(keys)

    def common(self, keys: Iterable[str]) -> set[str]:
        """The keys of ``keys`` (a collection: read twice) in the window, in C-level passes."""
        return self._cur.intersection(keys) | self._prev.intersection(keys)

    def add_all(self, keys: Iterable[str]) -> None:
        """Add keys in order, rotating when the current generation reaches ``max_keys // 2``.

        Keys go in by chunks of the room left in the generation (``set.update`` in C): the
        generation can only fill up on a chunk's last key, so rotations happen exactly where
        adding them one by one would put them.
        """
        self._maybe_rotate()
        half = self._max // 2
        if type(keys) is DistinctKeys and len(keys) < half - len(self._cur):
            self._cur |= keys.as_set  # all fit: the same keys as in order, no rotation between
            return
        pending = keys if isinstance(keys, list) else list(keys)
        start = 0
        while start < len(pending):
            cur = self._cur
            room = half - len(cur)
            if room <= 0:
                self._rotate()
                continue
            cur.update(pending[start : start + room])
            start += room
            if len(cur) >= half:
                self._rotate()

    def _maybe_rotate(self) -> None:
        if time.monotonic() - self._started >= self._half_window:
            self._rotate()

    def _rotate(self) -> None:
        self._prev = self._cur
        self._cur = set()
        self._started = time.monotonic()


class Deduper:
    """Per topic: the event-id window and one natural-key window per ``unique`` rule."""

    def __init__(
        self,
        log: EventLog,
        max_keys: int = 1_000_000,
        event_id_window: timedelta = timedelta(hours=24),
    ) -> None:
        self._log = log
        self._max = max_keys
        self._event_id_window = event_id_window
        self._windows: dict[tuple[str, str], KeyWindow] = {}
        self._loaded: set[str] = set()
        self._lock = threading.Lock()

    def window(self, topic: str, scope: str, window: timedelta | None = None) -> KeyWindow:
        """The window of ``scope`` on ``topic`` (rebuilt from the log on first use)."""
        self._ensure_loaded(topic)
        w = self._windows.get((topic, scope))
        if w is None:
            w = self._windows[(topic, scope)] = KeyWindow(
                self._max, window or self._event_id_window
            )
        return w

    def _ensure_loaded(self, topic: str) -> None:
        if topic in self._loaded:
            return
        with self._lock:
            if topic in self._loaded:
                return
            self._loaded.add(topic)
            self._rebuild(topic)

    def _rebuild(self, topic: str) -> None:
        """Read the topic's tail back into the windows (headers only; see the docstring)."""
        ends = self._log.end_offsets(topic)
        if not any(ends.values()):
            return
        per_partition = max(1, self._max // max(1, len(ends)))
        oldest_ms = int((time.time() - self._event_id_window.total_seconds()) * 1000)
        ids: dict[str, list[str]] = {}
        keys: dict[str, list[str]] = {}
        for p, end in ends.items():
            for rec in self._log.scan(topic, p, max(0, end - per_partition)):
                tenant, nks, eid = "default", [], None
                for name, value in rec.headers:
                    if name == NK_HEADER:
                        nks.append(value.decode().partition(_SEP))
                    elif name == "ce_id" and rec.timestamp_ms >= oldest_ms:
                        eid = value.decode()
                    elif name == _TENANT:
                        tenant = value.decode()
                for rule_id, _, key in nks:
                    keys.setdefault(self.scope(rule_id, tenant), []).append(key)
                if eid is not None:
                    ids.setdefault(self.id_scope(tenant), []).append(eid)
        for scope, found in ids.items():
            w = self._windows.setdefault(
                (topic, scope), KeyWindow(self._max, self._event_id_window)
            )
            w.add_all(found)
        for scope, found in keys.items():
            # The rule's own window is applied when the rule is first used; until then keys
            # are kept for the event-id window (the rebuild cannot know later rule changes).
            self._windows.setdefault((topic, scope), KeyWindow(self._max, timedelta(days=30)))
            self._windows[(topic, scope)].add_all(found)

    @staticmethod
    def id_scope(tenant: str) -> str:
        """The window (and group-commit) scope of ``tenant``'s event ids."""
        return f"{EVENT_ID_SCOPE}{_TENANT_SEP}{tenant}"

    @staticmethod
    def scope(rule_id: str, tenant: str) -> str:
        """The window (and group-commit) scope of unique rule ``rule_id``'s keys in ``tenant``."""
        return f"{rule_id}{_TENANT_SEP}{tenant}"

    @staticmethod
    def header(scope: str, key: str) -> tuple[str, bytes]:
        return (NK_HEADER, f"{scope}{_SEP}{key}".encode())
