"""HTTP batches of ``POST /v1/ingest/{topic}`` against a real ``hub serve`` (uvicorn), beside the
same run's baselines.

1. HTTP: ``hub serve`` on a fresh data folder in a child process; one keep-alive ``httpx``
   client posts batches of trades (``--sizes``, default 1,000 and 10,000 records per request) as
   ``{"events": [...]}`` bodies and as NDJSON, bodies encoded before the clock starts, one
   request at a time. Reported: events per wall second, and events per CPU second of the server
   process (``psutil``, all its threads: parse, validate, encode, log append, ledger leaves, the
   policy decision and its record). Alert rules are off (``HUB_ALERT_INTERVAL_S=0``): their
   periodic ledger verify would land on some requests' CPU and not on others.
2. In-process, on another hub (same settings), the same kind of bodies through ``ingest_body``:
   the per-record reference (``columnar=False``, the route before this change) and the columnar
   path, alternating.
3. Baselines of the same run (same hub settings): the JSON lines file path
   (``publish_file``, Arrow reader + columnar path) over the same number of trades, with and
   without the ledger catching up afterwards (the route covers its records on the ledger before
   answering, ``Ledger.cover``); and ``SqliteEventLog.append`` alone of the same number of
   pre-encoded records with an ingested record's headers (the storage floor).

SQLite runs with ``synchronous=NORMAL`` everywhere (``--sync FULL`` to change it), as
``benchmarks/test_bench_file_formats.py`` does. The machine is shared: read the CPU figures and
the same-run ratios; the load average is printed with each block.

Run: ``.venv/bin/python -m benchmarks.http_ingest [--port 42080] [--events 100000]``
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import psutil

from benchmarks.e2e_common import ingested_records, trade_rows

START = [0]  # the next trade number: every trade of the run has its own id


def trades(n: int) -> list[dict[str, Any]]:
    s = START[0]
    START[0] += n
    return trade_rows(n, s)


KINDS = ("json", "ndjson", "arrow")
CTYPES = {
    "json": "application/json",
    "ndjson": "application/x-ndjson",
    "arrow": "application/vnd.apache.arrow.stream",
}


def body(n: int, kind: str) -> bytes:
    """``n`` new trades as a request body of ``kind`` (``json``, ``ndjson``, ``arrow``: an
    uncompressed Arrow IPC stream of the same values, typed as the trades schema's columns)."""
    rows = trades(n)
    if kind == "ndjson":
        return b"".join(json.dumps(r).encode() + b"\n" for r in rows)
    if kind == "arrow":
        return arrow_body(rows)
    return json.dumps({"events": rows}).encode()


def arrow_body(rows: list[dict[str, Any]]) -> bytes:
    from datetime import datetime
    from decimal import Decimal

    import pyarrow as pa

    def col(name: str) -> list[Any]:
        return [r[name] for r in rows]

    table = pa.table(
        {
            "trade_id": col("trade_id"),
            "account_id": col("account_id"),
            "instrument": col("instrument"),
            "side": col("side"),
            "quantity": pa.array(map(Decimal, col("quantity")), pa.decimal128(18, 4)),
            "price": pa.array(map(Decimal, col("price")), pa.decimal128(18, 8)),
            "currency": col("currency"),
            "executed_at": pa.array(
                [datetime.fromisoformat(x) for x in col("executed_at")],
                pa.timestamp("us", tz="UTC"),
            ),
        }
    )
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as w:
        w.write_table(table)
    out: bytes = sink.getvalue().to_pybytes()
    return out


def load() -> str:
    return "load {:.1f} {:.1f} {:.1f}".format(*os.getloadavg())


def _prepare(data: Path, sync: str) -> str:
    from hub.bootstrap import bootstrap
    from hub.settings import load_settings
    from tests.service.accounts import open_accounts

    h = bootstrap(load_settings(environ={}, data_dir=data, sqlite_synchronous=sync))
    try:
        open_accounts(h, [f"ACC-{i}" for i in range(500)])
        return str(h.keys.create(["admin"], principal="bench").token)
    finally:
        h.close()


# The route before issue 13's handoff: the ingest result hands nothing (its columns are not
# built), so ``Ledger.cover`` reads what the request appended back from the log (the same-run
# baseline of ``--handoff`` and ``--against``).
_NO_HANDOFF = "import ingest.pipeline as p; p.IngestResult.appended_columns = lambda self: []; "


def _serve(
    data: Path, port: int, sync: str, handoff: bool = True, tree: Path | None = None
) -> subprocess.Popen[bytes]:
    """``hub serve`` on ``data``; from the source tree ``tree`` (an unpacked ``git archive`` of
    another commit, same virtualenv) instead of this checkout when given."""
    env = {
        **os.environ,
        "HUB_DATA_DIR": str(data),
        "HUB_PROJECTION_AUTOSTART": "false",
        "HUB_LOG_LEVEL": "WARNING",
        "HUB_SQLITE_SYNCHRONOUS": sync,
        "HUB_ALERT_INTERVAL_S": "0",  # no alert rules (a ledger verify) running between requests
    }
    start = ("" if handoff else _NO_HANDOFF) + "from hub.cli import main; main()"
    cmd = [sys.executable, "-c", start, "serve", "--port", str(port)]
    if tree is not None:  # ``-c`` puts the working folder first on sys.path
        env["PYTHONPATH"] = str(tree)
    return healthy(subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, cwd=tree), port, 120)


