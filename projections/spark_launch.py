"""Run a PySpark job script in the Spark virtualenv and exchange files with it.

The hub never imports pyspark (its lock holds none: pyspark pins py4j differently from
apache-flink). ``SparkLauncher(python, workdir).run(script, name, spec)``:
  1. makes ``workdir/<name>`` (emptied first) and writes ``spec.json`` there: what the job reads
     and where it writes (inputs are files the caller wrote, e.g. Parquet);
  2. runs ``<python> <script> spec.json`` with ``TMPDIR`` and Java's temp folder inside the job
     folder and the job's output in ``stdout.log`` / ``stderr.log`` there, in its own process
     group (a timeout kills the JVM with it); its environment is the hub's minus the hub's
     settings and secrets (``core.childenv``): the job gets everything it needs in the spec;
  3. reads ``result.json`` the job wrote last; a job that exits non-zero, or writes no result,
     raises ``SparkJobFailed`` with the error lines of its output.
One process is one Spark session (``local[N]``): start-up costs seconds, so a job does all its
work in one run.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from core.childenv import child_environment
from core.errors import ConfigError, HubError

_CAUSE = re.compile(r"^(Caused by: .*|.*(Exception|Error): .*)$", re.MULTILINE)


class SparkJobFailed(HubError):
    code = "spark_job_failed"


class SparkLauncher:
    def __init__(self, python: Path, workdir: Path, master: str = "local[2]") -> None:
        self.python = python
        self.workdir = workdir
        self.master = master

    def check(self) -> None:
        if not self.python.exists():
            raise ConfigError(
                f"The PySpark interpreter {self.python} does not exist: run 'bash infra/spark.sh "
                "install' (or 'make spark-deps'), or point HUB_SPARK_PYTHON at one."
            )

    def folder(self, name: str) -> Path:
        """An empty job folder ``workdir/<name>`` for the caller's input files."""
        folder = self.workdir / name
        if folder.exists():
            shutil.rmtree(folder)
        (folder / "tmp").mkdir(parents=True)
        return folder

    def run(
        self, script: Path, folder: Path, spec: Mapping[str, Any], timeout_s: float = 900.0
    ) -> dict[str, Any]:
        """Run ``script`` on ``spec`` in ``folder`` (from ``folder()``); the job's result.json."""
        self.check()
        # 1. the spec
        path = folder / "spec.json"
        path.write_text(json.dumps({**spec, "master": self.master}, indent=2), encoding="utf-8")
        result = folder / "result.json"
        result.unlink(missing_ok=True)
        # 2. the process
        # the hub's settings and secrets (HUB_MASTER_KEY, HUB_VAULT_TOKEN, database URLs) stay
        # behind: the job reads local files the spec names
        env = child_environment()
        env.update(
            {
                "TMPDIR": str(folder / "tmp"),
                "JAVA_TOOL_OPTIONS": f"-Djava.io.tmpdir={folder / 'tmp'}",
                "PYSPARK_PYTHON": str(self.python),
                "PYSPARK_DRIVER_PYTHON": str(self.python),
            }
        )
        started = time.monotonic()
        with open(folder / "stdout.log", "wb") as out, open(folder / "stderr.log", "wb") as err:
            process = subprocess.Popen(
                # -I: the script's folder is not put on sys.path (projections/types.py would
                # shadow the standard library's types module), nor PYTHON* variables read
                [str(self.python), "-I", str(script), str(path)],
                stdout=out,
                stderr=err,
                env=env,
                cwd=folder,
                start_new_session=True,
            )
            try:
                rc = process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait()
                raise SparkJobFailed(
                    f"Spark job {script.name} did not finish within {timeout_s:.0f} s and was "
                    f"killed; its output is in {folder}.\n{cause(folder)}"
                ) from None
        # 3. the result
        if rc != 0 or not result.exists():
            raise SparkJobFailed(
                f"Spark job {script.name} failed (exit code {rc}); output in {folder}.\n"
                f"{cause(folder)}"
            )
        out_doc: dict[str, Any] = json.loads(result.read_text(encoding="utf-8"))
        out_doc["process_seconds"] = round(time.monotonic() - started, 3)
        return out_doc


def cause(folder: Path) -> str:
    """The last error lines the job wrote (``HubJobError:`` lines are the job's own)."""
    try:
        text = (folder / "stderr.log").read_text(errors="replace")
    except OSError:
        return "(no output)"
    own = [line for line in text.splitlines() if line.startswith("HubJobError: ")]
    if own:
        return own[-1].removeprefix("HubJobError: ")
    causes = [m.group(0) for m in _CAUSE.finditer(text)]
    return "\n".join(dict.fromkeys(causes[-12:])) or text[-3000:] or "(no output)"
