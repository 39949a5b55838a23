"""The load harness's own parsing and arithmetic (``benchmarks/e2e*.py``, ``benchmarks/scale.py``):
a wrong parse would put a wrong baseline beside every figure of the report."""

from __future__ import annotations

from pathlib import Path

from benchmarks.e2e import Run, table_row, target_cell
from benchmarks.e2e_kafka import PERF_LINE, summarise_profile
from benchmarks.scale import disk_estimate, report, write_csv

# Lines as kafka-producer-perf-test 4.1 prints them (a 5-second window, then the final summary).
WINDOW = (
    "593228 records sent, 118645.6 records/sec (22.63 MB/sec), 614.9 ms avg latency, "
    "2244.0 ms max latency."
)
FINAL = (
    "2000000 records sent, 89090.8 records/sec (16.99 MB/sec), 726.21 ms avg latency, "
    "3386.00 ms max latency, 700 ms 50th, 1923 ms 95th, 2180 ms 99th, 2256 ms 99.9th."
)


def test_perf_tool_lines_parse_into_count_rate_and_percentiles() -> None:
    w = PERF_LINE.search(WINDOW)
    assert w is not None and w.group(1) == "593228" and w.group(5) is None
    f = PERF_LINE.search(FINAL)
    assert f is not None
    assert (int(f.group(1)), float(f.group(2))) == (2_000_000, 89090.8)
    assert (f.group(5), f.group(6), f.group(7)) == ("700", "1923", "2180")


def test_a_fixed_rate_run_reports_the_share_of_its_target_it_achieved() -> None:
    run = Run("x", events=2_000, seconds=1.0, target=10_000)
    assert target_cell(run) == "10,000 (20% achieved)"
    assert target_cell(Run("y", events=5, seconds=1.0)) == "max"


def test_kafka_rows_give_ratios_to_raw_librdkafka_by_rate_and_per_cpu_second() -> None:
    raw = Run("raw", events=100_000, seconds=1.0, cpu_per_s=0.5)
    hub = Run("hub", events=1_000, seconds=1.0, cpu_per_s=0.25, ack_ms=[1.0, 2.0, 3.0])
    row = table_row(hub, raw, None).split(" | ")
    assert "0.010x" in row  # 1,000 / 100,000 events/s
    assert "0.0200x" in row  # 4,000 vs 200,000 events per CPU second
    tool = Run("tool", events=10, seconds=1.0, reported={"ack p50": 86.0, "ack p99": 285.0})
    assert "86.0" in table_row(tool, raw, None) and "285.0" in table_row(tool, raw, None)


def test_profile_summary_counts_own_time_per_line_and_inclusive_time_per_function(
    tmp_path: Path,
) -> None:
    raw = tmp_path / "p.txt"
    raw.write_text(
        "main (a.py:1);publish (b.py:10);encode (c.py:5) 6\n"
        "main (a.py:1);publish (b.py:12);send (d.py:7) 3\n"
        "thread (0x1);follow (e.py:3) 1\n"
    )
    text = summarise_profile(raw)
    assert text.startswith("10 samples")
    own, inclusive = text.split("inclusive")
    assert "60.0%  encode (c.py:5)" in own
    assert "90.0%  publish (b.py)" in inclusive  # two lines of one function, summed


def test_scale_report_states_bytes_per_event_against_raw_avro_and_flatness() -> None:
    def phase(events: int, seconds: float) -> dict[str, object]:
        return {
            "name": "ingest",
            "seconds": seconds,
            "events": events,
            "cpu_s": seconds,
            "peak_rss_mb": 100.0,
            "extra": {},
            "us_per_event": seconds / events * 1e6,
        }

    results = [
        {
            "events": n,
            "stored": {"log": 300 * n, "ledger": 100 * n, "views": 0, "other": 0},
            "avro_datum_bytes": 50.0,
            "avro_container_bytes": 52.0,
            "phases": [phase(n, n / 1_000)],
        }
        for n in (1_000, 10_000)
    ]
    meta = {"when": "t", "cpus": 2, "load": "1", "load_end": "1", "batch": 10}
    text = report(results, meta)
    assert "| 1,000 | 300.0 | 100.0 | 400.0 | 50.0 | 8.00x |" in text
    assert "| 10,000 | ingest | 10.00 | 1,000 | 1,000.00 | 1.00x |" in text


