"""Leader-follower grouping: concurrent callers queue their work; the first caller that finds no
leader runs everything queued so far as one group, and every caller returns once its own work is
settled (the shape of a group commit).

1. Queue the caller's item; wait while another caller leads and this item is not settled.
2. Lead: take the whole queue (this item included), in arrival order.
3. Run the group (``run(group)``): it settles each item, with a result or its own error.
4. Settle what ``run`` left unsettled (only when ``run`` itself was interrupted) with the
   ``cut_off`` error, hand leadership to the next waiter.

A lone caller leads at once: no wait. Used by the embedded log's group commit
(``adapters.sqlite_log.groupcommit``) and coalesced publishing (``ingest.coalesce``).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Generic, Protocol, TypeVar


class Item(Protocol):
    """What a queued item carries: whether it is settled, and its error if it failed."""

    settled: bool
    error: BaseException | None


T = TypeVar("T", bound=Item)


class LeaderGroups(Generic[T]):
    """Runs queued items in groups (steps 1-4 of the module docstring)."""

    def __init__(self) -> None:
        self._cv = threading.Condition(threading.Lock())
        self._queue: list[T] = []
        self._leading = False

    @property
    def busy(self) -> bool:
        """Whether an item is queued or being run."""
        return self._leading or bool(self._queue)

    @property
    def leading(self) -> bool:
        """Whether a caller is running a group now."""
        return self._leading

    @property
    def queued(self) -> int:
        """How many items wait for the next group."""
        return len(self._queue)

    def submit(
        self, mine: T, run: Callable[[list[T]], None], cut_off: Callable[[], BaseException]
    ) -> None:
        """Queue ``mine`` and return once it is settled; raises its error, if it has one."""
        group: list[T] = []
        with self._cv:  # 1.
            self._queue.append(mine)
            while self._leading and not mine.settled:
                self._cv.wait()
            lead = not mine.settled  # else another leader ran (or failed) it meanwhile
            if lead:
                self._leading = True
                group, self._queue = self._queue, []  # 2.
        if lead:
            try:
                run(group)  # 3.
            finally:
                with self._cv:  # 4.
                    for item in group:
                        if not item.settled:
                            item.error = item.error or cut_off()
                            item.settled = True
                    self._leading = False
                    self._cv.notify_all()
        if mine.error is not None:
            raise mine.error
