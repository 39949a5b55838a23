"""Parquet, Avro, JSONL or CSV file ingest, full path (validate, encode, log, ledger leaf)
beside raw SQLite.

One process: a hub, ``N`` trades written as a file of the format, ``publish_file`` with
10,000-row batches, then the ledger sync (a leaf per record); then the same-run baselines on the
bytes that run stored:
- ``raw batches``: the stored batch rows (``topic_id, part, offsets, count, max_ts, mac, data``:
  the very bytes the log wrote) inserted with ``executemany`` into a fresh SQLite file of the
  log's schema (WAL, ``synchronous=FULL``), one commit per 10,000 records, as ingest commits;
- ``raw rows``: the encoded Avro values, one row per event, the same commits (a naive store);
- ``raw sha256``: one SHA-256 of each encoded value (the floor of a leaf per record).
Every figure is events per CPU second of this process (``time.process_time``; the machine is
shared, wall rates swing) and per wall second. A file of 1,000 trades of the same format is
published (and covered on the ledger) before the clock starts, as in a hub that has run: the
process's one-time costs (pyarrow's first conversion of Python values imports pandas, ~0.2-0.4
CPU-s, 1 µs per event of a 300k run; the Parquet decoder child's start) stay out of the
per-event figures (``--cold`` keeps them in, as before session 23). The script imports the
tree it is run from, so the same file measures an older tree: ``cd /tmp/old && PYTHONPATH=.
python /path/to/benchmarks/file_full_path.py --rows 1000000``.
``--follow`` (session 24): the ledger's follower runs on its own thread during the publish, as
``hub serve`` runs it (``Ledger.start``), and the clock stops when a last ``sync`` has covered
every record: events per wall second and per CPU second of the whole (every thread of the
process, plus the Parquet decoder child's CPU over the run), beside the serial figures.
Run: ``.venv/bin/python -m benchmarks.file_full_path --rows 1000000 [--format Avro|JSONL|CSV]``.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sqlite3
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hub.bootstrap import Hub


def _timed(n: int, fn: Callable[[], Any]) -> tuple[float, float, Any]:
    c0, w0 = time.process_time(), time.perf_counter()
    out = fn()
    c1, w1 = time.process_time(), time.perf_counter()
    return n / max(c1 - c0, 1e-9), n / max(w1 - w0, 1e-9), out


def _children_cpu(h: Hub) -> float:
    """CPU seconds the hub's Parquet decoder children have used so far (they live across files:
    ``process_time`` and ``RUSAGE_CHILDREN`` do not see them until they exit)."""
    pool = getattr(h.ingest, "parquet", None)
    total = 0.0
    for pid in pool.pids() if pool is not None else []:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def _followed(h: Hub, n: int, publish: Callable[[], Any]) -> tuple[float, float, float, Any]:
    """``publish()`` with the ledger's follower running, then a last sync: events per CPU-s of
    the process, per CPU-s with the decoder children's, and per wall second."""
    h.ledger.start()
    try:
        k0 = _children_cpu(h)
        c0, w0 = time.process_time(), time.perf_counter()
        out = publish()
        h.ledger.sync()
        c1, w1 = time.process_time(), time.perf_counter()
        k1 = _children_cpu(h)
    finally:
        h.ledger.stop()
    cpu = max(c1 - c0, 1e-9)
    return n / cpu, n / (cpu + max(k1 - k0, 0.0)), n / max(w1 - w0, 1e-9), out