def test_scale_summary_csv_and_disk_estimate(tmp_path: Path) -> None:
    def phase(name: str, events: int, seconds: float, **extra: float) -> dict[str, object]:
        return {
            "name": name,
            "seconds": seconds,
            "events": events,
            "cpu_s": seconds / 2,
            "peak_rss_mb": 100.0 + seconds,
            "extra": extra,
            "us_per_event": seconds / events * 1e6,
        }

    result = {
        "events": 1_000,
        "stored": {"log": 30_000, "ledger": 35_000, "views": 0, "other": 0},
        "avro_datum_bytes": 50.0,
        "avro_container_bytes": 52.0,
        "data_bytes": 200_000,
        "load": "3.0-4.0",
        "phases": [
            phase("ingest (Parquet file -> log)", 1_000, 2.0),
            phase("200 inclusion proofs at size 1,000", 200, 0.1, p50_us=300.0, p99_us=900.0),
            phase("ledger verify (whole log)", 1_000, 4.0),
            phase("rebuild market_bars (copy + swap)", 1_000, 5.0),
            phase("ledger verify (incremental)", 100, 0.5),
        ],
    }
    text = report([result], {"when": "t", "cpus": 2, "load": "1", "load_end": "1", "batch": 10})
    # events/s, per CPU-s, B/event, vs Avro, proof p50/p99, verify, verify per CPU-s (full and
    # incremental: new entries), rebuild, RSS, load
    assert (
        "| 1,000 | 500 | 1,000 | 65.0 | 1.30x | 300 | 900 | 250 | 500 | 400 | 200 | 105 | 3.0-4.0 |"
        in (text)
    )
    write_csv(tmp_path / "s.csv", [result])
    lines = (tmp_path / "s.csv").read_text().splitlines()
    assert len(lines) == 6 and lines[1].startswith("1000,500.0,1000.0,65.0,1.3,")
    assert disk_estimate(100_000, [result], 800.0) == 20_000_000  # 200 B/event measured
    assert disk_estimate(100_000, [], 800.0) == 80_000_000  # the first size: the guess


def test_http_client_bodies_hold_every_trade_once_with_its_own_id() -> None:
    """The HTTP client's bodies (a template with the request number written in): every kind
    carries ``batch`` trades, ids unique across requests and clients, the other fields as
    ``trade`` makes them; a repeated id would be counted a duplicate, not ingested."""
    import json

    import pyarrow as pa

    from benchmarks.e2e_common import trade
    from benchmarks.e2e_http_client import body, template

    def ids(kind: str, raw: bytes) -> list[str]:
        if kind == "arrow":
            table = pa.ipc.open_stream(raw).read_all()
            return [str(x) for x in table.column("trade_id").to_pylist()]
        if kind == "ndjson":
            rows = [json.loads(x) for x in raw.splitlines()]
        else:
            events = json.loads(raw)["events"]
            rows = [e["value"] for e in events] if kind == "envelope" else events
            assert rows[3]["account_id"] == trade(3)["account_id"]
            assert rows[3]["executed_at"] == trade(3)["executed_at"]
        return [str(r["trade_id"]) for r in rows]

    for kind in ("json", "envelope", "ndjson", "arrow"):
        seen: list[str] = []
        for client in (0, 1):
            tpl = template(kind, 7, client)
            for n in (0, 1, 123_456_789):
                got = ids(kind, body(tpl, n))
                assert len(got) == 7
                seen += got
        assert len(set(seen)) == len(seen) == 2 * 3 * 7, kind
        assert all("#" not in x for x in seen)


def test_scale_phase_memory_tells_anonymous_from_mapped_file_pages(tmp_path: Path) -> None:
    """The 100M run's 4.8 GB peak RSS was mostly SQLite's mmap of the log (2 GiB a connection):
    each phase now reports the anonymous and the file-backed resident memory apart."""
    import mmap

    from benchmarks.scale import measured

    big = tmp_path / "mapped.bin"
    big.write_bytes(b"\x01" * (64 << 20))

    def touch_mapped_pages() -> mmap.mmap:  # still mapped when the phase's last sample is taken
        with big.open("rb") as f:
            m = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        assert sum(m[i] for i in range(0, len(m), 4096)) == (64 << 20) // 4096  # every page
        return m

    phase, mapped = measured("mapped", 1, touch_mapped_pages)
    mapped.close()
    assert phase.peak_file_mb >= 60  # the mapped file's pages, not the heap
    mapped_anon = phase.peak_anon_mb

    phase, block = measured("heap", 1, lambda: bytearray(b"\x02" * (64 << 20)))  # written pages
    assert phase.peak_anon_mb >= mapped_anon + 60 and len(block) == 64 << 20
    del block
    text = report(
        [
            {
                "events": 1,
                "stored": {"log": 1, "ledger": 1, "views": 0, "other": 0},
                "avro_datum_bytes": 1.0,
                "avro_container_bytes": 1.0,
                "phases": [{**vars(phase), "us_per_event": phase.us_per_event}],
            }
        ],
        {"when": "t", "cpus": 2, "load": "1", "load_end": "1", "batch": 10},
    )
    assert "peak anon MiB | peak mapped-file MiB" in text
    assert f"| {phase.peak_anon_mb:,.0f} | {phase.peak_file_mb:,.0f} |" in text
