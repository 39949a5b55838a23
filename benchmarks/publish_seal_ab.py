"""``Publisher._prepare_for_append`` of one publish batch on CHECKOUT's code against this
checkout's, in alternating subprocesses (old, new, new, old, ...): the batch is
kafka_publish_stages' (2,000 ``payments`` events, two PII fields each, 500 distinct subjects,
warm keys and caches) against this checkout's broker (``infra/kafka.sh``; the prepare asks it
for the registry's freshness, nothing is produced). The native module is the venv's for both.
Reported: best thread CPU microseconds an event of each subprocess (``ab_common.thread_cpu``)
and the new/old ratio of each pair.
Run: ``.venv/bin/python -m benchmarks.publish_seal_ab CHECKOUT [PAIRS] [REPEAT]``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from benchmarks.ab_common import print_ratios

_CHILD = """
import json, sys, tempfile, uuid
from pathlib import Path
from benchmarks.ab_common import thread_cpu
from benchmarks.test_bench_kafka import make_hub, payment
from tests.contract.test_eventlog_kafka import kafka_bootstrap

hub = make_hub(Path(tempfile.mkdtemp()), kafka_bootstrap(), 1)
events = [payment(i, uuid.uuid4().hex[:6]) for i in range(2000)]
hub.publisher.publish("payments", events, producer="bench")  # keys made, caches warm
prepare = hub.publisher._prepare_for_append
cpu = thread_cpu(lambda: prepare("payments", events, "bench", "default"), int(sys.argv[1]))
hub.close()
print(json.dumps(cpu / len(events) * 1e6))
"""


def _run(checkout: Path, repeat: int) -> float:
    # the benchmarks package of THIS checkout after the tree measured (ab_common)
    here = Path(__file__).resolve().parent.parent
    env = {k: v for k, v in os.environ.items() if k.startswith(("HUB_", "CI", "HOME", "JAVA"))}
    env.update(PYTHONPATH=f"{checkout}:{here}", PATH="/usr/bin:/bin")
    out = subprocess.run(
        [sys.executable, "-c", _CHILD, str(repeat)],
        cwd=checkout,
        env=env,
        capture_output=True,
        text=True,
    )
    if out.returncode != 0:
        raise SystemExit(f"{checkout}: the child failed:\n{out.stderr[-3000:]}")
    return float(json.loads(out.stdout.splitlines()[-1]))


def main(old: Path, pairs: int = 6, repeat: int = 15) -> None:
    new = Path(__file__).resolve().parent.parent
    ratios: list[float] = []
    for r in range(pairs):
        order = (("old", old), ("new", new)) if r % 2 == 0 else (("new", new), ("old", old))
        got = {name: _run(tree, repeat) for name, tree in order}
        ratios.append(got["new"] / got["old"])
        print(
            f"pair {r} ({order[0][0]} first, load {os.getloadavg()[0]:.1f}): old "
            f"{got['old']:.3f} us/event, new {got['new']:.3f} us/event, new/old {ratios[-1]:.3f}",
            flush=True,
        )
    print_ratios({"prepare us/event": ratios})


if __name__ == "__main__":
    main(
        Path(sys.argv[1]).resolve(),
        int(sys.argv[2]) if len(sys.argv) > 2 else 6,
        int(sys.argv[3]) if len(sys.argv) > 3 else 15,
    )
