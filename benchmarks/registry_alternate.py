"""Register and compatibility over HTTP, an old tree's server and this tree's alternately.

Each round starts ``hub serve`` (``benchmarks.registry_socket``'s own set-up: fresh data folder,
``HUB_POLICY_UNSYNCED_READS=schema.read``; register is always synced) from ``--old`` (a source
folder, e.g. ``git archive main | tar -x -C DIR``) and from this tree, in alternating order,
and drives each with ``--clients`` keep-alive clients for ``--seconds`` per row: register of a
new subject each time, then a compatibility check. Prints ops/s and the server's CPU ms per
request (psutil), with the load average: on a shared machine compare the rows of one round.

Run: ``.venv/bin/python -m benchmarks.registry_alternate --old /tmp/old [--rounds 3]``
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import psutil

from benchmarks import registry_socket as rs


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--old", required=True, help="the old tree's source folder")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=6.0)
    ap.add_argument("--port", type=int, default=26080)
    args = ap.parse_args(argv)
    schema = json.dumps({"schema": json.dumps(rs.SCHEMA)}).encode()
    check = "/compatibility/subjects/bench-value/versions/latest"
    rows = [
        ("register", lambda i: ("POST", f"/subjects/r-{i}-{time.monotonic_ns()}/versions", schema)),
        ("compat", lambda i: ("POST", check, schema)),
    ]
    for r in range(args.rounds):
        trees = [("old", args.old), ("new", None)]
        for label, src in trees if r % 2 == 0 else trees[::-1]:  # alternate who goes first
            with tempfile.TemporaryDirectory(prefix="hub-registry-alt-") as tmp:
                token, _ = rs._prepare(Path(tmp) / "data")
                hub = rs._serve_hub(Path(tmp) / "data", args.port, True, src)
                proc = psutil.Process(hub.pid)
                auth = {"Authorization": f"Bearer {token}"}
                out = []
                try:
                    for name, make in rows:
                        before = rs._cpu(proc)
                        rate, lat = rs._loaded(args.port, auth, make, args.clients, args.seconds)
                        cpu_ms = 1000 * (rs._cpu(proc) - before) / max(len(lat), 1)
                        out.append(f"{name} {rate:6.0f} ops/s {cpu_ms:6.2f} CPU ms/op")
                finally:
                    hub.terminate()
                    hub.wait(30)
                load = os.getloadavg()[0]
                print(f"round {r} {label} load {load:.1f}: " + " | ".join(out), flush=True)


if __name__ == "__main__":
    main()
