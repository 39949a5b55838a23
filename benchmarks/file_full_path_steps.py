"""Where a file's full path spends its CPU, per event: each thread's CPU over ``publish_file``
and the thread CPU of the main steps (wrapped with ``time.thread_time`` counters), then the
ledger sync's process CPU. A profile, not a rate: the wrappers add a little per call (a few
hundred calls per million events), and nested steps count in their callers too.

The read-ahead thread (JSON lines) ends with the file, so its CPU is taken as it ends. The
script imports the tree it is run from (``cd /tmp/old && PYTHONPATH=. python
/path/to/benchmarks/file_full_path_steps.py JSONL 300000`` profiles an older tree, as long as
the steps it wraps exist there).
Run: ``.venv/bin/python -m benchmarks.file_full_path_steps JSONL 300000`` (or CSV, Parquet,
Avro; a small file of the format is published first, and Parquet's decoder child's CPU is shown
apart).
"""

from __future__ import annotations

import collections
import functools
import sys
import threading
import time
from typing import Any

_CPU: collections.Counter[str] = collections.Counter()
_CALLS: collections.Counter[str] = collections.Counter()
_ENDED: collections.Counter[str] = collections.Counter()


def _wrap(owner: Any, name: str) -> None:
    """Count the thread CPU of ``owner.name`` (skipped when this tree has no such step)."""
    f = getattr(owner, name, None)
    if f is None:
        return
    label = f"{getattr(owner, '__name__', owner)}.{name}"

    @functools.wraps(f)
    def counted(*a: Any, **k: Any) -> Any:
        c = time.thread_time()
        try:
            return f(*a, **k)
        finally:
            _CPU[label] += time.thread_time() - c
            _CALLS[label] += 1

    setattr(owner, name, counted)


def _count_ended_threads() -> None:
    run = threading.Thread.run

    def counted(self: threading.Thread) -> None:
        try:
            run(self)
        finally:
            _ENDED[self.name.split("_")[0]] += time.thread_time()

    threading.Thread.run = counted  # type: ignore[method-assign]


def _children_cpu(h: Any) -> float:
    """CPU seconds of the Parquet decoder children: the exited ones and the pool's live ones."""
    import os
    import resource

    u = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = u.ru_utime + u.ru_stime
    from ingest import parquet_pool

    pool = getattr(h.ingest, "parquet", None) or parquet_pool.shared()
    for pid in pool.pids():
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read().rsplit(")", 1)[1].split()
        t += (int(stat[11]) + int(stat[12])) / os.sysconf("SC_CLK_TCK")
    return t


def main() -> int:
    fmt, n = sys.argv[1], int(sys.argv[2])
    _count_ended_threads()
    import core.avro.vector as vector
    import ingest.arrowread as arrowread
    import ingest.avrofile as avrofile
    import ingest.columnar as columnar
    import ingest.dedupe as dedupe
    import ingest.lines as lines
    from adapters.sqlite_log import log as sqlite_log
    from ingest.pipeline import IngestPipeline

    for name in ("json_batch", "_native_read", "_finish", "_missing", "csv_batch"):
        _wrap(arrowread, name)
    for name in ("block", "nonblank", "__getitem__", "concat"):
        _wrap(lines.Lines, name)  # (``concat`` stays callable on the class: no instance calls it)
    _wrap(arrowread, "check_time_range")
    _wrap(avrofile.Batch, "record_batch")
    for name in ("_objects", "ref_rows", "erased_rows", "uuid7_bytes", "decimal_columns"):
        _wrap(columnar, name)
    for name in ("bad_rows", "keys", "natural_keys", "header_values"):
        _wrap(columnar.ArrowPlan, name)
    _wrap(vector.VectorEncoder, "encode")
    _wrap(sqlite_log.SqliteEventLog, "_prepare_columns")
    _wrap(sqlite_log.SqliteEventLog, "_offsets")
    for name in ("target", "settle", "_commit"):
        _wrap(IngestPipeline, name)
    _wrap(dedupe.KeyWindow, "add_all")
    _wrap(dedupe.KeyWindow, "isdisjoint")

    from benchmarks.file_full_path import accounts_hub, trades_file
    from ingest.files import publish_file

    with accounts_hub() as (h, folder):
        path = trades_file(h, folder / "f", fmt, n, 10**8)
        # a file before (as in a hub that has run): the decoder child started, pandas imported
        publish_file(h.ingest, trades_file(h, folder / "w", fmt, 1000, 10**9), "trades")
        h.ledger.sync()
        _CPU.clear()
        _CALLS.clear()
        _ENDED.clear()
        c0, t0, k0 = time.process_time(), time.thread_time(), _children_cpu(h)
        publish_file(h.ingest, path, "trades", batch_size=10_000)
        c1, t1, k1 = time.process_time(), time.thread_time(), _children_cpu(h)
        h.ledger.sync()
        c2 = time.process_time()
    us = 1e6 / n
    print(
        f"{fmt} n={n}: us of CPU per event: publish (process) {(c1 - c0) * us:.2f}, main thread"
        f" {(t1 - t0) * us:.2f}, decoder children {(k1 - k0) * us:.2f}, ledger sync (process)"
        f" {(c2 - c1) * us:.2f}"
    )
    for name, cpu in _ENDED.items():
        print(f"  thread {name} (ended): {cpu * us:.3f}")
    for label, cpu in _CPU.most_common():
        print(f"  {cpu * us:.3f}  {label} x{_CALLS[label]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