def healthy(proc: subprocess.Popen[bytes], port: int, seconds: float) -> subprocess.Popen[bytes]:
    """``proc`` (a ``hub serve`` on ``port``) once ``/health`` answers 200; exits the benchmark
    if it dies or does not answer within ``seconds``."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        if proc.poll() is not None:
            raise SystemExit(f"hub serve exited with {proc.returncode}")
        time.sleep(0.2)
    proc.kill()
    raise SystemExit(f"hub serve did not answer /health within {seconds:.0f} s")


def _cpu(p: psutil.Process) -> float:
    t = p.cpu_times()
    return float(t.user + t.system)


def http_block(
    port: int,
    token: str,
    proc: subprocess.Popen[bytes],
    sizes: list[int],
    total: int,
    kinds: tuple[str, ...] = KINDS,
) -> list[tuple[str, float, float]]:
    """Each (size, body kind) twice, alternating; events/s and server events/CPU-s."""
    server = psutil.Process(proc.pid)
    auth = {"Authorization": "Basic " + base64.b64encode(token.encode()).decode()}
    out = []
    runs = [(size, kind) for _ in range(2) for size in sizes for kind in kinds]
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers=auth, timeout=600) as c:
        for size, kind in runs:
            ctype = {"content-type": CTYPES[kind]}
            reqs = max(3, total // size)
            bodies = [body(size, kind) for _ in range(reqs + 1)]
            r = c.post("/v1/ingest/trades", content=bodies[0], headers=ctype)
            assert r.status_code == 200 and r.json()["accepted"] == size, r.text[:300]
            cpu0, t0 = _cpu(server), time.perf_counter()
            for b in bodies[1:]:
                r = c.post("/v1/ingest/trades", content=b, headers=ctype)
                assert r.status_code == 200 and r.json()["accepted"] == size, r.text[:300]
            wall, cpu = time.perf_counter() - t0, _cpu(server) - cpu0
            n = size * reqs
            name = f"HTTP {kind} {size:,}/request"
            out.append((name, n / wall, n / cpu))
            print(
                f"  {name}: {n / wall:,.0f} events/s, server {n / cpu:,.0f} events/CPU-s, "
                f"{1e6 * cpu / n:.1f} us CPU/event ({load()})"
            )
    return out


def timed(n: int, fn: Callable[[], Any]) -> tuple[float, float]:
    c, t = time.process_time(), time.perf_counter()
    fn()
    return n / (time.perf_counter() - t), n / max(time.process_time() - c, 1e-9)


def in_process_block(
    data: Path, sync: str, size: int, total: int, ingest_rounds: int = 2
) -> list[tuple[str, float, float]]:
    from core.avro import serde
    from hub.api.ingest_batch import ingest_body
    from hub.bootstrap import bootstrap
    from hub.settings import load_settings
    from ingest.files import publish_file
    from tests.service.accounts import open_accounts

    h = bootstrap(load_settings(environ={}, data_dir=data, sqlite_synchronous=sync))
    out = []

    def report(name: str, rates: tuple[float, float]) -> None:
        out.append((name, *rates))
        print(f"  {name}: {rates[0]:,.0f} events/s, {rates[1]:,.0f} events/CPU-s ({load()})")

    try:
        open_accounts(h, [f"ACC-{i}" for i in range(500)])
        kw: dict[str, Any] = dict(source="http:bench", producer="bench", tenant="default")
        kw["ndjson"] = False
        reqs = max(2, total // size)
        ingest_body(h.ingest, "trades", body(size, "json"), **kw)  # warm caches
        for rnd in range(ingest_rounds):  # alternating, twice by default
            for columnar in (False, True):
                bodies = [body(size, "json") for _ in range(reqs)]

                def run(bodies: list[bytes] = bodies, columnar: bool = columnar) -> None:
                    for b in bodies:
                        r = ingest_body(h.ingest, "trades", b, columnar=columnar, **kw)
                        assert r.accepted == size
                        h.ledger.cover()

                name = "columnar path" if columnar else "per-record reference"
                report(
                    f"ingest_body {name} + ledger, JSON {size:,} (round {rnd + 1})",
                    timed(size * reqs, run),
                )
        n = size * reqs
        path = data.parent / "trades.jsonl"
        for with_ledger in (False, True):
            path.write_bytes(b"".join(json.dumps(r).encode() + b"\n" for r in trades(n)))

            def file_run(with_ledger: bool = with_ledger) -> None:
                res = publish_file(h.ingest, path, "trades", batch_size=size)
                assert res.result.accepted == n
                if with_ledger:
                    h.ledger.cover()

            h.ledger.cover()
            report(
                f"file JSONL (Arrow, columnar){' + ledger' if with_ledger else ''}, "
                f"batches of {size:,}",
                timed(n, file_run),
            )
        sv = h.registry.get_version("trades-value", "latest")
        schema = h.registry.parsed(sv.id)
        encoded = [
            serde.encode(sv.id, schema, serde.from_json(r, schema.parsed)) for r in trades(n)
        ]
        h.log.create_topic("bench_floor", 1)
        recs = ingested_records(encoded)
        report(
            f"raw SqliteEventLog.append, batches of {size:,}",
            timed(
                n,
                lambda: [
                    h.log.append("bench_floor", recs[i : i + size]) for i in range(0, n, size)
                ],
            ),
        )
        report(
            f"raw sqlite3 INSERT of the same bytes, batches of {size:,}",
            raw_sqlite(data, recs, size),
        )
    finally:
        h.close()
    return out


def raw_sqlite(data: Path, recs: list[Any], size: int) -> tuple[float, float]:
    """The floor under every path: the same records' key, value and header bytes inserted by
    ``sqlite3`` ``executemany`` into one plain table (WAL, ``synchronous=NORMAL``), one
    transaction per ``size`` rows; the rows are built before the clock starts."""
    import sqlite3

    rows = [
        (r.key, r.value, b"".join(k.encode() + b"\0" + v + b"\0" for k, v in r.headers))
        for r in recs
    ]
    db = sqlite3.connect(data.parent / "raw.sqlite", isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute("CREATE TABLE r (o INTEGER PRIMARY KEY, k BLOB, v BLOB, h BLOB)")

    def run() -> None:
        for i in range(0, len(rows), size):
            db.execute("BEGIN")
            db.executemany("INSERT INTO r (k, v, h) VALUES (?, ?, ?)", rows[i : i + size])
            db.execute("COMMIT")

    try:
        return timed(len(rows), run)
    finally:
        db.close()


def served_block(
    title: str,
    data: Path,
    port: int,
    sync: str,
    sizes: list[int],
    total: int,
    handoff: bool = True,
    tree: Path | None = None,
    kinds: tuple[str, ...] = KINDS,
) -> None:
    """A server (``_serve``) on the new data folder ``data``: ``title`` and the load printed,
    one ``http_block`` of the body ``kinds`` against it, then the server stopped."""
    token = _prepare(data, sync)
    proc = _serve(data, port, sync, handoff, tree)
    try:
        print(f"{title} ({load()})")
        http_block(port, token, proc, sizes, total, kinds)
    finally:
        proc.terminate()
        proc.wait(30)


def handoff_compare(port: int, sync: str, sizes: list[int], total: int) -> None:
    """Same run: two servers on two data folders, one handing over, one reading back; blocks
    alternate (read back, handed, read back, handed) so load drift hits both."""
    with tempfile.TemporaryDirectory(prefix="hub-http-handoff-") as tmp:
        root = Path(tmp)
        for rnd in range(2):
            for handoff in (False, True):
                data = root / f"{'handed' if handoff else 'read'}-{rnd}"
                title = f"cover {'handed the records' if handoff else 'reads back'}"
                served_block(title, data, port, sync, sizes, total, handoff)


def tree_compare(against: Path, port: int, sync: str, sizes: list[int], total: int) -> None:
    """Same run, alternating twice: a server from ``against`` (the old commit's tree: JSON and
    NDJSON bodies; it reads any other body as JSON), then one from this checkout (JSON, NDJSON
    and Arrow IPC bodies). Then this checkout's same-run baselines: the JSON lines file path,
    the raw log append and a raw ``sqlite3`` insert of the same bytes."""
    with tempfile.TemporaryDirectory(prefix="hub-http-trees-") as tmp:
        root = Path(tmp)
        runs = [("old tree", against, ("json", "ndjson")), ("new tree", None, KINDS)]
        for rnd in range(2):
            for name, tree, kinds in runs:
                data = root / f"{rnd}-{name.replace(' ', '-')}"
                served_block(name, data, port, sync, sizes, total, True, tree, kinds)
        print(f"in-process baselines, this checkout ({load()})")
        in_process_block(root / "inproc", sync, max(sizes), total, ingest_rounds=0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--port", type=int, default=42080)
    ap.add_argument("--events", type=int, default=100_000, help="events per measurement")
    ap.add_argument("--sizes", default="1000,10000")
    ap.add_argument("--sync", default="NORMAL", choices=["FULL", "NORMAL", "OFF"])
    ap.add_argument(
        "--handoff",
        action="store_true",
        help="only HTTP: the route handing its appended records to Ledger.cover, against a "
        "server whose cover reads them back from the log (alternating, twice)",
    )
    ap.add_argument(
        "--against",
        type=Path,
        help="a source tree of another commit (git archive ... | tar -x -C DIR): its server "
        "alternates with this checkout's, beside this run's file and raw-append baselines",
    )
    args = ap.parse_args()
    sizes = [int(x) for x in args.sizes.split(",")]
    if args.against:
        tree_compare(args.against.resolve(), args.port, args.sync, sizes, args.events)
        return
    if args.handoff:
        handoff_compare(args.port, args.sync, sizes, args.events)
        return
    with tempfile.TemporaryDirectory(prefix="hub-http-ingest-") as tmp:
        root = Path(tmp)
        print(f"HTTP ingest, {args.events:,} events per figure, sqlite synchronous={args.sync}")
        title = "hub serve (uvicorn, one process)"
        served_block(title, root / "served", args.port, args.sync, sizes, args.events)
        print(f"in-process, same settings ({load()})")
        in_process_block(root / "inproc", args.sync, max(sizes), args.events)


if __name__ == "__main__":
    main()
