"""Where one registration's time goes: concurrent registrations held for their decisions, in
one process, with each phase's wall time (issue 13, s20).

Bootstraps a hub from the ``HUB_*`` environment (``HUB_EVENT_LOG=kafka``,
``HUB_KAFKA_BOOTSTRAP_SERVERS``, a fresh ``HUB_KAFKA_TOPIC_PREFIX``), then ``--threads`` threads
register new subjects for ``--seconds`` as ``hub.api.registry_fast`` does (``decide_held``, then
``register(..., append=held.commit)``, then ``settle``). Methods of the registry, the decision
committer and the Kafka log are wrapped with timers (this process only); printed: registrations
per second, CPU ms each, and per phase its calls, mean ms and ms per registration. Run it from
the source tree to measure (``cd /tmp/old && python -m benchmarks.registry_phases`` for a
baseline; the first ``sys.path`` entry wins).

Run: ``.venv/bin/python -m benchmarks.registry_phases --seconds 6``
"""

from __future__ import annotations

import argparse
import collections
import functools
import json
import os
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

SCHEMA = json.dumps({"type": "record", "name": "B", "fields": [{"name": "a", "type": "string"}]})
TIMED = {
    "registry.service.SchemaRegistry": (
        "register", "_await_turn", "_require_writable", "_store_reserved", "refresh",
        "_parse_new", "_refuse_incompatible", "_refuse_declassified",
    ),
    "governance.decisions.Receipt": ("wait",),
    "governance.decisions.RecordingPolicyEngine": ("decide_held",),
    "adapters.kafka_log.transactions.KafkaTransaction": ("__init__", "append", "commit"),
    "adapters.kafka_log.log.KafkaEventLog": ("_await_visible", "end_offsets", "read"),
}  # fmt: skip


def _wrap(times: dict[str, float], counts: collections.Counter[str]) -> None:
    import importlib

    for path, names in TIMED.items():
        module, cls_name = path.rsplit(".", 1)
        cls = getattr(importlib.import_module(module), cls_name)
        for name in names:
            key = f"{cls_name}.{name}"
            fn = getattr(cls, name)

            def timed(*a: Any, _fn: Callable[..., Any] = fn, _k: str = key, **kw: Any) -> Any:
                t = time.perf_counter()
                try:
                    return _fn(*a, **kw)
                finally:
                    times[_k] += time.perf_counter() - t
                    counts[_k] += 1

            setattr(cls, name, functools.wraps(fn)(timed))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--seconds", type=float, default=6.0)
    ap.add_argument("--threads", type=int, default=8)
    args = ap.parse_args()
    times: dict[str, float] = collections.defaultdict(float)
    counts: collections.Counter[str] = collections.Counter()
    _wrap(times, counts)
    from core.ports.policy import Principal
    from hub.bootstrap import bootstrap
    from hub.settings import load_settings

    h = bootstrap(load_settings(data_dir=Path(tempfile.mkdtemp()), projection_autostart=False))
    principal = Principal("bench", frozenset({"admin"}), "hub")
    h.registry.register("bench-value", SCHEMA)
    times.clear()
    counts.clear()
    tag = uuid.uuid4().hex[:6]
    stop = time.perf_counter() + args.seconds

    def run(k: int) -> None:
        i = 0
        while time.perf_counter() < stop:
            subject = f"p-{tag}-{k}-{i}-value"
            i += 1
            _, held = h.policy.decide_held(  # type: ignore[attr-defined]
                principal, "schema.write", f"/subjects/{subject}/versions", {}
            )
            try:
                h.registry.register(subject, SCHEMA, append=held.commit, tenant="hub")
            finally:
                held.settle()
            counts["registrations"] += 1

    threads = [threading.Thread(target=run, args=(k,)) for k in range(args.threads)]
    cpu0, wall0 = time.process_time(), time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    n = max(counts.pop("registrations"), 1)
    print(
        f"{n} registrations in {wall:.1f} s: {n / wall:.1f}/s, CPU {1000 * cpu / n:.2f} ms "
        f"each, load {os.getloadavg()[0]:.1f}"
    )
    for key in sorted(times):
        print(
            f"  {key:40s} n={counts[key]:5d} mean {1000 * times[key] / counts[key]:7.2f} ms"
            f"  per registration {1000 * times[key] / n:7.2f} ms"
        )
    h.close()


if __name__ == "__main__":
    main()
