"""The embedded log's stored batch format (issue 13): bytes per event, append and read cost,
each beside a raw SQLite baseline of the same bytes measured in the same run.

``python -m benchmarks.log_format [--events 200000] [--rounds 3]``

Records look like the hub's own (``benchmarks.scale`` ingests the same trades): the value is the
Avro datum of a trade (``benchmarks.e2e.trade``: strings, about 50 bytes) and the 11 envelope
headers of a hub event (CloudEvents attributes, tenant, classification, content type, natural
key) with per-record ids and times. The baseline stores the same keys, values and headers
(concatenated, no names) as one row per record with ``executemany`` in one ``BEGIN IMMEDIATE``
transaction per batch, WAL, the same ``synchronous`` (no Python encoding at all: the floor of
"raw SQLite insert of the same bytes"). Reads: the adapter with a cold batch cache against a
raw ``SELECT`` of those rows. Rounds alternate between the two and the best round counts (the
machine is shared). CPU figures are ``time.process_time`` of this process.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from adapters.sqlite_log import SqliteEventLog
from adapters.sqlite_log import batch as batch_codec
from benchmarks.e2e import trade
from core.ports.eventlog import Record

BATCH = 50_000  # events per append, as benchmarks.scale ingests


def _avro_string(s: str) -> bytes:
    data = s.encode()
    n = len(data) * 2  # Avro longs are zigzag varints; lengths are never negative
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out) + data


def make_records(n: int, start: int = 0) -> list[Record]:
    t0 = 1_796_238_600_000
    out = []
    for i in range(start, start + n):
        t = trade(i)
        value = b"".join(_avro_string(str(v)) for v in t.values())
        ms = t0 + i // 8
        event_id = b"%012x-7%03x-%016x" % (ms, i & 0xFFF, (i * 0x9E3779B97F4A7C15) & (1 << 64) - 1)
        out.append(
            Record(
                value=value,
                key=t["account_id"].encode(),
                headers=(
                    ("ce_specversion", b"1.0"),
                    ("ce_id", event_id),
                    ("ce_type", b"hub.trading.TradeExecuted"),
                    ("ce_time", b"2026-12-02T19:10:%02d.%06dZ" % (i // 1000 % 60, i * 37 % 10**6)),
                    ("ce_source", b"file:trades.parquet"),
                    ("ce_correlationid", event_id),
                    ("ce_causationid", b""),
                    ("ce_tenant", b"default"),
                    ("ce_classification", b"internal"),
                    ("content-type", b"application/vnd.hub.avro"),
                    ("hub-natural-key", b"trade.id.unique\x1f" + t["trade_id"].encode()),
                ),
                timestamp_ms=ms,
            )
        )
    return out


def _raw_rows(records: list[Record], first: int) -> list[tuple[object, ...]]:
    return [
        ("trades", 0, first + i, r.timestamp_ms, r.key, r.value, b"".join(v for _, v in r.headers))
        for i, r in enumerate(records)
    ]


def _raw_db(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute(
        "CREATE TABLE records (id INTEGER PRIMARY KEY, topic TEXT, part INTEGER,"
        " offset INTEGER, ts INTEGER, key BLOB, value BLOB, headers BLOB)"
    )
    return conn


def _file_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.parent.glob(path.name + "*"))


def _timed(fn: Callable[[], int]) -> tuple[int, float, float]:
    cpu0, t0 = time.process_time(), time.perf_counter()
    n = fn()
    return n, time.perf_counter() - t0, time.process_time() - cpu0


def run(events: int, rounds: int, folder: Path) -> list[str]:
    records = make_records(events)
    chunks = [records[i : i + BATCH] for i in range(0, events, BATCH)]
    rows = [_raw_rows(c, i * BATCH) for i, c in enumerate(chunks)]
    value_bytes = sum(len(r.value or b"") for r in records) / events
    best: dict[str, tuple[float, float]] = {}  # name -> (events per wall s, per CPU s)
    sizes: dict[str, float] = {}

    def keep(name: str, n: int, wall: float, cpu: float) -> None:
        w, c = best.get(name, (0.0, 0.0))
        best[name] = (max(w, n / wall), max(c, n / max(cpu, 1e-9)))

    insert = (
        "INSERT INTO records (topic, part, offset, ts, key, value, headers) VALUES (?,?,?,?,?,?,?)"
    )
    for r in range(rounds):
        raw_path, log_path = folder / f"raw-{r}.db", folder / f"log-{r}.sqlite"
        conn = _raw_db(raw_path)

        def raw_append(conn: sqlite3.Connection = conn) -> int:
            for chunk in rows:
                conn.execute("BEGIN IMMEDIATE")
                conn.executemany(insert, chunk)
                conn.execute("COMMIT")
            return events

        keep("append: raw SQLite insert (baseline)", *_timed(raw_append))
        log = SqliteEventLog(log_path, mac_key=b"k" * 32)
        log.create_topic("trades", 1)

        def log_append(log: SqliteEventLog = log) -> int:
            for chunk in chunks:
                log.append("trades", chunk)
            return events

        keep("append: SqliteEventLog, authenticated", *_timed(log_append))
        log.close()
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        sizes["raw SQLite rows (baseline)"] = _file_bytes(raw_path) / events

        def raw_read(conn: sqlite3.Connection = conn) -> int:
            return sum(
                1
                for _ in conn.execute(
                    "SELECT topic, part, offset, ts, key, value, headers FROM records ORDER BY id"
                )
            )

        keep("read: raw SQLite SELECT (baseline)", *_timed(raw_read))
        conn.close()
        with SqliteEventLog(log_path, mac_key=b"k" * 32) as log:
            log._writer.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            sizes["SqliteEventLog"] = _file_bytes(log_path) / events

        def log_read(log_path: Path = log_path) -> int:
            with SqliteEventLog(log_path, cache_records=1) as cold:  # a cold batch cache
                offset = n = 0
                while chunk := cold.read("trades", 0, offset, max_records=BATCH):
                    n += len(chunk)
                    offset = chunk[-1].offset + 1
            return n

        keep("read: SqliteEventLog, cold cache", *_timed(log_read))
        with sqlite3.connect(log_path) as db:
            blobs = [b for (b,) in db.execute("SELECT data FROM batches ORDER BY id")]

        def decode_only(blobs: list[bytes] = blobs) -> int:
            return sum(batch_codec.decode_batch(b)[0] for b in blobs)

        keep("read: decode_batch only (no SQLite)", *_timed(decode_only))
        # The previous format in the same run: format 1 blobs of the same records (the kept
        # encoder), decoded with the pure-Python header reference (the previous read path).
        old = []
        for blob in blobs:
            _n, ts, keys, values, hdrs = batch_codec.decode_batch(blob)
            old.append(batch_codec.encode_batch(keys, values, list(hdrs), list(ts), version=1))
        sizes["format 1 blobs (previous format, same records)"] = sum(map(len, old)) / events
        sizes["format 2 blobs"] = sum(map(len, blobs)) / events
        native = batch_codec.native_decode_headers
        batch_codec.native_decode_headers = None
        try:
            keep(
                "read: decode_batch only, format 1, Python headers",
                *_timed(lambda old=old: sum(batch_codec.decode_batch(b)[0] for b in old)),
            )
        finally:
            batch_codec.native_decode_headers = native
        keep(
            "read: decode_batch only, format 1, native headers",
            *_timed(lambda old=old: sum(batch_codec.decode_batch(b)[0] for b in old)),
        )
        raw_path.unlink()
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    out = [
        f"{events:,} events, batches of {BATCH:,}, {rounds} rounds (best counts), "
        f"synchronous=FULL, load {load}, native={'yes' if batch_codec.native_headers else 'no'}",
        "",
        "| stored | B/event | vs value (Avro datum) bytes | vs raw SQLite rows |",
        "|---|---:|---:|---:|",
    ]
    base = sizes["raw SQLite rows (baseline)"]
    out.append(f"| Avro datum (the value) | {value_bytes:.1f} | 1.00x | |")
    for name, size in sizes.items():
        out.append(f"| {name} | {size:.1f} | {size / value_bytes:.2f}x | {size / base:.2f}x |")
    out += [
        "",
        "| measure | events/s (wall) | events per CPU s | vs baseline (CPU) |",
        "|---|---:|---:|---:|",
    ]
    for name, (wall, cpu) in best.items():
        kind = name.split(":")[0]
        ref = best[next(k for k in best if k.startswith(kind) and "baseline" in k)][1]
        out.append(f"| {name} | {wall:,.0f} | {cpu:,.0f} | {cpu / ref:.2f}x |")
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--events", type=int, default=200_000)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="hub-log-format-") as tmp:
        print("\n".join(run(args.events, args.rounds, Path(tmp))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
