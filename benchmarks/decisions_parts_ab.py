"""A recorded decision's two Python parts, old tree against new, alternating (issue 13, s20).

Each round runs one child process per tree (``--trees old new``), in turn, the order swapped
every round. A child bootstraps a real hub data folder (embedded Rego with its decision cache)
and measures, in thread CPU (``benchmarks.ab_common.thread_cpu``, best of ``--repeat``):

1. ``decide``: the caller's part, ``RecordingPolicyEngine._decide`` of a request seen before
   (the prepared path: clock, digest, cache lookup, id, record, the decision with its id);
2. ``encode``: the flusher's part, ``DecisionEncoder.encode_batch`` of a batch of 64 such
   decisions by 50 principals (what a group commit of 64 callers encodes);
3. ``await``: the event loop's whole part of an allow, 64 tasks each awaiting
   ``decide_async`` 40 times through a committer whose sink sleeps 2 ms per store (an fsync
   without the disk: batches of ~64 as in the real hub): the decision, queueing its record
   and the asyncio machinery of waiting for the batch (futures, wake-ups, task steps); the
   loop thread's CPU per decision (the flushers run on their own threads).

Microseconds per decision, and new/old per round with their median and range.
Run: ``.venv/bin/python -m benchmarks.decisions_parts_ab --trees /tmp/old . [--rounds 4]``
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from benchmarks.ab_common import print_ratios
from benchmarks.small_append_ab import run_child

CHILD = r"""
import asyncio, json, os, sys, tempfile, time
from pathlib import Path
from benchmarks.ab_common import thread_cpu
from core.ports.policy import Principal
from governance.decisions import DecisionCommitter, LogDecisionSink, RecordingPolicyEngine
from hub.bootstrap import bootstrap
from hub.settings import load_settings

n, repeat, out = 2_000, int(sys.argv[1]), {}
with tempfile.TemporaryDirectory(prefix="hub-parts-ab-") as tmp:
    hub = bootstrap(load_settings(environ={}, data_dir=Path(tmp) / "data"))
    try:
        engine = hub.policy
        users = [Principal(f"user-{k}", frozenset({"analyst"}), "acme") for k in range(50)]
        ctx = {"method": "GET"}
        records = [engine._decide(users[k % 50], "topic.read", "/v1/topics", ctx)[1]
                   for k in range(64)]
        u = users[0]

        def decide():
            for _ in range(n):
                engine._decide(u, "topic.read", "/v1/topics", ctx)

        out["decide_us"] = 1e6 * thread_cpu(decide, repeat) / n
        encoder = LogDecisionSink(hub.log, hub.registry, hub.publisher)._ensure_topic()

        def encode():
            for _ in range(50):
                encoder.encode_batch(records)

        out["encode_us"] = 1e6 * thread_cpu(encode, repeat) / (50 * len(records))

        class SleepSink:
            def prepare(self, records):
                return len(records)

            def store(self, prepared):
                time.sleep(0.002)

        committer = DecisionCommitter(SleepSink())
        waited = RecordingPolicyEngine(engine.inner, committer)

        async def callers():
            async def caller(k):
                for _ in range(40):
                    await waited.decide_async(users[k % 50], "topic.read", "/v1/topics", ctx)
            await asyncio.gather(*(caller(k) for k in range(64)))

        loop = asyncio.new_event_loop()
        try:
            loop.run_until_complete(callers())
            out["await_us"] = 1e6 * thread_cpu(
                lambda: loop.run_until_complete(callers()), repeat) / (64 * 40)
        finally:
            loop.close()
            committer.close()
    finally:
        hub.close()
out["load"] = os.getloadavg()[0]
print(json.dumps(out))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--trees", nargs=2, required=True, metavar=("OLD", "NEW"))
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--repeat", type=int, default=7)
    args = ap.parse_args()
    trees = [Path(t).resolve() for t in args.trees]
    ratios: dict[str, list[float]] = {"decide": [], "encode": [], "await": []}
    for r in range(args.rounds):
        got = {}
        pairs = list(zip(("old", "new"), trees, strict=True))
        for label, tree in pairs if r % 2 == 0 else pairs[::-1]:
            got[label] = res = run_child(CHILD, tree, str(args.repeat))
            print(
                f"round {r + 1} {label}: decide {res['decide_us']:5.2f} us, encode "
                f"{res['encode_us']:5.2f} us, await {res['await_us']:5.2f} us per decision "
                f"(load {res['load']:.1f})",
                flush=True,
            )
        for k in ratios:
            ratios[k].append(float(got["new"][f"{k}_us"]) / float(got["old"][f"{k}_us"]))  # type: ignore[arg-type]
    print(f"CPU new/old over {args.rounds} rounds (load {os.getloadavg()[0]:.1f} at the end):")
    print_ratios(ratios)
    print(json.dumps({k: [round(v, 3) for v in vs] for k, vs in ratios.items()}))


if __name__ == "__main__":
    main()
