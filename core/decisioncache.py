"""A bounded, time-limited cache of policy decisions, shared by the Rego and OPA adapters.

Keyed by the SHA-256 of the decision input without ``context.now``. An entry is served only
while all of these hold, else it is dropped:

- it was made under the policy bundle version the engine runs now (a reload clears the cache);
- it is younger than the TTL (monotonic clock);
- no grant the input could use has expired since (``valid_until_ns``, wall clock ``now``).

Least recently used entries are evicted past ``max_entries``. Thread-safe.

Single flight: while one caller evaluates an input that missed, identical inputs (same key,
same bundle version) wait for its answer instead of evaluating it again (``get_or_claim``),
then are served from the cache under the rules above, checked against their own ``now``. If
the first evaluation failed (nothing cached) or its answer does not hold for a waiter (a grant
expired in between, or ``flight_wait_s`` passed), the waiter evaluates the input itself.
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
        flight_wait_s: float = 10.0,
    ) -> None:
        if ttl_ms <= 0 or max_entries <= 0:
            raise ValueError("DecisionCache needs a positive ttl_ms and max_entries.")
        self.ttl_ns = ttl_ms * 1_000_000
        self.max_entries = max_entries
        self._mono = monotonic_ns
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._lock = threading.Lock()
        self.flight_wait_s = flight_wait_s
        self._flights: dict[tuple[str, str], threading.Event] = {}  # evaluations in flight
        self.hits = 0
        self.misses = 0
        self.shared = 0  # misses answered by an identical evaluation in flight (single flight)

    def get(self, key: str, version: str, now_ns: int | None) -> Decision | None:
        with self._lock:
            found = self._found(key, version, now_ns)
            if found is None:
                self.misses += 1
            return found

    def lookup(self, key: str, version: str, now_ns: int | None) -> Decision | None:
        """``get`` that counts no miss: the caller then decides through a path that does
        (``InputDocumentEngine.decide_prepared``), so a miss is counted once."""
        with self._lock:
            return self._found(key, version, now_ns)

    def _found(self, key: str, version: str, now_ns: int | None) -> Decision | None:
        """The servable entry's decision (a hit), else None (an unservable entry dropped).
        Under the lock."""
        entry = self._entries.get(key)
        if entry is not None:
            if self._servable(entry, version, now_ns):
                self._entries.move_to_end(key)
                self.hits += 1
                return entry.decision
            del self._entries[key]
        return None

    def _servable(self, entry: _Entry, version: str, now_ns: int | None) -> bool:
        return (
            entry.version == version
            and self._mono() < entry.expires_mono_ns
            and (
                entry.valid_until_ns is None
                or (now_ns is not None and now_ns < entry.valid_until_ns)
            )
        )

    def get_or_claim(
        self, key: str, version: str, now_ns: int | None
    ) -> Decision | threading.Event | None:
        """One of three answers:

        - a ``Decision``: the cached answer (``get``);
        - ``None``: the caller evaluates the input and MUST then call ``release(key,
          version)``, whether it cached an answer or failed (in a ``finally``);
        - an ``Event``: an identical evaluation is in flight; ``wait_shared`` for its answer.

        An evaluation that ends between the lookup and the claim costs one more evaluation of
        the same input, nothing else."""
        hit = self.get(key, version, now_ns)
        if hit is not None:
            return hit
        with self._lock:
            flight = self._flights.get((key, version))
            if flight is None:
                self._flights[(key, version)] = threading.Event()
            return flight

    def release(self, key: str, version: str) -> None:
        """End the caller's evaluation of ``key`` (claimed by ``get_or_claim``): wake the
        callers waiting for it."""
        with self._lock:
            flight = self._flights.pop((key, version), None)
        if flight is not None:
            flight.set()

    def wait_shared(
        self, flight: threading.Event, key: str, version: str, now_ns: int | None
    ) -> Decision | None:
        """Wait (at most ``flight_wait_s``) for the evaluation in flight, then its cached
        answer if it may be served at ``now_ns``; None: the caller evaluates alone."""
        flight.wait(self.flight_wait_s)
        with self._lock:
            entry = self._entries.get(key)
            if entry is None or not self._servable(entry, version, now_ns):
                return None
            self._entries.move_to_end(key)
            self.shared += 1
            return entry.decision

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
