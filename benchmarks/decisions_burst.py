"""Bursts of identical uncached decisions (issue 13): Rego evaluations and CPU per decision.

``CALLERS`` threads (``decisions_phases.threaded_us``) call the hub's ``RecordingPolicyEngine
.decide`` for ``--n`` requests; every ``--burst`` consecutive requests name the same new
resource, as when many clients read a topic nobody read in the last second. With single flight
in the decision cache, each burst's input is evaluated by rego-cpp about once; without it, the
callers that miss together each evaluate it. Real hub data folder, embedded Rego engine.

Run: ``.venv/bin/python -m benchmarks.decisions_burst [--n 1500] [--burst 16]``
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from benchmarks.decisions_phases import threaded_us
from core.ports.policy import Principal
from hub.bootstrap import bootstrap
from hub.settings import load_settings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1500, help="decisions")
    parser.add_argument("--burst", type=int, default=16, help="identical requests in a row")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        hub = bootstrap(load_settings(environ={}, data_dir=Path(tmp) / "data"))
        try:
            engine = hub.policy
            cache = engine.inner.cache  # type: ignore[attr-defined]
            user = Principal("user-1", frozenset({"analyst"}), "acme")
            tag = time.time_ns()

            def call(i: int) -> object:
                resource = f"/v1/topics/cold-{tag}-{i // args.burst}/events"
                return engine.decide(user, "event.read", resource, {"method": "GET"})

            hits, misses = cache.hits, cache.misses
            shared = getattr(cache, "shared", 0)
            cpu, wall = threaded_us(args.n, call)
            shared = getattr(cache, "shared", 0) - shared
            evaluated = cache.misses - misses - shared
            print(
                f"burst {args.burst}: {cpu:.0f} µs CPU/decision ({wall:.0f} µs wall); rego-cpp "
                f"evaluations {evaluated} of {args.n} (ideal {-(-args.n // args.burst)}); "
                f"cache hits {cache.hits - hits}, shared in flight {shared}"
            )
        finally:
            hub.close()
    print(f"load average (1 min): {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
