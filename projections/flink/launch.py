"""Submit and supervise compiled projection jobs: one PyFlink process per job.

``FlinkLauncher(python, workdir)`` runs ``projections/flink/job.py`` with the PyFlink
virtualenv's interpreter (``infra/flink.sh python``); each job runs on a Flink mini-cluster inside
that process. Per job, under ``workdir/<name>``:
  1. ``spec.json`` (mode 0600: it holds the PostgreSQL password) is written;
  2. the process starts with ``TMPDIR`` and Java's temp folder inside the job folder (Flink
     writes big temporary files) and the registry credentials in its environment only. That
     environment is the hub's minus its settings and secrets (``core.childenv``): the job reads
     PostgreSQL's password from the spec and its three keys (registry, row MAC, tenant MAC) from
     the names this launcher sets, nothing else of the hub's (``HUB_MASTER_KEY``,
     ``HUB_VAULT_TOKEN``, database URLs) reaches the JVM, its Python workers or their logs;
  3. ``FlinkJob.wait`` returns when a bounded job finished, or raises ``FlinkJobFailed`` with the
     root cause Flink logged (the Python traceback only says "job failed").
A job that should stop is sent SIGTERM, then SIGKILL (``FlinkJob.stop`` / ``kill``); with
checkpoints on, a restart resumes from the newest retained checkpoint (``latest_checkpoint``).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from core import tenant_mac
from core.childenv import child_environment
from core.errors import ConfigError, HubError
from projections.flink.compile import JobSpec
from projections.flink.rowmac import ROW_KEY_ENV

JOB_SCRIPT = Path(__file__).with_name("job.py")
# The job's JVM: the C1 compiler only and the serial collector. A job process spends most of its
# CPU planning the statement set (Calcite) and starting, which C2's compile threads and G1's
# parallel threads slow down on a small machine: measured in one run at load 19 on two cores, the
# shared differential job from start to submission took 33 s of CPU (143 s wall) with these,
# 65 s (302 s wall) without. ``HUB_FLINK_JAVA_OPTIONS`` replaces them (e.g. ``""`` for C2's peak
# throughput on a long-running job with cores to spare).
JAVA_OPTIONS = "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC"
_CAUSE = re.compile(r"^(Caused by: .*|.*(Exception|Error): .*)$", re.MULTILINE)


class FlinkJobFailed(HubError):
    code = "flink_job_failed"


@dataclass
class FlinkJob:
    name: str
    folder: Path
    process: subprocess.Popen[bytes]
    started: float

    @property
    def stdout(self) -> Path:
        return self.folder / "stdout.log"

    @property
    def stderr(self) -> Path:
        return self.folder / "stderr.log"

    def running(self) -> bool:
        return self.process.poll() is None

    def wait(self, timeout_s: float) -> float:
        """Wait for a bounded job; the seconds it took. ``FlinkJobFailed`` with the cause."""
        try:
            rc = self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.kill()
            raise FlinkJobFailed(
                f"Flink job {self.name!r} did not finish within {timeout_s:.0f} s and was killed; "
                f"its output is in {self.folder}.\n{self.cause()}"
            ) from None
        if rc != 0:
            raise FlinkJobFailed(
                f"Flink job {self.name!r} failed (exit code {rc}); output in {self.folder}.\n"
                f"{self.cause()}"
            )
        return time.monotonic() - self.started

    def stop(self, timeout_s: float = 30.0) -> None:
        """SIGTERM the job's process group (driver, JVM, Python workers), SIGKILL after
        ``timeout_s``. A retained checkpoint survives: the next start resumes from it."""
        if self.running():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.kill()

    def kill(self) -> None:
        """SIGKILL the job's whole process group (the JVM and the Python UDF workers): a crash."""
        if self.running():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def cause(self) -> str:
        """The last error lines Flink wrote (its own log first, then the process's stderr)."""
        texts = []
        for path in [*sorted((self.folder / "log").glob("*.log")), self.stderr]:
            try:
                texts.append(path.read_text(errors="replace"))
            except OSError:
                continue
        causes = [m.group(0) for text in texts for m in _CAUSE.finditer(text)]
        tail = "\n".join(dict.fromkeys(causes[-12:]))
        return tail or (texts[-1][-3000:] if texts else "(no output)")


