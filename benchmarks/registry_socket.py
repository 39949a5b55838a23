"""The Schema Registry over a real socket: `hub serve` (uvicorn) beside a raw uvicorn baseline.

Starts, each in a child process on a fresh data folder: `hub serve` and, as the baseline, a
hello-world ASGI app under the same uvicorn (httptools, one worker, no access log: uvicorn's
own recommended production settings for one process). Then times, with keep-alive
``http.client`` connections (the standard library's client: a few tens of µs per request, so
the figures are the servers' and the socket's, not a heavy client's):

- quiet: one client, one request at a time: p50, p99, ops/s for the raw baseline, the hub's
  ``GET /health`` (no key, no decision: FastAPI's stack alone), schema by id (both forms),
  ``versions/latest``, compatibility and register;
- loaded: ``--clients`` threads, each with its own connection, for ``--seconds`` per row:
  ops/s, p50, p99 of the same requests.

Every hub request but ``/health`` carries an API key and records a ``schema.read`` (or
``schema.write``) decision on ``hub.decisions``. ``--unsynced`` starts the hub with
``HUB_POLICY_UNSYNCED_READS=schema.read`` (docs/decisions-unsynced-reads.md); without it an
allowed read waits for its record's fsync. The server's CPU seconds per request (``psutil``)
and the load average are printed with each table: the machine is shared, so compare rows of
one run. ``--server-src DIR`` runs the hub server from another checkout's source folder (e.g.
``git archive main | tar -x -C DIR``) for a same-run "before".

Karapace is not installable here (not on PyPI; docs/benchmarks.md section 2): its figures in
issue 13 (register 86, compatibility 134, schema by id 148 ops/s, p50 5.7 ms, measured on this
machine in an earlier session) are context, not a same-run baseline.

Run: ``.venv/bin/python -m benchmarks.registry_socket [--unsynced] [--port 26080]``
"""

from __future__ import annotations

import argparse
import http.client
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

import psutil

SCHEMA = {
    "type": "record",
    "name": "BenchPayment",
    "namespace": "bench",
    "fields": [{"name": "id", "type": "string"}, {"name": "amount", "type": "long"}],
}
TYPE = "application/vnd.schemaregistry.v1+json"

HELLO = """
import uvicorn

async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    body = b'{"hello":"world"}'
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})

uvicorn.run(app, host="127.0.0.1", port=%d, log_level="warning", access_log=False,
            http="httptools", loop="asyncio")
"""

Request = tuple[str, str, bytes | None]  # method, path, body


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


def _wait_up(proc: subprocess.Popen[bytes], port: int, path: str) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            conn.request("GET", path)
            if conn.getresponse().status == 200:
                conn.close()
                return
        except OSError:
            pass
        if proc.poll() is not None:
            raise SystemExit(f"the server on port {port} exited with {proc.returncode}")
        time.sleep(0.2)
    proc.kill()
    raise SystemExit(f"the server on port {port} did not answer {path} within 120 s")


def _serve_hub(data: Path, port: int, unsynced: bool, src: str | None) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "HUB_DATA_DIR": str(data),
        "HUB_PROJECTION_AUTOSTART": "false",
        "HUB_LOG_LEVEL": os.environ.get("HUB_LOG_LEVEL", "WARNING"),
        "HUB_POLICY_UNSYNCED_READS": "schema.read" if unsynced else "",
    }
    if src:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [src, env.get("PYTHONPATH")]))
    cmd = [sys.executable, "-c", "from hub.cli import main; main()", "serve", "--port", str(port)]
    # cwd: ``python -c`` puts the working folder ahead of PYTHONPATH
    out = subprocess.DEVNULL
    proc = subprocess.Popen(cmd, env=env, cwd=src, stdout=out, stderr=out)
    _wait_up(proc, port, "/health")
    return proc


def _serve_hello(port: int) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen([sys.executable, "-c", HELLO % port], stdout=subprocess.DEVNULL)
    _wait_up(proc, port, "/")
    return proc


class Client:
    """One keep-alive connection; ``send`` raises on any answer that is not 2xx."""

    def __init__(self, port: int, headers: dict[str, str]) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        self.headers = headers

    def send(self, req: Request) -> None:
        method, path, body = req
        headers = self.headers if body is None else {**self.headers, "Content-Type": TYPE}
        self.conn.request(method, path, body=body, headers=headers)
        response = self.conn.getresponse()
        data = response.read()
        if response.status >= 300:
            raise SystemExit(f"{method} {path}: {response.status} {data[:300]!r}")

    def close(self) -> None:
        self.conn.close()


def _quiet(client: Client, make: Callable[[int], Request], n: int) -> list[float]:
    for i in range(min(50, n)):
        client.send(make(-1 - i))
    out = []
    for i in range(n):
        req = make(i)
        t0 = time.perf_counter()
        client.send(req)
        out.append((time.perf_counter() - t0) * 1000)
    return out


def _loaded(
    port: int, headers: dict[str, str], make: Callable[[int], Request], clients: int, s: float
) -> tuple[float, list[float]]:
    lats: list[list[float]] = [[] for _ in range(clients)]
    stop = time.perf_counter() + s

    def run(k: int) -> None:
        c = Client(port, headers)
        i = 0
        while time.perf_counter() < stop:
            req = make(k * 10_000_000 + i)
            i += 1
            t0 = time.perf_counter()
            c.send(req)
            lats[k].append((time.perf_counter() - t0) * 1000)
        c.close()

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


