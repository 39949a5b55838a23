"""One Spark session for every Spark job of a test session (run by the Spark virtualenv's Python).

``SparkLauncher`` runs ``<HUB_SPARK_PYTHON> -I <job script> <spec.json>`` as its own process:
one JVM and one Spark session per job, whose start-up is most of a small job's time (20 s on a
quiet machine, 95 s at load 15). The Spark tests point ``HUB_SPARK_PYTHON`` at a shim
(``tests/ha/conftest.py``) that hands the same arguments to this server and exits with the
job's exit code; the server runs the job script's own ``main`` in one long-lived interpreter
whose Spark session the jobs share (``SparkSession.stop`` is a no-op here; the session stops
with the server). Everything else is the real path: the launcher's spec, process, output files
and ``result.json``, the job scripts, Spark ``local[N]``.

Protocol: one request per connection on a UNIX socket, JSON ``{"argv", "cwd", "stdout",
"stderr"}`` (the shim's output files, which the launcher reads); the answer is ``{"rc": N}``.
"""

from __future__ import annotations

import contextlib
import json
import os
import runpy
import socket
import sys
import traceback
from typing import Any


def run_job(request: dict[str, Any]) -> int:
    argv = [a for a in request["argv"] if a != "-I"]
    os.chdir(request["cwd"])
    with (
        open(request["stdout"], "a", encoding="utf-8") as out,
        open(request["stderr"], "a", encoding="utf-8") as err,
        contextlib.redirect_stdout(out),
        contextlib.redirect_stderr(err),
    ):
        try:
            job = runpy.run_path(argv[0], run_name="hub_spark_job")
            return int(job["main"](argv))
        except SystemExit as exc:
            return int(exc.code or 0)
        except BaseException:  # the launcher reads the cause from stderr.log
            traceback.print_exc()
            return 1


def main(path: str) -> None:
    from pyspark.sql import SparkSession

    SparkSession.stop = lambda self: None  # type: ignore[method-assign]  # shared by every job
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(4)
    print(f"spark job server on {path}", flush=True)
    while True:
        conn, _ = server.accept()
        with conn:
            data = b""
            while chunk := conn.recv(65536):
                data += chunk
            rc = run_job(json.loads(data))
            conn.sendall(json.dumps({"rc": rc}).encode())


SHIM = '''#!{python}
"""HUB_SPARK_PYTHON for the tests: hands the job to tests/ha/spark_server.py (one session)."""
import json, os, socket, sys

request = {{
    "argv": sys.argv[1:],
    "cwd": os.getcwd(),
    "stdout": os.readlink("/proc/self/fd/1"),
    "stderr": os.readlink("/proc/self/fd/2"),
}}
with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
    s.connect({socket_path!r})
    s.sendall(json.dumps(request).encode())
    s.shutdown(socket.SHUT_WR)
    answer = b""
    while chunk := s.recv(65536):
        answer += chunk
sys.exit(json.loads(answer)["rc"])
'''


if __name__ == "__main__":
    main(sys.argv[1])
