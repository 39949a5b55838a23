"""File ingest through the columnar append, beside the per-record append and two floors.

The same trades (``e2e.write_files``, ``e2e.write_avro``; other ids per run so none is a
duplicate) through ``publish_file`` on one hub, alternating in one run:
- ``columns``: accepted rows appended as one ``ColumnBatch`` per batch (``append_columns``);
- ``records``: the path before (``ingest.columnar.column_append = False``: a ``Record`` and a
  headers tuple per row), the reference;
- ``+ledger``: the ``columns`` run's ledger sync right after it (a leaf per record, read back
  from the log and hashed natively), so ``columns`` + ``+ledger`` is the full path;
- ``floor append``: ``SqliteEventLog.append`` alone of the same number of pre-encoded records
  with an ingested record's headers, 10,000 a call (the storage floor, records built before the
  clock starts), ``floor columns`` the same bytes through ``append_columns``, and ``floor
  records built`` the ``Record``s built from those columns inside the clock, then ``append``
  (the append step as ingest ran it before);
- ``sha256``: hashlib SHA-256 over the same encoded values, one call each (the hashing floor).
Each figure is events per wall second and per CPU second of this process, with the load.
Run: ``.venv/bin/python -m benchmarks.file_columns --rows 200000 --rounds 2``.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks.avro_file_blocks import _timed  # events per wall and per CPU second


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rows", type=int, default=200_000)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--formats", default="Parquet,Avro,JSONL,CSV")
    args = ap.parse_args(argv)
    n = args.rows
    formats = [f for f in args.formats.split(",") if f]

    from benchmarks.e2e import write_files
    from benchmarks.e2e_common import ACCOUNTS, ingested_records, trade
    from core.avro import serde
    from core.ports.eventlog import ColumnBatch
    from hub.bootstrap import bootstrap
    from hub.settings import load_settings
    from ingest import columnar
    from ingest.files import publish_file
    from ingest.pipeline import gc_paused
    from tests.service.accounts import open_accounts

    def say(r: int, mode: str, rates: tuple[float, float], load: float) -> None:
        print(
            f"round {r} {mode:22s} {rates[0]:10,.0f} events/s "
            f"{rates[1]:10,.0f} events/cpu-s  (load {load:.1f})",
            flush=True,
        )

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        h = bootstrap(load_settings(environ={}, data_dir=folder / "d", projection_autostart=False))
        try:
            open_accounts(h, [f"ACC-{i}" for i in range(ACCOUNTS)])
            sv = h.registry.get_version("trades-value", "latest")
            schema = h.registry.parsed(sv.id)
            encoded = [
                serde.encode(sv.id, schema, serde.from_json(trade(i), schema.parsed))
                for i in range(n)
            ]
            recs = ingested_records(encoded)
            cols = []
            for i in range(0, n, 10_000):
                chunk = recs[i : i + 10_000]
                by_name = list(zip(*[[v for _, v in r.headers] for r in chunk], strict=True))
                cols.append(
                    ColumnBatch(
                        [r.key for r in chunk],
                        [r.value for r in chunk],
                        tuple(name for name, _ in chunk[0].headers),
                        tuple(c[0] if c.count(c[0]) == len(c) else list(c) for c in by_name),
                    )
                )
            h.log.create_topic("bench_floor", 1)
            h.ledger.sync(force_checkpoint=True)
            start = 10**8
            for r in range(args.rounds):
                load = os.getloadavg()[0]
                say(
                    r,
                    "sha256",
                    _timed(n, lambda: [hashlib.sha256(v).digest() for v in encoded]),
                    load,
                )

                def floor_append() -> None:
                    for i in range(0, n, 10_000):
                        h.log.append("bench_floor", recs[i : i + 10_000])

                def floor_columns() -> None:
                    for c in cols:
                        h.log.append_columns("bench_floor", c)

                def floor_built() -> None:  # what ingest did before: a Record per row, then append
                    with gc_paused():  # as ingest_arrow runs it
                        for c in cols:
                            h.log.append("bench_floor", c.records())

                for mode, fn in (
                    ("floor append", floor_append),
                    ("floor records built", floor_built),
                    ("floor columns", floor_columns),
                    ("floor records built", floor_built),
                    ("floor columns", floor_columns),
                ):
                    load = os.getloadavg()[0]
                    say(r, mode, _timed(n, fn), load)
                h.ledger.sync()
                for fmt in formats:
                    for mode in ("records", "columns"):
                        sub = folder / f"{fmt}-{mode}-{r}"
                        if fmt == "Avro":
                            sub.mkdir()  # (``e2e.write_avro`` numbers from 0: ids would repeat)
                            path = _avro(sub / "t.avro", sv.schema.text, schema.parsed, n, start)
                        else:
                            path = write_files(sub, n, start)[fmt]
                        start += 10**7
                        columnar.column_append = mode == "columns"
                        out: list[Any] = []
                        load = os.getloadavg()[0]

                        def ingest(path: Path = path, out: list[Any] = out) -> None:
                            out.append(publish_file(h.ingest, path, "trades", batch_size=10_000))

                        rates = _timed(n, ingest)
                        got = out[0].result
                        assert got.accepted == n, (fmt, got.accepted, got.rejected, got.duplicates)
                        say(r, f"{fmt} {mode}", rates, load)
                        load = os.getloadavg()[0]
                        say(r, f"{fmt} {mode} +ledger", _timed(n, h.ledger.sync), load)
        finally:
            columnar.column_append = True
            h.close()
    return 0


def _avro(path: Path, schema_text: str, parsed: Any, n: int, start: int) -> Path:
    import json

    import fastavro

    from benchmarks.e2e_common import trade
    from core.avro import serde

    with path.open("wb") as fo:
        fastavro.writer(
            fo,
            fastavro.parse_schema(json.loads(schema_text)),
            (
                serde.from_json({**trade(i), "trade_id": f"A-{i}"}, parsed)
                for i in range(start, start + n)
            ),
        )
    return path


if __name__ == "__main__":
    raise SystemExit(main())