def _cpu(proc: psutil.Process) -> float:
    t = proc.cpu_times()
    return float(t.user + t.system)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--port", type=int, default=26080, help="hub; the baseline uses port + 1")
    ap.add_argument("-n", type=int, default=1000, help="requests per quiet row")
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--unsynced", action="store_true")
    ap.add_argument("--server-src", default=None, help="run the hub server from this source")
    ap.add_argument("--quiet-only", action="store_true")
    args = ap.parse_args(argv)
    schema = json.dumps({"schema": json.dumps(SCHEMA)}).encode()
    with tempfile.TemporaryDirectory(prefix="hub-registry-bench-") as tmp:
        data = Path(tmp) / "data"
        token, sid = _prepare(data)
        hub = _serve_hub(data, args.port, args.unsynced, args.server_src)
        hello = _serve_hello(args.port + 1)
        auth = {"Authorization": f"Bearer {token}"}
        # name, port, headers, request maker
        rows: list[tuple[str, int, dict[str, str], Callable[[int], Request]]] = [
            ("raw uvicorn hello world (baseline)", args.port + 1, {}, lambda i: ("GET", "/", None)),
            ("GET /health (hub's HTTP floor)", args.port, {}, lambda i: ("GET", "/health", None)),
            ("GET /schemas/ids/{id}", args.port, auth,
             lambda i: ("GET", f"/schemas/ids/{sid}", None)),
            ("GET /schemas/ids/{id}/schema", args.port, auth,
             lambda i: ("GET", f"/schemas/ids/{sid}/schema", None)),
            ("GET /subjects/{s}/versions/latest", args.port, auth,
             lambda i: ("GET", "/subjects/bench-value/versions/latest", None)),
            ("POST /compatibility/.../versions/latest", args.port, auth,
             lambda i: ("POST", "/compatibility/subjects/bench-value/versions/latest", schema)),
            ("POST /subjects/{s}/versions (register, new subject)", args.port, auth,
             lambda i: ("POST", f"/subjects/bench-{i}-value/versions", schema)),
        ]  # fmt: skip
        servers = {args.port: psutil.Process(hub.pid), args.port + 1: psutil.Process(hello.pid)}
        quiet: list[tuple[str, list[float], float, float]] = []
        loaded: list[tuple[str, float, list[float], float, float]] = []
        try:
            warm = Client(args.port, auth)
            for _ in range(300):  # the server's first decisions create its topic etc.
                warm.send(("GET", f"/schemas/ids/{sid}", None))
            warm.close()
            for name, port, headers, make in rows:
                client = Client(port, headers)
                n = args.n if "register" not in name else max(50, args.n // 5)
                before = _cpu(servers[port])
                lat = _quiet(client, make, n)
                spent = _cpu(servers[port]) - before
                client.close()
                quiet.append((name, lat, spent / (n + min(50, n)), os.getloadavg()[0]))
            for name, port, headers, make in [] if args.quiet_only else rows:
                if name.endswith("/schema"):  # the same work as the row before it
                    continue
                before = _cpu(servers[port])
                rate, lat = _loaded(port, headers, make, args.clients, args.seconds)
                spent = _cpu(servers[port]) - before
                loaded.append((name, rate, lat, spent / max(len(lat), 1), os.getloadavg()[0]))
        finally:
            for proc in (hub, hello):
                proc.terminate()
                proc.wait(30)
    mode = "unsynced schema.read" if args.unsynced else "schema.read waits for its fsync"
    src = f", server from {args.server_src}" if args.server_src else ""
    print(f"\nRegistry over a socket (hub serve, uvicorn; {mode}{src})")
    base = statistics.median(quiet[0][1])
    floor = statistics.median(quiet[1][1])
    print(f"{'quiet, one keep-alive client':52} {'p50 ms':>7} {'p99 ms':>7} {'ops/s':>7} "
          f"{'x raw':>6} {'x /health':>9} {'srv CPU ms/op':>13} {'load':>5}")  # fmt: skip
    for name, lat, cpu_per, load in quiet:
        p50 = statistics.median(lat)
        print(
            f"{name:52} {p50:7.3f} {_p(lat, 99):7.2f} {1000 * len(lat) / sum(lat):7.0f} "
            f"{p50 / base:6.2f} {p50 / floor:9.2f} {1000 * cpu_per:13.3f} {load:5.1f}"
        )
    if loaded:
        print(f"loaded, {args.clients} clients x {args.seconds:g} s")
        raw_rate = loaded[0][1]
        for name, rate, lat, cpu_per, load in loaded:
            print(
                f"{name:52} {statistics.median(lat):7.3f} {_p(lat, 99):7.2f} {rate:7.0f} "
                f"{rate / raw_rate:6.2f} {'':9} {1000 * cpu_per:13.3f} {load:5.1f}"
            )
        print("(loaded rows: 'x raw' is ops/s as a share of the raw baseline's ops/s)")


if __name__ == "__main__":
    main()
