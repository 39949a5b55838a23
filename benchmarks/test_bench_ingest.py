"""Ingest throughput: Parquet (columnar and per-record), Avro, JSON over HTTP, beside baselines.

Baselines (same records, same run):
- fastavro ``schemaless_writer`` alone (the encoding floor of the per-record path);
- ``SqliteEventLog.append`` alone of pre-encoded wire-format records without headers (the
  storage floor), and the same with the 11 envelope headers an ingested record carries (what
  the log itself costs for what ingest appends);
- a raw pyarrow read of the Parquet file (``ParquetFile.iter_batches``, nothing else).
Parquet rows are reported against the pyarrow read and the SQLite baselines too.

Peak RSS is measured in a child process that streams one large Parquet file through
``publish_file`` (the columnar path); its size is ``INGEST_BENCH_BIG`` rows (default
10,000,000). Run: ``.venv/bin/pytest benchmarks/test_bench_ingest.py -q -s``.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import textwrap
import time
from decimal import Decimal
from pathlib import Path

import fastavro
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient

from benchmarks.conftest import Report
from benchmarks.e2e_common import ingested_records
from benchmarks.e2e_common import trade_rows as rows
from core.avro import serde
from core.ports.eventlog import Record
from hub.api.app import create_app
from hub.bootstrap import bootstrap
from hub.settings import load_settings
from ingest.files import publish_file
from tests.service.accounts import open_accounts

pytestmark = pytest.mark.slow
N = int(os.environ.get("INGEST_BENCH_N", "50000"))
BIG = int(os.environ.get("INGEST_BENCH_BIG", "10000000"))
BATCH = int(os.environ.get("INGEST_BENCH_BATCH", "10000"))
GROUP = "ingest"
BASELINES = (
    "baseline: fastavro encode alone",
    "baseline: SQLite append alone",
    "baseline: SQLite append, with headers",
    "baseline: raw pyarrow read",
)


def parquet_file(path: Path, n: int, chunk: int = 500_000, start: int = 0) -> None:
    schema = pa.schema(
        [
            ("trade_id", pa.string()),
            ("account_id", pa.string()),
            ("instrument", pa.string()),
            ("side", pa.string()),
            ("quantity", pa.decimal128(18, 4)),
            ("price", pa.decimal128(18, 8)),
            ("currency", pa.string()),
            ("executed_at", pa.timestamp("us", tz="UTC")),
        ]
    )
    with pq.ParquetWriter(path, schema) as w:
        for s in range(start, start + n, chunk):
            m = min(chunk, start + n - s)
            w.write_table(
                pa.table(
                    {
                        "trade_id": [f"T-{i}" for i in range(s, s + m)],
                        "account_id": [f"ACC-{i % 500}" for i in range(s, s + m)],
                        "instrument": ["AAPL"] * m,
                        "side": ["BUY"] * m,
                        "quantity": pa.array([Decimal(100)] * m, pa.decimal128(18, 4)),
                        "price": pa.array([Decimal("12.5")] * m, pa.decimal128(18, 8)),
                        "currency": ["USD"] * m,
                        "executed_at": pa.array(
                            [1_795_600_000_000_000 + i for i in range(s, s + m)], pa.int64()
                        ).cast(pa.timestamp("us", tz="UTC")),
                    },
                    schema=schema,
                )
            )


def test_ingest_throughput(tmp_path: Path, report: Report) -> None:
    h = bootstrap(load_settings(environ={}, data_dir=tmp_path / "d", sqlite_synchronous="NORMAL"))
    try:
        open_accounts(h, [f"ACC-{i}" for i in range(500)])  # trade.account.known
        sv = h.registry.get_version("trades-value", "latest")
        schema = h.registry.parsed(sv.id)
        datums = [serde.from_json(r, schema.parsed) for r in rows(N)]
        # baseline 1: fastavro encoding alone
        t = time.perf_counter()
        encoded = [serde.encode(sv.id, schema, d) for d in datums]
        report.add(
            GROUP, "baseline: fastavro encode alone", N / (time.perf_counter() - t), "events/s"
        )
        # baseline 2: SQLite append alone of pre-encoded records (10k per batch)
        h.log.create_topic("bench", 1)
        recs = [Record(value=v, key=b"k") for v in encoded]
        t = time.perf_counter()
        for i in range(0, N, 10_000):
            h.log.append("bench", recs[i : i + 10_000])
        report.add(
            GROUP, "baseline: SQLite append alone", N / (time.perf_counter() - t), "events/s"
        )
        # baseline 3: the same with an ingested record's envelope headers (11, 3 unique)
        h.log.create_topic("bench_h", 1)
        hrecs = ingested_records(encoded, natural_keys=True)
        t = time.perf_counter()
        for i in range(0, N, 10_000):
            h.log.append("bench_h", hrecs[i : i + 10_000])
        report.add(
            GROUP,
            "baseline: SQLite append, with headers",
            N / (time.perf_counter() - t),
            "events/s",
        )
        # Parquet file: raw read, columnar path, per-record path
        f = tmp_path / "t.parquet"
        parquet_file(f, N)
        t = time.perf_counter()
        read = sum(rb.num_rows for rb in pq.ParquetFile(f).iter_batches(batch_size=BATCH))
        assert read == N
        report.add(GROUP, "baseline: raw pyarrow read", N / (time.perf_counter() - t), "events/s")
        f2 = tmp_path / "t2.parquet"  # other trade ids: not duplicates of the first file's
        parquet_file(f2, N, start=10**8)
        for name, columnar, path in (
            ("Parquet columnar path", True, f),
            ("Parquet per-record path", False, f2),
        ):
            t = time.perf_counter()
            out = publish_file(h.ingest, path, "trades", batch_size=BATCH, columnar=columnar)
            rate = N / (time.perf_counter() - t)
            assert out.result.accepted == N
            for base_name in BASELINES:
                report.add(GROUP, name, rate, "events/s", baseline=base_name)
        # Avro OCF
        g = tmp_path / "t.avro"
        with g.open("wb") as fo:
            fastavro.writer(
                fo,
                fastavro.parse_schema(json.loads(schema.text)),
                [{**d, "trade_id": "A" + d["trade_id"]} for d in datums],
            )
        t = time.perf_counter()
        out = publish_file(h.ingest, g, "trades", batch_size=BATCH)
        rate = N / (time.perf_counter() - t)
        assert out.result.accepted == N
        for base_name in BASELINES[:3]:
            report.add(GROUP, "Avro OCF file -> pipeline", rate, "events/s", baseline=base_name)
        # JSON over HTTP (in-process ASGI client), batches of 1,000
        token = h.keys.create(["admin"], principal="bench").token
        hdr = {"Authorization": "Basic " + base64.b64encode(token.encode()).decode()}
        bodies = [
            json.dumps({"events": [{"value": r} for r in rows(1000, 10**7 + s)]})
            for s in range(0, N // 5, 1000)
        ]
        with TestClient(create_app(h)) as c:
            t = time.perf_counter()
            for b in bodies:
                r = c.post("/v1/ingest/trades", content=b, headers=hdr)
                assert r.json()["accepted"] == 1000
            n = len(bodies) * 1000
        rate = n / (time.perf_counter() - t)
        for base_name in BASELINES[:3]:
            report.add(GROUP, "JSON over HTTP -> pipeline", rate, "events/s", baseline=base_name)
    finally:
        h.close()


# 10M rows take minutes (writing the file, then the ingest): the suite's 300 s timeout cut it.
@pytest.mark.timeout(max(300, BIG // 4000))
def test_peak_rss_streaming_a_big_parquet_file(tmp_path: Path, report: Report) -> None:
    f = tmp_path / "big.parquet"
    parquet_file(f, BIG)
    code = textwrap.dedent(
        f"""
        import resource, time
        from pathlib import Path
        from hub.bootstrap import bootstrap
        from ingest.files import publish_file
        from hub.settings import load_settings
        from tests.service.accounts import open_accounts
        h = bootstrap(load_settings(environ={{}}, data_dir=Path({str(tmp_path / "d")!r}),
                                    sqlite_synchronous="NORMAL", dedupe_max_keys=200_000))
        open_accounts(h, [f"ACC-{{i}}" for i in range(500)])
        t = time.perf_counter()
        out = publish_file(h.ingest, Path({str(f)!r}), "trades", batch_size={BATCH})
        took = time.perf_counter() - t
        print(out.result.accepted, took, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
        """
    )
    res = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).parent.parent,
    )
    accepted, took, rss_kb = res.stdout.split()
    assert int(accepted) == BIG
    size = f.stat().st_size / 2**20
    report.add("ingest big file", f"Parquet {BIG:,} rows: file size", size, "MiB")
    report.add("ingest big file", f"Parquet {BIG:,} rows: rate", BIG / float(took), "events/s")
    report.add(
        "ingest big file",
        f"Parquet {BIG:,} rows: peak RSS",
        int(rss_kb) / 1024,
        "MiB",
        higher_is_better=False,
    )
