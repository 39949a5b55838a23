"""The Schema Registry over a real socket: `hub serve` (uvicorn) and a keep-alive HTTP client.

Starts `hub serve` on a fresh data folder in a child process, then times, with one keep-alive
``httpx`` client, each request type the Confluent serialisers send, beside the same run's
``GET /health`` floor (no key, no policy decision: the HTTP stack alone):

- quiet: one client, one request at a time (p50, p99, ops/s);
- loaded: ``--clients`` threads, each with its own keep-alive connection, reading schemas by id
  for ``--seconds`` (ops/s, p50, p99), again beside ``/health`` under the same load.

Every request carries an API key and records a policy decision (``schema.read`` waits for its
durable record unless ``--unsynced``, which starts the hub with
``HUB_POLICY_UNSYNCED_READS=schema.read``: docs/decisions-unsynced-reads.md). The server's CPU
seconds per request (``psutil``) are printed beside wall time: the machine is shared.

Karapace is not installable here (not on PyPI; docs/benchmarks.md section 2), so its figures
from issue 13 (register 86, compatibility 134, schema by id 148 ops/s, p50 5.7 ms, measured on
the same machine in an earlier session) are context only, not a same-run baseline.

Run: ``.venv/bin/python -m benchmarks.registry_socket [--unsynced] [--port 26080]``
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import psutil

SCHEMA = {
    "type": "record",
    "name": "BenchPayment",
    "namespace": "bench",
    "fields": [{"name": "id", "type": "string"}, {"name": "amount", "type": "long"}],
}


def _prepare(data: Path) -> tuple[str, int]:
    """An admin key and the id of a registered schema, written before the server starts."""
    from hub.bootstrap import bootstrap
    from hub.settings import load_settings

    h = bootstrap(load_settings(environ={}, data_dir=data, projection_autostart=False))
    try:
        token = h.keys.create(["admin"], principal="bench").token
        sid = h.registry.register("bench-value", json.dumps(SCHEMA)).id
    finally:
        h.close()
    return token, sid


def _serve(data: Path, port: int, unsynced: bool) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "HUB_DATA_DIR": str(data),
        "HUB_PROJECTION_AUTOSTART": "false",
        "HUB_LOG_LEVEL": "WARNING",
        "HUB_POLICY_UNSYNCED_READS": "schema.read" if unsynced else "",
    }
    cmd = [sys.executable, "-c", "from hub.cli import main; main()", "serve", "--port", str(port)]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        if proc.poll() is not None:
            raise SystemExit(f"hub serve exited with {proc.returncode}")
        time.sleep(0.2)
    proc.kill()
    raise SystemExit("hub serve did not answer /health within 120 s")


def _timed(fn: Callable[[int], object], n: int) -> list[float]:
    for i in range(min(50, n)):
        fn(-1 - i)
    out = []
    for i in range(n):
        t0 = time.perf_counter()
        fn(i)
        out.append((time.perf_counter() - t0) * 1000)
    return out


def _ok(response: httpx.Response) -> httpx.Response:
    if response.status_code >= 300:
        raise SystemExit(f"{response.request.url}: {response.status_code} {response.text}")
    return response


def _loaded(
    url: str, headers: dict[str, str], path: str, clients: int, seconds: float
) -> tuple[float, list[float]]:
    lats: list[list[float]] = [[] for _ in range(clients)]
    stop = time.perf_counter() + seconds

    def run(k: int) -> None:
        with httpx.Client(base_url=url, headers=headers, timeout=60) as c:
            while time.perf_counter() < stop:
                t0 = time.perf_counter()
                _ok(c.get(path))
                lats[k].append((time.perf_counter() - t0) * 1000)

    started = time.perf_counter()
    threads = [threading.Thread(target=run, args=(k,)) for k in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    flat = [x for part in lats for x in part]
    return len(flat) / (time.perf_counter() - started), flat


def _p(lat: list[float], q: int) -> float:
    return statistics.quantiles(lat, n=100)[q - 1] if len(lat) > 2 else float("nan")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--port", type=int, default=26080)
    ap.add_argument("-n", type=int, default=1000, help="requests per quiet row")
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--unsynced", action="store_true")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="hub-registry-bench-") as tmp:
        data = Path(tmp) / "data"
        token, sid = _prepare(data)
        proc = _serve(data, args.port, args.unsynced)
        server = psutil.Process(proc.pid)
        url = f"http://127.0.0.1:{args.port}"
        headers = {"Authorization": f"Bearer {token}"}
        body = {"schema": json.dumps(SCHEMA)}
        rows: list[tuple[str, list[float], float]] = []
        try:
            with httpx.Client(base_url=url, headers=headers, timeout=60) as c:
                quiet: list[tuple[str, Callable[[int], object]]] = [
                    ("GET /health (HTTP floor)", lambda i: _ok(c.get("/health"))),
                    ("GET /schemas/ids/{id}", lambda i: _ok(c.get(f"/schemas/ids/{sid}"))),
                    (
                        "GET /schemas/ids/{id}/schema",
                        lambda i: _ok(c.get(f"/schemas/ids/{sid}/schema")),
                    ),
                    (
                        "GET /subjects/{s}/versions/latest",
                        lambda i: _ok(c.get("/subjects/bench-value/versions/latest")),
                    ),
                    (
                        "POST /compatibility/subjects/{s}/versions/latest",
                        lambda i: _ok(
                            c.post("/compatibility/subjects/bench-value/versions/latest", json=body)
                        ),
                    ),
                    (
                        "POST /subjects/{s}/versions (register, new subject)",
                        lambda i: _ok(c.post(f"/subjects/bench-{i}-value/versions", json=body)),
                    ),
                ]
                for _ in range(300):  # the server's first decisions create its topic etc.
                    _ok(c.get(f"/schemas/ids/{sid}"))
                for name, fn in quiet:
                    cpu = server.cpu_times()
                    n = args.n if "register" not in name else max(50, args.n // 5)
                    lat = _timed(fn, n)
                    after = server.cpu_times()
                    spent = (after.user + after.system) - (cpu.user + cpu.system)
                    rows.append((name, lat, spent / (n + min(50, n))))
            loaded: list[tuple[str, float, list[float], float]] = []
            for name, path, hdrs in (
                ("GET /health (HTTP floor)", "/health", {}),
                ("GET /schemas/ids/{id}", f"/schemas/ids/{sid}", headers),
            ):
                cpu = server.cpu_times()
                rate, lat = _loaded(url, hdrs, path, args.clients, args.seconds)
                after = server.cpu_times()
                spent = (after.user + after.system) - (cpu.user + cpu.system)
                loaded.append((name, rate, lat, spent / max(len(lat), 1)))
        finally:
            proc.terminate()
            proc.wait(30)
    mode = "unsynced schema.read" if args.unsynced else "schema.read waits for its fsync"
    print(f"\nRegistry over a socket (hub serve, uvicorn; {mode}); load {os.getloadavg()[0]:.1f}")
    floor = statistics.median(rows[0][1])
    print(f"{'quiet, one keep-alive client':58} {'p50 ms':>8} {'p99 ms':>8} {'ops/s':>8} "
          f"{'x floor':>8} {'srv CPU ms/op':>14}")  # fmt: skip
    for name, lat, cpu_per in rows:
        p50 = statistics.median(lat)
        print(
            f"{name:58} {p50:8.2f} {_p(lat, 99):8.2f} {1000 * len(lat) / sum(lat):8.0f} "
            f"{p50 / floor:8.2f} {1000 * cpu_per:14.3f}"
        )
    print(f"loaded, {args.clients} clients x {args.seconds:g} s")
    for name, rate, lat, cpu_per in loaded:
        print(
            f"{name:58} {statistics.median(lat):8.2f} {_p(lat, 99):8.2f} {rate:8.0f} "
            f"{'':8} {1000 * cpu_per:14.3f}"
        )


if __name__ == "__main__":
    main()
