"""Same process, one hub: ``publish_file`` of fresh trade files (JSONL, CSV, Parquet or Avro),
alternating this tree's steps with an older tree's (old, new, new, old, ...), then the ledger
sync of each file's events; events per CPU-s of each. Fresh processes swing ±10% here on a
shared machine, more than a few per cent of gain; one process alternating does not.

The older tree's versions of the steps sessions 20 and 21 changed are loaded from its files
under other module names and swapped in for the old rounds: ``arrowread.json_batch``,
``lines.batches`` (as ``ingest.files`` uses it), ``files._jsonl_pieces`` and
``files._csv_regions`` (the block readers), ``Lines.block``,
``SqliteEventLog._prepare_columns``, ``columnar.erased_rows`` and ``ArrowPlan``'s ``keys``,
``natural_keys`` and ``header_values`` (everything they call is this tree's, or the older
module's own helpers). Run:
``.venv/bin/python -m benchmarks.file_full_path_ab /tmp/old JSONL 300000 4``.
"""

from __future__ import annotations

import importlib.util
import statistics
import sys
import time
from pathlib import Path
from types import ModuleType
from typing import Any


def _load(tree: Path, rel: str, name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, tree / rel)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def main() -> int:
    old_tree, fmt, n, pairs = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    import ingest.arrowread as arrowread
    import ingest.columnar as columnar
    import ingest.files as files
    from adapters.sqlite_log.log import SqliteEventLog
    from benchmarks.file_full_path import accounts_hub, trades_file

    old_read = _load(old_tree, "ingest/arrowread.py", "_old_arrowread")
    old_lines = _load(old_tree, "ingest/lines.py", "_old_lines")
    old_block = classmethod(old_lines.Lines.__dict__["block"].__func__)  # makes this tree's Lines
    old_lines.Lines = files.Lines  # its batches() joins and slices this tree's ``Lines``
    old_log = _load(old_tree, "adapters/sqlite_log/log.py", "_old_sqlite_log")
    old_columnar = _load(old_tree, "ingest/columnar.py", "_old_columnar")
    old_files = _load(old_tree, "ingest/files.py", "_old_files")
    plan_steps = ("keys", "natural_keys", "header_values")
    steps: dict[str, tuple[Any, ...]] = {
        "new": (
            arrowread.json_batch,
            files.batches,
            SqliteEventLog._prepare_columns,
            files.Lines.__dict__["block"],
            columnar.erased_rows,
            files._jsonl_pieces,
            files._csv_regions,
            *(columnar.ArrowPlan.__dict__[name] for name in plan_steps),
        ),
        "old": (
            old_read.json_batch,
            old_lines.batches,
            old_log.SqliteEventLog._prepare_columns,
            old_block,
            old_columnar.erased_rows,
            old_files._jsonl_pieces,
            old_files._csv_regions,
            *(old_columnar.ArrowPlan.__dict__[name] for name in plan_steps),
        ),
    }

    def use(mode: str) -> None:
        json_batch, batches, prepare, block, erased, pieces, regions, *plan = steps[mode]
        arrowread.json_batch = json_batch  # type: ignore[assignment]
        files.batches = batches  # type: ignore[assignment]
        SqliteEventLog._prepare_columns = prepare  # type: ignore[method-assign]
        files.Lines.block = block  # type: ignore[method-assign]
        columnar.erased_rows = erased  # type: ignore[assignment]
        files._jsonl_pieces = pieces  # type: ignore[assignment]
        files._csv_regions = regions  # type: ignore[assignment]
        for name, step in zip(plan_steps, plan, strict=True):
            setattr(columnar.ArrowPlan, name, step)

    rates: dict[str, dict[str, list[float]]] = {
        m: {"publish": [], "ledger": [], "full": []} for m in steps
    }
    with accounts_hub() as (h, folder):
        paths = [
            trades_file(h, folder / f"f{k}", fmt, n, 10**8 + k * n) for k in range(2 * pairs + 1)
        ]
        files.publish_file(h.ingest, paths[-1], "trades", batch_size=10_000)  # warm-up
        h.ledger.sync()
        for k in range(2 * pairs):
            mode = ("old", "new")[(k + k // 2) % 2]  # old new new old old new ...
            use(mode)
            c0 = time.process_time()
            out = files.publish_file(h.ingest, paths[k], "trades", batch_size=10_000)
            c1 = time.process_time()
            h.ledger.sync()
            c2 = time.process_time()
            assert out.result.accepted == n, out.result
            r = rates[mode]
            r["publish"].append(n / (c1 - c0))
            r["ledger"].append(n / (c2 - c1))
            r["full"].append(n / (c2 - c0))
        use("new")
    import os

    print(f"{fmt} n={n} pairs={pairs} load={os.getloadavg()[0]:.1f} (events per CPU-s)")
    for what in ("publish", "ledger", "full"):
        old, new = rates["old"][what], rates["new"][what]
        ratios = [b / a for a, b in zip(old, new, strict=True)]
        print(
            f"  {what}: old {min(old):,.0f}-{max(old):,.0f} new {min(new):,.0f}-{max(new):,.0f}"
            f" new/old median {statistics.median(ratios):.3f} ({min(ratios):.3f}-"
            f"{max(ratios):.3f})"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
