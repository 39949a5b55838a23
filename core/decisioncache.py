"""A bounded, time-limited cache of policy decisions, shared by the Rego and OPA adapters.

Keyed by the SHA-256 of the decision input without ``context.now``. An entry is served only
while all of these hold, else it is dropped:

- it was made under the policy bundle version the engine runs now (a reload clears the cache);
- it is younger than the TTL (monotonic clock);
- no grant the input could use has expired since (``valid_until_ns``, wall clock ``now``).

Least recently used entries are evicted past ``max_entries``. Thread-safe.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from core.ports.policy import Decision


@dataclass(frozen=True, slots=True)
class _Entry:
    decision: Decision
    version: str
    expires_mono_ns: int
    valid_until_ns: int | None


class DecisionCache:
    def __init__(
        self,
        ttl_ms: int = 1_000,
        max_entries: int = 10_000,
        *,
        monotonic_ns: Callable[[], int] = time.monotonic_ns,
    ) -> None:
        if ttl_ms <= 0 or max_entries <= 0:
            raise ValueError("DecisionCache needs a positive ttl_ms and max_entries.")
        self.ttl_ns = ttl_ms * 1_000_000
        self.max_entries = max_entries
        self._mono = monotonic_ns
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, key: str, version: str, now_ns: int | None) -> Decision | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                fresh = (
                    entry.version == version
                    and self._mono() < entry.expires_mono_ns
                    and (
                        entry.valid_until_ns is None
                        or (now_ns is not None and now_ns < entry.valid_until_ns)
                    )
                )
                if fresh:
                    self._entries.move_to_end(key)
                    self.hits += 1
                    return entry.decision
                del self._entries[key]
            self.misses += 1
            return None

    def put(
        self, key: str, version: str, decision: Decision, valid_until_ns: int | None = None
    ) -> None:
        with self._lock:
            self._entries[key] = _Entry(
                decision, version, self._mono() + self.ttl_ns, valid_until_ns
            )
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)
