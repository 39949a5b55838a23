"""What the in-process A/B micro-benchmarks (``benchmarks/*_ab.py``) share: a call's CPU time on
its own thread (other engineers' load on the machine counts for nothing) and the summary of the
new/old ratios of their alternating rounds."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any


def thread_cpu(fn: Callable[[], Any], repeat: int) -> float:
    """Best thread CPU seconds (``time.thread_time``) of ``repeat`` calls of ``fn``."""
    best = float("inf")
    for _ in range(repeat):
        c0 = time.thread_time()
        fn()
        best = min(best, time.thread_time() - c0)
    return best


def print_ratios(ratios: Mapping[str, Sequence[float]]) -> None:
    """Each measure's median new/old ratio over the rounds, with its range."""
    for k, v in ratios.items():
        print(f"{k}: new/old median {statistics.median(v):.3f} (min {min(v):.3f} max {max(v):.3f})")
