"""File ingest per format: Arrow readers + the columnar path beside the per-record path.

The same trades (other ids per run, so none is a duplicate) as JSON lines, CSV, Avro container
and Parquet files, through ``publish_file`` (validate, encode, append to the log with envelope
headers and source positions), on the columnar path (JSON lines by ``pyarrow.json``, Avro rows
as Arrow columns) and on the per-record reference path. Same-run baselines:
- the raw read of the same file by its reader alone (``pyarrow.json.read_json`` with the
  schema's columns; ``pyarrow.csv.read_csv``; ``fastavro.reader``; ``ParquetFile.iter_batches``);
- ``SqliteEventLog.append`` alone of the same number of pre-encoded records with the envelope
  headers an ingested record carries (the storage floor of every path).
Each rate is reported per wall second and per CPU second of the process (the machine is shared:
read the CPU figures and the same-run ratios). Size: ``FILE_BENCH_N`` (default 100,000).
Run: ``.venv/bin/pytest benchmarks/test_bench_file_formats.py -q -s``.
"""

from __future__ import annotations

import io
import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import fastavro
import pyarrow.json as pj
import pyarrow.parquet as pq
import pytest

from benchmarks.conftest import Report
from benchmarks.e2e_common import ingested_records
from benchmarks.e2e_common import trade_rows as rows
from benchmarks.test_bench_ingest import parquet_file
from core.avro import serde
from hub.bootstrap import bootstrap
from hub.settings import load_settings
from ingest.arrowread import layout
from ingest.files import publish_file
from tests.service.accounts import open_accounts

pytestmark = pytest.mark.slow
N = int(os.environ.get("FILE_BENCH_N", "100000"))
BATCH = 10_000
GROUP = "file ingest"
FLOOR = "baseline: SQLite append with headers"


def timed(fn: Callable[[], Any]) -> tuple[float, float]:
    """(events per wall second, events per CPU second) of ``fn`` over N events."""
    c, t = time.process_time(), time.perf_counter()
    fn()
    return N / (time.perf_counter() - t), N / max(time.process_time() - c, 1e-9)


@pytest.mark.timeout(3600)
def test_file_formats(tmp_path: Path, report: Report) -> None:
    h = bootstrap(load_settings(environ={}, data_dir=tmp_path / "d", sqlite_synchronous="NORMAL"))
    try:
        open_accounts(h, [f"ACC-{i}" for i in range(500)])
        sv = h.registry.get_version("trades-value", "latest")
        schema = h.registry.parsed(sv.id)

        def add(name: str, rates: tuple[float, float], baseline: str | None = None) -> None:
            wall, cpu = rates
            report.add(
                GROUP,
                f"{name} (wall)",
                wall,
                "events/s",
                baseline=baseline and f"{baseline} (wall)",
            )
            report.add(
                GROUP,
                f"{name} (cpu)",
                cpu,
                "events/cpu-s",
                baseline=baseline and f"{baseline} (cpu)",
            )

        # The storage floor: pre-encoded records with an ingested record's headers.
        encoded = [serde.encode(sv.id, schema, serde.from_json(r, schema.parsed)) for r in rows(N)]
        h.log.create_topic("bench_floor", 1)
        recs = ingested_records(encoded)
        add(
            FLOOR,
            timed(
                lambda: [
                    h.log.append("bench_floor", recs[i : i + BATCH]) for i in range(0, N, BATCH)
                ]
            ),
        )

        lay = layout(schema.parsed)
        assert lay is not None
        files: dict[str, Path] = {}
        for k, start in (("a", 0), ("b", 10**7)):
            f = tmp_path / f"{k}.jsonl"
            f.write_text("".join(json.dumps(r) + "\n" for r in rows(N, start)))
            files[f"jsonl-{k}"] = f
            g = tmp_path / f"{k}.avro"
            with g.open("wb") as fo:
                fastavro.writer(
                    fo,
                    fastavro.parse_schema(json.loads(schema.text)),
                    [serde.from_json(r, schema.parsed) for r in rows(N, 2 * 10**7 + start)],
                )
            files[f"avro-{k}"] = g
            c = tmp_path / f"{k}.csv"
            cols = list(rows(1)[0])
            body = (",".join(str(r[x]) for x in cols) for r in rows(N, 6 * 10**7 + start))
            c.write_text(",".join(cols) + "\n" + "\n".join(body) + "\n")
            files[f"csv-{k}"] = c
        p = tmp_path / "t.parquet"
        parquet_file(p, N, start=4 * 10**7)

        def read_json() -> None:
            data = files["jsonl-a"].read_bytes()
            opts = pj.ParseOptions(explicit_schema=lay.read_schema)
            assert pj.read_json(io.BytesIO(data), parse_options=opts).num_rows == N

        def read_avro() -> None:
            with files["avro-a"].open("rb") as fo:
                assert sum(1 for _ in fastavro.reader(fo)) == N

        def read_csv() -> None:
            import pyarrow.csv as pcsv

            assert pcsv.read_csv(files["csv-a"]).num_rows == N

        add("baseline: pyarrow JSON read", timed(read_json))
        add("baseline: pyarrow CSV read", timed(read_csv))
        add("baseline: fastavro read", timed(read_avro))
        add(
            "baseline: pyarrow Parquet read",
            timed(
                lambda: sum(b.num_rows for b in pq.ParquetFile(p).iter_batches(batch_size=BATCH))
            ),
        )

        def ingest(path: Path, columnar: bool) -> Callable[[], None]:
            def run() -> None:
                out = publish_file(h.ingest, path, "trades", batch_size=BATCH, columnar=columnar)
                assert out.result.accepted == N

            return run

        for name, path, columnar, reader in (
            (
                "JSONL via Arrow -> columnar path",
                files["jsonl-a"],
                True,
                "baseline: pyarrow JSON read",
            ),
            ("JSONL per-record path", files["jsonl-b"], False, "baseline: pyarrow JSON read"),
            ("CSV via Arrow -> columnar path", files["csv-a"], True, "baseline: pyarrow CSV read"),
            ("CSV per-record path", files["csv-b"], False, "baseline: pyarrow CSV read"),
            (
                "Avro OCF -> Arrow -> columnar path",
                files["avro-a"],
                True,
                "baseline: fastavro read",
            ),
            ("Avro OCF per-record path", files["avro-b"], False, "baseline: fastavro read"),
            ("Parquet columnar path", p, True, "baseline: pyarrow Parquet read"),
        ):
            rates = timed(ingest(path, columnar))
            add(name, rates, FLOOR)
            add(name, rates, reader)
    finally:
        h.close()