class FlinkLauncher:
    def __init__(
        self,
        python: Path,
        workdir: Path,
        registry_auth: str | Mapping[str, str] = "",
        row_key: bytes | None = None,
        tenant_key: bytes | Mapping[str, bytes] | None = None,
    ) -> None:
        """``registry_auth``: the API key (``KEY_ID:SECRET``) the jobs read writer schemas with,
        or one per registry URL (a job reading the topics of several hubs). ``row_key``: the key
        the jobs MAC their result rows under (``projections.flink.rowmac``), in their
        environment only. ``tenant_key``: the key of the hub's tenant MACs on its data records
        (``core.tenant_mac``), or one per topic prefix (several hubs); in their environment
        only. A job reading Kafka refuses to start without the key of each of its namespaces."""
        self.row_key = row_key
        self.tenant_key = tenant_key
        self.python = python
        self.workdir = workdir
        self.registry_auth = (
            registry_auth if isinstance(registry_auth, str) else json.dumps(dict(registry_auth))
        )

    def check(self) -> None:
        if not self.python.exists():
            raise ConfigError(
                f"The PyFlink interpreter {self.python} does not exist: run 'bash infra/flink.sh "
                "setup' (or 'make flink-setup'), or point HUB_FLINK_PYTHON at one."
            )

    def submit(self, spec: JobSpec) -> FlinkJob:
        self.check()
        folder = self.workdir / spec.name
        (folder / "tmp").mkdir(parents=True, exist_ok=True)
        (folder / "log").mkdir(exist_ok=True)
        # 1. the spec, readable by this user only
        path = folder / "spec.json"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(spec.to_json())
        # 2. the process, in its own process group (kill takes the JVM and workers with it)
        # only what the job needs: the JVM and Python find themselves through PATH, JAVA_HOME,
        # HOME and the locale, which child_environment keeps; the hub's settings and anything
        # secret-like stay behind (the row and tenant keys are set below, never inherited)
        env = child_environment()
        env.update(
            {
                "TMPDIR": str(folder / "tmp"),
                "JAVA_TOOL_OPTIONS": f"-Djava.io.tmpdir={folder / 'tmp'} "
                + os.environ.get("HUB_FLINK_JAVA_OPTIONS", JAVA_OPTIONS),
                "FLINK_LOG_DIR": str(folder / "log"),
                "HUB_FLINK_REGISTRY_AUTH": self.registry_auth,
                "PYTHONUNBUFFERED": "1",
                # entity folds import the hub's own fold functions (projections.folds)
                "PYTHONPATH": str(JOB_SCRIPT.parents[2]),
            }
        )
        if self.row_key is not None:
            env[ROW_KEY_ENV] = self.row_key.hex()
        if self.tenant_key is not None:
            env[tenant_mac.KEY_ENV] = tenant_mac.env_value(self.tenant_key)
        # appended: a restarted job's folder keeps the output of the run that died
        with open(folder / "stdout.log", "ab") as out, open(folder / "stderr.log", "ab") as err:
            process = subprocess.Popen(
                [str(self.python), str(JOB_SCRIPT), str(path)],
                stdout=out,
                stderr=err,
                env=env,
                cwd=folder,
                start_new_session=True,
            )
        return FlinkJob(spec.name, folder, process, time.monotonic())


def latest_checkpoint(checkpoint_dir: Path) -> Path | None:
    """The newest completed checkpoint (``<job id>/chk-N`` holding ``_metadata``), or None."""
    done = [m.parent for m in checkpoint_dir.glob("*/chk-*/_metadata")]
    if not done:
        return None
    return max(done, key=lambda p: (p.stat().st_mtime, int(p.name.split("-")[1])))
