"""The two prepare-stage levers of docs/benchmarks/s19-kafka.md (session 19, kafka2), alone.

``python -m benchmarks.json_text_columns [ROUNDS]`` times, alternated within each round:
``ColumnPlan._array`` of 2,000 ``payments``-like decimal and timestamp texts with the native
pass (``hub_native.json_text_column``) and with the Arrow reference (``pa.array`` + regex +
cast); and ``_aead.seal_many`` of 2,000 values over 500 warm subjects with the key cache's
``newest_many`` and with one ``newest`` per subject. Prints us a value and the per-round
ratio's median. No broker needed.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import timeit
from pathlib import Path
from typing import Any


def _best(fn: Any, values: int) -> float:
    return min(timeit.repeat(fn, number=20, repeat=5)) / 20 / values * 1e6


def main(rounds: int) -> None:
    from adapters import _aead
    from adapters.local_keystore import FORMAT_LOCAL, LocalKeyStore
    from ingest import jsoncols

    def col(t: Any) -> jsoncols._Col:
        found = jsoncols._column_kind(t, {})
        assert found is not None
        c = jsoncols._Col("f", found[0], found[1])
        for k, v in found[2].items():
            setattr(c, k, v)
        return c

    native = jsoncols._native_text_column
    assert native is not None, "hub_native not built with json_text_column"
    dec = col({"type": "bytes", "logicalType": "decimal", "precision": 18, "scale": 2})
    ts = col({"type": "long", "logicalType": "timestamp-micros"})
    amounts = [f"{100 + i % 9000}.25" for i in range(2000)]
    times = [f"2026-01-02T10:{i % 60:02d}:00Z" for i in range(2000)]
    ks = LocalKeyStore(Path(tempfile.mkdtemp()) / "k.sqlite", b"k" * 32)
    subs = [f"A{i % 500}" for i in range(2000)]
    plain, aads = [b"Person 12"] * 2000, [b"payments|name"] * 2000
    ks.seal_many(subs, plain, aads)  # warm
    cases: dict[str, tuple[Any, Any]] = {}
    for name, c, data in (("decimal", dec, amounts), ("timestamp", ts, times)):

        def fast(c: Any = c, data: Any = data) -> Any:
            jsoncols._native_text_column = native
            return jsoncols.ColumnPlan._array(c, data)

        def ref(c: Any = c, data: Any = data) -> Any:
            jsoncols._native_text_column = None
            return jsoncols.ColumnPlan._array(c, data)

        cases[name] = (fast, ref)
    cases["seal_many"] = (
        lambda: _aead.seal_many(FORMAT_LOCAL, ks._newest, subs, plain, aads, ks._cache.newest_many),
        lambda: _aead.seal_many(FORMAT_LOCAL, ks._newest, subs, plain, aads),
    )
    for name, (fast, ref) in cases.items():
        got: list[tuple[float, float]] = []
        for _ in range(rounds):
            got.append((_best(fast, 2000), _best(ref, 2000)))
        print(
            f"{name}: new {statistics.median(a for a, _ in got):.3f}, "
            f"old {statistics.median(b for _, b in got):.3f} us a value; "
            f"new/old median {statistics.median(a / b for a, b in got):.2f} ({rounds} rounds)"
        )
    jsoncols._native_text_column = native
    ks.close()


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 8)
