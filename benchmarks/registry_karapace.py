"""The hub's registry over HTTP against Karapace, on one Kafka broker, alternately.

Each round starts, in alternating order, ``hub serve`` (``benchmarks.registry_socket``'s own
set-up: fresh data folder, an admin key, ``HUB_POLICY_UNSYNCED_READS=schema.read``; register
always waits for its decision's fsync) and Karapace (``python -m karapace`` from its own venv,
never the project's), each on a fresh topic namespace of the same broker (``--bootstrap``,
default this checkout's ``HUB_KAFKA_PORT``). Both get the same schema registered as
``bench-value`` first, then, with ``--clients`` keep-alive clients for ``--seconds`` per row:
register of a new subject each time, a compatibility check against ``bench-value``'s latest,
and ``GET /schemas/ids/{id}``; then one client reading the cached schema by id ``-n`` times
(p50). Printed per row: ops/s, server CPU ms per request (psutil, the server's process tree),
the load average, and hub / Karapace as a ratio within the round.

The hub's event log is Kafka (``--hub-log kafka``, the same broker as Karapace's ``_schemas``)
or the embedded SQLite log (``--hub-log sqlite``). Every hub request carries an API key and
records a policy decision; Karapace runs without authentication (its default).

Karapace is not on PyPI: install it from its source (github.com/Aiven-Open/karapace, tag 6.2.0)
into a venv under ``~/.cache/hub`` (docs/benchmarks/s19-registry.md says how) and pass
``--karapace-python`` / ``--karapace-src``.

Run: ``.venv/bin/python -m benchmarks.registry_karapace --rounds 3``
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import psutil

from benchmarks import registry_socket as rs

Row = tuple[str, Callable[[int], rs.Request]]


def _tree_cpu(proc: psutil.Process) -> float:
    """CPU seconds of the server and its children (uvicorn may fork a worker)."""
    total = rs._cpu(proc)
    for child in proc.children(recursive=True):
        with contextlib.suppress(psutil.NoSuchProcess):  # it ended between the two calls
            total += rs._cpu(child)
    return total


def _prepare(data: Path) -> tuple[str, int]:
    """``registry_socket._prepare`` with the ``HUB_*`` environment (event log, broker, prefix)."""
    from hub.bootstrap import bootstrap
    from hub.settings import load_settings

    h = bootstrap(load_settings(data_dir=data, projection_autostart=False))
    try:
        token = h.keys.create(["admin"], principal="bench").token
        sid = h.registry.register("bench-value", json.dumps(rs.SCHEMA)).id
    finally:
        h.close()
    return token, sid


def _serve_karapace(
    python: str, src: str | None, port: int, bootstrap: str, topic: str, log: Path
) -> subprocess.Popen[bytes]:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("HUB_", "PYTHON"))},
        "KARAPACE_BOOTSTRAP_URI": bootstrap,
        "KARAPACE_HOST": "127.0.0.1",
        "KARAPACE_PORT": str(port),
        "KARAPACE_REGISTRY_HOST": "127.0.0.1",
        "KARAPACE_REGISTRY_PORT": str(port),
        "KARAPACE_ADVERTISED_HOSTNAME": "127.0.0.1",
        "KARAPACE_ADVERTISED_PORT": str(port),
        "KARAPACE_TOPIC_NAME": topic,
        "KARAPACE_GROUP_ID": f"{topic}-group",
        "KARAPACE_CLIENT_ID": f"{topic}-client",
        "KARAPACE_MASTER_ELIGIBILITY": "true",
        "KARAPACE_COMPATIBILITY": "BACKWARD",  # the hub's default too
        "KARAPACE_LOG_LEVEL": "WARNING",
        "KARAPACE_KARAPACE_REGISTRY": "true",
    }
    if src:
        env["PYTHONPATH"] = src
    out = log.open("wb")
    # cwd: ``-m`` puts the working folder first on sys.path; a fresh one shadows nothing
    cmd = [python, "-m", "karapace"]
    proc = subprocess.Popen(cmd, env=env, cwd=log.parent, stdout=out, stderr=out)
    try:
        rs._wait_up(proc, port, "/subjects")
    except SystemExit:
        print(log.read_text(errors="replace")[-3000:])
        raise
    return proc


def _register_base(port: int, headers: dict[str, str], schema: bytes) -> int:
    client = rs.Client(port, headers)
    deadline = time.monotonic() + 60
    while True:  # Karapace answers 50x until its reader caught up and it knows its primary
        try:
            h = {**headers, "Content-Type": rs.TYPE}
            client.conn.request("POST", "/subjects/bench-value/versions", body=schema, headers=h)
            resp = client.conn.getresponse()
            body = resp.read()
            if resp.status == 200:
                return int(json.loads(body)["id"])
            if time.monotonic() > deadline:
                raise SystemExit(f"register bench-value: {resp.status} {body[:300]!r}")
        except OSError:
            client = rs.Client(port, headers)
        time.sleep(0.5)


def _measure(
    port: int, proc: psutil.Process, headers: dict[str, str], sid: int, args: argparse.Namespace
) -> dict[str, tuple[float, float, float]]:
    schema = json.dumps({"schema": json.dumps(rs.SCHEMA)}).encode()
    tag = uuid.uuid4().hex[:8]
    check = "/compatibility/subjects/bench-value/versions/latest"
    rows: list[Row] = [
        ("register", lambda i: ("POST", f"/subjects/r-{tag}-{i}-value/versions", schema)),
        ("compat", lambda i: ("POST", check, schema)),
        ("by-id", lambda i: ("GET", f"/schemas/ids/{sid}", None)),
    ]  # fmt: skip
    warm = rs.Client(port, headers)
    for _ in range(200):
        warm.send(("GET", f"/schemas/ids/{sid}", None))
    warm.close()
    out: dict[str, tuple[float, float, float]] = {}
    for name, make in rows:
        rs._loaded(port, headers, make, args.clients, args.warmup)  # topics, connections, caches
        before = _tree_cpu(proc)
        rate, lat = rs._loaded(port, headers, make, args.clients, args.seconds)
        cpu_ms = 1000 * (_tree_cpu(proc) - before) / max(len(lat), 1)
        out[name] = (rate, cpu_ms, os.getloadavg()[0])
    client = rs.Client(port, headers)
    before = _tree_cpu(proc)
    lat = rs._quiet(client, lambda i: ("GET", f"/schemas/ids/{sid}", None), args.n)
    cpu_ms = 1000 * (_tree_cpu(proc) - before) / (args.n + min(50, args.n))
    client.close()
    out["by-id quiet p50 ms"] = (statistics.median(lat), cpu_ms, os.getloadavg()[0])
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=6.0)
    ap.add_argument("--warmup", type=float, default=1.5, help="unmeasured seconds per row")
    ap.add_argument("-n", type=int, default=500, help="quiet schema-by-id reads")
    ap.add_argument("--port", type=int, default=26080, help="hub; Karapace uses port + 1")
    ap.add_argument("--old", default=None, help="also run the hub from this source folder")
    ap.add_argument(
        "--hub-only", action="store_true", help="no Karapace: hub against --old, ratios new/old"
    )
    ap.add_argument("--hub-log", choices=["kafka", "sqlite"], default="kafka")
    ap.add_argument("--bootstrap", default=None, help="default 127.0.0.1:$HUB_KAFKA_PORT")
    default_py = Path.home() / ".cache/hub/karapace-venv/bin/python"
    ap.add_argument("--karapace-python", default=str(default_py))
    ap.add_argument(
        "--karapace-src", default=None, help="PYTHONPATH for Karapace (its src/ when not installed)"
    )
    args = ap.parse_args(argv)
    bootstrap = args.bootstrap or f"127.0.0.1:{os.environ.get('HUB_KAFKA_PORT', '19092')}"
    schema = json.dumps({"schema": json.dumps(rs.SCHEMA)}).encode()
    names = ["register", "compat", "by-id", "by-id quiet p50 ms"]
    print(
        f"hub log {args.hub_log}, broker {bootstrap}, {args.clients} clients x {args.seconds:g} s"
    )
    for r in range(args.rounds):
        results: dict[str, dict[str, tuple[float, float, float]]] = {}
        who_all = ["hub", *([] if args.hub_only else ["karapace"]), *(["old"] if args.old else [])]
        order = who_all[r % len(who_all) :] + who_all[: r % len(who_all)]  # rotate who is first
        if r % 2 and len(who_all) > 2:  # two: the rotation alone alternates who is first
            order.reverse()
        for who in order:
            ns = f"bench-{uuid.uuid4().hex[:10]}"
            with tempfile.TemporaryDirectory(prefix="hub-registry-kp-") as tmp:
                if who in ("hub", "old"):
                    os.environ["HUB_EVENT_LOG"] = args.hub_log
                    os.environ["HUB_KAFKA_BOOTSTRAP_SERVERS"] = bootstrap
                    os.environ["HUB_KAFKA_TOPIC_PREFIX"] = f"{ns}."
                    token, sid = _prepare(Path(tmp) / "data")
                    server = rs._serve_hub(
                        Path(tmp) / "data", args.port, True, args.old if who == "old" else None
                    )
                    port, headers = args.port, {"Authorization": f"Bearer {token}"}
                else:
                    log = Path(tmp) / "karapace.log"
                    port, headers = args.port + 1, {}
                    server = _serve_karapace(
                        args.karapace_python, args.karapace_src, port, bootstrap, f"_{ns}", log
                    )
                try:
                    if who == "karapace":
                        sid = _register_base(port, headers, schema)
                    results[who] = _measure(port, psutil.Process(server.pid), headers, sid, args)
                finally:
                    server.terminate()
                    try:
                        server.wait(30)
                    except subprocess.TimeoutExpired:
                        server.kill()
                        server.wait(10)
        print(f"round {r} (order {', '.join(order)})", flush=True)
        for name in names:
            if args.hub_only:  # hub (this tree) against --old only
                (h, hcpu, hload) = results["hub"][name]
                line = f"  {name:20} hub {h:8.3f} ({hcpu:5.2f} CPU ms/op, load {hload:4.1f})"
                if "old" in results:
                    o, ocpu, oload = results["old"][name]
                    new_vs_old = o / h if "p50" in name else h / o
                    line += f" | old {o:8.3f} ({ocpu:5.2f}, load {oload:4.1f}) | {new_vs_old:5.2f}x"
                print(line, flush=True)
                continue
            (h, hcpu, hload), (k, kcpu, kload) = results["hub"][name], results["karapace"][name]
            unit = "ms" if "p50" in name else "ops/s"
            better = k / h if "p50" in name else h / k
            line = (
                f"  {name:20} hub {h:8.3f} {unit} ({hcpu:5.2f} CPU ms/op, load {hload:4.1f}) | "
                f"karapace {k:8.3f} ({kcpu:5.2f} CPU ms/op, load {kload:4.1f}) | "
                f"hub {better:5.2f}x"
            )
            if "old" in results:
                o, ocpu, oload = results["old"][name]
                vs_k = k / o if "p50" in name else o / k
                line += f" | old {o:8.3f} ({ocpu:5.2f}, load {oload:4.1f}) {vs_k:5.2f}x"
            print(line, flush=True)


if __name__ == "__main__":
    main()
