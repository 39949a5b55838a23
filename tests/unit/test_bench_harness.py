"""The load harness's own parsing and arithmetic (``benchmarks/e2e*.py``, ``benchmarks/scale.py``):
a wrong parse would put a wrong baseline beside every figure of the report."""

from __future__ import annotations

from pathlib import Path

from benchmarks.e2e import Run, table_row, target_cell
from benchmarks.e2e_kafka import PERF_LINE, summarise_profile
from benchmarks.scale import report

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
