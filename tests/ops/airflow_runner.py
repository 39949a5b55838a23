"""Runs Airflow CLI commands one after another in ONE process of Airflow's own virtualenv.

Each `airflow dags test` started as its own process pays Airflow's import and the build of its
in-process execution API again (~30 s of CPU each on this machine, most of the ops tests' time).
This script is started once by tests/ops/test_airflow.py and reads one request per line on
stdin: {"argv": [...], "env": {...}, "out": path} (or "code" instead of "argv": Python run
with Airflow's modules). It runs the CLI command exactly as the
`airflow` entry point would (same parser, same function), with the process environment replaced
by "env" and everything the command and its tasks write to the file descriptors 1 and 2 (logs,
prints, subprocesses) sent to "out"; then it answers {"rc": N} on its own stdout.

It runs with Airflow's interpreter, which does not have the hub installed: standard library and
Airflow only.
"""

from __future__ import annotations

import json
import os
import sys
import traceback


def _run(argv: list[str]) -> int:
    from airflow.cli import cli_parser

    args = cli_parser.get_parser().parse_args(argv)
    try:
        args.func(args)
    except SystemExit as stop:  # `dags test` raises SystemExit("DagRun failed") on a failed run
        if stop.code in (None, 0):
            return 0
        print(stop.code, file=sys.stderr)
        return stop.code if isinstance(stop.code, int) else 1
    return 0


def main() -> None:
    reply = os.fdopen(os.dup(1), "w", buffering=1)
    saved = (os.dup(1), os.dup(2))
    for line in sys.stdin:
        request = json.loads(line)
        os.environ.clear()
        os.environ.update(request["env"])
        with open(request["out"], "wb") as out:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(out.fileno(), 1)
            os.dup2(out.fileno(), 2)
            try:
                if "code" in request:  # a check that needs Airflow's modules, e.g. a DagBag
                    exec(request["code"], {})  # the test's own check
                    rc = 0
                else:
                    rc = _run(request["argv"])
            except BaseException:  # reported in the output; the runner goes on
                traceback.print_exc()
                rc = 1
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os.dup2(saved[0], 1)
                os.dup2(saved[1], 2)
        reply.write(json.dumps({"rc": rc}) + "\n")


if __name__ == "__main__":
    main()
