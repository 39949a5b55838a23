"""Event-time windows and lateness, pure.

- Tumbling window of size S: ``[floor(t / S) * S, + S)``.
- Hopping window of size S and hop H (S a multiple of H): every ``[k * H, k * H + S)`` holding t.
- Watermark of a partition = max event time seen *before* the event in that partition − allowed
  lateness (``model.WindowState``). An event is late for a window when the window's end is at or
  before the watermark: the window was already closed. With ``late_mode="update"`` (default) a
  late event still updates its window (and its row's source ranges say so); with ``"side"`` it
  goes to the projection's ``late_events`` table instead.
"""

from __future__ import annotations

MINUTE_US = 60_000_000
HOUR_US = 60 * MINUTE_US
DAY_US = 24 * HOUR_US


def tumbling(ts_us: int, size_us: int) -> int:
    """Start of the tumbling window holding ``ts_us``."""
    return ts_us - ts_us % size_us


def hopping(ts_us: int, size_us: int, hop_us: int) -> list[int]:
    """Starts of every hopping window holding ``ts_us``, oldest first."""
    if size_us % hop_us:
        raise ValueError(f"window size {size_us} µs must be a multiple of the hop {hop_us} µs")
    last = ts_us - ts_us % hop_us
    return [last - i * hop_us for i in range(size_us // hop_us - 1, -1, -1)]


def is_late(window_end_us: int, watermark_us: int | None) -> bool:
    return watermark_us is not None and window_end_us <= watermark_us
