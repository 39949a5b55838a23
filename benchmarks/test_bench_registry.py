"""Schema registry compatibility checks: throughput and latency, Apache avro's checker as baseline.

A 50-field record evolves by one field with a default per version; the new version is checked at
BACKWARD (one reader/writer walk) and FULL_TRANSITIVE against 10 previous versions (20 walks).
Apache avro's ``ReaderWriterCompatibilityChecker`` does the same walks on the same schemas, parsed
once as ours are. Goal: p99 under 1 ms per check for 50 fields.
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable
from functools import partial
from typing import Any

import avro.schema
from avro.compatibility import ReaderWriterCompatibilityChecker, SchemaCompatibilityType

from benchmarks.conftest import Report
from core.avro.compatibility import CompatibilityLevel, check_level
from core.avro.schema import ParsedSchema, parse_schema

N_FIELDS = 50
N_PREVIOUS = 10
ITERATIONS = {CompatibilityLevel.BACKWARD: 3000, CompatibilityLevel.FULL_TRANSITIVE: 400}

_TYPES: list[Any] = [
    "long",
    "string",
    "double",
    {"type": "bytes", "logicalType": "decimal", "precision": 18, "scale": 2},
    ["null", "string"],
    {"type": "long", "logicalType": "timestamp-micros"},
    "int",
    "boolean",
]


def _field(i: int) -> dict[str, Any]:
    if i == 7:
        return {
            "name": "side",
            "type": {"type": "enum", "name": "Side", "symbols": ["BUY", "SELL"]},
        }
    t = _TYPES[i % len(_TYPES)]
    f: dict[str, Any] = {"name": f"f{i:02d}", "type": t}
    if isinstance(t, list):
        f["default"] = None
    return f


def _version(extra: int) -> str:
    """The base 50 fields plus ``extra`` added fields, each with a default."""
    fields = [_field(i) for i in range(N_FIELDS)]
    fields += [{"name": f"added{j}", "type": "long", "default": 0} for j in range(extra)]
    return json.dumps({"type": "record", "name": "Trade", "namespace": "com.hub", "fields": fields})


def _time(fn: Callable[[], object], iterations: int) -> list[float]:
    for _ in range(min(200, iterations)):  # warm up caches and branch predictors
        fn()
    samples = []
    clock = time.perf_counter_ns
    for _ in range(iterations):
        start = clock()
        fn()
        samples.append((clock() - start) / 1000)
    return samples


def _p(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _pairs(level: CompatibilityLevel, new: Any, previous: list[Any]) -> list[tuple[Any, Any]]:
    """(reader, writer) pairs that ``level`` implies, as ``check_level`` walks them."""
    if level is CompatibilityLevel.BACKWARD:
        return [(new, previous[-1])]
    pairs = []
    for old in previous:
        pairs += [(new, old), (old, new)]
    return pairs


def _avro_check(pairs: list[tuple[Any, Any]]) -> bool:
    ok = True
    for reader, writer in pairs:
        # A fresh checker per pair: its memo table would otherwise answer from the last run.
        result = ReaderWriterCompatibilityChecker().get_compatibility(  # type: ignore[no-untyped-call]
            reader, writer
        )
        ok = ok and result.compatibility is SchemaCompatibilityType.compatible
    return ok


def test_bench_compatibility(report: Report) -> None:
    texts = [_version(i) for i in range(N_PREVIOUS + 1)]
    ours = [parse_schema(t) for t in texts]
    theirs = [avro.schema.parse(t) for t in texts]
    new, previous = ours[-1], ours[:-1]

    parse_samples = _time(lambda: parse_schema(texts[-1]), 200)
    avro_parse_samples = _time(lambda: avro.schema.parse(texts[-1]), 200)
    group = "parse 50 fields"
    report.add(
        group, "avro.schema.parse p50", _p(avro_parse_samples, 0.5), "µs", higher_is_better=False
    )
    report.add(
        group,
        "hub parse_schema p50",
        _p(parse_samples, 0.5),
        "µs",
        baseline="avro.schema.parse p50",
        higher_is_better=False,
    )

    for level, iterations in ITERATIONS.items():
        assert check_level(new, previous, level) == []
        pairs = _pairs(level, theirs[-1], theirs[:-1])
        assert _avro_check(pairs)

        ours_samples = _time(partial(check_level, new, previous, level), iterations)
        theirs_samples = _time(partial(_avro_check, pairs), max(50, iterations // 10))

        group = f"compat {level.value.replace('_TRANSITIVE', '_TRANS')}"
        walks = len(pairs)
        for who, samples in (("avro", theirs_samples), ("hub", ours_samples)):
            base = None if who == "avro" else "avro"
            report.add(
                group,
                f"{who} checks/s",
                1e6 / statistics.fmean(samples),
                "checks/s",
                baseline=base and "avro checks/s",
            )
            for q, label in ((0.5, "p50"), (0.99, "p99")):
                report.add(
                    group,
                    f"{who} {label} ({walks} walks)",
                    _p(samples, q),
                    "µs",
                    baseline=base and f"avro {label} ({walks} walks)",
                    higher_is_better=False,
                )


def test_bench_incompatible_change_is_reported_fast(report: Report) -> None:
    """Failing checks build messages; make sure they stay cheap too (a decimal scale change)."""
    old = json.loads(_version(N_PREVIOUS))
    changed = json.loads(_version(N_PREVIOUS))
    changed["fields"][3]["type"] = {
        "type": "bytes",
        "logicalType": "decimal",
        "precision": 18,
        "scale": 4,
    }
    new_schema: ParsedSchema = parse_schema(json.dumps(changed))
    previous = [parse_schema(json.dumps(old))]
    full = CompatibilityLevel.FULL
    found = check_level(new_schema, previous, full, strict_logical_types=True)
    assert [i.rule for i in found] == ["DECIMAL_SCALE_MISMATCH"] * 2
    samples = _time(
        lambda: check_level(new_schema, previous, full, strict_logical_types=True), 1000
    )
    report.add(
        "compat FULL broken", "hub p99 (2 walks)", _p(samples, 0.99), "µs", higher_is_better=False
    )
