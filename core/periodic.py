"""A task run every few seconds in a background thread (schedulers, evaluators)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable


class Periodic:
    """Calls ``tick`` every ``every_s`` seconds in a daemon thread named ``name`` until
    ``stop``. A failing tick is logged (``failure``, with its traceback) and the next one
    retries: a scheduler keeps its schedule through a transient error."""

    def __init__(
        self, name: str, tick: Callable[[], object], failure: str, log: logging.Logger
    ) -> None:
        self.name = name
        self.tick = tick
        self.failure = failure
        self.log = log
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        return self._thread is not None

    def start(self, every_s: float) -> None:
        if self._thread is not None:
            return

        def loop() -> None:
            while not self._stop.wait(every_s):
                try:
                    self.tick()
                except Exception:
                    self.log.exception(self.failure)

        self._stop.clear()
        self._thread = threading.Thread(target=loop, name=self.name, daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 60.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=timeout_s)
            self._thread = None