def _raw_insert(folder: Path, rows: list[tuple[Any, ...]], per_commit: int) -> None:
    """The stored rows into a fresh file of the log's layout, one commit per ``per_commit``
    records (the rows' ``record_count`` column, index 4)."""
    conn = sqlite3.connect(folder / "raw.db", isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute(
        "CREATE TABLE batches (id INTEGER PRIMARY KEY, topic_id INTEGER NOT NULL, part INTEGER"
        " NOT NULL, base_offset INTEGER NOT NULL, last_offset INTEGER NOT NULL, record_count"
        " INTEGER NOT NULL, max_timestamp INTEGER NOT NULL, mac BLOB, data BLOB NOT NULL)"
    )
    conn.execute("CREATE UNIQUE INDEX by_offset ON batches (topic_id, part, base_offset)")
    sql = "INSERT INTO batches (topic_id, part, base_offset, last_offset, record_count, "
    sql += "max_timestamp, mac, data) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
    start, count = 0, 0
    for i, row in enumerate(rows):
        count += row[4]
        if count >= per_commit or i == len(rows) - 1:
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany(sql, rows[start : i + 1])
            conn.execute("COMMIT")
            start, count = i + 1, 0
    conn.close()


def _raw_rows(folder: Path, values: list[bytes], per_commit: int) -> None:
    """One row per event (its Avro value), one commit per ``per_commit`` events."""
    conn = sqlite3.connect(folder / "rows.db", isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("CREATE TABLE events (id INTEGER PRIMARY KEY, value BLOB NOT NULL)")
    for i in range(0, len(values), per_commit):
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(
            "INSERT INTO events (value) VALUES (?)", ((v,) for v in values[i : i + per_commit])
        )
        conn.execute("COMMIT")
    conn.close()


@contextmanager
def accounts_hub() -> Iterator[tuple[Hub, Path]]:
    """A hub (no projection runner) in a temporary folder, the benchmark's accounts opened and
    checkpointed, and that folder (for the input files); closed and removed after. Imported
    when called, from the tree the script runs in."""
    from benchmarks.e2e_common import ACCOUNTS
    from hub.bootstrap import bootstrap
    from hub.settings import load_settings
    from tests.service.accounts import open_accounts

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        h = bootstrap(load_settings(environ={}, data_dir=folder / "d", projection_autostart=False))
        try:
            open_accounts(h, [f"ACC-{i}" for i in range(ACCOUNTS)])
            h.ledger.sync(force_checkpoint=True)
            yield h, folder
        finally:
            h.close()


def trades_file(h: Hub, folder: Path, fmt: str, n: int, start: int) -> Path:
    """``n`` trades (ids from ``start``) as one ``fmt`` file in ``folder`` (made here); Avro
    with the hub's registered ``trades-value`` schema."""
    from benchmarks.e2e import write_files

    if fmt != "Avro":
        return write_files(folder, n, start)[fmt]
    from benchmarks.file_columns import _avro

    sv = h.registry.get_version("trades-value", "latest")
    folder.mkdir()
    return _avro(folder / "t.avro", sv.schema.text, h.registry.parsed(sv.id).parsed, n, start)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--format", default="Parquet", choices=["Parquet", "Avro", "JSONL", "CSV"])
    ap.add_argument("--label", default=os.getcwd())
    ap.add_argument("--cold", action="store_true", help="no warm-up file before the clock")
    ap.add_argument(
        "--follow", action="store_true", help="the ledger follower runs during the publish"
    )
    args = ap.parse_args(argv)
    n = args.rows

    from ingest.files import publish_file

    with accounts_hub() as (h, folder):
        path = trades_file(h, folder / "f", args.format, n, 10**8)
        if not args.cold:
            warm = trades_file(h, folder / "w", args.format, 1_000, 10**9)
            assert publish_file(h.ingest, warm, "trades").result.accepted == 1_000
            h.ledger.sync()
        load = os.getloadavg()[0]
        if args.follow:
            fcpu, fkcpu, fwall, out = _followed(
                h, n, lambda: publish_file(h.ingest, path, "trades", batch_size=10_000)
            )
            assert out.result.accepted == n, out.result
            print(
                f"{args.label} {args.format} n={n} load={load:.1f} followed | per CPU-s: full"
                f" {fcpu:,.0f} (with decoder child {fkcpu:,.0f}) | wall: full {fwall:,.0f}"
                f" | CPU s/s {fwall / fcpu:.2f} | load after {os.getloadavg()[0]:.1f}",
                flush=True,
            )
            return 0
        cpu, wall, out = _timed(
            n, lambda: publish_file(h.ingest, path, "trades", batch_size=10_000)
        )
        assert out.result.accepted == n, out.result
        lcpu, lwall, _ = _timed(n, h.ledger.sync)
        full = 1 / (1 / cpu + 1 / lcpu)
        db = h.log._path  # type: ignore[attr-defined]
        with sqlite3.connect(db) as conn:
            rows = conn.execute(
                "SELECT b.topic_id, b.part, b.base_offset, b.last_offset, b.record_count,"
                " b.max_timestamp, b.mac, b.data FROM batches b JOIN topics t"
                " ON t.id = b.topic_id WHERE t.name = 'trades' ORDER BY b.id"
            ).fetchall()
        values = [
            v
            for p, end in sorted(h.log.end_offsets("trades").items())
            for v in h.log.read_columns("trades", p, 0, end + 1).values
        ]
        if not args.cold:  # the warm-up file's batches (stored first) are not in the baselines
            warm_rows = 0
            while sum(r[4] for r in rows[:warm_rows]) < 1_000:
                warm_rows += 1
            rows, values = rows[warm_rows:], values[len(values) - n :]
        assert sum(r[4] for r in rows) == n == len(values)
        rcpu, rwall, _ = _timed(n, lambda: _raw_insert(folder, rows, 10_000))
        vcpu, vwall, _ = _timed(n, lambda: _raw_rows(folder, values, 10_000))
        hcpu, _, _ = _timed(n, lambda: [hashlib.sha256(v).digest() for v in values])
        print(
            f"{args.label} {args.format} n={n} load={load:.1f} | per CPU-s: publish {cpu:,.0f}"
            f" ledger {lcpu:,.0f} full {full:,.0f} raw-batches {rcpu:,.0f} raw-rows"
            f" {vcpu:,.0f} raw-sha256 {hcpu:,.0f} | full/raw-batches {full / rcpu:.3f}"
            f" full/raw-rows {full / vcpu:.3f} | wall: publish {wall:,.0f} ledger {lwall:,.0f}"
            f" raw-batches {rwall:,.0f} raw-rows {vwall:,.0f}",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
