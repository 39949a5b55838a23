"""Ingest throughput: JSON over HTTP, Parquet files, Avro files, beside same-run baselines.

Baselines (same records, same run): fastavro ``schemaless_writer`` alone (the encoding floor of
the per-record path) and ``SqliteEventLog.append`` alone of pre-encoded wire-format records
(the storage floor). Peak RSS is measured in a child process that streams one large Parquet
file through ``publish_file``; its size is ``INGEST_BENCH_BIG`` rows (default 1,000,000: the
per-record path runs near 15-20 k rows/s here, so 10 M rows would take ~10 minutes, over the
~3-minute budget). Run: ``.venv/bin/pytest benchmarks/test_bench_ingest.py -q -s``.
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
from hub import serde
from hub.api.app import create_app
from hub.bootstrap import bootstrap
from hub.ingest.files import publish_file
from hub.ports.eventlog import Record
from hub.settings import load_settings

pytestmark = pytest.mark.slow
N = int(os.environ.get("INGEST_BENCH_N", "50000"))
BIG = int(os.environ.get("INGEST_BENCH_BIG", "1000000"))
GROUP = "ingest"


def rows(n: int, start: int = 0) -> list[dict]:
    return [
        {
            "trade_id": f"T-{i}",
            "account_id": f"ACC-{i % 500}",
            "instrument": "AAPL",
            "side": "BUY",
            "quantity": "100",
            "price": "12.5",
            "currency": "USD",
            "executed_at": "2026-11-25T14:30:00.000000Z",
        }
        for i in range(start, start + n)
    ]


def parquet_file(path: Path, n: int, chunk: int = 500_000) -> None:
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
        for s in range(0, n, chunk):
            m = min(chunk, n - s)
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
        # Parquet file
        f = tmp_path / "t.parquet"
        parquet_file(f, N)
        t = time.perf_counter()
        out = publish_file(h.ingest, f, "trades", batch_size=10_000)
        assert out.result.accepted == N
        report.add(
            GROUP,
            "Parquet file -> pipeline",
            N / (time.perf_counter() - t),
            "events/s",
            baseline="baseline: fastavro encode alone",
        )
        # Avro OCF
        g = tmp_path / "t.avro"
        with g.open("wb") as fo:
            fastavro.writer(
                fo,
                fastavro.parse_schema(json.loads(schema.text)),
                [{**d, "trade_id": "A" + d["trade_id"]} for d in datums],
            )
        t = time.perf_counter()
        out = publish_file(h.ingest, g, "trades", batch_size=10_000)
        assert out.result.accepted == N
        report.add(
            GROUP,
            "Avro OCF file -> pipeline",
            N / (time.perf_counter() - t),
            "events/s",
            baseline="baseline: fastavro encode alone",
        )
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
        report.add(
            GROUP,
            "JSON over HTTP -> pipeline",
            n / (time.perf_counter() - t),
            "events/s",
            baseline="baseline: fastavro encode alone",
        )
    finally:
        h.close()


def test_peak_rss_streaming_a_big_parquet_file(tmp_path: Path, report: Report) -> None:
    f = tmp_path / "big.parquet"
    parquet_file(f, BIG)
    code = textwrap.dedent(
        f"""
        import resource, time
        from pathlib import Path
        from hub.bootstrap import bootstrap
        from hub.ingest.files import publish_file
        from hub.settings import load_settings
        h = bootstrap(load_settings(environ={{}}, data_dir=Path({str(tmp_path / "d")!r}),
                                    sqlite_synchronous="NORMAL", dedupe_max_keys=200_000))
        t = time.perf_counter()
        out = publish_file(h.ingest, Path({str(f)!r}), "trades", batch_size=10_000)
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
    report.add("ingest big file", f"Parquet {BIG:,} rows: rate", BIG / float(took), "events/s")
    report.add(
        "ingest big file",
        f"Parquet {BIG:,} rows: peak RSS",
        int(rss_kb) / 1024,
        "MiB",
        higher_is_better=False,
    )
