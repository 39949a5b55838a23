"""Session 19 micro A/B of the JSON-lines batch parse, one process, alternating, thread CPU
(``time.thread_time``) per call, best of ``--repeat`` calls, ``--rounds`` rounds, on 10,000
JSON-lines trades (``benchmarks.e2e``; ``venue`` and ``fees`` left out):

- ``parse``: ``hub_native.json_rows`` (native/src/json_rows.rs, through ``arrowread._native_read``)
  against ``arrowread._read`` (Arrow's ``read_json``, one block: the reference);
- ``json_batch``: the whole batch build as now (native parse, native RFC 3339 times
  (native/src/rfc3339.rs), decimal precision on 64-bit words), then as before (Arrow's reader,
  regex + cast, decimal256 comparisons);
- ``csv_batch``: 10,000 CSV trades, native split, decimals (native/src/csv_rows.rs) and times,
  then Arrow's ``read_csv`` and regex + cast;
- ``block``: ``Lines.block`` of those CSV rows' region (CRLF line ends), the native CR strip
  then the replace + search passes.

Run: ``.venv/bin/python -m benchmarks.json_rows_ab [--rounds 7] [--repeat 5]``.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.ab_common import print_ratios, thread_cpu
from benchmarks.e2e import write_files
from ingest import arrowread
from ingest import lines as lines_mod
from ingest.arrowread import csv_batch, csv_layout, json_batch, layout
from ingest.lines import Lines

N = 10_000


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args(argv)
    schema = json.loads(Path("domain/schemas/TradeExecuted.avsc").read_text())
    lay = layout(schema)
    assert lay is not None
    with tempfile.TemporaryDirectory() as tmp:
        paths = write_files(Path(tmp), N, 10**8)
        jl = Lines.texts(paths["JSONL"].read_bytes().splitlines())
        csv_lines = paths["CSV"].read_bytes().splitlines()
        csv_bytes = paths["CSV"].read_bytes()
    region = csv_bytes[csv_bytes.find(b"\n") + 1 : csv_bytes.rfind(b"\n")]
    header = csv_lines[0].decode().split(",")
    rows = Lines.texts(csv_lines[1:])
    clay = csv_layout(lay, header, schema["fields"])
    assert clay is not None
    native, times = arrowread._native_json_rows, arrowread._native_rfc3339
    split, strip = arrowread._native_csv_split, lines_mod._native_strip
    dec = arrowread._native_decimal_text
    assert None not in (native, times, split, strip, dec), "hub_native is not built"
    idx = np.arange(N, dtype=np.int64)

    def parse_native() -> Any:
        parsed: list[Any] = []
        assert not len(arrowread._native_read(jl, idx, lay, parsed))
        return parsed

    def parse_arrow() -> Any:
        parsed: list[Any] = []
        arrowread._read(jl, idx.tolist(), lay.read_schema, parsed, np.zeros(N, dtype=np.bool_))
        return parsed

    def before(fn: Callable[[], Any]) -> Callable[[], Any]:
        def run() -> Any:
            arrowread._native_json_rows = arrowread._native_rfc3339 = None
            arrowread._native_csv_split = lines_mod._native_strip = None
            arrowread._native_decimal_text = None
            arrowread._over_precision = arrowread._over_precision_wide
            try:
                return fn()
            finally:
                arrowread._native_json_rows, arrowread._native_rfc3339 = native, times
                arrowread._native_csv_split, lines_mod._native_strip = split, strip
                arrowread._native_decimal_text = dec
                arrowread._over_precision = over

        return run

    over = arrowread._over_precision

    def batch() -> Any:
        return json_batch(jl, lay, 10**6)

    def csv() -> Any:
        return csv_batch(rows, header, clay, set(), 10**6)

    def block() -> Any:
        return Lines.block(region, 2)

    batch_off, csv_off, block_off = before(batch), before(csv), before(block)

    assert parse_native()[0][1].equals(parse_arrow()[0][1])
    assert batch_off()[0].equals(batch()[0])
    assert csv_off()[0].equals(csv()[0])
    assert block_off().data == block().data
    ratios: dict[str, list[float]] = {"parse": [], "json_batch": [], "csv_batch": [], "block": []}
    for r in range(args.rounds):
        pn = thread_cpu(parse_native, args.repeat)
        pa_ = thread_cpu(parse_arrow, args.repeat)
        on = thread_cpu(batch, args.repeat)
        off = thread_cpu(batch_off, args.repeat)
        con = thread_cpu(csv, args.repeat)
        coff = thread_cpu(csv_off, args.repeat)
        bon = thread_cpu(block, args.repeat)
        boff = thread_cpu(block_off, args.repeat)
        ratios["block"].append(bon / boff)
        ratios["parse"].append(pn / pa_)
        ratios["json_batch"].append(on / off)
        ratios["csv_batch"].append(con / coff)
        print(
            f"round {r}: parse native {pn * 1e3:.2f} ms, Arrow {pa_ * 1e3:.2f} ms"
            f" ({pn / pa_:.3f}); json_batch new {on * 1e3:.2f} ms, before"
            f" {off * 1e3:.2f} ms ({on / off:.3f}); csv_batch new {con * 1e3:.2f} ms, before"
            f" {coff * 1e3:.2f} ms ({con / coff:.3f}); block new {bon * 1e3:.2f} ms, before"
            f" {boff * 1e3:.2f} ms ({bon / boff:.3f})",
            flush=True,
        )
    print_ratios(ratios)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
