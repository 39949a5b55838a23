"""Concurrent registrations without HTTP: the registry, the decision committer and the log.

Each of ``--threads`` threads registers new subjects as the hub's register route does: a held
``schema.write`` decision (``RecordingPolicyEngine.decide_held``), then
``SchemaRegistry.register(..., append=held.commit)`` (the record and the decision in one
transaction), on the embedded log with its default durability (``synchronous=FULL``: one fsync
per transaction). Printed per run: registrations/s, transactions per registration (the group
commit), process CPU ms per registration, and the load average.

``--src DIR`` runs the same steps with another checkout's source (e.g. ``git archive main``
extracted to DIR) in a child process, for a same-run "before"; ``--rounds`` alternates the two.

Run: ``.venv/bin/python -m benchmarks.registry_group_commit --src /tmp/main-src --rounds 3``
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path


def _one(threads: int, seconds: float) -> dict[str, float]:
    from core.ports.policy import Principal
    from hub.bootstrap import bootstrap
    from hub.settings import load_settings

    with tempfile.TemporaryDirectory(prefix="hub-reg-group-") as tmp:
        hub = bootstrap(load_settings(environ={}, data_dir=Path(tmp) / "data"))
        try:
            admin = Principal("bench", frozenset({"admin"}), attributes={"key_id": "k"})
            policy = hub.policy
            hub.registry.register("warm-value", _schema(0))
            policy.decide(admin, "schema.read", "/subjects")  # the decisions topic exists
            transactions = [0]
            real = hub.log.transaction

            def counting(tid: str) -> object:
                transactions[0] += 1
                return real(tid)

            hub.log.transaction = counting  # type: ignore[method-assign]
            done = [0]
            stop = time.perf_counter() + seconds

            def run(k: int) -> None:
                i = 0
                while time.perf_counter() < stop:
                    subject = f"g-{k}-{i}-value"
                    path = f"/subjects/{subject}/versions"
                    decision, held = policy.decide_held(  # type: ignore[attr-defined]
                        admin, "schema.write", path
                    )
                    assert decision.allow and held is not None
                    try:
                        hub.registry.register(
                            subject, _schema(k * 1_000_000 + i), append=held.commit
                        )
                    finally:
                        held.settle()
                    i += 1
                    done[0] += 1

            cpu0, t0 = time.process_time(), time.perf_counter()
            workers = [threading.Thread(target=run, args=(k,)) for k in range(threads)]
            for w in workers:
                w.start()
            for w in workers:
                w.join()
            cpu, wall = time.process_time() - cpu0, time.perf_counter() - t0
        finally:
            hub.close()
    n = max(done[0], 1)
    return {
        "ops_s": done[0] / wall,
        "txn_per_op": transactions[0] / n,
        "cpu_ms_op": 1000 * cpu / n,
        "load": os.getloadavg()[0],
    }


def _schema(k: int) -> str:
    return json.dumps(
        {"type": "record", "name": f"R{k}", "fields": [{"name": "a", "type": "string"}]}
    )


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--threads", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--src", default=None, help="a 'before' source folder, run alternately")
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        print(json.dumps(_one(args.threads, args.seconds)))
        return
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child"]
    cmd += ["--threads", str(args.threads), "--seconds", str(args.seconds)]
    here = str(Path(__file__).resolve().parent.parent)
    print(f"{'run':8} {'ops/s':>8} {'txn/op':>7} {'CPU ms/op':>10} {'load':>5}")
    for r in range(args.rounds):
        for label, src in [("before", args.src), ("after", here)] if args.src else [("this", here)]:
            assert src is not None
            env = {**os.environ, "PYTHONPATH": os.pathsep.join([src, here])}
            out = subprocess.run(cmd, env=env, cwd=src, capture_output=True, text=True, check=True)
            got = json.loads(out.stdout.strip().splitlines()[-1])
            print(
                f"{label:8} {got['ops_s']:8.1f} {got['txn_per_op']:7.2f} "
                f"{got['cpu_ms_op']:10.2f} {got['load']:5.1f}  (round {r + 1})",
                flush=True,
            )


if __name__ == "__main__":
    main()
