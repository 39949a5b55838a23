"""A small append's fixed cost, old tree against new, alternating (issue 13, sessions 17-18).

Each round runs one child process per tree (``--trees old new``: source trees sharing this
venv and its ``hub_native``), in turn. A child bootstraps a real hub data folder (SQLite
``synchronous=FULL``, the MAC key, the real ``LogDecisionSink``) and measures:

1. ``sink``: ``prepare`` + ``store`` (one ``append_columns``: one transaction, one fsync) of
   batches of 1 and 64 decisions, process CPU per batch;
2. ``loop``: 1, 64 and 256 event-loop tasks each awaiting ``decide_async`` (the decision and
   its durable record) for ``--seconds``: decisions per CPU-second (process CPU: flushers and
   fsync included) and the event loop's thread CPU per decision, per wall second, p50 and
   p99, decisions per fsync.

Process CPU (``time.process_time``), not wall time: the machine is shared.
Rounds alternate which tree runs first. Trees with their own ``hub_native.abi3.so`` at their
root use it (``PYTHONPATH`` is the tree): build the old tree's there to compare native changes.
Run: ``.venv/bin/python -m benchmarks.small_append_ab --trees /tmp/old . [--rounds 4]``
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

CHILD = r"""
import asyncio, json, os, sys, tempfile, time
from pathlib import Path
from core.ports.policy import Principal
from governance.decisions import LogDecisionSink
from hub.bootstrap import bootstrap
from hub.settings import load_settings

seconds, out = float(sys.argv[1]), {}
with tempfile.TemporaryDirectory(prefix="hub-small-append-") as tmp:
    hub = bootstrap(load_settings(environ={}, data_dir=Path(tmp) / "data"))
    try:
        engine = hub.policy
        sink = LogDecisionSink(hub.log, hub.registry, hub.publisher)
        user = Principal("user-1", frozenset({"analyst"}), "acme")
        records = [engine._decide(user, "topic.read", "/v1/topics", {})[1] for _ in range(64)]
        sink.store(sink.prepare(records[:1]))
        for size, calls in ((1, 600), (64, 300)):
            batch = records[:size]
            c0 = time.process_time()
            for _ in range(calls):
                sink.store(sink.prepare(batch))
            out[f"sink{size}_us"] = 1e6 * (time.process_time() - c0) / calls
        users = [Principal(f"user-{k}", frozenset({"analyst"}), "acme") for k in range(50)]
        committer = engine.committer
        for callers in (1, 64, 256):
            lat = []
            async def run():
                began = time.perf_counter()
                async def caller(k):
                    u, ctx = users[k % 50], {"method": "GET"}
                    while time.perf_counter() - began < seconds:
                        t0 = time.perf_counter()
                        d = await engine.decide_async(u, "topic.read", "/v1/topics", ctx)
                        assert d.allow, d.reason
                        lat.append(time.perf_counter() - t0)
                await asyncio.gather(*(caller(k) for k in range(callers)))
            b0, r0 = committer.stats.batches, committer.stats.records
            c0, w0, t0 = time.process_time(), time.perf_counter(), time.thread_time()
            asyncio.run(run())
            cpu, wall, n = time.process_time() - c0, time.perf_counter() - w0, len(lat)
            lat.sort()
            out[f"loop{callers}"] = {
                "per_cpu_s": n / cpu, "per_s": n / wall, "p99_ms": 1e3 * lat[int(n * 0.99)],
                "p50_ms": 1e3 * lat[n // 2], "loop_us": 1e6 * (time.thread_time() - t0) / n,
                "per_fsync": (committer.stats.records - r0) / max(1, committer.stats.batches - b0),
            }
    finally:
        hub.close()
out["load"] = os.getloadavg()[0]
print(json.dumps(out))
"""


def run_child(code: str, tree: Path, *args: str) -> dict[str, object]:
    """Run ``code`` in a child process with ``tree`` as its source (its ``PYTHONPATH`` and
    working folder) and this venv; its last line of output, a JSON object."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    done = subprocess.run(
        [sys.executable, "-c", code, *args],
        cwd=tree, env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    if done.returncode:
        raise SystemExit(f"the child in {tree} failed:\n{done.stderr}")
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def child(tree: Path, seconds: float) -> dict[str, object]:
    return run_child(CHILD, tree, str(seconds))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--trees", nargs=2, required=True, metavar=("OLD", "NEW"))
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=4)
    args = ap.parse_args()
    trees = [Path(t).resolve() for t in args.trees]
    for r in range(args.rounds):
        got = {}
        pairs = list(zip(("old", "new"), trees, strict=True))
        # Odd rounds run the new tree first: the one run second meets a warmer page cache
        # and a different minute of the shared machine's load.
        for label, tree in pairs if r % 2 == 0 else pairs[::-1]:
            got[label] = res = child(tree, args.seconds)
            loops = [res[f"loop{c}"] for c in (1, 64, 256)]
            print(
                f"round {r + 1} {label}: sink 1 {res['sink1_us']:5.0f} us, sink 64 "
                f"{res['sink64_us']:5.0f} us CPU/batch (load {res['load']:.1f})",
                flush=True,
            )
            for c, lp in zip((1, 64, 256), loops, strict=True):
                assert isinstance(lp, dict)
                print(
                    f"  {c:3d} callers: {lp['per_cpu_s']:7,.0f}/CPU-s (loop thread "
                    f"{lp['loop_us']:5.1f} us/dec) {lp['per_s']:7,.0f}/s p50 {lp['p50_ms']:6.2f} "
                    f"p99 {lp['p99_ms']:6.2f} ms {lp['per_fsync']:5.1f}/fsync",
                    flush=True,
                )
        o, n = got["old"], got["new"]
        ratios = [f"sink 1 CPU {n['sink1_us'] / o['sink1_us']:.2f}x"]  # type: ignore[operator]
        ratios.append(f"sink 64 CPU {n['sink64_us'] / o['sink64_us']:.2f}x")  # type: ignore[operator]
        for c in (1, 64, 256):
            no, oo = n[f"loop{c}"], o[f"loop{c}"]
            assert isinstance(no, dict) and isinstance(oo, dict)
            ratios.append(f"{c} callers {no['per_cpu_s'] / oo['per_cpu_s']:.2f}x per CPU-s")
        print(f"round {r + 1} new/old: " + ", ".join(ratios), flush=True)


if __name__ == "__main__":
    main()
